"""Celery tasks: take ids, re-fetch rows, return if the work is gone or done, call a service."""

from celery import shared_task

from training.blind_eval import execute_blind_evaluation_run
from training.fresh_scores import execute_fresh_scoring, projects_with_reward_models
from training.models import TrainingRun
from training.rounds import execute_round, start_due_rounds
from training.runs import fail_stale_runs, supervise_in_child
from training.services import execute_sampling_run


@shared_task(name="training.run_sampling", acks_late=True)
def run_sampling(run_id: int) -> None:
    execute_sampling_run(run_id)


@shared_task(name="training.run_in_child", acks_late=True)
def run_in_child(run_id: int) -> None:
    if TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).exists():
        supervise_in_child(run_id)


@shared_task(name="training.fail_stale_runs")
def fail_stale() -> int:
    return fail_stale_runs()


@shared_task(name="training.run_round", acks_late=True)
def run_round(run_id: int) -> None:
    execute_round(run_id)


@shared_task(name="training.start_due_rounds")
def start_rounds() -> int:
    return len(start_due_rounds())


@shared_task(name="training.run_blind_evaluation", acks_late=True)
def run_blind_evaluation(run_id: int) -> None:
    execute_blind_evaluation_run(run_id)


@shared_task(name="training.score_fresh_rankings")
def score_fresh_rankings() -> int:
    """The periodic check: one scoring task per project that has a reward model."""
    projects = projects_with_reward_models()
    for project_id in projects:
        score_fresh_rankings_of.delay(project_id)
    return len(projects)


@shared_task(name="training.score_fresh_rankings_of", acks_late=True)
def score_fresh_rankings_of(project_id: int) -> int:
    return execute_fresh_scoring(project_id)
