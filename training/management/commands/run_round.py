"""Runs a full round: reward model → PPO → promotion → comparisons from the new policy."""

from django.core.management.base import BaseCommand, CommandError

from training.management.commands._common import get_project, progress_line
from training.models import TrainingRun
from training.rounds import RoundInProgress, do_launch_round, execute_round
from training.services import NothingToTrainOn


class Command(BaseCommand):
    help = "Run a full round on a project: RM, PPO, promotion (per its rule), then new comparisons."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--sync", action="store_true", help="Run here (each step in-process) and wait.")

    def handle(self, *args, project: str, sync: bool, **options) -> None:
        target = get_project(project)
        try:
            run = do_launch_round(target, enqueue=not sync)
        except (NothingToTrainOn, RoundInProgress) as exc:
            raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(f"Queued round {run.pk} on the 'training' queue; follow it in the admin.")
            return
        run = execute_round(run.pk, in_child=False, on_progress=progress_line)
        self.stdout.write("")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Round {run.pk} {run.status}: {run.error}")
        steps = {m["step"]: m["step_run"] for m in run.metrics if m.get("done")}
        self.stdout.write(f"Round {run.pk} succeeded: " + ", ".join(f"{k} run {v}" for k, v in steps.items()) + ".")
