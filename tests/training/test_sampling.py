import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labeling.models import ComparisonTask
from tests.factories import ProjectFactory
from tests.waiting import wait_until
from training.executors import carry_out
from training.models import PolicyVersion, TrainingRun
from training.services import create_run, launch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_launching_queues_a_run_and_sends_its_task_after_commit(factory_project, django_capture_on_commit_callbacks):
    from unittest import mock

    with mock.patch("webapp.celery.app.send_task") as send:
        with django_capture_on_commit_callbacks(execute=True):
            run = launch(factory_project, "generate", prompts=3)
            assert not send.called  # not before the run row is committed
    send.assert_called_once_with("training.execute_run", args=[run.pk], queue="generation")
    assert (run.kind, run.status) == ("generate", "queued")
    assert run.k == 3 and run.config["seed"] == run.pk


def test_a_run_covers_each_prompt_once_with_k_distinct_completions(tiny_project):
    run = carry_out(create_run(tiny_project, "generate", prompts=4).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.progress == 1.0 and run.metrics[-1]["tasks"] == 4
    tasks = ComparisonTask.objects.filter(project=tiny_project)
    assert tasks.count() == 4
    assert len({t.prompt_id for t in tasks}) == 4
    policy = PolicyVersion.objects.get(project=tiny_project)
    for task in tasks:
        completions = task.display_completions()
        assert [i.position for i in task.items.order_by("position")] == [0, 1, 2]
        assert len({c.text for c in completions}) == 3
        assert all(c.prompt_id == task.prompt_id and c.policy_version == policy for c in completions)
        assert all(c.finish_reason in {"eos", "length"} and c.token_count <= 8 for c in completions)
        assert task.policy_version == policy and task.kind == "train" and task.state == "open"


def test_the_next_run_samples_only_prompts_without_a_task(tiny_project):
    carry_out(create_run(tiny_project, "generate", prompts=3).pk)
    carry_out(create_run(tiny_project, "generate", prompts=10, task_kind="eval").pk)
    tasks = ComparisonTask.objects.filter(project=tiny_project)
    assert tasks.count() == 5
    assert sorted(tasks.values_list("kind", flat=True)) == ["eval", "eval", "train", "train", "train"]


def test_a_run_twice_does_the_work_once(tiny_project):
    run = create_run(tiny_project, "generate", prompts=2)
    carry_out(run.pk)
    assert carry_out(run.pk) is None
    assert ComparisonTask.objects.count() == 2


def test_a_broken_model_fails_the_run_with_its_name_and_makes_no_tasks(factory_project):
    PolicyVersion.objects.filter(project=factory_project).update(checkpoint="/gone/model")
    run = carry_out(create_run(factory_project, "generate", prompts=2).pk)
    assert run.status == TrainingRun.Status.FAILED
    assert "No model folder at '/gone/model'" in run.error
    assert ComparisonTask.objects.count() == 0


def test_the_command_samples_with_a_progress_line(tiny_project, capsys):
    call_command("sample_comparisons", project=tiny_project.name, prompts=2, sync=True)
    out = capsys.readouterr().out
    assert "100%" in out and "tasks=2" in out and "2 comparison tasks created" in out
    assert ComparisonTask.objects.count() == 2


def test_the_command_names_an_unknown_project():
    ProjectFactory(name="Real one")
    with pytest.raises(CommandError, match="No project 'Nope'. Projects: 'Real one'"):
        call_command("sample_comparisons", project="Nope", prompts=2, sync=True)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_queued_sampling_run(tiny_project, child_env):
    env = child_env
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "generation", "-P", "solo",
         "-n", f"sampling-{os.getpid()}@%h", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        run = launch(tiny_project, "generate", prompts=3)
        finished = TrainingRun.objects.filter(pk=run.pk, status__in=TrainingRun.FINISHED)
        run = wait_until(finished.first, 120, "the worker did not finish the sampling run")
        assert run.status == TrainingRun.Status.SUCCEEDED, run.error or run.status
        assert ComparisonTask.objects.filter(project=tiny_project).count() == 3
    finally:
        worker.terminate()
        worker.wait(timeout=30)
