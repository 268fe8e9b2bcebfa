"""Trains the active policy with DPO straight from the project's rankings."""

from django.core.management.base import BaseCommand

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run, policy_line
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Run DPO on a project's active policy from all its usable rankings (no reward model)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.DPO, sync)
        if run is not None:
            last = [m for m in run.metrics if "loss" in m][-1]
            held = last.get("heldout_accuracy")
            self.stdout.write(
                policy_line(run)
                + f": loss {last['loss']:.3f}, held-out implicit-reward accuracy "
                + (
                    f"{held:.0%} on {last['heldout_pairs']} pairs."
                    if held is not None
                    else "not measured (no held-out rankings)."
                )
            )
