"""Requests intake turned away because their source is disabled: counted in Redis per source
(one pipelined HINCRBY/HSET/EXPIRE per refusal), so diagnostics can tell a sender still
delivering to a switched-off source. Nothing is stored in the database: a refused request must
cost as little as an accepted one, and the count only matters while it is recent.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "mendhook:disabled-source"
# After Redis failed, refusals go uncounted this long instead of paying a connect timeout on
# every request to a disabled source.
REDIS_DOWN_SECONDS = 10.0

_lock = threading.Lock()
_client: tuple[tuple[int, str], redis.Redis] | None = None
_down_until = 0.0


@dataclass(frozen=True)
class DisabledTraffic:
    """Requests to one disabled source since its traffic last paused for a whole window."""

    source_id: int
    requests: int
    first_at: datetime
    last_at: datetime


def _redis() -> redis.Redis:
    # One client per process (made after a prefork fork) and per configured Redis.
    global _client
    key = (os.getpid(), settings.MENDHOOK_GUARDS_REDIS_URL)
    if _client is None or _client[0] != key:
        with _lock:
            timeout = settings.MENDHOOK_GUARDS_REDIS_TIMEOUT_SECONDS
            client = redis.Redis.from_url(key[1], socket_connect_timeout=timeout, socket_timeout=timeout)
            _client = (key, client)
    return _client[1]


def _key(source_id: int) -> str:
    return f"{KEY_PREFIX}:{source_id}"


def disabled_source_refused(*, source_id: int, now: float | None = None) -> None:
    """Count one request refused because the source is disabled. Never raises: without Redis
    the refusal goes uncounted (the 404 answer does not depend on it)."""
    global _down_until
    if time.monotonic() < _down_until:
        return
    at = int(now if now is not None else time.time())
    try:
        pipe = _redis().pipeline(transaction=False)
        key = _key(source_id)
        pipe.hincrby(key, "requests", 1)
        pipe.hsetnx(key, "first_at", at)
        pipe.hset(key, "last_at", at)
        # The key lives a window past the last refusal: a sender that keeps sending keeps it
        # (and its count); one that stopped a whole window ago starts from zero.
        pipe.expire(key, settings.MENDHOOK_DIAGNOSTIC_DISABLED_TRAFFIC_SECONDS)
        pipe.execute()
    except RedisError as exc:
        _down_until = time.monotonic() + REDIS_DOWN_SECONDS
        logger.warning("disabled-source refusals not counted for %ss: Redis unreachable (%s)", REDIS_DOWN_SECONDS, exc)


def disabled_source_traffic(source_ids: list[int]) -> dict[int, DisabledTraffic]:
    """What each of these sources was sent while disabled, as Redis holds it now (sources with
    nothing recorded are absent). Raises RedisError when Redis cannot answer."""
    if not source_ids:
        return {}
    pipe = _redis().pipeline(transaction=False)
    for source_id in source_ids:
        pipe.hmget(_key(source_id), "requests", "first_at", "last_at")
    found = {}
    for source_id, (requests, first_at, last_at) in zip(source_ids, pipe.execute(), strict=True):
        if requests is None or last_at is None:
            continue
        found[source_id] = DisabledTraffic(
            source_id=source_id,
            requests=int(requests),
            first_at=datetime.fromtimestamp(int(first_at or last_at), tz=UTC),
            last_at=datetime.fromtimestamp(int(last_at), tz=UTC),
        )
    return found
