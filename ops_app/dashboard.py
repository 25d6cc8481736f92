"""The ops dashboard on the admin home: what needs a human now (each count a link to the list
that shows it), and the seed's two monitoring queries as charts drawn on the server (inline
SVG and CSS bars: no script, no network)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from django.db.models import OuterRef, Subquery
from django.template.defaultfilters import pluralize
from django.urls import reverse
from redis.exceptions import RedisError

from ops_app import selectors
from ops_app.diagnostics import diagnostics_open
from ops_app.outbound_stats import endpoints_failing
from webhooks_app.breakers import breaker_states
from webhooks_app.models import DeliveryAttempt, Endpoint, EventStatus
from webhooks_app.models.events import ACTIONABLE

EVENTS_URL = "admin:webhooks_app_webhookevent_changelist"
ERRORS_URL = "admin:ops_app_errorrecord_changelist"
RUNS_URL = "admin:workflows_app_workflowrun_changelist"
CALLS_URL = "admin:workflows_app_calllog_changelist"
DIAGNOSTICS_URL = "admin:ops_app_diagnostic_changelist"
BREAKERS_URL = "admin:ops_app_breaker_changelist"
ENDPOINT_URL = "admin:webhooks_app_endpoint_change"
ENDPOINTS_URL = "admin:webhooks_app_endpoint_changelist"
# The dashboard lists this many open diagnostics; the admin list has them all.
DASHBOARD_DIAGNOSTICS = 20


def _url(name: str, **params: str) -> str:
    return f"{reverse(name)}?{urlencode(params)}" if params else reverse(name)


class PermissionHolder(Protocol):
    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    count: int
    url: str
    hint: str
    tone: str  # a badge class: partial_failure, dead_letter, critical, ...


@dataclass(frozen=True)
class DayBar:
    x: float
    width: float
    open_y: float
    open_height: float
    resolved_y: float
    resolved_height: float
    title: str
    url: str


@dataclass(frozen=True)
class DailyChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    bars: list[DayBar]
    gridlines: list[tuple[float, int]]
    x_labels: list[tuple[float, str]]
    total: int

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top


@dataclass(frozen=True)
class CodeBar:
    code: str
    label: str
    failed_items: int
    events: int
    percent: float
    url: str


def nice_ceiling(value: int) -> int:
    """A round axis maximum at least value, whose half is a whole number too (the middle line)."""
    if value <= 4:
        return 4
    power: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 4, 6, 8, 10):
        if step * power >= value and (step * power) % 2 == 0:
            return step * power
    return 10 * power


def daily_chart(days: list[selectors.DailyPartialFailures], *, width: int = 640, height: int = 190) -> DailyChart:
    # Margins leave room for the axis values on the left and today's date under the last bar.
    plot_left, plot_right, plot_top, plot_bottom = 34, width - 20, 8, height - 24
    top = nice_ceiling(max((d.total for d in days), default=0))
    scale = (plot_bottom - plot_top) / top
    slot = (plot_right - plot_left) / max(1, len(days))
    bars = []
    for index, day in enumerate(days):
        open_height = day.open * scale
        resolved_height = day.resolved * scale
        bars.append(
            DayBar(
                x=round(plot_left + index * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                open_y=round(plot_bottom - open_height, 2),
                open_height=round(open_height, 2),
                resolved_y=round(plot_bottom - open_height - resolved_height, 2),
                resolved_height=round(resolved_height, 2),
                title=f"{day.day:%b %-d}: {day.open} open, {day.resolved} resolved, {day.failed_tasks} failed tasks",
                url=_url(
                    EVENTS_URL,
                    status__exact=EventStatus.PARTIAL_FAILURE,
                    received_at__date=day.day.isoformat(),
                ),
            )
        )
    gridlines = [(round(plot_bottom - v * scale, 2), v) for v in (0, top // 2, top)]
    x_labels = [
        (round(plot_left + i * slot + slot / 2, 2), f"{day.day:%b %-d}")
        for i, day in enumerate(days)
        if (len(days) - 1 - i) % 7 == 0  # weekly, ending on today
    ]
    return DailyChart(
        width=width,
        height=height,
        plot_left=plot_left,
        plot_right=plot_right,
        plot_top=plot_top,
        plot_bottom=plot_bottom,
        bars=bars,
        gridlines=gridlines,
        x_labels=x_labels,
        total=sum(d.total for d in days),
    )


def code_bars(codes: list[selectors.ErrorCodeCount]) -> list[CodeBar]:
    top = max((c.failed_items for c in codes), default=0) or 1
    return [
        CodeBar(
            code=c.code,
            label=c.label,
            failed_items=c.failed_items,
            events=c.events,
            percent=round(100 * c.failed_items / top, 1),
            url=_url(EVENTS_URL, error_code=c.code, status__in=",".join(ACTIONABLE), received="7d"),
        )
        for c in codes
    ]


def dashboard_context(*, user: PermissionHolder, now: datetime) -> dict[str, Any]:
    """Everything the dashboard shows, limited to what the user may see."""
    sees_events = user.has_perm("webhooks_app.view_webhookevent")
    sees_errors = user.has_perm("ops_app.view_errorrecord")
    sees_runs = user.has_perm("workflows_app.view_workflowrun")
    sees_calls = user.has_perm("workflows_app.view_calllog")
    sees_diagnostics = user.has_perm("ops_app.view_diagnostic")
    sees_breakers = user.has_perm("ops_app.view_breaker")
    sees_endpoints = user.has_perm("webhooks_app.view_endpoint")
    if not (
        sees_events or sees_errors or sees_runs or sees_calls or sees_diagnostics or sees_breakers or sees_endpoints
    ):
        return {"visible": False}
    counts = selectors.attention_counts(now=now)
    cards = []
    if sees_events:
        # One card per status, each exactly the events list filtered by it: an event is
        # counted once, by its status now, so the cards add up (docs/architecture.md).
        cards += [
            Card(
                "partial_failures",
                "Partial failures",
                counts.partial_failures,
                _url(EVENTS_URL, status__exact=EventStatus.PARTIAL_FAILURE),
                "some items failed; waits for a person",
                "partial_failure",
            ),
            Card(
                "failed",
                "Failed",
                counts.failed,
                _url(EVENTS_URL, status__exact=EventStatus.FAILED),
                "nothing could be done (e.g. an invalid payload)",
                "failed",
            ),
            Card(
                "dead_letters",
                "Dead letters",
                counts.dead_letters,
                _url(EVENTS_URL, status__exact=EventStatus.DEAD_LETTER),
                "gave up after every retry",
                "dead_letter",
            ),
            Card(
                "retry_scheduled",
                "Waiting for automatic retry",
                counts.retry_scheduled,
                _url(EVENTS_URL, status__exact=EventStatus.RETRY_SCHEDULED),
                "failed; retried automatically (a recoverable code fails again until fixed)",
                "retry_scheduled",
            ),
        ]
    if sees_errors:
        cards.append(
            Card(
                "critical_errors",
                "Critical errors",
                counts.critical_errors,
                _url(ERRORS_URL, resolved__exact="0", severity__exact="critical"),
                f"unresolved · {counts.unresolved_errors} error group{pluralize(counts.unresolved_errors)} open",
                "critical",
            )
        )
    if sees_runs or sees_calls:
        cards += workflow_cards(now=now, sees_runs=sees_runs, sees_calls=sees_calls)
    context: dict[str, Any] = {"visible": True, "cards": cards, "counts": counts}
    if sees_events:
        context["daily"] = daily_chart(selectors.daily_partial_failures(now=now))
        context["codes"] = code_bars(selectors.top_error_codes(now=now))
        context["codes_days"] = selectors.ATTENTION_DAYS
    if sees_errors:
        context["error_groups"] = selectors.error_groups_unresolved()
        context["errors_url"] = _url(ERRORS_URL, resolved__exact="0")
    if sees_diagnostics:
        context.update(diagnostics_context())
    if sees_breakers:
        context.update(breakers_context())
    if sees_endpoints:
        context.update(endpoints_failing_context())
    return context


def diagnostics_context() -> dict[str, Any]:
    """Open diagnostics, most severe first, each with its fix and the page that fixes it."""
    rows = diagnostics_open()
    return {
        "diagnostics": list(rows[:DASHBOARD_DIAGNOSTICS]),
        "diagnostics_count": rows.count(),
        "diagnostics_url": _url(DIAGNOSTICS_URL, state="open"),
    }


def breakers_context() -> dict[str, Any]:
    """Every circuit breaker with its live state (Redis); None when Redis cannot say."""
    try:
        states = breaker_states()
    except RedisError:
        states = None
    return {"breakers": states, "breakers_url": _url(BREAKERS_URL)}


@dataclass(frozen=True)
class FailingEndpoint:
    url: str
    organization: str
    admin_url: str
    failing_since: datetime | None
    disabled: str  # the reason the platform disabled it; empty while enabled
    last_error: str


def endpoints_failing_context() -> dict[str, Any]:
    """Endpoints whose every attempt fails (or that the platform disabled for it), the longest
    failing first, each with the last failed attempt's answer: what a person checks first."""
    endpoints = endpoints_failing()
    last_failed = DeliveryAttempt.objects.filter(endpoint=OuterRef("pk"), succeeded=False).order_by("-started_at")
    # One query for every endpoint's last failure, not one per row.
    lasts: dict[Any, dict[str, Any]] = {
        row["pk"]: dict(row)
        for row in Endpoint.objects.filter(pk__in=[e.pk for e in endpoints])
        .annotate(
            error=Subquery(last_failed.values("error")[:1]),
            status_code=Subquery(last_failed.values("status_code")[:1]),
            error_code=Subquery(last_failed.values("error_code")[:1]),
        )
        .values("pk", "error", "status_code", "error_code")
    }
    rows = []
    for endpoint in endpoints:
        last = lasts.get(endpoint.pk, {})
        answer = f"HTTP {last['status_code']}" if last.get("status_code") else last.get("error_code") or ""
        error = " · ".join(part for part in (answer, last.get("error") or "") if part)
        rows.append(
            FailingEndpoint(
                url=endpoint.url,
                organization=endpoint.organization.slug,
                admin_url=reverse(ENDPOINT_URL, args=[endpoint.pk]),
                failing_since=endpoint.failing_since,
                disabled="" if endpoint.enabled else endpoint.get_disabled_reason_display(),
                last_error=error or endpoint.disabled_note,
            )
        )
    return {"endpoints_failing": rows, "endpoints_url": _url(ENDPOINTS_URL)}


def workflow_cards(*, now: datetime, sees_runs: bool, sees_calls: bool) -> list[Card]:
    """Runs waiting for a decision, runs failed in the last day, disposition actions that failed;
    each links to the list filtered the same way."""
    counts = selectors.workflow_attention(now=now)
    cards = []
    if sees_runs:
        cards += [
            Card(
                "runs_needs_review",
                "Runs needing review",
                counts.runs_needs_review,
                _url(RUNS_URL, needs_review="yes"),
                "failed 3+ times; retry, skip, reset or cancel",
                "dead_letter",
            ),
            Card(
                "runs_failed",
                "Failed runs (24 h)",
                counts.runs_failed,
                _url(RUNS_URL, failed="24h"),
                "stopped by a step's failure strategy",
                "failed",
            ),
        ]
    if sees_calls:
        cards.append(
            Card(
                "failed_actions",
                "Failed disposition actions",
                counts.failed_actions,
                _url(CALLS_URL, failed_actions="yes"),
                "on calls; retry them from the call's page",
                "partial_failure",
            )
        )
    return cards
