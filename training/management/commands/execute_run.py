"""Carries out one queued training run; the training worker starts this as a child process."""

import os

from django.core.management.base import BaseCommand, CommandError

from training.executors import carry_out
from training.management.commands._common import log_line
from training.models import TrainingRun
from training.supervisor import die_with_parent


class Command(BaseCommand):
    help = "Carry out a queued training run by id (the worker runs this in a child process)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_id", type=int)

    def handle(self, *args, run_id: int, **options) -> None:
        if "LOCAL_RANK" in os.environ:  # one of several training processes: dies with its launcher
            die_with_parent()
        if not TrainingRun.objects.filter(pk=run_id).exists():
            raise CommandError(f"No training run {run_id}.")
        finished = carry_out(run_id, echo=log_line)  # its lines become the supervisor's log tail
        if finished is not None and finished.status == TrainingRun.Status.FAILED:
            raise CommandError(f"Run {run_id} failed: {finished.error}")
