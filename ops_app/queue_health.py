"""Queue health: what the broker holds, what the workers run, and what the database says failed,
judged against thresholds so a dashboard can show one healthy flag with the reasons.

Broker and worker figures describe the shared queues of the whole installation; figures from
the database are scoped to one organization (None: all of them, for staff).
"""

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import amqp.exceptions
import kombu.exceptions
import redis
from django.core.cache import caches
from django.db.models import Count, Min, Q
from django.utils import timezone

from config.celery_app import app as celery_app
from config.publishing import queue_depths, queue_unacked
from config.queues import Queue
from ops_app.stats import Counts, delivery_summary, events_of
from webhooks_app.models.events import RETRY_PENDING, WAITING

logger = logging.getLogger(__name__)

# What a down or unreachable broker (or the Redis cache beside it) raises; on RabbitMQ also a
# refused login or vhost, or a queue declared with other arguments (AMQPError).
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, OSError, amqp.exceptions.AMQPError)

# Celery's inspect waits this long for worker replies (less when every known worker answered).
INSPECT_TIMEOUT_SECONDS = 1.0
# Worker replies are cached this long, so a dashboard polling every second asks workers rarely.
WORKER_SNAPSHOT_SECONDS = 5
# How long the number of workers is remembered: inspect stops waiting once that many replied.
WORKER_ROSTER_SECONDS = 60
WORKER_SNAPSHOT_KEY = "queue-health:workers"
WORKER_ROSTER_KEY = "queue-health:roster"

# Thresholds from the seed's monitoring targets (webhook-metrics: waiting < 100, failure rate
# < 5%, dead letters alert above 10), plus how long an event may wait before someone should look.
MAX_WAITING = 100
MAX_FAILURE_RATE = 0.05
MAX_DEAD_LETTERS_24H = 10
MAX_WAIT_SECONDS = 300
# The outcome figures are delivery stats' 24h range: the same window, groups and denominator.
HEALTH_RANGE = "24h"


@dataclass
class WorkerSnapshot:
    workers: list[str]
    consumers: dict[str, int]
    active: dict[str, int]
    reserved: dict[str, int]


@dataclass
class EventHealth:
    # Events received in the last 24h by their status now: delivery stats' 24h summary.
    window: Counts
    scheduled_retries: int
    oldest_waiting_since: datetime | None

    @property
    def completed(self) -> int:
        return self.window.completed

    @property
    def failed(self) -> int:
        return self.window.failed

    @property
    def dead_letter(self) -> int:
        return self.window.dead_letter

    @property
    def retry_pending(self) -> int:
        return self.window.retry_pending


@dataclass
class QueueFigures:
    name: str
    waiting: int | None
    active: int | None
    reserved: int | None
    workers: int | None
    # Delivered to a worker, not yet acknowledged (None: the broker cannot tell, AMQP).
    unacked: int | None = None
    scheduled_retries: int = 0
    failed: int = 0
    dead_letter: int = 0
    oldest_waiting_seconds: float | None = None


@dataclass
class QueueHealth:
    healthy: bool
    reasons: list[str]
    queues: list[QueueFigures]
    events: EventHealth
    workers_online: int | None
    timestamp: datetime

    def _sum(self, attr: str) -> int | None:
        values = [getattr(q, attr) for q in self.queues]
        return None if any(v is None for v in values) else sum(values)

    @property
    def waiting(self) -> int | None:
        return self._sum("waiting")

    @property
    def active(self) -> int | None:
        return self._sum("active")

    @property
    def reserved(self) -> int | None:
        return self._sum("reserved")

    @property
    def unacked(self) -> int | None:
        return self._sum("unacked")

    @property
    def paused(self) -> int | None:
        """Messages waiting in queues that no online worker consumes."""
        if any(q.waiting is None or q.workers is None for q in self.queues):
            return None
        return sum(q.waiting or 0 for q in self.queues if not q.workers)

    @property
    def total_jobs(self) -> int | None:
        parts = (self.waiting, self.reserved, self.active)
        return None if None in parts else sum(p or 0 for p in parts) + self.events.scheduled_retries

    @property
    def failure_rate(self) -> float | None:
        return self.events.window.failure_rate

    @property
    def oldest_waiting_seconds(self) -> float | None:
        since = self.events.oldest_waiting_since
        return max(0.0, (self.timestamp - since).total_seconds()) if since else None


def broker_queue_lengths() -> dict[str, int]:
    """Messages waiting in every queue, in one round trip. Raises when the broker is down."""
    return queue_depths(q.value for q in Queue)


def broker_unacked() -> dict[str, int] | None:
    """Messages held by workers and not yet acknowledged, per queue; None when the broker cannot
    tell. A message whose worker died stays here until the visibility timeout restores it."""
    return queue_unacked()


def _ask_workers(method: str, limit: int | None) -> dict[str, Any]:
    # Own connection per call: the three broadcasts run in parallel threads.
    with celery_app.connection_for_read() as conn:
        inspect = celery_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS, connection=conn, limit=limit)
        return getattr(inspect, method)() or {}


def _queue_of(task: dict[str, Any]) -> str:
    # Every queue is declared with its own name as routing key (config.queues). On RabbitMQ a
    # countdown's message arrives through the delayed-delivery exchanges with its delay's bits
    # in front ("0.1.1.webhooks"); queue names hold no dots, so the last part names the queue.
    routing_key = str((task.get("delivery_info") or {}).get("routing_key", ""))
    return routing_key.rsplit(".", 1)[-1]


def _take_worker_snapshot() -> WorkerSnapshot:
    cache = caches["api"]
    known = cache.get(WORKER_ROSTER_KEY)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {m: pool.submit(_ask_workers, m, known) for m in ("active_queues", "active", "reserved")}
        replies = {m: f.result() for m, f in futures.items()}
    consumers: dict[str, int] = defaultdict(int)
    for queues in replies["active_queues"].values():
        for queue in queues:
            consumers[queue["name"]] += 1
    active: dict[str, int] = defaultdict(int)
    reserved: dict[str, int] = defaultdict(int)
    for kind, counts in (("active", active), ("reserved", reserved)):
        for tasks in replies[kind].values():
            for task in tasks:
                counts[_queue_of(task)] += 1
    workers = sorted(replies["active_queues"])
    if workers:
        cache.set(WORKER_ROSTER_KEY, len(workers), WORKER_ROSTER_SECONDS)
    else:
        cache.delete(WORKER_ROSTER_KEY)
    return WorkerSnapshot(workers=workers, consumers=dict(consumers), active=dict(active), reserved=dict(reserved))


def worker_snapshot() -> WorkerSnapshot:
    """What the workers hold right now, at most WORKER_SNAPSHOT_SECONDS old."""
    cache = caches["api"]
    cached = cache.get(WORKER_SNAPSHOT_KEY)
    if cached is not None:
        return WorkerSnapshot(**cached)
    snapshot = _take_worker_snapshot()
    cache.set(WORKER_SNAPSHOT_KEY, snapshot.__dict__, WORKER_SNAPSHOT_SECONDS)
    return snapshot


def worker_snapshot_forget() -> None:
    """Ask the workers afresh on the next call (after changing what they consume)."""
    caches["api"].delete_many([WORKER_SNAPSHOT_KEY, WORKER_ROSTER_KEY])


def event_health(*, organization_id: int | None, now: datetime) -> EventHealth:
    """The database's side of queue health: the outcome figures are delivery stats' 24h summary
    (one definition of counting, one denominator), plus what waits now."""
    window = delivery_summary(organization_id=organization_id, time_range=HEALTH_RANGE, now=now)
    # Count("status"): only indexed columns, so PostgreSQL answers from event_org_open_idx.
    open_ = (
        events_of(organization_id)
        .filter(status__in=(*WAITING, *RETRY_PENDING))
        .aggregate(
            scheduled=Count("status", filter=Q(status__in=RETRY_PENDING)),
            # A waiting event's updated_at is when it started waiting: nothing else writes to it
            # until a worker claims it.
            oldest=Min("updated_at", filter=Q(status__in=WAITING)),
        )
    )
    return EventHealth(window=window, scheduled_retries=open_["scheduled"], oldest_waiting_since=open_["oldest"])


def queue_health(*, organization_id: int | None, now: datetime | None = None) -> QueueHealth:
    now = now or timezone.now()
    reasons: list[str] = []
    lengths: dict[str, int] | None
    unacked: dict[str, int] | None = None
    snapshot: WorkerSnapshot | None = None
    try:
        lengths = broker_queue_lengths()
        unacked = broker_unacked()
    except BROKER_ERRORS as exc:
        logger.warning("queue health: broker unreachable", exc_info=True)
        lengths = None
        reasons.append(f"the broker is unreachable ({type(exc).__name__})")
    if lengths is not None:
        try:
            snapshot = worker_snapshot()
        except BROKER_ERRORS as exc:
            logger.warning("queue health: could not inspect workers", exc_info=True)
            reasons.append(f"the workers could not be asked ({type(exc).__name__})")
    events = event_health(organization_id=organization_id, now=now)

    queues = []
    for queue in Queue:
        name = queue.value
        figures = QueueFigures(
            name=name,
            waiting=lengths[name] if lengths is not None else None,
            active=snapshot.active.get(name, 0) if snapshot else None,
            reserved=snapshot.reserved.get(name, 0) if snapshot else None,
            workers=snapshot.consumers.get(name, 0) if snapshot else None,
            unacked=unacked.get(name, 0) if unacked is not None else None,
        )
        if queue is Queue.WEBHOOKS:
            # Events are the only work whose outcome the database keeps.
            figures.scheduled_retries = events.scheduled_retries
            figures.failed = events.failed
            figures.dead_letter = events.dead_letter
            if events.oldest_waiting_since:
                figures.oldest_waiting_seconds = max(0.0, (now - events.oldest_waiting_since).total_seconds())
        queues.append(figures)

    health = QueueHealth(
        healthy=False,
        reasons=reasons,
        queues=queues,
        events=events,
        workers_online=len(snapshot.workers) if snapshot else None,
        timestamp=now,
    )
    reasons.extend(_unhealthy_because(health))
    health.healthy = not reasons
    return health


def _unhealthy_because(health: QueueHealth) -> list[str]:
    reasons = []
    if health.workers_online == 0:
        reasons.append("no worker is online")
    for q in health.queues:
        if q.waiting and q.workers == 0 and health.workers_online:
            reasons.append(f"queue '{q.name}' has {q.waiting} waiting and no worker consuming it")
        if q.waiting is not None and q.waiting > MAX_WAITING:
            reasons.append(f"queue '{q.name}' has {q.waiting} waiting (more than {MAX_WAITING})")
    rate = health.failure_rate
    if rate is not None and rate > MAX_FAILURE_RATE:
        reasons.append(
            f"failure rate of events received in the last 24h is {rate:.2%} (more than {MAX_FAILURE_RATE:.0%})"
        )
    if health.events.dead_letter > MAX_DEAD_LETTERS_24H:
        reasons.append(
            f"{health.events.dead_letter} events received in the last 24h are dead letters "
            f"(more than {MAX_DEAD_LETTERS_24H})"
        )
    waited = health.oldest_waiting_seconds
    if waited is not None and waited > MAX_WAIT_SECONDS:
        reasons.append(f"the oldest waiting event has waited {waited:.0f}s (more than {MAX_WAIT_SECONDS}s)")
    return reasons
