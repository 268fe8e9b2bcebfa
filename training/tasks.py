"""Celery tasks: take ids, re-fetch rows, return if the work is gone or done, call a service.

A kind of run names its task and queue in `training.services.KINDS`; the web process sends tasks by
name and never imports this module's executors (they load torch).
"""

from celery import shared_task

from training.datasets import projects_with_reward_models
from training.models import TrainingRun
from training.runs import fail_stale_runs, remove_partial_checkpoints, supervise_in_child
from training.services import executor_of, start_due_rounds


def _queued(run_id: int) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).first()


@shared_task(name="training.execute_run", acks_late=True)
def execute_run(run_id: int) -> None:
    """A run carried out in the worker's own process (sampling, blind evaluation)."""
    run = _queued(run_id)
    if run is not None:
        executor_of(run.kind)(run_id)


@shared_task(name="training.run_in_child", acks_late=True)
def run_in_child(run_id: int) -> None:
    """A training run, in a child process the worker supervises."""
    if _queued(run_id) is not None:
        supervise_in_child(run_id)


@shared_task(name="training.run_round", acks_late=True)
def run_round(run_id: int) -> None:
    """A round: its steps run one after the other, each in a supervised child process."""
    run = _queued(run_id)
    if run is not None:
        executor_of(run.kind)(run_id, in_child=True)


@shared_task(name="training.fail_stale_runs")
def fail_stale() -> int:
    """The periodic check: runs without a heartbeat are failed, and what runs that are over left
    half-written in the model store is removed."""
    failed = fail_stale_runs()
    remove_partial_checkpoints()
    return failed


@shared_task(name="training.start_due_rounds")
def start_rounds() -> int:
    return len(start_due_rounds())


@shared_task(name="training.score_fresh_rankings")
def score_fresh_rankings() -> int:
    """The periodic check: one scoring task per project that has a reward model."""
    projects = projects_with_reward_models()
    for project_id in projects:
        score_fresh_rankings_of.delay(project_id)
    return len(projects)


@shared_task(name="training.score_fresh_rankings_of", acks_late=True)
def score_fresh_rankings_of(project_id: int) -> int:
    from training.executors.fresh_scores import execute_fresh_scoring  # loads torch: on the worker only

    return execute_fresh_scoring(project_id)
