"""Helpers the labeling commands share: finding a project."""

from django.core.management.base import CommandError

from labeling.models import Project


def get_project(reference: str) -> Project:
    """A project by id or by exact name."""
    project = Project.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
    project = project or Project.objects.filter(name=reference).first()
    if project is None:
        names = ", ".join(repr(name) for name in Project.objects.values_list("name", flat=True)[:10])
        raise CommandError(f"No project {reference!r}. Projects: {names or 'none yet'}.")
    return project
