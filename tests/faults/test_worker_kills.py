"""A worker killed mid-sampling, a checkpoint write killed or out of disk. (SIGKILL mid-RM and
mid-PPO training: tests/training/test_worker_faults.py.)"""

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from labeling.models import ComparisonTask, Prompt, text_digest
from labeling.services import do_assign_next_task, do_submit_ranking
from tests.factories import UserFactory
from tests.training.test_worker_faults import other_sessions, own_session, worker  # noqa: F401 - a fixture
from tests.waiting import wait_until
from training.executors import carry_out
from training.models import RewardModelVersion, TrainingRun
from training.runs import STALE_AFTER_SECONDS, fail_stale_runs
from training.services import create_run, launch
from training.tasks import fail_stale

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def completions_per_task(project) -> set[int]:
    return set(ComparisonTask.objects.filter(project=project).annotate(n=Count("items")).values_list("n", flat=True))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_sampling_hands_out_only_whole_tasks_and_the_run_fails_stale(
    tiny_project,
    worker,  # noqa: F811
):
    tiny_project.recipe.max_new_tokens = 32
    tiny_project.recipe.save()
    texts = [f"Name a colour, number {n}." for n in range(400)]
    Prompt.objects.bulk_create(Prompt(project=tiny_project, text=t, text_sha256=text_digest(t)) for t in texts)
    labeler = UserFactory(username="fast-labeler")
    tiny_project.labelers.add(labeler)
    handed_out: list[int] = []  # completions of each task handed out while sampling went on
    found_nothing: list[float] = []  # when each look for a task that found none began
    session: list[int] = []  # the labeler's database session
    stop = threading.Event()

    def label() -> None:  # a labeler ranking whatever appears, as fast as it can
        try:
            session.append(own_session())
            while not stop.is_set():
                began = time.monotonic()
                assignment = do_assign_next_task(tiny_project, labeler)
                if assignment is None:
                    found_nothing.append(began)
                    stop.wait(0.05)  # nothing to rank yet: the labeler looks again in a moment
                    continue
                shown = assignment.task.display_completions()
                handed_out.append(len(shown))
                do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in shown])
        finally:
            connection.close()

    labeling = threading.Thread(target=label)
    labeling.start()
    try:
        run = launch(tiny_project, "generate", prompts=400)
        sampling = TrainingRun.objects.filter(pk=run.pk, status="running", progress__gt=0)
        run = wait_until(sampling.first, 120, "the worker did not start sampling")
        os.kill(worker.pid, signal.SIGKILL)  # between two steps, or inside one
        worker.wait(timeout=30)
        # what the worker committed is in once its sessions have ended; the labeler takes it, then finds nothing
        left = lambda: other_sessions(*session, *worker.sessions_before)  # noqa: E731
        wait_until(lambda: not left(), 30, lambda: f"the killed worker's database sessions {left()} stay open")
        gone = time.monotonic()
        wait_until(lambda: found_nothing and found_nothing[-1] > gone, 30, "the labeler never ran out of tasks")
    finally:
        stop.set()
        labeling.join(timeout=30)
    run.refresh_from_db()
    assert run.status == "running" and run.progress < 1  # killed mid-way: nobody says so yet
    assert handed_out and set(handed_out) == {tiny_project.k}
    assert completions_per_task(tiny_project) == {tiny_project.k}  # no task with fewer than K
    assert fail_stale_runs(now=run.heartbeat_at + timedelta(seconds=STALE_AFTER_SECONDS + 1)) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "No heartbeat" in run.error


@pytest.mark.django_db
def test_a_full_disk_mid_checkpoint_registers_nothing_and_leaves_no_partial_folder(
    ranked_project, model_store, monkeypatch
):
    ranked_project.recipe.reward_model_config = {"max_length": 64}
    ranked_project.recipe.save()

    def half_written(model, tokenizer, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"\0" * 1024)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("training.executors.reward_model.save_reward_model", half_written)
    run = carry_out(create_run(ranked_project, "rm").pk)
    assert run.status == "failed" and "No space left on device" in run.error
    assert not RewardModelVersion.objects.exists()
    assert not [p for p in model_store.rglob("*") if "partial" in p.name or p.parent.name.startswith("project-")]


WRITER = """
import sys, time
from pathlib import Path
from training.core.checkpoints import write_once

def write(folder):
    (folder / "model.safetensors").write_bytes(b"\\0" * 4096)
    print("writing", flush=True)
    time.sleep(600)  # the child sleeps mid-write until the test kills it: the sleep is the scenario

write_once(Path(sys.argv[1]), write)
"""


@pytest.mark.django_db
def test_a_checkpoint_write_killed_midway_leaves_a_folder_that_the_stale_check_removes(factory_project, model_store):
    run = TrainingRun.objects.create(
        project=factory_project, kind="rm", status="running", heartbeat_at=time_ago(STALE_AFTER_SECONDS + 5)
    )
    other = TrainingRun.objects.create(project=factory_project, kind="ppo", status="running", heartbeat_at=time_ago(0))
    final = model_store / "reward_models" / f"project-{factory_project.pk}" / f"run-{run.pk}-0123abcd"
    writing = model_store / "policies" / f"project-{factory_project.pk}" / f".run-{other.pk}-4567cdef.partial-x1"
    writing.mkdir(parents=True)  # a live run's write in progress: left alone
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)  # no `except` block runs: the staging folder stays
    writer.wait(timeout=10)
    writer.stdout.close()
    left = list(final.parent.glob(f".{final.name}.partial-*"))
    assert len(left) == 1 and not final.exists()

    assert fail_stale() == 1  # the periodic task
    run.refresh_from_db()
    assert run.status == "failed" and not RewardModelVersion.objects.exists()
    assert not final.parent.exists() or not any(final.parent.iterdir())
    assert writing.exists()


def time_ago(seconds: float):
    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)
