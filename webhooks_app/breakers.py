"""Circuit breakers: one per external system a connector calls ("clio:<source slug>", "retell",
"twilio", "analysis", "endpoint:<id>"), their state in Redis so every worker process on every
machine sees the same breaker (pybreaker's CircuitRedisStorage).

`breaker_call(name, fn, *args)` runs one call through the named breaker. While the breaker is
open it raises ProcessingError(ERR_CIRCUIT_OPEN, retry_after=seconds until the reset) without
calling; processing treats that as a deferral, never as a failure (webhooks_app.errors).

What counts towards opening: only failures that say the system is down (5xx, timeout,
connection). A 4xx is the system answering about our request, and a 429 is it asking us to slow
down with its own Retry-After, which the event's backoff already honours; opening on 429s would
stop every call for the whole reset period when the provider asked for a second or two. Any
answer that is not a counted failure proves the system is up, so (pybreaker's rule for excluded
errors) it resets the failure count and closes a half-open breaker.

The state is global, not per organization: ops_app shows and resets it, the API decides who may
see which name.
"""

import contextlib
import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import redis
from django.conf import settings
from redis.exceptions import LockError, RedisError

from webhooks_app.errors import ErrorCode, ProcessingError

logger = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = "mendhook:breaker"
# Every breaker name ever used, so breaker_states() can list the ones no process has built yet.
NAMES_KEY = "mendhook:breakers"

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN

# Evidence that the system is down. Everything else a call raises is an answer (see above).
COUNTED_CODES = frozenset(
    {ErrorCode.CLIO_API_FAILED, ErrorCode.PROVIDER_FAILED, ErrorCode.TIMEOUT, ErrorCode.CONNECTION}
)


class BreakerUnknown(Exception):
    """No breaker of that name has ever been used."""


@dataclass(frozen=True)
class BreakerConfig:
    fail_max: int
    reset_seconds: float


@dataclass(frozen=True)
class BreakerState:
    """One breaker as every process sees it. `opened_at` is set while it is open or half-open."""

    name: str
    state: str
    failures: int
    opened_at: datetime | None
    fail_max: int
    reset_seconds: float

    @property
    def seconds_until_probe(self) -> float:
        """How long calls still fail fast before one may probe (0 when closed or due)."""
        if self.state != OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at.timestamp() + self.reset_seconds - time.time())


def breaker_config(name: str) -> BreakerConfig:
    """Settings for `name`: BREAKER_OVERRIDES by exact name first, then the first matching
    pattern ("clio:*"), then BREAKER_FAIL_MAX / BREAKER_RESET_SECONDS."""
    overrides: dict[str, dict[str, Any]] = settings.MENDHOOK_BREAKER_OVERRIDES
    chosen = overrides.get(name)
    if chosen is None:
        chosen = next((v for k, v in sorted(overrides.items()) if fnmatch.fnmatchcase(name, k)), {})
    return BreakerConfig(
        fail_max=int(chosen.get("fail_max", settings.MENDHOOK_BREAKER_FAIL_MAX)),
        reset_seconds=float(chosen.get("reset_seconds", settings.MENDHOOK_BREAKER_RESET_SECONDS)),
    )


# --- Redis and the per-process breaker objects ---------------------------------------------------

_lock = threading.Lock()
_client: tuple[int, redis.Redis] | None = None
_breakers: dict[tuple[str, BreakerConfig], pybreaker.CircuitBreaker] = {}
_local = threading.local()


def _redis() -> redis.Redis:
    # One client per process, made after a prefork fork: a socket shared with the parent would
    # interleave two processes' replies.
    global _client
    pid = os.getpid()
    if _client is None or _client[0] != pid:
        _client = (
            pid,
            redis.Redis.from_url(
                settings.MENDHOOK_GUARDS_REDIS_URL,
                socket_connect_timeout=settings.MENDHOOK_GUARDS_REDIS_TIMEOUT_SECONDS,
                socket_timeout=settings.MENDHOOK_GUARDS_REDIS_TIMEOUT_SECONDS,
            ),
        )
        _breakers.clear()
    return _client[1]


def _namespace(name: str) -> str:
    return f"{KEY_PREFIX}:{name}"


def _storage(name: str) -> pybreaker.CircuitRedisStorage:
    return pybreaker.CircuitRedisStorage(CLOSED, _redis(), namespace=_namespace(name))


def _not_counted(exc: BaseException) -> bool:
    return not (isinstance(exc, ProcessingError) and exc.code in COUNTED_CODES)


class _OneProbe(pybreaker.CircuitBreakerListener):
    """A single half-open probe across processes.

    pybreaker's Redis storage shares the state, not the decision: every process whose open
    breaker's timeout has run out moves it to half-open and calls, and every process that reads
    "half-open" calls too, so after an outage each worker process would send its own trial
    request at the same moment. Here the half-open call path first takes a Redis lock (SET NX
    with an expiry, redis-py's Lock); whoever gets it probes, everyone else fails fast as if the
    breaker were still open until the probe has closed or reopened it. The expiry frees the
    slot when a prober dies mid-call.
    """

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        # The list of breakers is a Redis set each process adds a name to when it first makes
        # the breaker; a Redis restart empties it while processes keep their breakers. A breaker
        # that changes state names itself again, so an open one is never missing from the list.
        with contextlib.suppress(RedisError):
            _redis().sadd(NAMES_KEY, str(cb.name))

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if cb.current_state != HALF_OPEN or getattr(_local, "probe", None) is not None:
            return
        probe = _redis().lock(
            f"{_namespace(str(cb.name))}:probe", timeout=settings.MENDHOOK_BREAKER_PROBE_SECONDS, blocking=False
        )
        if not probe.acquire():
            raise pybreaker.CircuitBreakerError("another process is probing")
        _local.probe = probe


def _breaker(name: str) -> pybreaker.CircuitBreaker:
    config = breaker_config(name)
    key = (name, config)
    client = _redis()
    breaker = _breakers.get(key)
    if breaker is None:
        with _lock:
            breaker = _breakers.get(key)
            if breaker is None:
                client.sadd(NAMES_KEY, name)
                breaker = pybreaker.CircuitBreaker(
                    fail_max=config.fail_max,
                    reset_timeout=config.reset_seconds,
                    exclude=[_not_counted],
                    listeners=[_OneProbe()],
                    state_storage=_storage(name),
                    name=name,
                    # The failure that trips the breaker is reported as itself (a 5xx is a 5xx);
                    # only the calls it then stops are ERR_CIRCUIT_OPEN.
                    throw_new_error_on_trip=False,
                )
                _breakers[key] = breaker
    return breaker


def breaker_call(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call fn(*args, **kwargs) through the breaker `name`. Raises ProcessingError with
    ERR_CIRCUIT_OPEN (retry_after: seconds until a call may go) while it is open or another
    process probes. Without Redis the call goes through unguarded, with a warning: a breaker is
    a guard rail, not a dependency of the work itself.

    pybreaker serialises calls through one breaker within a process (its lock is held during
    the call): right for prefork workers, one call at a time per process anyway."""
    try:
        breaker = _breaker(name)
    except RedisError as exc:
        logger.warning("circuit breaker %s unavailable (Redis: %s); calling without it", name, exc)
        return fn(*args, **kwargs)
    try:
        return breaker.call(fn, *args, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        wait = _seconds_until_probe(name, breaker)
        raise ProcessingError(
            f"circuit breaker {name} is open ({exc}); next try in {wait:.0f}s",
            code=ErrorCode.CIRCUIT_OPEN,
            retry_after=wait,
        ) from None
    finally:
        probe = getattr(_local, "probe", None)
        if probe is not None:
            _local.probe = None
            # It may have expired during a slow probe: the next caller may hold a new one.
            with contextlib.suppress(LockError, RedisError):
                probe.release()


def _seconds_until_probe(name: str, breaker: pybreaker.CircuitBreaker) -> float:
    try:
        opened_at = breaker._state_storage.opened_at
        remaining = opened_at.timestamp() + breaker.reset_timeout - time.time() if opened_at else 0.0
        if remaining <= 0:  # a probe is in flight: it ends within its lock's lifetime
            ttl_ms = _redis().pttl(f"{_namespace(name)}:probe")
            remaining = ttl_ms / 1000 if ttl_ms and ttl_ms > 0 else 0.0
    except RedisError:
        remaining = 0.0
    return max(1.0, float(remaining))


def breaker_wait(name: str) -> float:
    """Seconds until a call through the breaker `name` may go: 0 while it is closed (or its
    reset time has come, so a call may probe). For work that can be put back without spending
    an attempt, checked before it is taken. Without Redis: 0 (as breaker_call, unguarded)."""
    try:
        breaker = _breaker(name)
        if breaker.current_state != OPEN:
            return 0.0
        opened_at = breaker._state_storage.opened_at
    except RedisError:
        return 0.0
    if opened_at is None:
        return 0.0
    return max(0.0, opened_at.timestamp() + breaker.reset_timeout - time.time())


def breaker_states() -> list[BreakerState]:
    """Every breaker ever used, by name, as Redis holds it now (health, alerts, API, admin)."""
    client = _redis()
    names = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in client.smembers(NAMES_KEY))
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        ns = _namespace(name)
        pipe.mget(f"{ns}:pybreaker:state", f"{ns}:pybreaker:fail_counter", f"{ns}:pybreaker:opened_at")
    states = []
    for name, (state, failures, opened) in zip(names, pipe.execute(), strict=True):
        config = breaker_config(name)
        current = state.decode() if state else CLOSED
        opened_at = datetime.fromtimestamp(int(opened), tz=UTC) if opened and current != CLOSED else None
        states.append(
            BreakerState(
                name=name,
                state=current,
                failures=int(failures or 0),
                opened_at=opened_at,
                fail_max=config.fail_max,
                reset_seconds=config.reset_seconds,
            )
        )
    return states


def breaker_state(name: str) -> BreakerState:
    for state in breaker_states():
        if state.name == name:
            return state
    raise BreakerUnknown(f"no circuit breaker named {name!r}")


def breaker_reset(name: str) -> BreakerState:
    """Close the breaker now (an operator knows the system is back). Returns its state before.
    Every process follows at its next call: pybreaker re-reads the state from Redis each time."""
    before = breaker_state(name)
    ns = _namespace(name)
    pipe = _redis().pipeline(transaction=True)
    pipe.set(f"{ns}:pybreaker:state", CLOSED)
    pipe.set(f"{ns}:pybreaker:fail_counter", 0)
    pipe.set(f"{ns}:pybreaker:success_counter", 0)
    pipe.delete(f"{ns}:pybreaker:opened_at", f"{ns}:probe")
    pipe.execute()
    return before
