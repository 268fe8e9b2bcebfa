"""A run's page leads with its outcome once it finishes, names the phase while it runs, and shows a
chart of fewer than 3 points as numbers."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import ProjectFactory
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.services import do_register_base_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    project = ProjectFactory(name="Helpful")
    do_register_base_policy(project)
    return project


def page(client, run) -> str:
    return client.get(reverse("training:run", args=[run.pk])).content.decode()


def reward_model(project, run, pairs: int) -> RewardModelVersion:
    return RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", created_by_run=run, heldout_accuracy=0.7, accuracy=0.9,
        trained_through_ranking_id=0, trained_through_time=timezone.now(), rankings_count=40,
        metrics={"heldout": {"pairs": pairs}},
    )  # fmt: skip


def test_a_reward_model_run_leads_with_the_version_its_accuracy_and_pairs(admin_client, project):
    run = TrainingRun.objects.create(
        project=project, kind="rm", status="succeeded", progress=1.0,
        metrics=[{"step": 1, "steps": 1, "loss": 0.69, "accuracy": 0.5}],
    )  # fmt: skip
    reward_model(project, run, pairs=60)
    body = page(admin_client, run)
    assert body.index("What came out") < body.index('id="run-progress"')
    assert (
        "<strong>Reward model v1</strong> — trained on 40 rankings; held-out accuracy: 70% (95% CI 57–80%, 60 pairs)"
        in body
    )


def test_a_reward_model_on_few_held_out_pairs_says_too_few_to_tell(admin_client, project):
    run = TrainingRun.objects.create(project=project, kind="rm", status="succeeded", progress=1.0)
    reward_model(project, run, pairs=12)
    assert "held-out accuracy: too few pairs to tell (12 pairs)" in page(admin_client, run)


def test_a_round_names_the_reward_model_and_policy_its_steps_made(admin_client, project):
    round_ = TrainingRun.objects.create(project=project, kind="round", status="succeeded")
    rm = TrainingRun.objects.create(project=project, kind="rm", status="succeeded", parent=round_)
    ppo = TrainingRun.objects.create(project=project, kind="ppo", status="succeeded", parent=round_)
    reward_model(project, rm, pairs=30)
    PolicyVersion.objects.create(project=project, version=1, checkpoint="y", created_by_run=ppo, status="candidate")
    body = page(admin_client, round_)
    assert "<strong>Reward model v1</strong>" in body
    assert "<strong>Policy v1</strong> — candidate: promote it in the admin to sample from it" in body


def test_a_sampling_run_says_how_many_tasks_it_made(admin_client, project):
    run = TrainingRun.objects.create(
        project=project, kind="generate", status="succeeded", policy=PolicyVersion.objects.get(), prompts=8,
        metrics=[{"step": 8, "tasks": 8, "tokens_per_s": 41.0}],
    )  # fmt: skip
    assert "<strong>8 comparison tasks</strong> — from policy v0, ready for labelers" in page(admin_client, run)


def test_a_failed_run_leads_with_the_reason(admin_client, project):
    run = TrainingRun.objects.create(
        project=project, kind="ppo", status="failed", error="LaunchRefused: no reward model\nTraceback ..."
    )
    body = page(admin_client, run)
    assert '<p class="outcome-reason">The run failed: LaunchRefused: no reward model</p>' in body
    assert body.index("outcome-reason") < body.index('id="run-progress"')


def test_a_running_run_names_its_phase_beside_the_bar_and_has_no_outcome(admin_client, project):
    run = TrainingRun.objects.create(
        project=project, kind="rm", status="running", progress=0.92,
        metrics=[{"step": 1, "steps": 1, "loss": 0.6}, {"phase": "the reference offset: the mean score"}],
    )  # fmt: skip
    body = page(admin_client, run)
    assert '<span class="run-phase">· the reference offset: the mean score</span>' in body
    assert "What came out" not in body


def test_charts_of_fewer_than_3_points_show_numbers_and_longer_ones_a_chart(admin_client, project):
    few = TrainingRun.objects.create(
        project=project, kind="rm", status="running",
        metrics=[{"step": 1, "loss": 0.6931, "accuracy": 0.5}, {"step": 2, "loss": 0.52, "heldout_loss": 0.61}],
    )  # fmt: skip
    body = page(admin_client, few)
    assert "data-chart" not in body and body.count('<table class="chart-values">') == 2
    assert (
        "<tr><td>1</td><td>0.693</td><td></td></tr>" in body and "<tr><td>2</td><td>0.52</td><td>0.61</td></tr>" in body
    )
    many = TrainingRun.objects.create(
        project=project, kind="rm", status="running", metrics=[{"step": s, "loss": 0.7 - 0.1 * s} for s in range(1, 4)]
    )
    body = page(admin_client, many)
    assert body.count("data-chart") == 1 and "chart-values" not in body
