"""Celery tasks: take ids, re-fetch rows, return if the work is gone or done, call a service."""

from celery import shared_task

from training.services import execute_sampling_run


@shared_task(name="training.run_sampling", acks_late=True)
def run_sampling(run_id: int) -> None:
    execute_sampling_run(run_id)
