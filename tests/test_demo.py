import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from labeling.models import Project
from training.models import PolicyVersion

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_usable_project_and_logins(capsys):
    call_command("seed_demo")
    project = Project.objects.get()
    assert 45 <= project.prompts.count() <= 60
    assert PolicyVersion.objects.get(project=project).status == PolicyVersion.Status.ACTIVE
    output = capsys.readouterr().out
    assert "admin    login: admin / demo-admin-password" in output
    admin = authenticate(username="admin", password="demo-admin-password")
    labeler = authenticate(username="labeler", password="demo-labeler-password")
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
