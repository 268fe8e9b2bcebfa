"""The project's AI judge ranks tasks it has not ranked yet (gold first, then open, then complete)."""

from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from training.management.commands._common import launch_or_run
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Let a project's AI judge rank up to N tasks, each pair of answers asked in both orders."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--tasks", type=int, default=50, help="How many tasks at most (default 50).")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, tasks: int, sync: bool, **options) -> None:
        if tasks < 1:
            raise CommandError("--tasks must be at least 1.")
        run = launch_or_run(self, get_project(project), TrainingRun.Kind.JUDGE, sync, tasks=tasks)
        if run is not None:
            latest = run.metrics[-1] if run.metrics else {"tasks": 0, "tie_rate": 0}
            self.stdout.write(
                f"Run {run.pk}: the judge ranked {latest['tasks']} tasks ({latest['tie_rate']:.0%} of pairs tied)."
            )
