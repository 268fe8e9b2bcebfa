"""Celery tasks: take ids, re-fetch rows, return if the work is gone or done, call a service.

A kind of run names its task in `training.services.KINDS`, and settings.CELERY_TASK_ROUTES sends
each task to its queue; the web process sends tasks by name and never imports the executors
(they load torch): the tasks import them when they run, on the worker.
"""

from celery import shared_task

from training.datasets import projects_with_reward_models
from training.gate import do_weigh_candidates_again
from training.models import TrainingRun
from training.runs import fail_stale_runs, remove_partial_checkpoints
from training.services import start_due_rounds
from training.supervisor import supervise_in_child


def _queued(run_id: int) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).first()


@shared_task(name="training.execute_run", acks_late=True)
def execute_run(run_id: int) -> None:
    """A run carried out in the worker's own process (sampling, blind evaluation)."""
    from training.executors import carry_out  # loads torch: on the worker only

    carry_out(run_id)


@shared_task(name="training.run_in_child", acks_late=True)
def run_in_child(run_id: int) -> None:
    """A training run, in a child process the worker supervises."""
    if _queued(run_id) is not None:
        supervise_in_child(run_id)


@shared_task(name="training.run_round", acks_late=True)
def run_round(run_id: int) -> None:
    """A round: its training steps one after the other, each in a supervised child process, then
    its sampling sent to the generation queue."""
    from training.executors import carry_out  # loads torch: on the worker only

    carry_out(run_id, steps_on_workers=True)


@shared_task(name="training.fail_stale_runs")
def fail_stale() -> int:
    """The periodic check: runs without a heartbeat are failed, and what runs that are over left
    half-written in the model store is removed."""
    failed = fail_stale_runs()
    remove_partial_checkpoints()
    return failed


@shared_task(name="training.start_due_rounds")
def start_rounds() -> int:
    """The periodic check: candidates the promotion gate kept back are weighed again (fresh rankings
    and blind evaluations arrive meanwhile), then a round starts for each project that is due."""
    do_weigh_candidates_again()
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
