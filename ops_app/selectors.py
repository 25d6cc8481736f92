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
from webhooks_app.models import EventItem, EventStatus, ItemStatus, WebhookEvent
from webhooks_app.models.events import ACTIONABLE, RETRY_PENDING
from workflows_app.models import ActionExecution, ActionExecutionStatus, RunStatus, WorkflowRun

# The seed's window for the failure-reason ranking.
ATTENTION_DAYS = 7


@dataclass(frozen=True)
class AttentionCounts:
    # Events by status now, whatever their age: each needs-a-human status, and the failed events
    # waiting for their automatic retry. Each is exactly the events list filtered by that status,
    # and an event is in one of them at most (docs/architecture.md, "Counting").
    partial_failures: int
    failed: int
    dead_letters: int
    retry_scheduled: int
    critical_errors: int
    unresolved_errors: int

    @property
    def needs_human(self) -> int:
        return self.partial_failures + self.failed + self.dead_letters


def attention_counts(*, now: datetime) -> AttentionCounts:
    """One grouped count over the few events that failed (an index-only scan of
    event_status_received_idx, whose first key is the status), and the error groups."""
    by_status = WebhookEvent.objects.filter(status__in=ACTIONABLE).count_by_status()
    errors = ErrorRecord.objects.filter(resolved=False).aggregate(
        critical=Count("id", filter=Q(severity=ErrorSeverity.CRITICAL)), unresolved=Count("id")
    )
    return AttentionCounts(
        partial_failures=by_status[EventStatus.PARTIAL_FAILURE],
        failed=by_status[EventStatus.FAILED],
        dead_letters=by_status[EventStatus.DEAD_LETTER],
        retry_scheduled=sum(by_status[s] for s in RETRY_PENDING),
        critical_errors=errors["critical"],
        unresolved_errors=errors["unresolved"],
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
    """Partial failures per day of arrival, oldest first, every day present, by status: still
    open (partial_failure) and resolved by a person (manually_resolved, with failed items) are
    told apart; an event a retry healed is no longer a failure and is not counted."""
    first_day = (now - timedelta(days=days - 1)).date()
    # received_at__date__gte would wrap the column in a time-zone conversion that no index can
    # serve; the start of first_day in the same (current) time zone bounds the column itself,
    # so event_status_received_idx (status, received_at) finds the rows.
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    rows = (
        WebhookEvent.objects.filter(received_at__gte=since)
        .filter(Q(status=EventStatus.PARTIAL_FAILURE) | Q(status=EventStatus.MANUALLY_RESOLVED, tasks_failed__gt=0))
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(
            open=Count("status", filter=Q(status=EventStatus.PARTIAL_FAILURE)),
            resolved=Count("status", filter=Q(status=EventStatus.MANUALLY_RESOLVED)),
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
    """The seed's "most common failure reasons": failed items, by code, of events received in the
    window that failed and are not yet settled (needs a human, or waiting for an automatic
    retry). Read from the item ledger, not by unnesting failure_details JSON."""
    rows = (
        EventItem.objects.filter(
            status=ItemStatus.FAILED,
            event__status__in=ACTIONABLE,
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


# --- Workflows: what needs a human -----------------------------------------------------------


@dataclass(frozen=True)
class WorkflowAttention:
    runs_needs_review: int
    # Runs that failed (stopped by a step's strategy) within the last day.
    runs_failed: int
    failed_actions: int


FAILED_RUNS_WINDOW = timedelta(hours=24)


def workflow_attention(*, now: datetime) -> WorkflowAttention:
    runs = WorkflowRun.objects.aggregate(
        review=Count("id", filter=Q(status=RunStatus.NEEDS_REVIEW)),
        failed=Count("id", filter=Q(status=RunStatus.FAILED, updated_at__gte=now - FAILED_RUNS_WINDOW)),
    )
    return WorkflowAttention(
        runs_needs_review=runs["review"],
        runs_failed=runs["failed"],
        failed_actions=ActionExecution.objects.filter(status=ActionExecutionStatus.FAILED).count(),
    )
