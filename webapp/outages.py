"""A database that cannot be reached answers 503 with Retry-After, not a 500 and a traceback.

While PostgreSQL restarts, a query fails with OperationalError (refused, shutting down, starting
up) or InterfaceError (a connection it closed). Nothing was stored by the request that met it: its
transaction is rolled back, and Django drops the broken connection at the request's end (and
checks a kept one before reuse, CONN_HEALTH_CHECKS), so the next request reconnects by itself.
The client is told to try again: JSON for the API and for htmx or JSON-accepting callers, a
plain page otherwise, rendered without the database.
"""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is unavailable for a moment; nothing was stored. Try again in a few seconds."
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unavailable for a moment · RLHF</title></head>
<body><h1>Unavailable for a moment</h1><p>{MESSAGE}</p></body></html>
"""


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


class DatabaseUnavailableMiddleware:
    """Turns an OperationalError or InterfaceError raised by a view into a 503 with Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        if wants_json(request):
            response = JsonResponse({"detail": MESSAGE, "code": "database_unavailable"}, status=503)
        else:
            response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
