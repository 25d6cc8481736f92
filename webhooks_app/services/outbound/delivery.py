"""Sending one delivery: claim, sign (Standard Webhooks), POST, record the attempt, and decide
what next by the endpoint's schedule: delivered; a retry at the next step (never sooner than
the receiver's Retry-After, capped); failed after the last step, with an alert; 410 Gone
disables the endpoint."""

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from webhooks_app.breakers import breaker_call, breaker_wait
from webhooks_app.encryption import SecretUnreadable
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import Delivery, DeliveryAttempt, DeliveryStatus, DisabledReason, Endpoint
from webhooks_app.rate_limits import outbound_take
from webhooks_app.reporting import report_failure
from webhooks_app.services.outbound.dispatch import alert_publish, deliveries_publish
from webhooks_app.services.outbound.endpoint_state import endpoint_disable

logger = logging.getLogger(__name__)

FUNCTION = "webhooks_app.tasks.deliver_outbound"
EXCERPT_CHARS = 500
# Beyond the HTTP timeout, how long a claim outlives a silent worker before beat hands it out.
LEASE_MARGIN_SECONDS = 30


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    latency_ms: int
    excerpt: str = ""
    retry_after: float | None = None
    error: str = ""
    error_code: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# --- The HTTP choke point ------------------------------------------------------------------

_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    # One pooled client per process (keep-alive to each receiver); a forked pool child makes
    # its own, since a connection pool must not cross a fork.
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid) or httpx.Client(follow_redirects=False)
            _clients[pid] = client
    return client


def breaker_name(endpoint_id: uuid.UUID) -> str:
    return f"endpoint:{endpoint_id}"


class _ReceiverDown(ProcessingError):
    """A result the endpoint's breaker counts (timeout, connection, 5xx), carried through it."""

    def __init__(self, result: "PostResult") -> None:
        code = result.error_code if result.status_code is None else ErrorCode.PROVIDER_FAILED
        super().__init__(result.error, code=ErrorCode(code))
        self.result = result


def endpoint_post(*, endpoint_id: uuid.UUID, url: str, headers: dict[str, str], body: bytes) -> PostResult:
    """The one place an outbound notification crosses the network, through the endpoint's
    circuit breaker (shared by every worker): timeouts, refused connections and 5xx count
    towards opening it. Never raises for what the network or the receiver does; a call the open
    breaker stops comes back as an ERR_CIRCUIT_OPEN result."""

    def post() -> PostResult:
        result = _post(url=url, headers=headers, body=body)
        if result.status_code is None or result.status_code >= 500:
            raise _ReceiverDown(result)
        return result

    try:
        return breaker_call(breaker_name(endpoint_id), post)
    except _ReceiverDown as down:
        return down.result
    except ProcessingError as held:  # ERR_CIRCUIT_OPEN: another process tripped it meanwhile
        return PostResult(None, 0, error=held.message, error_code=held.code, retry_after=held.retry_after)


def _post(*, url: str, headers: dict[str, str], body: bytes) -> PostResult:
    started = time.monotonic()
    try:
        response = _client().post(
            url, content=body, headers=headers, timeout=settings.MENDHOOK_OUTBOUND_TIMEOUT_SECONDS
        )
    except httpx.TimeoutException as exc:
        return PostResult(None, _ms(started), error=f"timed out: {exc}", error_code=ErrorCode.TIMEOUT)
    except httpx.HTTPError as exc:
        return PostResult(None, _ms(started), error=f"{type(exc).__name__}: {exc}", error_code=ErrorCode.CONNECTION)
    latency = _ms(started)
    excerpt = response.text[:EXCERPT_CHARS]
    status = response.status_code
    if 200 <= status < 300:
        return PostResult(status, latency, excerpt)
    code = {410: ErrorCode.ENDPOINT_GONE, 429: ErrorCode.RATE_LIMITED}.get(status, ErrorCode.RECEIVER_STATUS)
    # A 3xx is a failure too (Standard Webhooks): redirects are not followed.
    return PostResult(
        status,
        latency,
        excerpt,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
        error=f"receiver answered {status}",
        error_code=code,
    )


def _ms(started: float) -> int:
    return max(0, int((time.monotonic() - started) * 1000))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or timezone.now())).total_seconds())


def request_build(delivery: Delivery, *, secrets: list[str], sent_at: datetime) -> tuple[dict[str, str], bytes]:
    """Headers and body: the endpoint's own headers, then the Standard Webhooks ones (which they
    cannot override), one signature per valid secret so a rotation breaks no receiver."""
    message = delivery.message
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    webhook_id = message.webhook_id
    signatures = " ".join(Webhook(secret).sign(webhook_id, sent_at, body) for secret in secrets)
    headers = {str(k): str(v) for k, v in (delivery.endpoint.headers or {}).items()}
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": "mendhook-webhooks/1",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signatures,
        }
    )
    return headers, body.encode()


# --- The endpoint's rate -------------------------------------------------------------------


def _over_rate(endpoint: Endpoint) -> float | None:
    """Seconds until the endpoint's next window when this delivery would exceed its rate; None
    when it may go now (or the endpoint has no limit). The shared outbound limiter
    (webhooks_app.rate_limits): every worker counts against one budget in Redis, and a Redis
    outage lets deliveries through rather than stopping them."""
    if not endpoint.max_per_second:
        return None
    try:
        outbound_take(name=breaker_name(endpoint.id), limit=f"{endpoint.max_per_second}/second")
    except ProcessingError as over:
        return max(0.05, over.retry_after or 0.0)
    return None


# --- One delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Next:
    status: DeliveryStatus
    delay: float | None = None
    alert: str = ""
    disable: DisabledReason | None = None


def next_after(delivery: Delivery, result: PostResult) -> Next:
    """What follows an attempt, by the endpoint's schedule (the round's step = attempts so far)."""
    if result.ok:
        return Next(DeliveryStatus.DELIVERED)
    endpoint = delivery.endpoint
    if result.status_code == 410:
        return Next(DeliveryStatus.FAILED, disable=DisabledReason.GONE)
    scheduled = endpoint.delay_after(delivery.round_attempts)
    if scheduled is None:
        return Next(DeliveryStatus.FAILED, alert="exhausted")
    asked = min(result.retry_after or 0.0, float(settings.MENDHOOK_OUTBOUND_RETRY_AFTER_MAX_SECONDS))
    return Next(DeliveryStatus.RETRY_SCHEDULED, delay=max(float(scheduled), asked))


def delivery_run(*, delivery_id: uuid.UUID, task_id: str, now: datetime | None = None) -> DeliveryStatus | None:
    """One attempt at a delivery. Returns its new status, or None when it was not this
    message's to send (not due, claimed elsewhere, already done) or was deferred or cancelled.
    `now` is the clock of the claim and the schedule (tests pass it to move time)."""
    now = now or timezone.now()
    delivery = Delivery.objects.select_related("endpoint", "message").filter(id=delivery_id).first()
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        reason = f"endpoint disabled ({endpoint.get_disabled_reason_display() or 'disabled'})"
        if Delivery.objects.cancel(
            delivery_id=delivery_id, now=now, reason=reason, error_code=ErrorCode.ENDPOINT_DISABLED
        ):
            return DeliveryStatus.CANCELLED
        return None
    if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRY_SCHEDULED) and (
        delivery.next_attempt_at is None or delivery.next_attempt_at <= now
    ):
        # Held back by a guard rail, without spending an attempt: the endpoint's breaker is
        # open (it was failing moments ago), or the endpoint's rate is used up for this window.
        wait = breaker_wait(breaker_name(endpoint.id)) or _over_rate(endpoint)
        if wait:
            _defer(delivery_id, wait, now)
            return None
    lease_until = now + timedelta(seconds=settings.MENDHOOK_OUTBOUND_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
    if not Delivery.objects.claim(delivery_id=delivery_id, task_id=task_id, now=now, lease_until=lease_until):
        logger.info("delivery %s not claimable; message %s does nothing", delivery_id, task_id)
        return None
    delivery.refresh_from_db(fields=["attempts", "round_attempts_base"])

    return _finish(delivery, _send(delivery, sent_at=timezone.now()), task_id=task_id, started=now, now=now)


def _send(delivery: Delivery, *, sent_at: datetime) -> PostResult:
    endpoint = delivery.endpoint
    try:
        secrets = endpoint.signing_secrets_valid(now=sent_at)
    except SecretUnreadable as exc:
        return PostResult(None, 0, error=str(exc), error_code=ErrorCode.SECRET_UNREADABLE)
    if not secrets:
        error = "the endpoint has no valid signing secret (rotate to make one)"
        return PostResult(None, 0, error=error, error_code=ErrorCode.SECRET_UNREADABLE)
    headers, body = request_build(delivery, secrets=secrets, sent_at=sent_at)
    return endpoint_post(endpoint_id=endpoint.id, url=endpoint.url, headers=headers, body=body)


def _defer(delivery_id: uuid.UUID, wait: float, now: datetime) -> None:
    until = now + timedelta(seconds=wait)
    # The window is a second or so: a countdown message, not a beat round.
    deferred = Delivery.objects.postpone(delivery_id=delivery_id, until=until, now=now)
    if deferred and deliveries_publish(delivery_ids=[delivery_id], countdown=wait):
        Delivery.objects.filter(id=delivery_id).update(dispatched_at=now)


def _finish(
    delivery: Delivery, result: PostResult, *, task_id: str, started: datetime, now: datetime
) -> DeliveryStatus | None:
    decision = next_after(delivery, result)
    short = decision.delay is not None and decision.delay <= settings.MENDHOOK_SHORT_RETRY_MAX_SECONDS
    fields: dict[str, object] = {
        "last_status_code": result.status_code,
        "last_error": result.error,
        "last_error_code": result.error_code,
    }
    if decision.delay is not None:
        fields["next_attempt_at"] = now + timedelta(seconds=decision.delay)
        # A short wait rides a countdown message (below); a long one waits for beat.
        fields["dispatched_at"] = now if short else None
    else:
        fields["completed_at"] = now
    endpoint = delivery.endpoint
    with transaction.atomic():
        if not Delivery.objects.finish(
            delivery_id=delivery.id, task_id=task_id, target=decision.status, now=now, **fields
        ):
            logger.warning("delivery %s was taken over before attempt %s finished", delivery.id, delivery.attempts)
            return None
        DeliveryAttempt.objects.create(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            event_type=delivery.event_type,
            number=delivery.attempts,
            started_at=started,
            succeeded=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.excerpt,
            error=result.error,
            error_code=result.error_code,
        )
        # Continuous failure is what disables an endpoint after days; any success ends it.
        if result.ok:
            Endpoint.objects.filter(id=endpoint.id, failing_since__isnull=False).update(failing_since=None)
        else:
            Endpoint.objects.filter(id=endpoint.id, failing_since__isnull=True).update(failing_since=now)

    # After the commit: the broker, alerts and the endpoint's own state.
    if short:
        deliveries_publish(delivery_ids=[delivery.id], countdown=decision.delay)
    if not result.ok:
        report_failure(
            logger,
            "outbound %s to %s attempt %s failed: [%s] %s",
            delivery.event_type,
            endpoint.url,
            delivery.attempts,
            result.error_code,
            result.error,
            level=logging.ERROR if decision.status == DeliveryStatus.FAILED else logging.WARNING,
            organization_id=delivery.organization_id,
            error_code=ErrorCode.OUTBOUND_EXHAUSTED if decision.alert else result.error_code,
            function=FUNCTION,
            action="deliver",
        )
    if decision.alert:
        alert_publish(
            text=(
                f":red_circle: mendhook notification failed: {delivery.event_type} to {endpoint.url} "
                f"after {delivery.attempts} attempts. [{result.error_code}] {result.error} "
                f"(message {delivery.message_id}, delivery {delivery.id})"
            ),
            function=FUNCTION,
        )
    if decision.disable is not None:
        endpoint_disable(
            endpoint_id=endpoint.id,
            reason=decision.disable,
            note=f"the receiver answered 410 Gone to delivery {delivery.id}",
            now=now,
        )
    return decision.status
