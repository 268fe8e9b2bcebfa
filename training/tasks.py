"""Celery tasks: take ids, re-fetch rows, return if the work is gone or done, call a service."""

from celery import shared_task

from training.models import TrainingRun
from training.services import execute_sampling_run, supervise_in_child


@shared_task(name="training.run_sampling", acks_late=True)
def run_sampling(run_id: int) -> None:
    execute_sampling_run(run_id)


@shared_task(name="training.run_in_child", acks_late=True)
def run_in_child(run_id: int) -> None:
    if TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).exists():
        supervise_in_child(run_id)
