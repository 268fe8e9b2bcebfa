"""Helpers the training commands share: finding a project, and a progress line."""

import sys

from django.core.management.base import CommandError

from labeling.models import Project
from training.models import PolicyVersion, TrainingRun


def get_project(reference: str) -> Project:
    """A project by id or by exact name."""
    project = Project.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
    project = project or Project.objects.filter(name=reference).first()
    if project is None:
        names = ", ".join(repr(name) for name in Project.objects.values_list("name", flat=True)[:10])
        raise CommandError(f"No project {reference!r}. Projects: {names or 'none yet'}.")
    return project


def get_policy_version(project: Project, number: int | None) -> PolicyVersion | None:
    """A project's policy version by number; None when no number is given."""
    if number is None:
        return None
    version = PolicyVersion.objects.filter(project=project, version=number).first()
    if version is None:
        raise CommandError(f"Project {project.name!r} has no policy version {number}.")
    return version


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
