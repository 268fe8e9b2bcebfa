"""PostgreSQL killed and started again while 16 labelers rank through the API of a real gunicorn.

The test starts its own cluster (never the machine's server), migrates and seeds it, starts
gunicorn on it, and kills the postmaster by its PID (an immediate shutdown: every backend dies
mid-query) while the labelers rank; two seconds later it starts the cluster again. Each labeler
retries a 503 as a client should (the same ranking again: stored once). Afterwards every ranking
that was acknowledged with 200/201 is in the database, none twice, no task over its overlap.
"""

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest

from tests.faults.servers import django_env, gunicorn, postgres_cluster, seed
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
LABELERS = 16


@dataclass
class Seen:
    """What the clients saw; lists are appended to from many threads."""

    acknowledged: list[tuple[int, int]] = field(default_factory=list)  # (ranking id, task id)
    ok_at: list[float] = field(default_factory=list)  # monotonic time of each 2xx
    unavailable: list[tuple[str, dict | str, str | None]] = field(default_factory=list)  # (path, body, Retry-After)
    errors: list[str] = field(default_factory=list)


class Labeler:
    """One labeler's keep-alive connection; a connection the server dropped is reopened."""

    def __init__(self, url: str, token: str | None = None, session: str | None = None):
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Token {token}"} if token else {"Cookie": f"sessionid={session}"}

    def call(self, method: str, path: str, body: dict | None = None):
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        parsed = json.loads(data) if response.getheader("Content-Type", "").startswith("application/json") else data
        return response.status, parsed, response


def rank_until(url: str, token: str, project: int, deadline: float, seen: Seen) -> None:
    client = Labeler(url, token)

    def until_answered(method: str, path: str, body: dict | None = None):
        def answered():
            status, data, response = client.call(method, path, body)
            if status == 503:
                seen.unavailable.append((path, data, response.getheader("Retry-After")))
                return None
            return status, data

        return wait_until(answered, deadline + 30 - time.monotonic(), f"{path} still answers 503 30 s after the end")

    while time.monotonic() < deadline:
        status, task = until_answered("GET", f"/api/tasks/next/?project={project}")
        if status != 200:
            seen.errors.append(f"next {status}: {str(task)[:200]}")
            return
        seen.ok_at.append(time.monotonic())
        order = [[c["id"]] for c in task["completions"]]
        status, ranking = until_answered("POST", f"/api/tasks/{task['id']}/ranking/", {"order": order})
        if status not in (200, 201):
            seen.errors.append(f"ranking {status}: {str(ranking)[:200]}")
            return
        seen.ok_at.append(time.monotonic())
        seen.acknowledged.append((ranking["id"], task["id"]))


def browse_until(url: str, session: str, deadline: float, seen: Seen, pages: list[tuple[int, str]]) -> None:
    """A logged-in browser reloading the home page: what it gets while the database is away."""
    client = Labeler(url, session=session)
    while time.monotonic() < deadline:
        status, body, response = client.call("GET", "/")
        pages.append((status, response.getheader("Content-Type", "")))
        if status == 503:
            seen.unavailable.append(("/", body.decode(), response.getheader("Retry-After")))
        elif status != 200:
            seen.errors.append(f"home page {status}: {body[:200]!r}")
        time.sleep(0.1)  # the pace of a browser reloading the page, not a wait


def test_rankings_survive_a_postgresql_restart_under_16_labelers():
    with postgres_cluster() as pg:
        env = django_env(pg.create_database("faults"))
        seeded = seed(env, tasks=3000, labelers=LABELERS, overlap=2)
        with gunicorn(env) as (url, _server):
            seen, pages = Seen(), []
            deadline = time.monotonic() + 12
            threads = [
                threading.Thread(target=rank_until, args=(url, token, seeded["project"], deadline, seen))
                for token in seeded["tokens"]
            ]
            browser = (url, seeded["sessions"][0], deadline, seen, pages)
            threads.append(threading.Thread(target=browse_until, args=browser))
            for thread in threads:
                thread.start()
            wait_until(lambda: len(seen.acknowledged) >= LABELERS, 10, "the labelers ranked nothing before the kill")
            before = len(seen.acknowledged)
            pg.kill()
            time.sleep(2)  # the outage's length is the scenario: the database is away for 2 s
            pg.start()
            back_at = time.monotonic()
            for thread in threads:
                thread.join(timeout=90)
            assert not any(thread.is_alive() for thread in threads)
        with psycopg.connect(pg.url("faults")) as db:
            stored = dict(db.execute("SELECT id, task_id FROM labeling_ranking").fetchall())
            twice = db.execute(
                "SELECT count(*) FROM"
                " (SELECT 1 FROM labeling_ranking GROUP BY task_id, labeler_id HAVING count(*) > 1) pairs"
            ).fetchone()[0]
            over = db.execute(
                "SELECT count(*) FROM labeling_comparisontask t WHERE target_overlap <"
                " (SELECT count(*) FROM labeling_ranking r WHERE r.task_id = t.id)"
            ).fetchone()[0]

    recovered_in = min(t for t in seen.ok_at if t > back_at) - back_at
    acknowledged = dict(seen.acknowledged)
    lost = [pk for pk in acknowledged if stored.get(pk) != acknowledged[pk]]
    print(
        f"rankings acknowledged {len(acknowledged)} (before the kill {before}), found {len(acknowledged) - len(lost)},"
        f" lost {len(lost)}, duplicated {twice}, stored {len(stored)}; 503 answers {len(seen.unavailable)};"
        f" first 2xx {recovered_in:.2f} s after the start"
    )
    assert seen.errors == []  # no 500, no traceback, no other status
    assert len(seen.acknowledged) == len(acknowledged)  # no ranking id acknowledged twice
    assert (lost, twice, over) == ([], 0, 0)
    assert before > 0 and len(acknowledged) > before  # ranked before the kill and after the start
    assert seen.unavailable, "nobody met the outage"
    for path, body, retry_after in seen.unavailable:
        assert retry_after == "5"
        if path == "/":
            assert "Unavailable for a moment" in body and "Traceback" not in body
        else:
            assert body["code"] == "database_unavailable"
    assert any(status == 503 and kind.startswith("text/html") for status, kind in pages)
    assert recovered_in < 5  # the same gunicorn reconnects by itself
