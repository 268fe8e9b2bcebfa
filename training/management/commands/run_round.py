"""Runs a full round: reward model → PPO → promotion → comparisons from the new policy."""

from django.core.management.base import BaseCommand

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Run a full round on a project: RM, PPO, promotion (per its rule), then new comparisons."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here (each step in-process) and wait.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.ROUND, sync)
        if run is not None:
            steps = ", ".join(f"{step.kind} run {step.pk}" for step in run.steps.order_by("id"))
            self.stdout.write(f"Round {run.pk} succeeded: {steps}.")
