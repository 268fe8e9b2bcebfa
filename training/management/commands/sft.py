"""Supervised fine-tuning of the active policy on the project's demonstrations."""

from django.core.management.base import BaseCommand

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run, policy_line
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Fine-tune a project's active policy on its demonstrations (SFT); later rounds measure KL to it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.SFT, sync)
        if run is not None:
            steps = [m for m in run.metrics if "loss" in m]
            held = run.metrics[-1].get("heldout_loss")
            self.stdout.write(
                policy_line(run) + f" from {run.metrics[-1]['demonstrations']} answers: loss {steps[0]['loss']:.3f} -> "
                f"{steps[-1]['loss']:.3f} per token" + (f", held-out {held:.3f}." if held is not None else ".")
            )
