"""Which rows a user may reach. Every view goes through these helpers."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from labeling.models import Assignment, Project, Prompt, Ranking
from labeling.services import available_tasks, prompts_needing_demonstration

SAMPLING_LIVE = Q(runs__kind="generate", runs__status__in=["queued", "running"])
"""A project with a queued or running sampling run: more comparisons are coming. Read through the
`runs` relation that training's TrainingRun declares, since labeling imports nothing of training
(tests/training/test_recipe.py checks these values against training's)."""


def labeler_projects(user: AbstractBaseUser) -> QuerySet[Project]:
    """The projects a user labels; staff label every project."""
    return Project.objects.all() if user.is_staff else Project.objects.filter(labelers=user)


def get_project_for_labeler(user: AbstractBaseUser, project_id: int) -> Project:
    project = labeler_projects(user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project among yours.")
    return project


def get_assignment_for_labeler(user: AbstractBaseUser, task_id: int) -> Assignment:
    """The labeler's own assignment on a task of a project they still label; another labeler's
    task is a 404, never a 403, and so is their own once they are taken off its project."""
    assignment = (
        Assignment.objects.filter(task_id=task_id, labeler=user, task__project__in=labeler_projects(user))
        .select_related("task__project", "task__prompt")
        .first()
    )
    if assignment is None:
        raise Http404("No such task among yours.")
    return assignment


def projects_with_counts(user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with `tasks_left` (available to them now), `done_today`, the ideal
    answers staff ask for (`demonstrations_asked`) and the user has yet to write (`demonstrations_left`),
    and `sampling`: whether a sampling run of the project is queued or running (more comparisons to come)."""
    now = timezone.now()
    start_of_day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    tasks_left = (
        available_tasks(user, now)
        .filter(project=OuterRef("pk"))
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    done_today = (
        Ranking.objects.filter(task__project=OuterRef("pk"), labeler=user, created_at__gte=start_of_day)
        .order_by()
        .values("task__project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    demonstrations_left = (
        prompts_needing_demonstration(OuterRef("pk"), user)
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    demonstrations_asked = (
        Prompt.objects.filter(project=OuterRef("pk"), needs_demonstration=True)
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    zero = Value(0, output_field=IntegerField())
    return labeler_projects(user).annotate(
        tasks_left=Coalesce(Subquery(tasks_left, output_field=IntegerField()), zero),
        done_today=Coalesce(Subquery(done_today, output_field=IntegerField()), zero),
        demonstrations_left=Coalesce(Subquery(demonstrations_left, output_field=IntegerField()), zero),
        demonstrations_asked=Coalesce(Subquery(demonstrations_asked, output_field=IntegerField()), zero),
        sampling=Exists(Project.objects.filter(SAMPLING_LIVE, pk=OuterRef("pk"))),
    )
