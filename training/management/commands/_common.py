"""Helpers the training commands share: a policy version by number, launching a run the way the
admin does (or carrying it out here with `--sync`), and a progress line."""

import sys

from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from labeling.models import Project
from training.models import PolicyVersion, TrainingRun
from training.services import LaunchRefused, create_run, launch, queue_of


def get_policy_version(project: Project, number: int | None) -> PolicyVersion | None:
    """A project's policy version by number; None when no number is given."""
    if number is None:
        return None
    version = PolicyVersion.objects.filter(project=project, version=number).first()
    if version is None:
        raise CommandError(f"Project {project.name!r} has no policy version {number}.")
    return version


def launch_or_run(command: BaseCommand, project: Project, kind: str, sync: bool, **inputs) -> TrainingRun | None:
    """Launches a run as the admin would. Without `sync` it says where the run was queued and
    returns None; with it, carries the run out here behind a progress line and returns it once it
    succeeded. A refusal or a failure is a CommandError with the reason."""
    try:
        run = create_run(project, kind, **inputs) if sync else launch(project, kind, **inputs)
    except LaunchRefused as exc:
        raise CommandError(str(exc)) from None
    if not sync:
        command.stdout.write(
            f"Queued {run.get_kind_display().lower()} run {run.pk} on the '{queue_of(kind)}' queue; "
            "follow it in the admin."
        )
        return None
    from training.executors import carry_out  # loads torch: only when the run is carried out here

    run = carry_out(run.pk, echo=progress_line)
    command.stdout.write("")
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise CommandError(f"Run {run.pk} {run.status}: {run.error}")
    return run


def policy_line(run: TrainingRun) -> str:
    """'Policy v3 (active)': the version a finished run made."""
    version = PolicyVersion.objects.get(created_by_run=run)
    return f"Policy v{version.version} ({version.status})"


class RLStepCommand(BaseCommand):
    """An RL step of the kind `kind` (ppo or rloo), launched or run here, then its figures in one line."""

    kind: str

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--steps", type=int, help="RL steps (default: the project's RL config).")
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project: str, steps: int | None, sync: bool, **options) -> None:
        if steps is not None and steps < 1:
            raise CommandError("--steps must be at least 1.")
        run = launch_or_run(self, get_project(project), self.kind, sync, steps=steps)
        if run is None:
            return
        steps_logged = [m for m in run.metrics if "score" in m]
        first, last = steps_logged[0], steps_logged[-1]
        self.stdout.write(
            f"{policy_line(run)}: RM score {first['score']:+.3f} -> {last['score']:+.3f}, KL {last['kl']:.3f}, "
            f"EOS rate {last['eos_rate']:.0%}, mean length {last['mean_length']:.1f} tokens."
        )


def progress_line(run: TrainingRun) -> None:
    """Rewrites one terminal line: bar, percent, and the latest metrics."""
    width = 30
    filled = int(run.progress * width)
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {run.progress:4.0%}  {_latest_figures(run)}")
    sys.stdout.flush()


def log_line(run: TrainingRun) -> None:
    """One line a record, for a log (a training child's output, which becomes the run's log tail)."""
    latest = run.metrics[-1] if run.metrics else {}
    stamp = latest.get("time", "")[11:19]
    sys.stdout.write(f"{stamp} {run.progress:4.0%}  {_latest_figures(run)}\n")
    sys.stdout.flush()


def _latest_figures(run: TrainingRun) -> str:
    """The latest metrics point: its phase first, then key=value."""
    latest = {k: v for k, v in (run.metrics[-1] if run.metrics else {}).items() if k != "time"}
    phase = latest.pop("phase", "")
    figures = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in latest.items())
    return f"{phase}  {figures}" if phase else figures
