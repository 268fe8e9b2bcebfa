"""Typed readers for settings that come from the environment.

Each reader returns the default when the variable is unset or empty, and raises
ImproperlyConfigured naming the variable when its value cannot be used: a typo in a
deployment must stop start-up, not run with a silently different setting.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def env_str(name: str, default: str) -> str:
    return _raw(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default


_DATABASE_ENGINES = {
    "django.db.backends.postgresql": "postgres://USER@HOST:PORT/NAME",
    "django.db.backends.sqlite3": "sqlite:////absolute/path/db.sqlite3",
}


def env_database(name: str, default: str) -> dict:
    """A Django DATABASES entry from a URL; PostgreSQL and SQLite are supported."""
    url = _raw(name) or default
    hint = " or ".join(_DATABASE_ENGINES.values())
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception:  # dj_database_url raises several types; the URL may hold a password
        raise ImproperlyConfigured(f"{name} is malformed; expected {hint}.") from None
    if config.get("ENGINE") not in _DATABASE_ENGINES:
        raise ImproperlyConfigured(f"{name} names an unsupported database {url.split(':', 1)[0]!r}; expected {hint}.")
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} has no database name; expected {hint}.")
    return config
