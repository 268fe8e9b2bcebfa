import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_database, env_int

ROOT = Path(__file__).resolve().parent.parent


def manage_check(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_ENV", "DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_it_stops_start_up_on_a_malformed_database_url():
    result = manage_check(DATABASE_URL="not-a-url")
    assert result.returncode != 0
    assert "DATABASE_URL is malformed" in result.stderr


def test_it_names_the_variable_for_an_unsupported_database(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL names an unsupported database 'mysql'"):
        env_database("DATABASE_URL", "sqlite:///x")


def test_it_refuses_production_with_debug_on():
    result = manage_check(DJANGO_ENV="production", DEBUG="1", SECRET_KEY="x" * 40, ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "DEBUG must be off when DJANGO_ENV=production" in result.stderr


def test_it_refuses_production_with_the_default_secret_key():
    result = manage_check(DJANGO_ENV="production", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_starts_when_configured():
    result = manage_check(DJANGO_ENV="production", SECRET_KEY="s" * 50, ALLOWED_HOSTS="example.org")
    assert result.returncode == 0, result.stderr


def test_typed_readers_name_the_variable(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG='maybe' is not a boolean"):
        env_bool("SOME_FLAG", False)
    monkeypatch.setenv("SOME_COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="SOME_COUNT='ten' is not an integer"):
        env_int("SOME_COUNT", 1)
    monkeypatch.setenv("SOME_COUNT", "")
    assert env_int("SOME_COUNT", 7) == 7
