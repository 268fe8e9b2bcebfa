"""/api/: the labeler endpoints, the staff collections, the OpenAPI schema and its docs page.

The docs page is drf-spectacular's split view: Swagger UI's start-up script is served as a file
(`/api/docs/?script`), since the Content-Security-Policy refuses inline scripts."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from labeling import api as labeling_api
from training import api as training_api

# No `.json` twins of each route: nothing uses them, and the API's actions did not take their
# `format` argument (a 500 the access matrix found).
router = DefaultRouter()
router.include_format_suffixes = False
router.register("projects", training_api.ProjectViewSet, basename="project")  # labeling's, with the recipe
router.register("tasks", labeling_api.ComparisonTaskViewSet, basename="task")
router.register("rankings", labeling_api.RankingViewSet, basename="ranking")
router.register("policies", training_api.PolicyVersionViewSet, basename="policy")
router.register("reward-models", training_api.RewardModelVersionViewSet, basename="reward-model")
router.register("runs", training_api.TrainingRunViewSet, basename="run")

app_name = "api"
urlpatterns = [
    path("tasks/next/", labeling_api.next_task, name="next-task"),
    path("tasks/<int:task_id>/ranking/", labeling_api.submit_ranking, name="submit-ranking"),
    path("metrics/", training_api.metrics, name="metrics"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html"),
        name="docs",
    ),
    *router.urls,
]
