"""An OpenAI-compatible chat-completions endpoint as a judge (what vLLM, TGI, Ollama and hosted
providers serve): one call per question, retried with back-off, within a budget of calls.

The key is read from the worker's environment by the variable's name, sent in the Authorization
header and nowhere else: errors name the endpoint and the status, never the key.
"""

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from labeling.conversations import Conversation, as_dicts

RETRIED_STATUSES = {408, 409, 429, 500, 502, 503, 504}
TIMEOUT_SECONDS = 60.0
BACKOFF_SECONDS = 1.0
"""Before the first retry; doubled after each."""


class EndpointError(Exception):
    """The endpoint cannot judge: said in words, for the run's error."""


@dataclass
class Endpoint:
    base_url: str
    model: str
    key_env: str = ""
    max_calls: int = 2000
    retries: int = 3
    timeout: float = field(default_factory=lambda: TIMEOUT_SECONDS)
    backoff: float = field(default_factory=lambda: BACKOFF_SECONDS)
    calls: int = 0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key_env:
            key = os.environ.get(self.key_env)
            if not key:
                raise EndpointError(f"The worker has no environment variable {self.key_env} (the endpoint's key).")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def ask(self, chat: Conversation) -> str:
        """The endpoint's reply to one chat (temperature 0, one token is enough for a letter; a few more
        allowed for models that open with a word). Raises EndpointError once retries or the budget run out."""
        body = json.dumps({"model": self.model, "messages": as_dicts(chat), "temperature": 0, "max_tokens": 4})
        headers = self._headers()
        wait = self.backoff
        try:
            for attempt in range(self.retries + 1):
                if self.calls >= self.max_calls:
                    raise EndpointError(f"The run's budget of {self.max_calls} calls to the endpoint is spent.")
                self.calls += 1
                try:
                    return self._post(body.encode("utf-8"), headers)
                except _Retry as exc:
                    if attempt == self.retries:
                        raise EndpointError(f"{self.url} failed {self.retries + 1} times; the last: {exc}") from None
                    self.sleep(wait)
                    wait *= 2
        except EndpointError as exc:
            raise EndpointError(self._redacted(str(exc))) from None
        raise AssertionError("unreachable")

    def _redacted(self, text: str) -> str:
        """`text` with the key blanked, should an endpoint echo it back in an error."""
        key = os.environ.get(self.key_env) if self.key_env else None
        return text.replace(key, "[the key]") if key else text

    def _post(self, body: bytes, headers: dict[str, str]) -> str:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code in RETRIED_STATUSES:
                raise _Retry(f"HTTP {exc.code}{detail}") from None
            raise EndpointError(f"{self.url} refused the request: HTTP {exc.code}{detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(f"no answer ({'timed out' if isinstance(reason, TimeoutError) else reason})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EndpointError(f"{self.url} did not answer with JSON.") from None
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.url} answered without choices[0].message.content.") from None


class _Retry(Exception):
    pass


def _detail(exc: urllib.error.HTTPError) -> str:
    """The error's message from an OpenAI-style body ({"error": {"message": ...}}), shortened."""
    try:
        body = json.loads(exc.read().decode("utf-8"))
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    return f" ({str(message)[:200]})" if message else ""
