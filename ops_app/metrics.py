"""Prometheus /metrics: a custom collector that reads current figures at scrape time.

Nothing is counted in-process (a web process sees only its own requests; the figures live in
the database and the broker), so every scrape asks them, and remembers the answer for
METRICS_CACHE_SECONDS so several scrapers or a short scrape interval cost one set of queries.

Access: `Authorization: Bearer <METRICS_TOKEN>` for scrapers, or a staff session allowed to view
events. Organization API keys are refused: the figures cover every organization.
"""

import hmac
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.http_errors import error_response
from config.publishing import queue_depths
from config.queues import Queue
from ops_app.models import Alert, AlertState
from ops_app.queue_health import BROKER_ERRORS
from webhooks_app.breakers import CLOSED, HALF_OPEN, OPEN, breaker_states
from webhooks_app.models import EventStatus, WebhookEvent
from webhooks_app.models.events import WAITING, ProcessingAttempt
from workflows_app.models import WorkflowRun

logger = logging.getLogger(__name__)

METRICS_CACHE_SECONDS = 10.0
BREAKER_STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass
class Figures:
    events: dict[str, int] = field(default_factory=dict)
    attempts_last_hour: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    queue_depth: dict[str, int] | None = None
    oldest_age: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, str] | None = None
    alerts_firing: int | None = None


def _breakers() -> dict[str, str]:
    return {b.name: b.state for b in breaker_states()}


def _alerts_firing() -> int:
    return Alert.objects.filter(state=AlertState.FIRING).count()


def figures_read() -> Figures:
    now = timezone.now()
    figures = Figures(
        events={row["status"]: row["n"] for row in WebhookEvent.objects.values("status").annotate(n=Count("id"))},
        attempts_last_hour={
            row["outcome"] or "running": row["n"]
            for row in ProcessingAttempt.objects.filter(started_at__gte=now - timedelta(hours=1))
            .values("outcome")
            .annotate(n=Count("id"))
        },
        runs={row["status"]: row["n"] for row in WorkflowRun.objects.values("status").annotate(n=Count("id"))},
        breakers=_breakers(),
        alerts_firing=_alerts_firing(),
    )
    try:
        figures.queue_depth = queue_depths(q.value for q in Queue)
    except BROKER_ERRORS:  # a down broker leaves its series out; readiness says why
        logger.warning("metrics: broker unreachable", exc_info=True)
    # How long the oldest work of each queue has waited, from the database that records it.
    waiting = WebhookEvent.objects.filter(status__in=WAITING).aggregate(at=Min("updated_at"))["at"]
    due_retry = WebhookEvent.objects.filter(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now).aggregate(
        at=Min("next_retry_at")
    )["at"]
    due_run = WorkflowRun.objects.due(now=now).aggregate(at=Min("next_action_at"))["at"]
    oldest_event = min((t for t in (waiting, due_retry) if t is not None), default=None)
    for queue, since in ((Queue.WEBHOOKS, oldest_event), (Queue.WORKFLOWS, due_run)):
        figures.oldest_age[queue.value] = max(0.0, (now - since).total_seconds()) if since else 0.0
    return figures


_cached: tuple[float, Figures] | None = None


def figures_cached() -> Figures:
    global _cached
    if _cached is None or time.monotonic() - _cached[0] > METRICS_CACHE_SECONDS:
        _cached = (time.monotonic(), figures_read())
    return _cached[1]


def figures_forget() -> None:
    global _cached
    _cached = None


class MendhookCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = figures_cached()
        events = GaugeMetricFamily("mendhook_events", "Events by status now", labels=["status"])
        for event_status in EventStatus:
            events.add_metric([event_status.value], f.events.get(event_status.value, 0))
        yield events
        attempts = GaugeMetricFamily(
            "mendhook_attempts_last_hour", "Processing attempts started in the last hour by outcome", labels=["outcome"]
        )
        for outcome, n in sorted(f.attempts_last_hour.items()):
            attempts.add_metric([outcome], n)
        yield attempts
        runs = GaugeMetricFamily("mendhook_workflow_runs", "Workflow runs by status now", labels=["status"])
        for status, n in sorted(f.runs.items()):
            runs.add_metric([status], n)
        yield runs
        if f.queue_depth is not None:
            depth = GaugeMetricFamily("mendhook_queue_depth", "Messages waiting in each queue", labels=["queue"])
            for queue, n in sorted(f.queue_depth.items()):
                depth.add_metric([queue], n)
            yield depth
        age = GaugeMetricFamily(
            "mendhook_queue_oldest_age_seconds",
            "How long the oldest work of the queue has waited (waiting events and due retries; due runs)",
            labels=["queue"],
        )
        for queue, seconds in sorted(f.oldest_age.items()):
            age.add_metric([queue], seconds)
        yield age
        if f.breakers is not None:
            breakers = GaugeMetricFamily(
                "mendhook_breaker_state", "1 for each circuit breaker's current state", labels=["breaker", "state"]
            )
            for name, current in sorted(f.breakers.items()):
                for state in BREAKER_STATES:
                    breakers.add_metric([name, state], 1 if current == state else 0)
            yield breakers
        if f.alerts_firing is not None:
            yield GaugeMetricFamily("mendhook_alerts_firing", "Alerts started and not yet recovered", f.alerts_firing)


registry = CollectorRegistry(auto_describe=False)
registry.register(MendhookCollector())


def _allowed(request: HttpRequest) -> bool:
    token = settings.MENDHOOK_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return True
    user: Any = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff and user.has_perm("webhooks_app.view_webhookevent"))


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = error_response(
            401, "not_authenticated", "Send 'Authorization: Bearer <METRICS_TOKEN>' or sign in as staff."
        )
        response["WWW-Authenticate"] = 'Bearer realm="mendhook-metrics"'
        return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
