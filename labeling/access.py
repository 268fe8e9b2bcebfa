"""Which rows a user may reach. Every view goes through these helpers."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import ComparisonTask, Project, Ranking


def projects_for_labeler(user: AbstractBaseUser) -> QuerySet[Project]:
    """The projects a user labels (staff: all), with `tasks_left` and `done_today` for them."""
    projects = Project.objects.all() if user.is_staff else Project.objects.filter(labelers=user)
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    tasks_left = (
        ComparisonTask.objects.filter(project=OuterRef("pk"), state=ComparisonTask.State.OPEN)
        .exclude(assignments__labeler=user)
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
    zero = Value(0, output_field=IntegerField())
    return projects.annotate(
        tasks_left=Coalesce(Subquery(tasks_left, output_field=IntegerField()), zero),
        done_today=Coalesce(Subquery(done_today, output_field=IntegerField()), zero),
    )
