"""Rate limits on the shared Redis, with the `limits` library: intake per source and globally
(every web process counts in the same windows), outbound per connector (every worker process).

Limits are strings in the `limits` notation: "100/second", "6000/minute", "10 per second".
Fixed windows: one INCR per check, the cheapest strategy, and exact (N allowed per window, the
rest refused) which is what a sender's Retry-After needs; a burst may straddle two windows.
"""

import fnmatch
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)

KEY_PREFIX = "mendhook:limits"
# After Redis failed, checks are skipped (allowed) this long instead of paying a connect
# timeout on every request, and the warning is logged at most once per this period.
REDIS_DOWN_SECONDS = 10.0


@lru_cache(maxsize=1024)
def rate_limit_parse(value: str) -> RateLimitItem:
    """The limit a string names. Raises ValueError when `limits` cannot read it."""
    item = parse(value)
    if item.amount < 1:
        raise ValueError("a rate limit allows at least one request")
    return item


def rate_limit_validate(value: str) -> None:
    """Field validator: blank (the default applies) or a limit `limits` can parse."""
    if not value:
        return
    try:
        rate_limit_parse(value)
    except ValueError:
        raise ValidationError(
            f"{value!r} is not a rate limit; write e.g. '100/second', '6000/minute' or '10 per second'"
        ) from None


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which one, and whole seconds until its window resets."""

    scope: str
    limit: str
    retry_after: int


class _Guard:
    """The limiter of this process, and what it does while Redis is unreachable."""

    def __init__(self) -> None:
        self.key: tuple[int, str] | None = None
        self.limiter: FixedWindowRateLimiter | None = None
        self.down_until = 0.0
        self.lock = threading.Lock()

    def get(self) -> FixedWindowRateLimiter | None:
        # One connection pool per process (made after a fork) and per configured Redis.
        key = (os.getpid(), settings.MENDHOOK_GUARDS_REDIS_URL)
        if self.limiter is None or self.key != key:
            with self.lock:
                timeout = settings.MENDHOOK_GUARDS_REDIS_TIMEOUT_SECONDS
                storage = RedisStorage(
                    key[1], key_prefix=KEY_PREFIX, socket_timeout=timeout, socket_connect_timeout=timeout
                )
                self.limiter, self.key, self.down_until = FixedWindowRateLimiter(storage), key, 0.0
        if time.monotonic() < self.down_until:
            return None
        return self.limiter

    def failed(self, what: str, exc: Exception) -> None:
        with self.lock:
            if time.monotonic() < self.down_until:
                return
            self.down_until = time.monotonic() + REDIS_DOWN_SECONDS
        report_failure(
            logger,
            "rate limits not enforced for %ss: Redis unreachable during %s (%s)",
            REDIS_DOWN_SECONDS,
            what,
            exc,
            function="webhooks_app.rate_limits",
            action=f"{what}_rate_limit",
        )


_guard = _Guard()


def _hit(limiter: FixedWindowRateLimiter, limit: str, scope: str) -> Refusal | None:
    item = rate_limit_parse(limit)
    if limiter.hit(item, scope):
        return None
    reset_at = limiter.get_window_stats(item, scope).reset_time
    return Refusal(scope=scope, limit=limit, retry_after=max(1, math.ceil(reset_at - time.time())))


def intake_admit(*, source_slug: str, source_limit: str) -> Refusal | None:
    """Count one intake request against its source's limit (blank: INTAKE_RATE_LIMIT_DEFAULT)
    and the global cap (INTAKE_RATE_LIMIT_GLOBAL); None when it may be stored.

    Without Redis every request is admitted, with a warning: intake's durability is in
    PostgreSQL, and refusing webhooks because a guard rail is down would lose the deliveries
    of providers that do not retry. The source's own limit is counted first, so a source over
    its limit does not use up everyone's global budget.
    """
    limits = [(f"source:{source_slug}", source_limit or settings.MENDHOOK_INTAKE_RATE_LIMIT_DEFAULT)]
    if settings.MENDHOOK_INTAKE_RATE_LIMIT_GLOBAL:
        limits.append(("global", settings.MENDHOOK_INTAKE_RATE_LIMIT_GLOBAL))
    limiter = _guard.get()
    if limiter is None:
        return None
    try:
        for scope, limit in limits:
            if limit:
                refusal = _hit(limiter, limit, f"intake:{scope}")
                if refusal is not None:
                    return refusal
    except RedisError as exc:
        _guard.failed("intake", exc)
    return None


def outbound_limit_for(name: str, configured: str = "") -> str:
    """The outbound limit of a connector (`name` as its breaker's, e.g. "clio:<slug>"): the
    source's own when set, else OUTBOUND_RATE_LIMITS by exact name or fnmatch pattern."""
    if configured:
        return configured
    limits: dict[str, str] = settings.MENDHOOK_OUTBOUND_RATE_LIMITS
    if name in limits:
        return limits[name]
    return next((v for k, v in sorted(limits.items()) if fnmatch.fnmatchcase(name, k)), "")


def outbound_take(*, name: str, limit: str) -> None:
    """Take one request from the connector's budget, or raise ProcessingError with
    ERR_RATE_LIMITED_LOCAL and retry_after = seconds until the window resets: the work is
    deferred to the next window, never counted as a failure (webhooks_app.errors)."""
    if not limit:
        return
    limiter = _guard.get()
    if limiter is None:
        return
    try:
        refusal = _hit(limiter, limit, f"outbound:{name}")
    except RedisError as exc:
        _guard.failed("outbound", exc)
        return
    if refusal is not None:
        raise ProcessingError(
            f"outbound rate limit {limit} for {name} reached; next window in {refusal.retry_after}s",
            code=ErrorCode.RATE_LIMITED_LOCAL,
            retry_after=float(refusal.retry_after),
        )
