"""The events list at scale: a paginator that never counts a million rows, and the filters
ops people use (error code from the ledger, received date, event type)."""

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from webhooks_app.errors import ErrorCode
from webhooks_app.handlers import ANY_EVENT_TYPE, registered
from webhooks_app.models import (
    EventItem,
    TaskTemplate,
)
from webhooks_app.models.events import StatusGroup, statuses_in


class EstimatedCountPaginator(Paginator[Any]):
    """An exact COUNT(*) over a million rows on every page view is what makes admin lists slow.
    Unfiltered on PostgreSQL the planner's estimate (pg_class.reltuples, kept fresh by
    autovacuum) stands in once the table is big; otherwise rows are counted up to CAP only."""

    CAP = 10_000
    estimated = False
    capped = False

    @cached_property
    def count(self) -> int:
        objects: Any = self.object_list
        if not isinstance(objects, QuerySet):
            return len(objects)
        if not objects.query.where and connection.vendor == "postgresql":
            estimate = _table_row_estimate(objects.model._meta.db_table)
            if estimate > self.CAP:
                self.estimated = True
                return estimate
        counted = objects.order_by().values("pk")[: self.CAP + 1].count()
        if counted > self.CAP:
            self.capped = True
            return self.CAP
        return counted


def _table_row_estimate(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    # -1 until the table is first analyzed.
    return max(0, int(row[0])) if row and row[0] is not None else 0


# --- Filters ------------------------------------------------------------------------------------


class StatusGroupFilter(admin.SimpleListFilter):
    """The status groups every count uses (webhooks_app.models.events.StatusGroup), so a
    dashboard or API figure can be checked against the list."""

    title = "status group"
    parameter_name = "group"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(group.value, str(group.label)) for group in StatusGroup]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in StatusGroup.values:
            return queryset
        return queryset.filter(status__in=statuses_in(StatusGroup(value)))


class ErrorCodeFilter(admin.SimpleListFilter):
    """Events with the code on any ledger item, or as the event's own last error (failures
    with no items, such as a payload that failed validation)."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code.value, code.value) for code in ErrorCode]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        code = self.value()
        if not code:
            return queryset
        # IN (SELECT event_id ...), not a correlated EXISTS: the same rows, but PostgreSQL costs
        # an EXISTS under OR as if it ran once per event, and that inflated estimate switches
        # on JIT compilation, which cost 100-250 ms per page view with 1,000,000 events (the
        # subquery itself runs once, hashed, either way).
        in_ledger = EventItem.objects.filter(error_code=code).values("event_id")
        return queryset.filter(Q(last_error_code=code) | Q(pk__in=in_ledger))


class ReceivedFilter(admin.SimpleListFilter):
    title = "received"
    parameter_name = "received"
    WINDOWS = {
        "today": ("Today", None),
        "24h": ("Last 24 hours", timedelta(hours=24)),
        "7d": ("Last 7 days", timedelta(days=7)),
        "30d": ("Last 30 days", timedelta(days=30)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in self.WINDOWS:
            return queryset
        now = timezone.now()
        window = self.WINDOWS[value][1]
        since = now - window if window else timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        return queryset.filter(received_at__gte=since)


class EventTypeFilter(admin.SimpleListFilter):
    """The event types there are handlers or templates for. Not SELECT DISTINCT over the events
    table, which reads every row on each page view."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        types = {event_type for (_kind, event_type) in registered() if event_type != ANY_EVENT_TYPE}
        types.update(TaskTemplate.objects.values_list("trigger_event_type", flat=True).distinct())
        return [(t, t) for t in sorted(types)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(event_type=value) if value else queryset


# --- What an act will do ------------------------------------------------------------------------
