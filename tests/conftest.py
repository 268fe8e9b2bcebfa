"""Shared fixtures: a fixed cast of users, and the service gates.

Tests marked `postgres`, `redis` or `browser` need that server or browser. Without it they are
skipped with the reason; with RLHF_REQUIRE_SERVICES=1 (CI) they fail instead.

Nothing here imports torch: the tiny-model fixtures live in tests/model_fixtures.py, imported by
the conftests of the folders whose tests run a model (training, core, faults, browser). A test that
needs a project's rows and runs no model takes `factory_project` or `factory_ranked_project`.
"""

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import ComparisonTaskFactory, ProjectFactory, PromptFactory, UserFactory, rank_every_task
from training.services import do_register_base_policy

REQUIRE_SERVICES = os.environ.get("RLHF_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _redis_missing() -> str | None:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        return f"needs Redis, but CELERY_BROKER_URL is {urlsplit(url).scheme}://"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"needs Redis, but {url} does not answer ({exc})"
    return None


def _missing(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return f"needs PostgreSQL, but the database is {connection.vendor}"
    if marker == "redis":
        return _redis_missing()
    if marker == "browser" and not shutil.which(CHROMIUM):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("postgres", "redis", "browser"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _missing(marker)
        if reason and REQUIRE_SERVICES:
            pytest.fail(f"{reason} (RLHF_REQUIRE_SERVICES=1)", pytrace=False)
        if reason:
            pytest.skip(reason)


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    where = f"{db['HOST'] or 'local socket'}:{db['PORT'] or '-'}" if "postgresql" in db["ENGINE"] else db["NAME"]
    broker = urlsplit(settings.CELERY_BROKER_URL)
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} at {where}",
        f"broker: {broker.scheme}://{broker.hostname or ''}{':' + str(broker.port) if broker.port else ''}",
        f"chromium: {shutil.which(CHROMIUM) or 'not found'}; services required: {REQUIRE_SERVICES}",
    ]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def model_store(settings, tmp_path, monkeypatch):
    """Each test writes checkpoints to its own store (child processes get it from the environment)."""
    settings.MODEL_STORE = tmp_path / "models"
    monkeypatch.setenv("MODEL_STORE", str(settings.MODEL_STORE))
    return settings.MODEL_STORE


@pytest.fixture(scope="session")
def bundled_store() -> Path:
    """The project's own model store, where the bundled model is converted once and kept."""
    return Path(__file__).resolve().parent.parent / "var" / "models"


@pytest.fixture
def child_env(monkeypatch):
    """Points processes this test starts (workers, training children) at the test database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    monkeypatch.setenv("DATABASE_URL", url)
    return os.environ.copy()


@pytest.fixture
def labeler(db):
    return UserFactory(username="labeler")


@pytest.fixture
def other_labeler(db):
    return UserFactory(username="other_labeler")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def factory_project(db):
    """tiny_project's rows without its model: K=3, 5 prompts and the active base policy, on the bundled
    model's alias, which nothing that takes this fixture loads."""
    project = ProjectFactory(k=3, max_new_tokens=8, temperature=1.0)
    PromptFactory.create_batch(5, project=project)
    do_register_base_policy(project)
    return project


@pytest.fixture
def factory_ranked_project(factory_project, labeler):
    """ranked_project's rows without its model: for each prompt a task of K factory completions from the
    base policy, ranked once by the labeler."""
    policy = factory_project.policies.get(version=0)
    for prompt in factory_project.prompts.all():
        ComparisonTaskFactory(prompt=prompt, policy_version=policy)
    rank_every_task(factory_project, labeler)
    return factory_project
