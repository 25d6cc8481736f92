"""Outbound notifications: an organization's endpoints, the outbox of messages, one delivery per
(message, endpoint) with its moves, and the log of every HTTP attempt.

A message is written in the transaction of the change it reports (the outbox); its deliveries are
what the workers claim and send. Endpoint secrets are write-only like a source's (sources.py)."""

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from webhooks_app.models.sources import (
    Organization,
    SigningSecret,
    new_signing_secret,
    signing_secret_entries_for,
    signing_secret_entries_rotated,
    signing_secrets_decrypted,
)

# The seed's schedule (retry_failed_webhooks): at once, then +5, +15 and +45 minutes; 4 attempts.
DEFAULT_RETRY_SCHEDULE_SECONDS = [0, 5 * 60, 15 * 60, 45 * 60]
# A schedule longer than this is a configuration mistake, not a policy.
MAX_SCHEDULE_STEPS = 20
MAX_SCHEDULE_DELAY_SECONDS = 7 * 24 * 3600


# What a request header may be: a token for the name, visible ASCII and spaces for the value.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1000}")


def default_retry_schedule() -> list[int]:
    return list(DEFAULT_RETRY_SCHEDULE_SECONDS)


def retry_schedule_check(schedule: Any) -> list[int]:
    """The schedule as a list of whole seconds, or ValidationError naming what is wrong."""
    if not isinstance(schedule, list) or not schedule:
        raise ValidationError("a non-empty list of delays in seconds, e.g. [0, 300, 900, 2700]")
    if len(schedule) > MAX_SCHEDULE_STEPS:
        raise ValidationError(f"at most {MAX_SCHEDULE_STEPS} attempts")
    if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= MAX_SCHEDULE_DELAY_SECONDS for d in schedule):
        raise ValidationError(f"each delay is a whole number of seconds from 0 to {MAX_SCHEDULE_DELAY_SECONDS}")
    return list(schedule)


class DisabledReason(models.TextChoices):
    MANUAL = "manual", "Disabled by a person"
    GONE = "gone", "Receiver answered 410 Gone"
    FAILING = "failing", "Failing continuously"


class Endpoint(models.Model):
    """Where an organization wants its notifications: a URL, the event types it subscribes to,
    and how to sign, pace and retry them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types sent here, e.g. ["booking.created"]')
    # Newest first; each a SigningSecret (sources.py). Several during a rotation's grace period,
    # and the request carries a signature by each, as Standard Webhooks allows.
    signing_secret_entries = models.JSONField(default=list, editable=False)
    headers = models.JSONField(default=dict, blank=True, help_text='Extra request headers, e.g. {"X-Team": "ops"}')

    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=20, choices=DisabledReason.choices, blank=True)
    disabled_note = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Since when every attempt has failed (null once one succeeds); beat disables the endpoint
    # after OUTBOUND_DISABLE_AFTER_DAYS of it.
    failing_since = models.DateTimeField(null=True, blank=True)

    max_per_second = models.PositiveIntegerField(
        null=True, blank=True, help_text="Deliveries per second at most; empty for no limit"
    )
    retry_schedule = models.JSONField(
        default=default_retry_schedule, help_text="Delay in seconds before each attempt; its length is the attempts"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "url"]
        indexes = [models.Index(fields=["organization", "enabled"], name="endpoint_org_enabled_idx")]

    def __str__(self) -> str:
        return self.description or self.url

    def clean(self) -> None:
        errors: dict[str, str] = {}
        types = self.event_types
        if not isinstance(types, list) or not types or not all(isinstance(t, str) and t for t in types):
            errors["event_types"] = "a non-empty list of event types"
        try:
            retry_schedule_check(self.retry_schedule)
        except ValidationError as exc:
            errors["retry_schedule"] = exc.messages[0]
        headers = self.headers
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and HEADER_NAME.fullmatch(k) and isinstance(v, str) and HEADER_VALUE.fullmatch(v)
            for k, v in headers.items()
        ):
            errors["headers"] = "an object of header names (RFC 9110 tokens) to printable string values"
        if errors:
            raise ValidationError(errors)

    @property
    def attempts_max(self) -> int:
        return len(self.retry_schedule)

    def delay_after(self, attempt: int) -> int | None:
        """Seconds to wait after attempt `attempt` (1-based) failed; None after the last."""
        return self.retry_schedule[attempt] if attempt < len(self.retry_schedule) else None

    # --- Signing secrets (write-only; the same helpers as a source's) -------------------------

    @property
    def signing_secret_list(self) -> list[SigningSecret]:
        return [SigningSecret.from_json(entry) for entry in self.signing_secret_entries]

    def signing_secrets_valid(self, *, now: datetime) -> list[str]:
        """Decrypted secrets to sign with at `now`, newest first. Raises SecretUnreadable."""
        return signing_secrets_decrypted(self.signing_secret_entries, now=now)

    def signing_secret_new(self) -> str:
        """Replace every secret with a new one and return it: shown once."""
        secret = new_signing_secret()
        self.signing_secret_entries = signing_secret_entries_for(secret)
        return secret

    def rotate_signing_secret(self, *, grace: timedelta, now: datetime) -> str:
        """A new secret, returned once; the current ones keep signing for `grace`."""
        secret = new_signing_secret()
        self.signing_secret_entries = signing_secret_entries_rotated(
            self.signing_secret_entries, secret=secret, grace=grace, now=now
        )
        return secret


class OutboundMessage(models.Model):
    """One notification, written in the transaction of the change it reports (the outbox). Its
    id is the `webhook-id` receivers dedupe on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="outbound_messages")
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    # Why the payload can never be delivered (a required field missing): its deliveries are
    # failed at once and never retried. Empty for a sound payload.
    invalid_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Messages list (API, admin), newest first per organization; recover-since's scan.
            models.Index(fields=["organization", "-created_at"], name="outmsg_org_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    # The endpoint was disabled before this delivery's turn; recover-since sends it again.
    CANCELLED = "cancelled", "Cancelled"


class IllegalDeliveryMove(Exception):
    """A move the delivery transition table does not allow: a caller's bug, not user input."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"a delivery cannot move from '{source}' to '{target}'")


DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    # Claimed by a worker; cancelled when its endpoint is disabled; failed at once when its
    # payload is invalid.
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.DELIVERING, DeliveryStatus.CANCELLED, DeliveryStatus.FAILED}),
    # An attempt ends; delivering -> delivering is a takeover after the lease ran out.
    DeliveryStatus.DELIVERING: frozenset(
        {
            DeliveryStatus.DELIVERING,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.RETRY_SCHEDULED,
            DeliveryStatus.FAILED,
            DeliveryStatus.CANCELLED,
        }
    ),
    # Due (claimed); pulled forward by a person (pending); its endpoint disabled.
    DeliveryStatus.RETRY_SCHEDULED: frozenset(
        {DeliveryStatus.DELIVERING, DeliveryStatus.PENDING, DeliveryStatus.CANCELLED}
    ),
    # A person's retry or recover-since: a new round of the schedule.
    DeliveryStatus.FAILED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.CANCELLED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.DELIVERED: frozenset(),
}


def delivery_sources_of(target: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    return tuple(s for s, targets in DELIVERY_TRANSITIONS.items() if target in targets)


# Counted once each, by status now (like events' StatusGroup).
DELIVERY_WAITING = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING, DeliveryStatus.RETRY_SCHEDULED)
DELIVERY_NEEDS_HUMAN = (DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)
DELIVERY_DONE = (DeliveryStatus.DELIVERED,)
# What a person's retry or recover-since sends again.
DELIVERY_RETRYABLE = (*DELIVERY_NEEDS_HUMAN, DeliveryStatus.RETRY_SCHEDULED)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def _move(self, *, delivery_id: uuid.UUID, target: DeliveryStatus, when: Q, now: datetime, **fields: Any) -> bool:
        """One conditional UPDATE: of two racing callers exactly one wins."""
        return self.filter(when, id=delivery_id).update(status=target, updated_at=now, **fields) == 1

    def claim(self, *, delivery_id: uuid.UUID, task_id: str, now: datetime, lease_until: datetime) -> bool:
        """Take the delivery for one attempt. Claimable: pending or a retry whose time has come;
        this very message redelivered after its worker died; a lease that ran out."""
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        claimable = (
            Q(due, status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRY_SCHEDULED))
            | Q(status=DeliveryStatus.DELIVERING, claimed_by=task_id)
            | Q(status=DeliveryStatus.DELIVERING, claimed_until__lt=now)
        )
        return self._move(
            delivery_id=delivery_id,
            target=DeliveryStatus.DELIVERING,
            when=claimable,
            now=now,
            claimed_by=task_id,
            claimed_until=lease_until,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
            next_attempt_at=None,
        )

    def finish(
        self, *, delivery_id: uuid.UUID, task_id: str, target: DeliveryStatus, now: datetime, **fields: Any
    ) -> bool:
        """Record an attempt's outcome; only the claim holder may."""
        if target not in DELIVERY_TRANSITIONS[DeliveryStatus.DELIVERING] or target == DeliveryStatus.DELIVERING:
            raise IllegalDeliveryMove(DeliveryStatus.DELIVERING, target)
        held = Q(status=DeliveryStatus.DELIVERING, claimed_by=task_id)
        return self._move(
            delivery_id=delivery_id, target=target, when=held, now=now, claimed_by="", claimed_until=None, **fields
        )

    def postpone(self, *, delivery_id: uuid.UUID, until: datetime, now: datetime) -> bool:
        """Over the endpoint's rate: wait for the next window without spending an attempt."""
        waiting = Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRY_SCHEDULED))
        return (
            self.filter(waiting, id=delivery_id).update(next_attempt_at=until, dispatched_at=None, updated_at=now) == 1
        )

    def cancel(self, *, delivery_id: uuid.UUID, now: datetime, reason: str, error_code: str) -> bool:
        """Its endpoint is disabled: not sent, kept for recover-since."""
        return self._move(
            delivery_id=delivery_id,
            target=DeliveryStatus.CANCELLED,
            when=Q(status__in=delivery_sources_of(DeliveryStatus.CANCELLED)) & ~Q(status=DeliveryStatus.DELIVERING),
            now=now,
            last_error=reason,
            last_error_code=error_code,
            next_attempt_at=None,
            completed_at=now,
        )

    def requeue(self, *, delivery_ids: list[uuid.UUID], now: datetime, at: datetime | None = None) -> int:
        """A person's retry or recover-since: a new round of the schedule, due at `at` (now by
        default). Returns how many moved."""
        movable = Q(status__in=delivery_sources_of(DeliveryStatus.PENDING))
        return self.filter(movable, id__in=delivery_ids).update(
            status=DeliveryStatus.PENDING,
            round_attempts_base=F("attempts"),
            next_attempt_at=at or now,
            dispatched_at=None,
            completed_at=None,
            updated_at=now,
        )

    def count_by_status(self) -> dict[DeliveryStatus, int]:
        rows = self.order_by().values_list("status").annotate(n=models.Count("*"))
        counts = dict.fromkeys(DeliveryStatus, 0)
        for status, n in rows:
            counts[DeliveryStatus(status)] = n
        return counts


class Delivery(models.Model):
    """One message to one endpoint: what a worker claims, signs and sends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the message: stats group deliveries by endpoint and event type in one table.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    event_type = models.CharField(max_length=100)

    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when the current round began (a person's retry starts a new round of the
    # schedule); the schedule step is attempts - round_attempts_base.
    round_attempts_base = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # When it was last handed to the broker; beat hands out again what it published long ago
    # and what was never published (broker down at commit).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=255, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=50, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        permissions = [("retry_delivery", "Can retry deliveries and recover endpoints")]
        constraints = [models.UniqueConstraint(fields=["message", "endpoint"], name="uniq_delivery_per_endpoint")]
        indexes = [
            # Beat's dispatcher (services/outbound/dispatch.py): waiting deliveries by due time.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "retry_scheduled"]),
                name="delivery_due_idx",
            ),
            # The same dispatcher's takeover of deliveries whose worker died.
            models.Index(fields=["claimed_until"], condition=Q(status="delivering"), name="delivery_claim_expiry_idx"),
            # Recover-since and the endpoint's delivery list; stats per endpoint and event type.
            models.Index(fields=["endpoint", "created_at"], name="delivery_endpoint_created_idx"),
            models.Index(fields=["endpoint", "event_type", "status"], name="delivery_endpoint_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint_id} ({self.status})"

    @property
    def round_attempts(self) -> int:
        return self.attempts - self.round_attempts_base


class DeliveryAttempt(models.Model):
    """One HTTP attempt: what the receiver answered (or why there was no answer) and how long it
    took. Endpoint and event type are copied so health stats read this table alone."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=100)
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    succeeded = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="uniq_delivery_attempt_number")]
        indexes = [
            # webhook_health_stats per endpoint (and event type) over a window.
            models.Index(fields=["endpoint", "started_at"], name="dattempt_endpoint_started_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
