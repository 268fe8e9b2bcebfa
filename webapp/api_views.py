"""The API's shared view base classes, and the site's own 404 answer (JSON under /api/, the page
elsewhere, in debug too).

They live apart from webapp.api, which settings name and DRF imports while it builds its view
classes, so that module must not import rest_framework.views (as viewsets does).
"""

from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404
from django.views import defaults
from rest_framework import serializers, viewsets
from rest_framework.permissions import IsAdminUser

from webapp.api import NewestFirst


class StaffReadViewSet(viewsets.GenericViewSet):
    """Staff-only reads (labelers get 403), newest first, filtered by the query parameters that
    `filters` declares; `lookups` maps each to its ORM lookup (a parameter left out, or None, filters
    nothing). A bad parameter is a 400."""

    permission_classes = [IsAdminUser]
    pagination_class = NewestFirst
    filters: type[serializers.Serializer] | None = None
    lookups: dict[str, str] = {}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.filters is None or self.action != "list":
            return queryset
        params = self.filters(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        given = {name: value for name, value in params.validated_data.items() if value is not None}
        return queryset.filter(**{self.lookups[name]: value for name, value in given.items()})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ (a URL no route matches, such as /api/runs/0.5/), the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


class NotFoundPageMiddleware:
    """A view's Http404 (another labeler's task, a project one is not on) answers with the site's own
    page, its message and a way home, in debug too, where Django would show its technical page; a
    URL that no route matches keeps Django's handling (the technical page in debug, `not_found` in
    production). The admin keeps its own."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404) and not isinstance(exception, Resolver404):
            if not request.path.startswith("/admin/"):
                return not_found(request, exception)
        return None
