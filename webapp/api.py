"""What every API endpoint shares: the bounded JSON parser and keyset pagination.

Settings name these (REST_FRAMEWORK), and DRF imports them while it builds its view classes:
this module must not import rest_framework.views.
"""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


class BoundedJSONParser(JSONParser):
    """JSON, refused with 413 before it is read when it is over settings.API_MAX_BODY_BYTES.

    Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) is checked only when `request.body` or
    `request.POST` of Django's request is read; DRF reads the stream itself and parses forms
    with its own parsers, so that limit never applies to the API: this one does.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        length = int(parser_context["request"].META.get("CONTENT_LENGTH") or 0)  # DRF checked it is a number
        if length > settings.API_MAX_BODY_BYTES:
            limit = settings.API_MAX_BODY_BYTES
            raise BodyTooLarge(f"The request body is {length:,} bytes; the limit is {limit:,} bytes.")
        return super().parse(stream, media_type, parser_context)


class NewestFirst(CursorPagination):
    """Keyset pagination on the primary key (`WHERE id < cursor ORDER BY id DESC LIMIT n`):
    page 1,000 costs what page 1 does, where OFFSET would read every row before it."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        """A cursor that is not one of ours is a bad parameter (400), not a missing page (DRF's 404)."""
        try:
            return super().decode_cursor(request)
        except NotFound:
            message = "Invalid cursor: pass a page's `next` or `previous` link as it is."
            raise ValidationError({self.cursor_query_param: [message]}) from None
