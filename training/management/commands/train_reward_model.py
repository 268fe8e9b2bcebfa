"""Trains a new reward-model version on every usable ranking of a project."""

from django.core.management.base import BaseCommand, CommandError

from training.management.commands._common import get_project, progress_line
from training.models import RewardModelVersion, TrainingRun
from training.services import NoActivePolicy, NothingToTrainOn, do_launch_reward_model, execute_reward_model_run


class Command(BaseCommand):
    help = "Train a Bradley–Terry reward model on a project's rankings (warm-started from its latest one)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        target = get_project(project)
        try:
            run = do_launch_reward_model(target, enqueue=not sync)
        except (NothingToTrainOn, NoActivePolicy) as exc:
            raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(f"Queued run {run.pk} on the 'training' queue; follow it in the admin.")
            return
        run = execute_reward_model_run(run.pk, on_progress=progress_line)
        self.stdout.write("")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        version = RewardModelVersion.objects.get(created_by_run=run)
        heldout = (
            f"{version.heldout_accuracy:.1%}" if version.heldout_accuracy is not None else "n/a (no held-out prompts)"
        )
        self.stdout.write(
            f"Reward model v{version.version}: held-out accuracy {heldout}, training accuracy "
            f"{version.accuracy:.1%}, tie rate {version.tie_rate:.1%}, {version.rankings_count} rankings, "
            f"offset {version.normalisation['offset']:+.3f}."
        )
