"""Read queries for the ops dashboard: what needs a human now, and the seed's two monitoring
queries (partial failures per day, most common failure codes)."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from ops_app.models import SEVERITY_RANK, ErrorRecord, ErrorSeverity
from webhooks_app.errors import ErrorCode
from webhooks_app.models import EventAction, EventItem, EventStatus, ItemStatus, WebhookEvent

# The seed's window for "partial failures to look at" and for the failure-reason ranking.
ATTENTION_DAYS = 7


@dataclass(frozen=True)
class AttentionCounts:
    # The seed's query: action = 'partial_failure' received in the last 7 days. Includes those
    # waiting for an automatic retry of a recoverable code: they fail again until fixed.
    partial_failures: int
    # Dead letters wait for a person however old they are.
    dead_letters: int
    critical_errors: int
    unresolved_errors: int
    retry_scheduled: int


def attention_counts(*, now: datetime) -> AttentionCounts:
    """Three counts, each over the few events it is about: one FILTER aggregate per count over
    the whole table would read every event (a 200 ms sequential scan per million events).
    Each runs as an index-only scan: event_partial_failures_idx, event_status_received_idx,
    event_retry_due_idx."""
    since = now - timedelta(days=ATTENTION_DAYS)
    events = WebhookEvent.objects.order_by()
    errors = ErrorRecord.objects.filter(resolved=False).aggregate(
        critical=Count("id", filter=Q(severity=ErrorSeverity.CRITICAL)), unresolved=Count("id")
    )
    return AttentionCounts(
        partial_failures=events.filter(action=EventAction.PARTIAL_FAILURE, received_at__gte=since).count(),
        dead_letters=events.filter(status=EventStatus.DEAD_LETTER).count(),
        critical_errors=errors["critical"],
        unresolved_errors=errors["unresolved"],
        retry_scheduled=events.filter(status=EventStatus.RETRY_SCHEDULED).count(),
    )


@dataclass(frozen=True)
class DailyPartialFailures:
    day: date
    open: int
    resolved: int
    failed_tasks: int

    @property
    def total(self) -> int:
        return self.open + self.resolved


def daily_partial_failures(*, now: datetime, days: int = 30) -> list[DailyPartialFailures]:
    """Events with failed items per day of arrival, oldest first, every day present. Still open
    (action partial_failure) and resolved by a person are told apart; an event a retry healed
    is no longer a failure and is not counted."""
    first_day = (now - timedelta(days=days - 1)).date()
    # received_at__date__gte would wrap the column in a time-zone conversion that no index can
    # serve; the start of first_day in the same (current) time zone bounds the column itself,
    # so event_partial_failures_idx answers from the index alone.
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    rows = (
        WebhookEvent.objects.filter(received_at__gte=since)
        .filter(Q(action=EventAction.PARTIAL_FAILURE) | Q(action=EventAction.MANUALLY_RESOLVED, tasks_failed__gt=0))
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(
            # Count("action"), not Count("id"): only indexed columns, so no table reads.
            open=Count("action", filter=Q(action=EventAction.PARTIAL_FAILURE)),
            resolved=Count("action", filter=Q(action=EventAction.MANUALLY_RESOLVED)),
            failed_tasks=Sum("tasks_failed"),
        )
    )
    by_day: dict[date, dict[str, Any]] = {row["day"]: dict(row) for row in rows}
    result = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        row = by_day.get(day, {})
        result.append(
            DailyPartialFailures(
                day=day,
                open=row.get("open", 0),
                resolved=row.get("resolved", 0),
                failed_tasks=row.get("failed_tasks") or 0,
            )
        )
    return result


@dataclass(frozen=True)
class ErrorCodeCount:
    code: str
    label: str
    failed_items: int
    events: int


def top_error_codes(*, now: datetime, days: int = ATTENTION_DAYS, limit: int = 8) -> list[ErrorCodeCount]:
    """The seed's "most common failure reasons": failed items of partial failures received in
    the window, by code. Read from the item ledger, not by unnesting failure_details JSON."""
    rows = (
        EventItem.objects.filter(
            status=ItemStatus.FAILED,
            event__action=EventAction.PARTIAL_FAILURE,
            event__received_at__gte=now - timedelta(days=days),
        )
        .values("error_code")
        .annotate(failed_items=Count("id"), events=Count("event", distinct=True))
        .order_by("-failed_items", "error_code")[:limit]
    )
    labels = dict(ErrorCode.choices)
    return [
        ErrorCodeCount(
            code=row["error_code"] or "(none)",
            label=labels.get(row["error_code"], ""),
            failed_items=row["failed_items"],
            events=row["events"],
        )
        for row in rows
    ]


def error_groups_unresolved(*, limit: int = 6) -> list[ErrorRecord]:
    """The unresolved error groups, most severe first, then most recent."""
    rank = Case(
        *(When(severity=severity, then=Value(r)) for severity, r in SEVERITY_RANK.items()),
        default=Value(0),
        output_field=IntegerField(),
    )
    return list(
        ErrorRecord.objects.filter(resolved=False).annotate(rank=rank).order_by("-rank", "-last_seen_at")[:limit]
    )
