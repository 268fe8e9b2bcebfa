"""Trains a new reward-model version on every usable ranking of a project."""

from django.core.management.base import BaseCommand

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run
from training.models import RewardModelVersion, TrainingRun


class Command(BaseCommand):
    help = "Train a Bradley–Terry reward model on a project's rankings (warm-started from its latest one)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.RM, sync)
        if run is None:
            return
        version = RewardModelVersion.objects.get(created_by_run=run)
        heldout = (
            f"{version.heldout_accuracy:.1%}" if version.heldout_accuracy is not None else "n/a (no held-out prompts)"
        )
        self.stdout.write(
            f"Reward model v{version.version}: held-out accuracy {heldout}, training accuracy "
            f"{version.accuracy:.1%}, tie rate {version.tie_rate:.1%}, {version.rankings_count} rankings, "
            f"offset {version.normalisation['offset']:+.3f}."
        )
