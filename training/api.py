"""The training API, staff only: model versions, training runs to follow, launch and cancel, and the
project metrics the dashboard shows."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api import ProjectViewSet as LabelingProjectViewSet
from labeling.models import Project
from labeling.serializers import ProjectFilter, ProjectQuery
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.reports.metrics import project_metrics
from training.runs import do_cancel_run
from training.serializers import (
    LaunchRun,
    PolicyVersionSerializer,
    ProjectWithRecipeSerializer,
    RewardModelVersionSerializer,
    TrainingRunDetailSerializer,
    TrainingRunSerializer,
)
from training.services import LaunchRefused, launch
from webapp.api_views import StaffReadViewSet


class ProjectViewSet(LabelingProjectViewSet):
    """Labeling's projects, each with its training recipe."""

    queryset = Project.objects.select_related("recipe")
    serializer_class = ProjectWithRecipeSerializer


@extend_schema_view(list=extend_schema(parameters=[ProjectFilter]))
class ByProjectViewSet(mixins.ListModelMixin, StaffReadViewSet):
    """A staff list filtered by `?project=ID`."""

    filters = ProjectFilter
    lookups = {"project": "project"}


class PolicyVersionViewSet(ByProjectViewSet):
    queryset = PolicyVersion.objects.all()
    serializer_class = PolicyVersionSerializer


class RewardModelVersionViewSet(ByProjectViewSet):
    queryset = RewardModelVersion.objects.all()
    serializer_class = RewardModelVersionSerializer


class TrainingRunViewSet(mixins.RetrieveModelMixin, ByProjectViewSet):
    queryset = TrainingRun.objects.all()

    def get_serializer_class(self):
        return TrainingRunSerializer if self.action == "list" else TrainingRunDetailSerializer

    @extend_schema(
        request=LaunchRun,
        responses={
            201: TrainingRunDetailSerializer,
            409: OpenApiResponse(description="The project cannot start this run now; the message says why."),
            503: OpenApiResponse(description="The task queue is unreachable; the run was marked failed."),
        },
    )
    def create(self, request: Request) -> Response:
        """Launches a run: generate, rm, ppo, rloo, dpo, sft, round, blind_eval or judge."""
        posted = LaunchRun(data=request.data)
        posted.is_valid(raise_exception=True)
        try:
            run = launch(**posted.validated_data, launched_by=request.user)
        except LaunchRefused as exc:
            return Response({"detail": str(exc)}, status=exc.http_status)
        return Response(TrainingRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            200: TrainingRunDetailSerializer,
            409: OpenApiResponse(description="The run had already finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancels a queued or running run; its training process is stopped."""
        run = self.get_object()
        if not do_cancel_run(run, by=request.user.get_username()):
            return Response({"detail": f"Run {run.pk} already {run.status}."}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(TrainingRunDetailSerializer(run).data)


@extend_schema(
    parameters=[ProjectQuery],
    responses={
        200: OpenApiResponse(
            OpenApiTypes.OBJECT,
            description="Rankings per day and labeler, agreement, gold accuracy, RM held-out and fresh-label "
            "accuracy per version, PPO score and KL per step, blind win rates. Every accuracy, agreement and "
            'win rate is {"share", "pairs", "low", "high"}: the 95% Wilson interval over the pairs behind it, '
            "and share null under 20 pairs (too few to tell).",
        ),
        404: OpenApiResponse(description="No such project."),
    },
)
@api_view(["GET"])
@permission_classes([IsAdminUser])
def metrics(request: Request) -> Response:
    """Every figure of the project's dashboard (`training.reports.metrics.project_metrics`)."""
    query = ProjectQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    return Response(project_metrics(get_object_or_404(Project, pk=query.validated_data["project"])))
