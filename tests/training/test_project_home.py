"""The project home through HTTP: what it shows staff, its launch buttons (the same `launch` as the
admin's actions, refusals in words), and that nobody else reaches it."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from labeling.models import Ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.reports.home import project_overview
from training.services import KINDS, do_register_base_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = ProjectFactory(name="Helpful", k=2, retrain_threshold=5)
    do_register_base_policy(project)
    return project


def rank(project, labeler, n: int = 1) -> None:
    for _ in range(n):
        task = ComparisonTaskFactory(prompt__project=project, policy_version=PolicyVersion.objects.get(version=0))
        Ranking.objects.create(task=task, labeler=labeler, order=[[c.pk] for c in task.display_completions()])


def test_staff_see_the_versions_the_next_round_and_a_button_per_kind_of_run(admin_client, project, labeler):
    rank(project, labeler, 2)
    body = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert "Active policy" in body and "v0" in body and "the base model" in body
    assert "<strong>2</strong> rankings since the start (no reward model yet); a round starts at 5." in body
    assert "Due after 3 more rankings; beat checks every 300 s" in body
    kinds = re.findall(r'data-kind="(\w+)"', body)
    assert kinds == [kind for kind in KINDS if kind != "judge"]  # the AI judge's once the project has one
    assert body.count('name="csrfmiddlewaretoken"') >= len(KINDS)
    assert "Idle: nothing queued or running." in body


def test_the_next_round_follows_beats_check_and_a_live_round(admin_client, project, labeler):
    rank(project, labeler, 5)
    every = IntervalSchedule.objects.create(every=300, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="start-due-rounds", task="training.start_due_rounds", interval=every, last_run_at=timezone.now()
    )
    body = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert "Due now: beat starts it at its next check, about" in body
    live = TrainingRun.objects.create(project=project, kind="round", status="running")
    body = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert f'A round is running: <a href="{live.get_absolute_url()}">run {live.pk}</a>' in body


def test_the_workers_show_each_queues_runs_with_their_phase_and_what_waits(admin_client, project):
    other = ProjectFactory(name="Other")
    sampling = TrainingRun.objects.create(
        project=other, kind="generate", status="running", progress=0.4,
        metrics=[{"phase": "loading the policy"}, {"phase": "sampling prompts 9 to 16 of 50"}],
    )  # fmt: skip
    waiting = TrainingRun.objects.create(project=project, kind="blind_eval", status="queued")
    round_ = TrainingRun.objects.create(project=project, kind="round", status="running", progress=0.2)
    TrainingRun.objects.create(
        project=project, kind="rm", status="running", parent=round_, metrics=[{"phase": "scoring held-out rankings"}]
    )
    queues = {q["name"]: q["runs"] for q in project_overview(project)["queues"]}
    assert [(r["run"], r["phase"], r["ahead"], r["ours"]) for r in queues["generation"]] == [
        (sampling, "sampling prompts 9 to 16 of 50", 0, False),
        (waiting, "waiting for a worker", 1, True),
    ]
    [row] = queues["training"]
    assert row["run"] == round_ and row["step_phase"] == "scoring held-out rankings"
    response = admin_client.get(reverse("training:project", args=[project.pk]), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.strip().startswith('<section id="workers"') and 'hx-trigger="every 3s"' in body  # the fragment alone
    assert "sampling prompts 9 to 16 of 50" in body and "1 ahead of it" in body and "Other" in body


def test_a_launch_queues_the_run_through_launch_and_goes_to_its_page(admin_client, project, admin_user):
    response = admin_client.post(reverse("training:launch", args=[project.pk]), {"kind": "generate", "prompts": "7"})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert (run.kind, run.status, run.prompts, run.launched_by) == ("generate", "queued", 7, admin_user)


def test_a_refused_launch_says_why_on_the_page_and_starts_nothing(admin_client, project):
    response = admin_client.post(reverse("training:launch", args=[project.pk]), {"kind": "rm"})
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not started: Reward model" in body
    assert "Project &#x27;Helpful&#x27; has no rankings to train a reward model on." in body
    assert not TrainingRun.objects.exists()


def test_the_blind_evaluation_pickers_avoid_both_sides_being_v0(admin_client, project):
    v1 = PolicyVersion.objects.create(project=project, version=1, checkpoint="x", parent=PolicyVersion.objects.get())
    v0 = PolicyVersion.objects.get(version=0)
    url = reverse("training:launch", args=[project.pk])
    same = admin_client.post(url, {"kind": "blind_eval", "a": v0.pk, "b": v0.pk})
    assert same.status_code == 409
    body = same.content.decode()
    assert "Both sides are policy v0: choose two different versions." in body
    assert re.search(rf'<select name="b">\s*<option value="{v1.pk}"[^>]*>v1', body)  # both versions to pick from
    assert re.search(rf'<option value="{v0.pk}" selected>v0', body)  # the posted choice is kept
    # v1 over v0 needs held-out prompts: the next refusal names how to hold some out
    other = admin_client.post(url, {"kind": "blind_eval", "a": v0.pk, "b": v1.pk})
    assert other.status_code == 409 and "Hold out for evaluation" in other.content.decode()
    project.prompts.update(heldout=True)
    ComparisonTaskFactory(prompt__project=project, prompt__heldout=True, policy_version=v0)
    done = admin_client.post(url, {"kind": "blind_eval", "a": v0.pk, "b": v1.pk, "prompts": "5"})
    run = TrainingRun.objects.get(kind="blind_eval")
    assert done.status_code == 302 and (run.baseline, run.policy, run.prompts) == (v0, v1, 5)


def test_a_bad_input_is_a_422_naming_it(admin_client, project):
    response = admin_client.post(reverse("training:launch", args=[project.pk]), {"kind": "generate", "prompts": "0"})
    assert response.status_code == 422 and "prompts:" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_labelers_and_strangers_reach_neither_the_home_nor_the_launch(client, project):
    home, launch = reverse("training:project", args=[project.pk]), reverse("training:launch", args=[project.pk])
    for _ in range(2):
        assert client.get(home).status_code == 302
        response = client.post(launch, {"kind": "generate"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        client.force_login(UserFactory(username="ann"))
    assert not TrainingRun.objects.exists()


def test_the_admin_and_the_dashboard_link_the_project_home(admin_client, project):
    home = reverse("training:project", args=[project.pk])
    assert home in admin_client.get(reverse("admin:labeling_project_change", args=[project.pk])).content.decode()
    assert home in admin_client.get(reverse("admin:labeling_project_changelist")).content.decode()
    assert home in admin_client.get(reverse("training:dashboard", args=[project.pk])).content.decode()


def test_the_reward_model_shows_its_held_out_accuracy_with_its_pairs(admin_client, project):
    RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", heldout_accuracy=0.75, trained_through_ranking_id=0,
        trained_through_time=timezone.now(), rankings_count=12, metrics={"heldout": {"pairs": 8}},
    )  # fmt: skip
    body = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert "on 12 rankings" in body and "too few pairs to tell" in body and "8 pairs" in body
