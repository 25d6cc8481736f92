"""Cursor pagination over events, newest first, keyed on (received_at, id)."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from webhooks_app.models import WebhookEvent

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class EventCursorPagination(CursorPagination):
    """DRF's CursorPagination positions on the first ordering field only and breaks ties with
    an offset; events share received_at often enough under load (bulk imports, bursts) that the
    position here is the pair (received_at, id), which is unique, so no offset is ever needed.
    A position is stable under inserts: new events never shift a page a client is reading."""

    ordering = ("-received_at", "-id")
    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    # Links keep the client's limit; the view has validated it already.
    page_size_query_param = "limit"
    template = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        assert isinstance(queryset, QuerySet), "pages over an event queryset"
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
            queryset = queryset.order_by("received_at", "id")
            if position:
                queryset = queryset.filter(
                    Q(received_at__gt=position[0]) | Q(received_at=position[0], id__gt=position[1])
                )
        else:
            queryset = queryset.order_by("-received_at", "-id")
            if position:
                queryset = queryset.filter(
                    Q(received_at__lt=position[0]) | Q(received_at=position[0], id__lt=position[1])
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

    def _parse_position(self, raw: str | None) -> tuple[datetime, uuid.UUID] | None:
        if raw is None:
            return None
        try:
            at, _, event_id = raw.partition("|")
            parsed = datetime.fromisoformat(at)
            if parsed.tzinfo is None:
                raise ValueError("naive")
            return parsed, uuid.UUID(event_id)
        except ValueError as exc:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc

    def _position(self, event: WebhookEvent) -> str:
        return f"{event.received_at.isoformat()}|{event.id}"

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
