"""The labeling API: a labeler's next task and ranking (through the same services as the pages),
and staff reads of projects, tasks and rankings, prompt import and preference export."""

from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.access import get_assignment_for_labeler, get_project_for_labeler
from labeling.exporting import streamed_export
from labeling.importing import do_import_prompts, parse_records
from labeling.models import ComparisonTask, Judge, Project, Ranking
from labeling.serializers import (
    AssignedTaskSerializer,
    ComparisonTaskSerializer,
    ExportQuery,
    ImportReportOut,
    JudgeSerializer,
    ProjectQuery,
    ProjectSerializer,
    PromptsIn,
    RankingFilter,
    RankingIn,
    RankingSerializer,
    TaskFilter,
)
from labeling.services import TaskNotFound, do_assign_next_task, do_set_judge, do_submit_ranking
from webapp.api_views import StaffReadViewSet

# The field a service's ValidationError is about, by its code; other codes concern the task's state.
FIELD_OF_CODE = {
    "empty": "order",
    "empty_rank": "order",
    "not_an_id": "order",
    "foreign": "order",
    "repeated": "order",
    "missing": "order",
    "likert": "likert",
    "flags": "flags",
    "rationale": "rationale",
}


@extend_schema(
    parameters=[ProjectQuery],
    responses={
        200: AssignedTaskSerializer,
        204: OpenApiResponse(description="Nothing is left for you in this project now."),
        404: OpenApiResponse(description="No such project among yours."),
    },
)
@api_view(["GET"])
def next_task(request: Request) -> Response:
    """Leases the caller's next task in a project (the one they hold, if its lease is live)."""
    query = ProjectQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    project = get_project_for_labeler(request.user, query.validated_data["project"])
    assignment = do_assign_next_task(project, request.user)
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(AssignedTaskSerializer(assignment).data)


@extend_schema(
    request=RankingIn,
    responses={
        201: RankingSerializer,
        200: OpenApiResponse(RankingSerializer, description="The same ranking was already stored."),
        400: OpenApiResponse(description="A field is wrong: the message names it."),
        404: OpenApiResponse(description="No such task among yours."),
        409: OpenApiResponse(description="The task no longer takes a ranking from you: skipped, ranked, lease lost."),
    },
)
@api_view(["POST"])
def submit_ranking(request: Request, task_id: int) -> Response:
    """Stores the caller's ranking of a task they were given; posting the same ranking again is a 200."""
    get_assignment_for_labeler(request.user, task_id)  # a 404 unless they still label its project
    posted = RankingIn(data=request.data)
    posted.is_valid(raise_exception=True)
    try:
        ranking, created = do_submit_ranking(task_id, request.user, **posted.validated_data)
    except TaskNotFound:
        raise NotFound("No such task among yours.") from None
    except ValidationError as error:
        message = " ".join(error.messages)
        if error.code in FIELD_OF_CODE:
            return Response({FIELD_OF_CODE[error.code]: [message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": message, "code": error.code}, status=status.HTTP_409_CONFLICT)
    return Response(RankingSerializer(ranking).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffReadViewSet):
    queryset = Project.objects.all()
    serializer_class = ProjectSerializer

    @extend_schema(
        request=PromptsIn,
        responses={
            201: ImportReportOut,
            422: OpenApiResponse(ImportReportOut, description="An atomic import met an invalid item: nothing stored."),
        },
    )
    @action(detail=True, methods=["post"])
    def prompts(self, request: Request, pk: str) -> Response:
        """Adds prompts in bulk, like `manage.py import_prompts`: invalid items are reported by their
        position (1 = first) and the rest stored, or nothing with `atomic`; duplicates are skipped."""
        project = self.get_object()
        posted = PromptsIn(data=request.data)
        posted.is_valid(raise_exception=True)
        records = parse_records(posted.validated_data["prompts"])
        report = do_import_prompts(project, records, source="api", atomic=posted.validated_data["atomic"], unit="item")
        code = status.HTTP_422_UNPROCESSABLE_ENTITY if report.rolled_back else status.HTTP_201_CREATED
        return Response(ImportReportOut(report).data, status=code)

    @extend_schema(
        parameters=[ExportQuery],
        responses={(200, "application/jsonl"): OpenApiResponse(description="One JSON object a line, streamed.")},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> StreamingHttpResponse:
        """The project's preferences as streamed JSONL: TRL pairs {prompt, chosen, rejected}, or full
        rankings with their provenance (the same rows as `manage.py export_preferences`)."""
        project = self.get_object()
        query = ExportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        return streamed_export(
            project, params["kind"], params["ties"], params["include_excluded"], params["include_ai"]
        )

    @extend_schema(
        methods=["get"], responses={200: JudgeSerializer, 404: OpenApiResponse(description="No AI judge is set.")}
    )
    @extend_schema(
        methods=["put"],
        request=JudgeSerializer,
        responses={200: JudgeSerializer, 400: OpenApiResponse(description="What is wrong; nothing was stored.")},
    )
    @action(detail=True, methods=["get", "put"])
    def judge(self, request: Request, pk: str) -> Response:
        """The project's AI judge (GET), or sets it (PUT): a local model or an OpenAI-compatible endpoint,
        whose key stays in the worker's environment variable named by `api_key_env`."""
        project = self.get_object()
        if request.method == "GET":
            judge = Judge.objects.filter(project=project).first()
            if judge is None:
                raise NotFound(f"Project {project.name!r} has no AI judge.")
            return Response(JudgeSerializer(judge).data)
        posted = JudgeSerializer(data=request.data)
        posted.is_valid(raise_exception=True)
        try:
            judge = do_set_judge(project, **posted.validated_data)
        except ValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JudgeSerializer(judge).data)


@extend_schema_view(list=extend_schema(parameters=[TaskFilter]))
class ComparisonTaskViewSet(mixins.ListModelMixin, StaffReadViewSet):
    queryset = ComparisonTask.objects.all()
    serializer_class = ComparisonTaskSerializer
    filters = TaskFilter
    lookups = {"project": "project", "state": "state"}


@extend_schema_view(list=extend_schema(parameters=[RankingFilter]))
class RankingViewSet(mixins.ListModelMixin, StaffReadViewSet):
    queryset = Ranking.objects.all()
    serializer_class = RankingSerializer
    filters = RankingFilter
    lookups = {
        "project": "task__project",
        "labeler": "labeler",
        "ai": "ai",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
    }
