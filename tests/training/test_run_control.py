import os
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.waiting import wait_until
from training.executors import carry_out
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run, fail_stale_runs
from training.services import BrokerUnavailable, create_run, launch
from training.supervisor import supervise_in_child

pytestmark = pytest.mark.django_db


def test_cancelling_a_queued_run_stops_it_before_it_starts(factory_project):
    run = create_run(factory_project, "generate", prompts=2)
    assert do_cancel_run(run, by="admin")
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "Cancelled by admin.")

    assert carry_out(run.pk) is None  # a worker picking it up later does nothing


def test_a_finished_run_cannot_be_cancelled(factory_project):
    run = create_run(factory_project, "generate", prompts=1)
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert not do_cancel_run(run)
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_run_without_a_heartbeat_is_marked_failed(factory_project):
    now = timezone.now()
    stale = TrainingRun.objects.create(
        project=factory_project, kind="rm", status="running", heartbeat_at=now - timedelta(minutes=5)
    )
    fresh = TrainingRun.objects.create(project=factory_project, kind="rm", status="running", heartbeat_at=now)
    assert fail_stale_runs(now) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed" and "No heartbeat" in stale.error
    assert fresh.status == "running"


def test_an_unreachable_broker_fails_the_launch_plainly(factory_project, django_capture_on_commit_callbacks):
    with mock.patch("webapp.celery.app.send_task", side_effect=OperationalError("Connection refused")):
        with pytest.raises(BrokerUnavailable, match="task queue is unreachable"):
            with django_capture_on_commit_callbacks(execute=True):
                launch(factory_project, "generate", prompts=2)
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "Connection refused" in run.error


@pytest.mark.parametrize("cancel_at", ["a training step", "the end of training"])
def test_a_run_cancelled_while_it_trains_registers_nothing(ranked_project, monkeypatch, cancel_at):
    ranked_project.recipe.reward_model_config = {"max_length": 64}
    ranked_project.recipe.save()
    run = create_run(ranked_project, "rm")

    def train_then_cancel(model, tokenizer, data, config, log, heldout, **placement):
        do_cancel_run(run, by="admin")  # the admin presses Cancel while the model trains
        if cancel_at == "a training step":
            log({"step": 1, "steps": 1, "loss": 0.5})
        return {}

    monkeypatch.setattr("training.executors.reward_model.train_reward_model", train_then_cancel)
    carry_out(run.pk)
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "Cancelled by admin.")
    assert not RewardModelVersion.objects.exists()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_child_process_and_leaves_the_active_policy(ranked_project, child_env):
    ranked_project.recipe.reward_model_config = {"max_length": 64}
    ranked_project.recipe.ppo_config = {
        "steps": 500,
        "batch_prompts": 2,
        "minibatch_size": 2,
        "ppo_epochs": 1,
        "max_new_tokens": 4,
    }
    ranked_project.recipe.save()
    carry_out(create_run(ranked_project, "rm").pk)
    active = PolicyVersion.objects.get(project=ranked_project, status="active")
    run = create_run(ranked_project, "ppo")

    def supervise() -> None:
        try:
            supervise_in_child(run.pk)
        finally:
            connection.close()

    supervisor = threading.Thread(target=supervise)
    supervisor.start()
    training = TrainingRun.objects.filter(pk=run.pk, child_pid__isnull=False).exclude(metrics=[])
    run = wait_until(training.first, 60, "the child did not start training")
    pid = run.child_pid
    assert pid and run.status == "running"
    assert do_cancel_run(run, by="admin")
    supervisor.join(timeout=60)
    assert not supervisor.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.child_pid is None
    assert PolicyVersion.objects.get(project=ranked_project, status="active") == active
    assert PolicyVersion.objects.filter(project=ranked_project).count() == 1


def test_the_run_page_shows_progress_and_chart_data_to_staff(client, admin_user, factory_project):
    run = TrainingRun.objects.create(
        project=factory_project, kind="ppo", status="running", progress=0.5,
        metrics=[{"step": 1, "steps": 2, "score": 0.1, "kl": 0.0, "beta": 0.05, "clipfrac": 0.1, "approx_kl": 0.01}],
    )  # fmt: skip
    client.force_login(admin_user)
    page = client.get(reverse("training:run", args=[run.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert '<progress id="run-progress" max="100" value="50">' in body and "step 1 of 2" in body
    assert "Reward-model score" in body and 'hx-trigger="every 2s"' in body
    fragment = client.get(reverse("training:run", args=[run.pk]), headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="live"') and "<html" not in fragment


def test_a_finished_run_page_stops_polling_and_shows_the_error(client, admin_user, factory_project):
    run = TrainingRun.objects.create(
        project=factory_project, kind="rm", status="failed", error="<b>boom</b>", log_tail="trace"
    )
    client.force_login(admin_user)
    body = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert "every 2s" not in body and "&lt;b&gt;boom&lt;/b&gt;" in body and "trace" in body


def test_labelers_cannot_see_or_cancel_runs(client, labeler, factory_project):
    run = TrainingRun.objects.create(project=factory_project, kind="rm", status="running")
    client.force_login(labeler)
    assert client.get(reverse("training:run", args=[run.pk])).status_code == 302
    assert client.post(reverse("training:cancel", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == "running"


def test_staff_cancel_from_the_page(client, admin_user, factory_project):
    run = TrainingRun.objects.create(project=factory_project, kind="rm", status="running")
    client.force_login(admin_user)
    assert client.post(reverse("training:cancel", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_the_admin_launches_a_run_and_links_to_its_page(
    client, admin_user, factory_project, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with mock.patch("webapp.celery.app.send_task") as send, django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:labeling_project_changelist"),
            {"action": "sample_comparisons", "_selected_action": [factory_project.pk]},
            follow=True,
        )
    run = TrainingRun.objects.get()
    send.assert_called_once_with("training.execute_run", args=[run.pk], queue="generation")
    assert run.launched_by == admin_user
    assert run.get_absolute_url() in response.content.decode()


def test_the_admin_says_why_a_run_cannot_start(client, admin_user, factory_project):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:labeling_project_changelist"),
        {"action": "run_ppo_round", "_selected_action": [factory_project.pk]},
        follow=True,
    )
    assert "has no reward model yet" in response.content.decode()
    assert not TrainingRun.objects.exists()
