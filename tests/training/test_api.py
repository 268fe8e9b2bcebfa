"""The training API through HTTP: versions, and runs listed, launched and cancelled by staff."""

from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from labeling.models import Ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory
from tests.labeling.test_api import client_for
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.services import do_register_base_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user):
    return client_for(admin_user)


@pytest.fixture
def project():
    project = ProjectFactory(k=2)
    do_register_base_policy(project)
    return project


def add_ranking(project, labeler) -> Ranking:
    task = ComparisonTaskFactory(prompt__project=project, policy_version=PolicyVersion.objects.get(project=project))
    return Ranking.objects.create(task=task, labeler=labeler, order=[[c.pk] for c in task.display_completions()])


def add_reward_model(project, version: int = 1) -> RewardModelVersion:
    return RewardModelVersion.objects.create(
        project=project,
        version=version,
        checkpoint=f"reward_models/rm-{version}",
        trained_through_ranking_id=0,
        trained_through_time=timezone.now(),
        rankings_count=0,
    )


def test_staff_launch_a_sampling_run(staff, project, admin_user):
    response = staff.post("/api/runs/", {"project": project.pk, "kind": "generate", "prompts": 5, "task_kind": "eval"})
    assert response.status_code == 201
    run = TrainingRun.objects.get()
    assert response.json()["id"] == run.pk
    assert (run.kind, run.status, run.launched_by) == ("generate", "queued", admin_user)
    assert (run.prompts, run.task_kind) == (5, "eval")


def test_staff_launch_reward_model_ppo_and_round_runs(staff, project, labeler):
    add_ranking(project, labeler)
    assert staff.post("/api/runs/", {"project": project.pk, "kind": "rm"}).status_code == 201
    add_reward_model(project)
    ppo = staff.post("/api/runs/", {"project": project.pk, "kind": "ppo", "steps": 3})
    assert ppo.status_code == 201 and ppo.json()["config"]["steps"] == 3
    assert staff.post("/api/runs/", {"project": project.pk, "kind": "round"}).status_code == 201
    assert sorted(TrainingRun.objects.values_list("kind", flat=True)) == ["ppo", "rm", "round"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("rm", "has no rankings to train a reward model on"),
        ("ppo", "has no reward model yet"),
        ("round", "has no rankings to train a reward model on"),
    ],
)
def test_a_run_the_project_cannot_start_is_a_409_with_the_reason(staff, project, kind, message):
    response = staff.post("/api/runs/", {"project": project.pk, "kind": kind})
    assert response.status_code == 409
    assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


def test_sampling_without_an_active_policy_is_a_409(staff):
    project = ProjectFactory()
    response = staff.post("/api/runs/", {"project": project.pk, "kind": "generate"})
    assert response.status_code == 409
    assert "has no active policy" in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


def test_a_second_live_round_is_a_409_naming_the_first(staff, project, labeler):
    add_ranking(project, labeler)
    first = staff.post("/api/runs/", {"project": project.pk, "kind": "round"}).json()
    response = staff.post("/api/runs/", {"project": project.pk, "kind": "round"})
    assert response.status_code == 409
    assert f"(run {first['id']})" in response.json()["detail"]
    assert TrainingRun.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"project": None, "kind": "generate"}, "project"),
        ({"project": 999999, "kind": "generate"}, "project"),
        ({"kind": "teleport"}, "kind"),
        ({"kind": "generate", "prompts": 0}, "prompts"),
        ({"kind": "ppo", "steps": "many"}, "steps"),
    ],
)
def test_a_malformed_launch_is_a_400_naming_the_field(staff, project, body, field):
    response = staff.post("/api/runs/", {"project": project.pk, **body})
    assert response.status_code == 400
    assert field in response.json()
    assert TrainingRun.objects.count() == 0


def test_labelers_cannot_launch_or_cancel_runs(project, labeler):
    run = TrainingRun.objects.create(project=project, kind="rm")
    api = client_for(labeler)
    assert api.post("/api/runs/", {"project": project.pk, "kind": "generate"}).status_code == 403
    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    assert api.get(f"/api/runs/{run.pk}/").status_code == 403
    assert TrainingRun.objects.get().status == "queued"


def test_launching_or_cancelling_without_a_valid_token_is_a_401_and_changes_nothing(project):
    run = TrainingRun.objects.create(project=project, kind="rm")
    client = APIClient()
    assert client.post("/api/runs/", {"project": project.pk, "kind": "generate"}).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 401
    assert list(TrainingRun.objects.values_list("status", flat=True)) == ["queued"]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_is_a_503_and_the_run_is_marked_failed(project, admin_user):
    with mock.patch("webapp.celery.app.send_task", side_effect=OperationalError("Connection refused")):
        response = client_for(admin_user).post("/api/runs/", {"project": project.pk, "kind": "generate"})
    assert response.status_code == 503
    assert "task queue is unreachable" in response.json()["detail"]
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "Connection refused" in run.error


def test_staff_cancel_a_queued_run_once(staff, project, admin_user):
    run = TrainingRun.objects.create(project=project, kind="rm")
    response = staff.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "Cancelled by admin.")
    again = staff.post(f"/api/runs/{run.pk}/cancel/")
    assert again.status_code == 409
    assert again.json() == {"detail": f"Run {run.pk} already cancelled."}


def test_cancelling_a_run_that_does_not_exist_is_a_404(staff):
    assert staff.post("/api/runs/999999/cancel/").status_code == 404


def test_staff_list_runs_by_project_and_read_one_with_its_metrics(staff, project):
    other = ProjectFactory()
    mine = TrainingRun.objects.create(project=project, kind="rm", metrics=[{"step": 1, "loss": 0.7}])
    TrainingRun.objects.create(project=other, kind="rm")
    listing = staff.get(f"/api/runs/?project={project.pk}").json()["results"]
    assert [row["id"] for row in listing] == [mine.pk]
    assert "metrics" not in listing[0]
    detail = staff.get(f"/api/runs/{mine.pk}/").json()
    assert detail["metrics"] == [{"step": 1, "loss": 0.7}] and detail["kind"] == "rm"


def test_staff_list_policy_and_reward_model_versions_by_project(staff, project):
    other = ProjectFactory()
    do_register_base_policy(other)
    reward_model = add_reward_model(project)
    policies = staff.get(f"/api/policies/?project={project.pk}").json()["results"]
    assert [(row["version"], row["status"]) for row in policies] == [(0, "active")]
    reward_models = staff.get(f"/api/reward-models/?project={project.pk}").json()["results"]
    assert [row["id"] for row in reward_models] == [reward_model.pk]
    assert staff.get(f"/api/reward-models/?project={other.pk}").json()["results"] == []
