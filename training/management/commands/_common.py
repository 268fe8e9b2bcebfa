"""Helpers the training commands share: a policy version by number, launching a run the way the
admin does (or carrying it out here with `--sync`), and a progress line."""

import sys

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from training.models import PolicyVersion, TrainingRun
from training.services import KINDS, LaunchRefused, executor_of, launch


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
        run = launch(project, kind, enqueue=not sync, **inputs)
    except LaunchRefused as exc:
        raise CommandError(str(exc)) from None
    if not sync:
        command.stdout.write(
            f"Queued {run.get_kind_display().lower()} run {run.pk} on the '{KINDS[kind].queue}' queue; "
            "follow it in the admin."
        )
        return None
    run = executor_of(kind)(run.pk, on_progress=progress_line)
    command.stdout.write("")
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise CommandError(f"Run {run.pk} {run.status}: {run.error}")
    return run


def progress_line(run: TrainingRun) -> None:
    """Rewrites one terminal line: bar, percent, and the latest metrics."""
    width = 30
    filled = int(run.progress * width)
    latest = run.metrics[-1] if run.metrics else {}
    figures = "  ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in latest.items() if k != "time"
    )
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {run.progress:4.0%}  {figures}")
    sys.stdout.flush()
