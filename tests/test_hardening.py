"""Login throttling, the security headers on every kind of response, and `check --deploy`.

The cast: a labeler of a project, a stranger hammering the login form. Throttling is per
username and address (see settings): the test client always comes from 127.0.0.1.
"""

import os
import re
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import PASSWORD, ProjectFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def fail_logins(client, username: str, times: int) -> None:
    """`times` wrong passwords; those below the limit get the form back, told so."""
    for n in range(1, times + 1):
        response = client.post(reverse("login"), {"username": username, "password": "wrong-password"})
        assert response.status_code == (429 if n >= settings.AXES_FAILURE_LIMIT else 200)


# --- login throttling ----------------------------------------------------------------------


def test_it_locks_a_username_out_after_the_failure_limit_even_with_the_right_password(client, labeler):
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT - 1)
    locked = client.post(reverse("login"), {"username": "labeler", "password": "wrong-password"})
    assert locked.status_code == 429
    refused = client.post(reverse("login"), {"username": "labeler", "password": PASSWORD})
    assert refused.status_code == 429
    text = refused.content.decode()
    assert "Too many failed logins for “labeler” from this address" in text
    assert "even with the right password" in text and "15 minutes after the last attempt" in text
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("labeling:home")).status_code == 302  # still not logged in


def test_fewer_failures_than_the_limit_still_let_the_right_password_in_and_start_over(client, labeler):
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT - 1)
    assert client.post(reverse("login"), {"username": "labeler", "password": PASSWORD}).status_code == 302
    client.logout()
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT - 1)  # the success reset the count
    assert client.post(reverse("login"), {"username": "labeler", "password": PASSWORD}).status_code == 302


def test_a_lockout_is_per_username_so_other_labelers_still_log_in(client, labeler, other_labeler):
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT)
    response = client.post(reverse("login"), {"username": "other_labeler", "password": PASSWORD})
    assert response.status_code == 302


def test_an_admin_unlocks_a_username_with_the_reset_command(client, labeler):
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT)
    call_command("axes_reset_username", "labeler", stdout=StringIO())
    assert client.post(reverse("login"), {"username": "labeler", "password": PASSWORD}).status_code == 302


def test_the_admin_login_is_throttled_too(client, admin_user):
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "admin", "password": "wrong-password"})
    response = client.post(url, {"username": "admin", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_a_locked_out_labelers_api_token_still_works(client, labeler):
    """Tokens are random 160-bit keys, not guessable, and never pass through the login form:
    throttling them would only let whoever locks the username out stop the labeler's scripts."""
    project = ProjectFactory()
    project.labelers.add(labeler)
    fail_logins(client, "labeler", settings.AXES_FAILURE_LIMIT)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=labeler).key}")
    assert api.get(reverse("api:next-task"), {"project": project.pk}).status_code == 204


def test_the_limit_and_cool_off_come_from_the_environment():
    env = {**os.environ, "LOGIN_FAILURE_LIMIT": "3", "LOGIN_COOLOFF_MINUTES": "40"}
    code = "from django.conf import settings; print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stdout.strip().splitlines()[-1] == "3 0:40:00", result.stderr
    bad = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "LOGIN_FAILURE_LIMIT": "0"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "LOGIN_FAILURE_LIMIT=0 is below its minimum of 1" in bad.stderr


# --- headers -------------------------------------------------------------------------------

CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.parametrize(
    "what", ["login page", "labeler page", "htmx fragment", "a 404", "API JSON", "API 401", "admin page", "API docs"]
)
def test_every_kind_of_response_carries_the_security_headers(client, labeler, admin_user, what):
    project = ProjectFactory()
    project.labelers.add(labeler)
    if what in ("labeler page", "htmx fragment", "a 404"):
        client.force_login(labeler)
    if what in ("API JSON", "admin page"):
        client.force_login(admin_user)
    url, headers = {
        "login page": (reverse("login"), {}),
        "labeler page": (reverse("labeling:home"), {}),
        "htmx fragment": (reverse("labeling:demonstrations", args=[project.pk]), {"HX-Request": "true"}),
        "a 404": (reverse("labeling:demonstrations", args=[project.pk + 1]), {}),
        "API JSON": (reverse("api:project-list"), {}),
        "API 401": (reverse("api:project-list"), {}),
        "admin page": (reverse("admin:index"), {}),
        "API docs": (reverse("api:docs"), {}),
    }[what]
    response = client.get(url, headers=headers)
    assert response.status_code == {"a 404": 404, "API 401": 401}.get(what, 200)
    assert directives(response["Content-Security-Policy"]) == CSP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_the_api_docs_start_up_script_is_a_file_not_inline(client):
    page = client.get(reverse("api:docs")).content.decode()
    assert "<script>" not in page and "<style>" not in page
    script = client.get(reverse("api:docs") + "?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_browsable_api_has_no_inline_style(client, labeler):
    client.force_login(labeler)
    response = client.get(reverse("api:api-root"), headers={"Accept": "text/html"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "<style" not in response.content.decode()


# An inline <script>, a <style> element or attribute, an on* handler, htmx's hx-on.
INLINE_CODE = (r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", r"<style", r"\sstyle=", r"\son[a-z]+=", r"hx-on")


def test_our_templates_have_no_inline_script_style_or_event_handler():
    """The CSP refuses them; json_script data blocks (type application/json) are not scripts."""
    offences = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        # Comments may name them: {# #} on one line (Django prints one that spans lines), {% comment %}.
        text = re.sub(r"{#[^\n]*?#}|{% comment %}[\s\S]*?{% endcomment %}", "", path.read_text())
        assert "{#" not in text, f"{path.relative_to(ROOT)}: a {{# #}} comment over several lines is printed"
        for pattern in INLINE_CODE:
            offences += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in re.finditer(pattern, text)]
    assert offences == []


# --- check --deploy -------------------------------------------------------------------------


def test_check_deploy_is_clean_in_production():
    """With the variables the README's production setup names, `check --deploy` warns of nothing."""
    # Not the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (tests/browser/conftest.py), which a deployment has not.
    unset = {"DEBUG", "SECURE_COOKIES", "SECURE_HSTS_SECONDS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="rlhf.example.org",
        DATABASE_URL=os.environ.get("DATABASE_URL") or "postgres://rlhf@localhost:5432/rlhf",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
