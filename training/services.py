"""Workflows over model versions and training runs."""

from django.db import transaction
from django.utils import timezone

from labeling.models import Project
from training.models import PolicyVersion


def do_register_base_policy(project: Project) -> PolicyVersion:
    """Makes the project's base model its version-0 policy, active; returns the existing one if any."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        existing = PolicyVersion.objects.filter(project=project, version=0).first()
        if existing is not None:
            return existing
        return PolicyVersion.objects.create(
            project=project,
            version=0,
            checkpoint=project.base_model,
            status=PolicyVersion.Status.ACTIVE,
            promoted_at=timezone.now(),
        )
