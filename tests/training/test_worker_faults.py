"""A real Celery worker on Redis and PostgreSQL: a whole round end to end, and a worker killed
with SIGKILL in the middle of a run. Nothing is faked or called in-process."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from labeling.models import ComparisonTask
from tests.waiting import wait_until
from training.executors import carry_out
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import STALE_AFTER_SECONDS, fail_stale_runs
from training.services import create_run, launch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(child_env):
    """A Celery worker on both queues; `sessions_before` are the database sessions other than the
    test's that were open before it started (earlier tests' threads may leave theirs): not its own."""
    before = other_sessions()
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "generation,training", "-P", "solo",
         "-n", f"faults-{os.getpid()}@%h", "--loglevel", "WARNING"],
        cwd=ROOT, env=child_env,
    )  # fmt: skip
    process.sessions_before = before
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=60)


def other_sessions(*keep: int) -> set[int]:
    """The backend PIDs of the other client sessions on the test database, but `keep`: here, the
    worker's and its training child's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()} - set(keep)


def own_session() -> int:
    """The backend PID of this thread's database session."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def finished(run: TrainingRun) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run.pk, status__in=TrainingRun.FINISHED).first()


@pytest.fixture
def project(ranked_project):
    ranked_project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64}
    ranked_project.recipe.ppo_config = {
        "steps": 2,
        "batch_prompts": 4,
        "minibatch_size": 2,
        "ppo_epochs": 1,
        "max_new_tokens": 8,
    }
    ranked_project.recipe.save()
    return ranked_project


@pytest.mark.parametrize("algorithm", ["rloo", "ppo", "dpo", "sft then rloo"])
def test_the_loop_on_a_real_worker_from_prompts_to_comparisons_from_the_new_policy(
    tiny_project, worker, labeler, client, algorithm
):
    project = tiny_project
    project.recipe.algorithm = algorithm.split()[-1]
    project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64}
    project.recipe.ppo_config = {
        "steps": 2,
        "batch_prompts": 4,
        "minibatch_size": 2,
        "ppo_epochs": 1,
        "max_new_tokens": 8,
    }
    project.recipe.dpo_config = {"epochs": 1, "max_length": 64}
    project.recipe.sft_config = {"epochs": 1, "max_length": 64}
    project.recipe.sft_threshold = 2
    project.recipe.save()
    if algorithm.startswith("sft"):  # ideal answers written through the page start the round with SFT
        project.labelers.add(labeler)
        project.prompts.filter(pk__in=project.prompts.values("pk")[:3]).update(needs_demonstration=True)
        client.force_login(labeler)
        for prompt in project.prompts.filter(needs_demonstration=True):
            url = reverse("labeling:demonstrations", args=[project.pk])
            assert client.post(url, {"prompt": prompt.pk, "text": "A short, plain answer."}).status_code == 302
    sampling = launch(project, "generate", prompts=5)  # comparisons sampled by the worker
    sampling = wait_until(lambda: finished(sampling), 180, "the worker did not finish the sampling run")
    assert sampling.status == "succeeded", sampling.error
    call_command(
        "simulate_labelers", project=str(project.pk), preference="labeling.demo.preferences:shorter", rankings=5
    )
    round_ = launch(project, "round")
    round_ = wait_until(lambda: finished(round_), 180, "the worker did not finish the round")
    assert round_.status == "succeeded", round_.error
    kinds = [step.kind for step in round_.steps.order_by("id")]
    policy_step = {"rloo": "rloo", "ppo": "ppo", "dpo": "dpo", "sft then rloo": "rloo"}[algorithm]
    assert kinds == [*(["sft"] if algorithm.startswith("sft") else []), "rm", policy_step, "generate"]
    new = PolicyVersion.objects.get(project=project, status="active")
    assert new.version == len(kinds) - 2 and new.created_by_run.kind == policy_step
    assert RewardModelVersion.objects.filter(project=project).count() == 1
    # The round ends by sending its sampling to the generation queue, where the worker samples it next.
    sampling_step = round_.steps.get(kind="generate")
    wait_until(lambda: finished(sampling_step), 180, "the worker did not finish the round's sampling")
    assert ComparisonTask.objects.filter(policy_version=new).exists()  # the next comparisons come from it
    if algorithm.startswith("sft"):
        assert new.kl_reference == new.parent and new.parent.created_by_run.kind == "sft"
    for step in round_.steps.all():
        assert step.status == "succeeded" and step.progress == 1.0 and step.metrics


@pytest.mark.parametrize("kind", ["rm", "ppo"])
def test_a_worker_killed_mid_run_leaves_models_unchanged_and_the_run_failed(project, worker, kind):
    if kind == "ppo":
        carry_out(create_run(project, "rm").pk)
        project.recipe.ppo_config = {**project.recipe.ppo_config, "steps": 5000}  # long enough to kill
        project.recipe.save()
        run = launch(project, "ppo")
    else:
        project.recipe.reward_model_config = {
            "lr": 1e-3,
            "max_length": 64,
            "epochs": 5000,
            "patience": 0,
            "trunk": "full",
        }
        project.recipe.save()
        run = launch(project, "rm")
    models_before = RewardModelVersion.objects.count()
    running = TrainingRun.objects.filter(pk=run.pk, status="running").exclude(metrics=[])
    run = wait_until(running.first, 180, "the run did not start training")
    child = run.child_pid
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    wait_until(lambda: not _alive(child), 30, f"the training process {child} outlived its worker")
    # an update the child sent just before it died is committed once its session has ended
    left = lambda: other_sessions(*worker.sessions_before)  # noqa: E731
    wait_until(lambda: not left(), 30, lambda: f"the dead processes' sessions {left()} stay open")
    run.refresh_from_db()
    beat = run.heartbeat_at
    time.sleep(2)  # the window itself is tested: a live supervisor beats every second (HEARTBEAT_SECONDS / 5)
    run.refresh_from_db()
    assert run.heartbeat_at == beat and run.status == "running"  # nothing beats any more
    assert fail_stale_runs(now=beat + timedelta(seconds=STALE_AFTER_SECONDS + 1)) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "No heartbeat" in run.error
    assert RewardModelVersion.objects.count() == models_before
    assert PolicyVersion.objects.filter(project=project).count() == 1
    assert PolicyVersion.objects.get(project=project, status="active").version == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
