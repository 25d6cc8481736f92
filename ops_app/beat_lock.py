"""Exactly one beat: a Redis lock the scheduling beat holds and renews on every tick, and the
heartbeat readiness reads to tell that beat is alive.

A second beat (a scaled service, a restart overlapping the old process, a laptop's `make run`
against a shared Redis) starts, logs who holds the lock and stands by: it schedules nothing,
tries again every few seconds, and takes over within one lock TTL of the holder stopping (at
once when the holder shuts down cleanly and releases the lock). Standing by rather than exiting,
so a restart policy does not turn the second beat into a crash loop and a failover needs no one.

Beat's jobs stay safe to run twice at once (tests/test_beat_lock.py) because a lock can still
change hands while a message sent by the old holder waits in the queue.
"""

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

logger = logging.getLogger(__name__)

LOCK_KEY = "mendhook:beat:lock"
HEARTBEAT_KEY = "mendhook:beat:heartbeat"
# The heartbeat outlives any sensible staleness threshold, so a dead beat reads as stale (with
# its age), not as "never started".
HEARTBEAT_KEEP_SECONDS = 7 * 24 * 3600
# A holder renews at most this often: a burst of due jobs ticks many times a second.
RENEW_EVERY_SECONDS = 1.0


def redis_client() -> redis.Redis:
    """Short timeouts: a beat tick and a readiness probe must not hang on a dead Redis."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


@dataclass(frozen=True)
class Heartbeat:
    at: float
    holder: str

    def age(self, *, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.at)


def heartbeat_write(client: redis.Redis, *, holder: str, now: float | None = None) -> None:
    beat = {"at": time.time() if now is None else now, "holder": holder}
    client.set(HEARTBEAT_KEY, json.dumps(beat), ex=HEARTBEAT_KEEP_SECONDS)


def heartbeat_read(client: redis.Redis) -> Heartbeat | None:
    """The last tick of the beat holding the lock; None if no beat ever ticked. Raises RedisError."""
    raw = client.get(HEARTBEAT_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Heartbeat(at=float(data["at"]), holder=str(data.get("holder", "")))
    except (ValueError, KeyError, TypeError):
        return None


def lock_holder(client: redis.Redis) -> str | None:
    raw = client.get(LOCK_KEY)
    if raw is None:
        return None
    # The token is "<host>:<pid>:<random>"; the random part only makes tokens unique.
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.rsplit(":", 1)[0]


class BeatLock:
    """redis-py's Lock (a token compared in Lua on renew and release, so a beat that lost the
    lock can never extend or delete its successor's) with the holder's host and pid in the token."""

    def __init__(self, client: redis.Redis, *, ttl: float) -> None:
        self.client = client
        self.ttl = ttl
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = Lock(client, LOCK_KEY, timeout=ttl, blocking=False, thread_local=False)
        self.held = False
        self.renewed_at = 0.0
        # What the last refusal said, so standing by logs once per change, not on every try.
        self.last_refusal: str | None = None

    def hold(self) -> bool:
        """True while this beat may schedule: renews the lock it holds, or tries to take it."""
        now = time.monotonic()
        try:
            if self.held:
                if now - self.renewed_at >= RENEW_EVERY_SECONDS:
                    self.lock.reacquire()
                    self.renewed_at = now
                return True
            token = f"{self.identity}:{uuid.uuid4().hex}"
            if self.lock.acquire(blocking=False, token=token):
                self.held, self.renewed_at, self.last_refusal = True, now, None
                logger.info("beat lock taken by %s (ttl %gs): this beat schedules", self.identity, self.ttl)
                return True
            self._refused(f"another beat holds the lock ({lock_holder(self.client) or 'unknown'})")
        except LockError:
            # Expired while this process stalled (longer than the TTL), and maybe taken since.
            self.held = False
            logger.warning("beat lock lost by %s (not renewed within %gs); standing by", self.identity, self.ttl)
        except RedisError as exc:
            # Without Redis nothing can be published either; the lock is re-checked when it is back.
            self.held = False
            self._refused(f"Redis is unreachable ({type(exc).__name__})")
        return False

    def _refused(self, why: str) -> None:
        if why != self.last_refusal:
            logger.warning(
                "beat %s is standing by and schedules nothing: %s; retrying every few seconds", self.identity, why
            )
            self.last_refusal = why

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self.lock.release()
            logger.info("beat lock released by %s", self.identity)
        except (LockError, RedisError):
            pass  # expired or unreachable: the TTL frees it


class LockedDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler that schedules only while it holds the beat lock,
    and writes the heartbeat on every tick it schedules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.beat_lock = BeatLock(redis_client(), ttl=settings.MENDHOOK_BEAT_LOCK_TTL_SECONDS)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # Never sleep longer than a third of the TTL: the holder renews on its next tick, and a
        # standby looks again soon after a lock frees.
        renew_within = max(self.beat_lock.ttl / 3, 0.5)
        if not self.beat_lock.hold():
            return float(min(self.max_interval, renew_within))
        try:
            heartbeat_write(self.beat_lock.client, holder=self.beat_lock.identity)
        except RedisError:
            logger.warning("beat heartbeat not written: Redis is unreachable", exc_info=True)
        return float(min(super().tick(*args, **kwargs), renew_within))

    def close(self) -> None:
        try:
            super().close()
        finally:
            # Released last: the schedule's last run times are saved before a successor reads them.
            self.beat_lock.release()
