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
