"""Runs a PPO round: the active policy against the latest reward model, KL-penalised to itself."""

from django.core.management.base import BaseCommand, CommandError

from training.management.commands._common import get_project, progress_line
from training.models import PolicyVersion, TrainingRun
from training.services import NoActivePolicy, NothingToTrainOn, do_launch_ppo, execute_ppo_run


class Command(BaseCommand):
    help = "Run a PPO round on a project's active policy against its latest reward model."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--steps", type=int, help="PPO steps (default: the project's PPO config).")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, steps: int | None, sync: bool, **options) -> None:
        if steps is not None and steps < 1:
            raise CommandError("--steps must be at least 1.")
        target = get_project(project)
        try:
            run = do_launch_ppo(target, steps=steps, enqueue=not sync)
        except (NothingToTrainOn, NoActivePolicy) as exc:
            raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(f"Queued run {run.pk} on the 'training' queue; follow it in the admin.")
            return
        run = execute_ppo_run(run.pk, on_progress=progress_line)
        self.stdout.write("")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        version = PolicyVersion.objects.get(created_by_run=run)
        steps_logged = [m for m in run.metrics if "score" in m]
        first, last = steps_logged[0], steps_logged[-1]
        self.stdout.write(
            f"Policy v{version.version} ({version.status}): RM score {first['score']:+.3f} -> {last['score']:+.3f}, "
            f"KL {last['kl']:.3f}, EOS rate {last['eos_rate']:.0%}, mean length {last['mean_length']:.1f} tokens."
        )
