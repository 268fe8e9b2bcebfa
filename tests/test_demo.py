import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from labeling.models import Project
from tests.waiting import wait_until
from training.models import PolicyVersion

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_usable_project_and_logins(capsys):
    call_command("seed_demo")
    project = Project.objects.get()
    assert 45 <= project.prompts.count() <= 60
    assert PolicyVersion.objects.get(project=project).status == PolicyVersion.Status.ACTIVE
    output = capsys.readouterr().out
    assert "admin    login: admin / demo-admin-password" in output
    login = RequestFactory().post("/accounts/login/")  # django-axes throttles by the request's address
    admin = authenticate(login, username="admin", password="demo-admin-password")
    labeler = authenticate(login, username="labeler", password="demo-labeler-password")
    assert admin.is_staff and not labeler.is_staff
    assert set(project.labelers.all()) == {admin, labeler}


def test_seed_demo_can_run_twice():
    call_command("seed_demo")
    call_command("seed_demo")
    assert Project.objects.get().prompts.count() == 50
    assert PolicyVersion.objects.count() == 1


@pytest.mark.django_db(False)
def test_the_demos_sqlite_database_takes_every_migration(tmp_path):
    """The demo runs on SQLite while the tests run on PostgreSQL: each migration must apply to both
    (an index with NULLS LAST, say, does not on SQLite)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(VAR_DIR=str(tmp_path), DJANGO_ENV="development")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "demo.sqlite3").exists()


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except (OSError, urllib.error.URLError):
        return None


def _demo_rows(database: Path) -> tuple[int, list[tuple[str, int, str]]]:
    """(comparison tasks, [(run kind, prompts, status)]) in the demo's SQLite database."""
    with closing(sqlite3.connect(database, timeout=5)) as db:
        tasks = db.execute("SELECT count(*) FROM labeling_comparisontask").fetchone()[0]
        runs = db.execute("SELECT kind, prompts, status FROM training_trainingrun ORDER BY id").fetchall()
    return tasks, runs


@pytest.mark.slow
@pytest.mark.django_db(False)
def test_the_demo_serves_its_first_page_before_sampling_and_queues_the_sampling(tmp_path):
    """`make demo`'s script on a fresh VAR_DIR: the login page answers while no comparison exists,
    then the sampling is queued for the workers (4 prompts first, then the rest), not run inline."""
    root = Path(__file__).resolve().parent.parent
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(VAR_DIR=str(tmp_path), DJANGO_ENV="development", PORT=str(port))
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip

    def demo_log() -> str:
        return (tmp_path / "demo.log").read_text()[-3000:]

    def running() -> bool:
        assert demo.poll() is None, demo_log()  # the script has not exited
        return True

    try:
        deadline = time.monotonic() + 180
        login_page = f"http://127.0.0.1:{port}/accounts/login/"
        wait_until(lambda: running() and _get(login_page) == 200, deadline - time.monotonic(), demo_log, interval=0.5)
        tasks, _ = _demo_rows(tmp_path / "demo.sqlite3")
        assert tasks == 0  # the first page answers before any comparison is sampled
        wait_until(lambda: running() and "The demo is up:" in (tmp_path / "demo.log").read_text(),
                   deadline - time.monotonic(), demo_log, interval=0.5)  # fmt: skip
        _, runs = _demo_rows(tmp_path / "demo.sqlite3")
        assert [(kind, prompts) for kind, prompts, _ in runs] == [("generate", 4), ("generate", 1000)]
        assert {status for _, _, status in runs} <= {"queued", "running"}
    finally:
        os.killpg(demo.pid, signal.SIGTERM)  # the script's trap stops the server, the workers and beat
        demo.wait(timeout=60)
        log.close()
    output = (tmp_path / "demo.log").read_text()
    assert "Queued sample comparisons run" in output and "The demo is up:" in output
    assert f"training   http://127.0.0.1:{port}/training/" in output  # staff find the training side
    assert "labeler  login: labeler / demo-labeler-password" in output.split("The demo is up:")[1]  # not scrolled away
    assert (tmp_path / "demo-logs" / "web.log").exists()  # the request log goes to a file
