"""Policy and reward-model versions: a project's base policy, the active one, promotion.

Web-side workflows (no torch): the admin, the API, the commands and the executors share them.
"""

from django.db import transaction
from django.utils import timezone

from labeling.models import ComparisonTask, Project
from training.configs import check_project_settings
from training.models import PolicyVersion, RewardModelVersion
from training.refusals import LaunchRefused


def do_create_project(project: Project) -> Project:
    """Validates and saves a new project with its base model registered as the active version-0
    policy, in one transaction: a project never exists without a policy to sample from."""
    check_project_settings(project)
    project.full_clean(exclude=["labelers"])
    with transaction.atomic():
        project.save()
        do_register_base_policy(project)
    return project


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


def active_policy(project: Project) -> PolicyVersion:
    policy = PolicyVersion.objects.filter(project=project, status=PolicyVersion.Status.ACTIVE).first()
    if policy is None:
        raise LaunchRefused(f"Project {project.name!r} has no active policy to sample from.")
    return policy


def latest_reward_model(project: Project | int) -> RewardModelVersion | None:
    return RewardModelVersion.objects.filter(project=project).order_by("-version").first()


def default_pair(project: Project) -> tuple[PolicyVersion, PolicyVersion]:
    """(a, b): the active policy's parent (or the base) against the active policy."""
    b = active_policy(project)
    a = b.parent or PolicyVersion.objects.get(project=project, version=0)
    return a, b


def do_promote_policy(policy: PolicyVersion) -> PolicyVersion:
    """Makes `policy` its project's active policy: the previous one is retired, and its open
    comparison tasks stop being handed out (their rankings stay and keep training the RM).
    Blind-evaluation tasks stay open: they compare versions, whichever is active."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=policy.project_id)
        previous = PolicyVersion.objects.filter(project_id=policy.project_id, status=PolicyVersion.Status.ACTIVE)
        previous = previous.exclude(pk=policy.pk)
        ComparisonTask.objects.filter(
            policy_version__in=previous, state=ComparisonTask.State.OPEN, eval_pair__isnull=True
        ).update(state=ComparisonTask.State.RETIRED)
        previous.update(status=PolicyVersion.Status.RETIRED)
        policy.status = PolicyVersion.Status.ACTIVE
        policy.promoted_at = timezone.now()
        policy.save(update_fields=["status", "promoted_at"])
    return policy
