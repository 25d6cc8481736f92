"""The seed's webhook_health_stats, per endpoint and event type: success rate, attempts per
message, latency p50/p99, last success and failure, and the error patterns behind failures.

Each delivery counts once, by its status now (docs/architecture.md, "Counting"); `total` is the
denominator of the success rate. Latencies and error patterns come from the attempt log."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import quantiles
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, FloatField, Max, Q, QuerySet
from django.utils import timezone

from webhooks_app.models import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint
from webhooks_app.models.outbound import DELIVERY_WAITING

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = "7d"
TOP_ERRORS = 10


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: the `fraction` quantile, interpolated."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass
class ErrorPattern:
    status_code: int | None
    error_code: str
    count: int
    last_seen: datetime
    example: str


@dataclass
class TypeHealth:
    event_type: str
    total: int = 0
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    success_rate: float | None = None
    attempts_per_message: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    errors: list[ErrorPattern] = field(default_factory=list)


@dataclass
class EndpointHealth:
    endpoint: Endpoint
    since: datetime
    overall: TypeHealth
    by_event_type: list[TypeHealth]


def _latencies(attempts: QuerySet[DeliveryAttempt], key: str | None) -> dict[str | None, tuple[float, float]]:
    """p50 and p99 per group (or overall when `key` is None)."""
    if connection.vendor == "postgresql":
        aggregates = {"p50": PercentileCont("latency_ms", 0.5), "p99": PercentileCont("latency_ms", 0.99)}
        if key is None:
            row = attempts.order_by().aggregate(**aggregates)
            return {None: (row["p50"], row["p99"])} if row["p50"] is not None else {}
        rows = attempts.order_by().values(key).annotate(**aggregates)
        return {row[key]: (row["p50"], row["p99"]) for row in rows}
    # SQLite (the embedded default) has no percentile_cont: the same interpolation in Python.
    values: dict[str | None, list[int]] = {}
    for group, latency in attempts.values_list(key or "endpoint_id", "latency_ms"):
        values.setdefault(group if key else None, []).append(latency)
    return {g: _p(v) for g, v in values.items()}


def _p(values: list[int]) -> tuple[float, float]:
    if len(values) == 1:
        return float(values[0]), float(values[0])
    cuts = quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def endpoint_health(
    *, endpoint: Endpoint, time_range: str = DEFAULT_RANGE, now: datetime | None = None
) -> EndpointHealth:
    now = now or timezone.now()
    since = now - RANGES[time_range]
    deliveries = Delivery.objects.filter(endpoint=endpoint, created_at__gte=since)
    attempts = DeliveryAttempt.objects.filter(endpoint=endpoint, started_at__gte=since)

    def counts(rows: Any) -> Any:
        return rows.annotate(
            total=Count("id"),
            delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)),
            failed=Count("id", filter=Q(status__in=(DeliveryStatus.FAILED, DeliveryStatus.CANCELLED))),
            waiting=Count("id", filter=Q(status__in=DELIVERY_WAITING)),
            attempts_avg=Avg("attempts", filter=~Q(status__in=DELIVERY_WAITING)),
        )

    by_type: dict[str, TypeHealth] = {}
    for row in counts(deliveries.order_by().values("event_type")):
        by_type[row["event_type"]] = _health(row["event_type"], row)
    overall_row = deliveries.order_by().aggregate(
        total=Count("id"),
        delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)),
        failed=Count("id", filter=Q(status__in=(DeliveryStatus.FAILED, DeliveryStatus.CANCELLED))),
        waiting=Count("id", filter=Q(status__in=DELIVERY_WAITING)),
        attempts_avg=Avg("attempts", filter=~Q(status__in=DELIVERY_WAITING)),
    )
    overall = _health("*", overall_row)

    for event_type, (p50, p99) in _latencies(attempts, "event_type").items():
        health = by_type.setdefault(str(event_type), TypeHealth(str(event_type)))
        health.latency_p50_ms, health.latency_p99_ms = p50, p99
    if (both := _latencies(attempts, None).get(None)) is not None:
        overall.latency_p50_ms, overall.latency_p99_ms = both

    lasts = (
        attempts.order_by()
        .values("event_type")
        .annotate(ok=Max("started_at", filter=Q(succeeded=True)), bad=Max("started_at", filter=Q(succeeded=False)))
    )
    for row in lasts:
        health = by_type.setdefault(row["event_type"], TypeHealth(row["event_type"]))
        health.last_success_at, health.last_failure_at = row["ok"], row["bad"]
    overall.last_success_at = max((h.last_success_at for h in by_type.values() if h.last_success_at), default=None)
    overall.last_failure_at = max((h.last_failure_at for h in by_type.values() if h.last_failure_at), default=None)

    patterns = (
        attempts.filter(succeeded=False)
        .order_by()
        .values("event_type", "status_code", "error_code")
        .annotate(n=Count("id"), last=Max("started_at"), example=Max("error"))
        .order_by("-n")
    )
    merged: dict[tuple[int | None, str], ErrorPattern] = {}
    for row in patterns:
        pattern = ErrorPattern(row["status_code"], row["error_code"], row["n"], row["last"], row["example"])
        by_type.setdefault(row["event_type"], TypeHealth(row["event_type"])).errors.append(pattern)
        key = (row["status_code"], row["error_code"])
        if key in merged:
            merged[key].count += row["n"]
            merged[key].last_seen = max(merged[key].last_seen, row["last"])
        else:
            merged[key] = ErrorPattern(**{**pattern.__dict__})
    overall.errors = sorted(merged.values(), key=lambda p: -p.count)[:TOP_ERRORS]
    for health in by_type.values():
        health.errors = health.errors[:TOP_ERRORS]
    return EndpointHealth(endpoint, since, overall, sorted(by_type.values(), key=lambda h: h.event_type))


def _health(event_type: str, row: dict[str, Any]) -> TypeHealth:
    total = row["total"] or 0
    return TypeHealth(
        event_type=event_type,
        total=total,
        delivered=row["delivered"] or 0,
        failed=row["failed"] or 0,
        waiting=row["waiting"] or 0,
        success_rate=(row["delivered"] / total) if total else None,
        attempts_per_message=row["attempts_avg"],
    )


def endpoints_failing(*, organization_id: int | None = None, limit: int = 10) -> list[Endpoint]:
    """The dashboard's card: endpoints failing now (every attempt failing since a time) or
    disabled by the platform, the longest failing first."""
    endpoints = Endpoint.objects.select_related("organization").filter(
        Q(enabled=True, failing_since__isnull=False) | Q(enabled=False, disabled_reason__in=["gone", "failing"])
    )
    if organization_id is not None:
        endpoints = endpoints.filter(organization_id=organization_id)
    return list(endpoints.order_by("failing_since", "disabled_at")[:limit])
