"""Runs a PPO round: the active policy against the latest reward model, KL-penalised to itself."""

from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run
from training.models import PolicyVersion, TrainingRun


class Command(BaseCommand):
    help = "Run a PPO round on a project's active policy against its latest reward model."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--steps", type=int, help="PPO steps (default: the project's PPO config).")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, steps: int | None, sync: bool, **options) -> None:
        if steps is not None and steps < 1:
            raise CommandError("--steps must be at least 1.")
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.PPO, sync, steps=steps)
        if run is None:
            return
        version = PolicyVersion.objects.get(created_by_run=run)
        steps_logged = [m for m in run.metrics if "score" in m]
        first, last = steps_logged[0], steps_logged[-1]
        self.stdout.write(
            f"Policy v{version.version} ({version.status}): RM score {first['score']:+.3f} -> {last['score']:+.3f}, "
            f"KL {last['kl']:.3f}, EOS rate {last['eos_rate']:.0%}, mean length {last['mean_length']:.1f} tokens."
        )
