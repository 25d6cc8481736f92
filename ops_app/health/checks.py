"""The components readiness asks about, as django-health-check 4.x checks: each raises
ServiceUnavailable naming the problem, and leaves what it measured in `facts` for the report.

The database and Redis checks are the library's own; the rest are what it lacks: the broker's
queues, workers per queue, the beat heartbeat, circuit breakers and how long work has waited.
Checks that touch the database run in a worker thread (the library's runner), so each closes
its own connection when done instead of leaving one per thread behind.
"""

import dataclasses
import datetime
import time
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Min
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable

from config.publishing import queue_depths
from config.queues import Queue
from ops_app.beat_lock import heartbeat_read, redis_client
from ops_app.queue_health import BROKER_ERRORS, worker_snapshot
from webhooks_app.breakers import OPEN, breaker_states
from webhooks_app.models import EventStatus, WebhookEvent
from webhooks_app.models.events import WAITING
from workflows_app.models import WorkflowRun


@dataclasses.dataclass
class Component(HealthCheck):
    """A check that reports figures beside its verdict."""

    facts: dict[str, Any] = dataclasses.field(default_factory=dict, init=False, repr=False)
    timeout = datetime.timedelta(seconds=3)


@dataclasses.dataclass
class _UsesDatabase(Component):
    def run(self) -> None:
        try:
            self.measure()
        except DatabaseError as exc:
            raise ServiceUnavailable(f"the database is unreachable ({type(exc).__name__})") from exc
        finally:
            connections.close_all()  # this thread's connections only

    def measure(self) -> None:
        raise NotImplementedError


def database_check() -> Database:
    """The library's SELECT 1; its temporary_connection closes what it opened."""
    return Database(alias="default")


def redis_check() -> Redis:
    """The library's Redis ping on the shared-state Redis (heartbeat, breakers, caches)."""
    return Redis(
        client_factory=lambda: redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
    )


@dataclasses.dataclass
class Broker(Component):
    """The broker answers: messages waiting per queue, read in one round trip."""

    def run(self) -> None:
        try:
            waiting = queue_depths(q.value for q in Queue)
        except BROKER_ERRORS as exc:
            raise ServiceUnavailable(f"the broker is unreachable ({type(exc).__name__})") from exc
        self.facts["waiting"] = waiting


@dataclasses.dataclass
class Workers(Component):
    """Some worker consumes every queue: Celery's inspect, bounded to a second and shared by
    every web process through a 5-second cache (ops_app.queue_health), so polling is cheap."""

    def run(self) -> None:
        try:
            snapshot = worker_snapshot()
        except BROKER_ERRORS as exc:
            raise ServiceUnavailable(f"the workers could not be asked ({type(exc).__name__})") from exc
        consumers = {q.value: snapshot.consumers.get(q.value, 0) for q in Queue}
        self.facts.update(workers=len(snapshot.workers), consumers=consumers)
        if not snapshot.workers:
            raise ServiceUnavailable("no worker answered")
        idle = [name for name, count in consumers.items() if not count]
        if idle:
            raise ServiceUnavailable(f"no worker consumes {', '.join(idle)}")


@dataclasses.dataclass
class WorkerNode(Component):
    """One named worker answers a ping: the worker container's own probe."""

    node: str = ""

    def run(self) -> None:
        from config.celery_app import app

        try:
            replies = app.control.ping(destination=[self.node], timeout=2.0)
        except BROKER_ERRORS as exc:
            raise ServiceUnavailable(f"the broker is unreachable ({type(exc).__name__})") from exc
        if not any(self.node in reply for reply in replies or []):
            raise ServiceUnavailable(f"worker {self.node} did not answer a ping within 2s")


@dataclasses.dataclass
class BeatHeartbeat(Component):
    """The beat holding the lock ticked recently (it writes a heartbeat on every tick)."""

    def run(self) -> None:
        try:
            beat = heartbeat_read(redis_client())
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
        if beat is None:
            raise ServiceUnavailable("no beat has ticked")
        age = beat.age(now=time.time())
        stale = settings.MENDHOOK_BEAT_STALE_SECONDS
        self.facts.update(age_seconds=round(age, 1), holder=beat.holder)
        if age > stale:
            raise ServiceUnavailable(f"the last beat tick was {age:.0f}s ago (more than {stale}s)")


@dataclasses.dataclass
class Breakers(Component):
    """No circuit breaker is open (half-open is a probe in progress: not yet a failure)."""

    def run(self) -> None:
        try:
            rows = sorted((b.name, b.state) for b in breaker_states())
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"breaker states unreadable ({type(exc).__name__})") from exc
        self.facts["states"] = dict(rows)
        opened = [name for name, state in rows if state == OPEN]
        if opened:
            raise ServiceUnavailable(f"open: {', '.join(opened)}")


def _age(since: datetime.datetime | None, now: datetime.datetime) -> float | None:
    return None if since is None else round(max(0.0, (now - since).total_seconds()), 1)


@dataclasses.dataclass
class EventBacklog(_UsesDatabase):
    """The oldest event waiting for a worker, and the most overdue scheduled retry (waiting
    for beat), are younger than MENDHOOK_HEALTH_MAX_WAIT_SECONDS."""

    def measure(self) -> None:
        now = timezone.now()
        # A waiting event's updated_at is when it started waiting (event_org_open_idx);
        # due retries come from event_retry_due_idx.
        waiting = WebhookEvent.objects.filter(status__in=WAITING).aggregate(at=Min("updated_at"))["at"]
        due = WebhookEvent.objects.filter(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now).aggregate(
            at=Min("next_retry_at")
        )["at"]
        self.facts.update(oldest_waiting_seconds=_age(waiting, now), oldest_due_retry_seconds=_age(due, now))
        _raise_if_older(self.facts, "event")


@dataclasses.dataclass
class WorkflowBacklog(_UsesDatabase):
    """The most overdue workflow run step (active, pending or retrying, next_action_at passed)."""

    def measure(self) -> None:
        now = timezone.now()
        due = WorkflowRun.objects.due(now=now).aggregate(at=Min("next_action_at"))["at"]  # run_due_idx
        self.facts["oldest_due_run_seconds"] = _age(due, now)
        _raise_if_older(self.facts, "workflow run")


def _raise_if_older(facts: dict[str, Any], what: str) -> None:
    limit = settings.MENDHOOK_HEALTH_MAX_WAIT_SECONDS
    for name, age in facts.items():
        if age is not None and age > limit:
            label = name.removesuffix("_seconds").replace("_", " ")
            raise ServiceUnavailable(f"{what}: {label} is {age:.0f}s (more than {limit}s)")
