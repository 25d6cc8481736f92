"""Cursor pagination, newest first, keyed on (a timestamp, id): events on (received_at, id),
workflow runs, calls and leads on (created_at, id)."""

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class EventCursorPagination(CursorPagination):
    """DRF's CursorPagination positions on the first ordering field only and breaks ties with
    an offset; events share received_at often enough under load (bulk imports, bursts) that the
    position here is the pair (received_at, id), which is unique, so no offset is ever needed.
    A position is stable under inserts: new events never shift a page a client is reading."""

    ordering = ("-received_at", "-id")
    # The position's timestamp field and how an id is read back from a cursor.
    time_field = "received_at"
    parse_id: Callable[[str], Any] = uuid.UUID
    # The list's key in a page answered by get_paginated_response (generic list views).
    results_key = "results"
    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    # Links keep the client's limit; the view has validated it already.
    page_size_query_param = "limit"
    template = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        assert isinstance(queryset, QuerySet), "pages over a queryset"
        at = self.time_field
        self.request = request
        self.page_size = self.get_page_size(request) or DEFAULT_LIMIT
        self.base_url = request.build_absolute_uri()
        try:
            self.cursor = self.decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc
        # DRF's stubs type a position as int; DRF itself stores the string it was given.
        position = self._parse_position(cast(str | None, self.cursor.position)) if self.cursor else None
        reverse = bool(self.cursor and self.cursor.reverse)

        if reverse:
            queryset = queryset.order_by(at, "id")
            if position:
                queryset = queryset.filter(
                    Q(**{f"{at}__gt": position[0]}) | Q(**{at: position[0], "id__gt": position[1]})
                )
        else:
            queryset = queryset.order_by(f"-{at}", "-id")
            if position:
                queryset = queryset.filter(
                    Q(**{f"{at}__lt": position[0]}) | Q(**{at: position[0], "id__lt": position[1]})
                )

        results = list(queryset[: self.page_size + 1])
        has_more = len(results) > self.page_size
        self.page = results[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_next, self.has_previous = position is not None, has_more
        else:
            self.has_next, self.has_previous = has_more, position is not None
        return self.page

    def _parse_position(self, raw: str | None) -> tuple[datetime, Any] | None:
        if raw is None:
            return None
        try:
            at, _, row_id = raw.partition("|")
            parsed = datetime.fromisoformat(at)
            if parsed.tzinfo is None:
                raise ValueError("naive")
            return parsed, type(self).parse_id(row_id)
        except ValueError as exc:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc

    def _position(self, row: Any) -> str:
        return f"{getattr(row, self.time_field).isoformat()}|{row.id}"

    def get_next_link(self) -> str | None:
        if not self.has_next or not self.page:
            return None
        cursor = Cursor(offset=0, reverse=False, position=self._position(self.page[-1]))  # type: ignore[arg-type]
        return str(self.encode_cursor(cursor))

    def get_previous_link(self) -> str | None:
        if not self.has_previous or not self.page:
            return None
        cursor = Cursor(offset=0, reverse=True, position=self._position(self.page[0]))  # type: ignore[arg-type]
        return str(self.encode_cursor(cursor))

    def links(self) -> dict[str, Any]:
        return {"next": self.get_next_link(), "previous": self.get_previous_link()}

    def get_paginated_response(self, data: Any) -> Response:
        return Response({self.results_key: data, "count": len(data), **self.links()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": [self.results_key, "count", "next", "previous"],
            "properties": {
                self.results_key: schema,
                "count": {"type": "integer", "description": "Number of entries in this page."},
                "next": link,
                "previous": link,
            },
        }


class CreatedCursorPagination(EventCursorPagination):
    """Rows keyed on (created_at, id), newest first; `results_key` names the list."""

    ordering = ("-created_at", "-id")
    time_field = "created_at"


def created_pagination(results_key: str, *, int_ids: bool = False) -> type[CreatedCursorPagination]:
    attrs: dict[str, Any] = {"results_key": results_key}
    if int_ids:
        attrs["parse_id"] = int
    return type(f"{results_key.capitalize()}Pagination", (CreatedCursorPagination,), attrs)
