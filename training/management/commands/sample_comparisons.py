"""Samples K completions per prompt from the active policy and makes comparison tasks of them."""

from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from labeling.models import ComparisonTask
from training.management.commands._common import launch_or_run
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Sample K completions for N prompts from a project's active policy into comparison tasks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--prompts", type=int, required=True, help="How many unsampled prompts to use.")
        parser.add_argument("--kind", choices=ComparisonTask.Kind.values, default=ComparisonTask.Kind.TRAIN)
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, prompts: int, kind: str, sync: bool, **options) -> None:
        if prompts < 1:
            raise CommandError("--prompts must be at least 1.")
        run = launch_or_run(
            self, get_project(project), TrainingRun.Kind.GENERATE, sync, prompts=prompts, task_kind=kind
        )
        if run is not None:
            latest = run.metrics[-1] if run.metrics else {"tasks": 0}
            self.stdout.write(f"Run {run.pk}: {latest['tasks']} comparison tasks created. {run.log_tail}".rstrip())
