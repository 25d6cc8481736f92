"""What people do about outbound notifications: retry a delivery or a message, recover an
endpoint since a time (rate limited, with a dry-run count), make and rotate endpoint secrets,
and beat's disabling of endpoints that fail for days. Each act returns what it changed; the act
flow in ops_app audits it."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks_app.models import (
    Delivery,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    OutboundMessage,
)
from webhooks_app.models.outbound import DELIVERY_RETRYABLE
from webhooks_app.services.outbound.dispatch import deliveries_publish
from webhooks_app.services.outbound.endpoint_state import EndpointStateError, endpoint_disable
from webhooks_app.services.sources import signing_secret_grace

RECOVERABLE = (DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)


class DeliveryActError(Exception):
    """The act does not apply to the delivery or message now. Safe to show."""


@dataclass(frozen=True)
class DeliveryChange:
    status_before: str
    status_after: str
    deliveries: int = 1


def _retry_refusal(delivery: Delivery) -> str:
    if delivery.status not in DELIVERY_RETRYABLE:
        return f"{delivery.get_status_display().lower()}: nothing to retry"
    if delivery.message.invalid_reason:
        return f"the payload cannot be delivered: {delivery.message.invalid_reason}"
    if not delivery.endpoint.enabled:
        return "its endpoint is disabled; enable it first"
    return ""


def delivery_retry_refusal(delivery: Delivery) -> str:
    """Why a retry does not apply to the delivery now, or "" (the act's plan and its run)."""
    return _retry_refusal(delivery)


def delivery_retry(*, delivery_id: uuid.UUID) -> DeliveryChange:
    """Send one delivery again now, as a new round of its endpoint's schedule."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("message", "endpoint")
            .filter(id=delivery_id)
            .first()
        )
        if delivery is None:
            raise DeliveryActError("no such delivery")
        refusal = _retry_refusal(delivery)
        if refusal:
            raise DeliveryActError(refusal)
        before = delivery.status
        Delivery.objects.requeue(delivery_ids=[delivery.id], now=now)
        transaction.on_commit(lambda: deliveries_publish(delivery_ids=[delivery.id]))
    return DeliveryChange(before, DeliveryStatus.PENDING)


def message_retry_plan(message: OutboundMessage) -> tuple[list[Delivery], str]:
    """The deliveries of `message` a retry sends again, or why none."""
    deliveries = list(message.deliveries.select_related("endpoint", "message"))
    retryable = [d for d in deliveries if not _retry_refusal(d)]
    if retryable:
        return retryable, ""
    if not deliveries:
        return [], "no endpoint was subscribed to it"
    return [], _retry_refusal(deliveries[0])


def message_retry(*, message_id: uuid.UUID) -> DeliveryChange:
    """Send again every delivery of the message that failed (or waits for a retry)."""
    now = timezone.now()
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(id=message_id).first()
        if message is None:
            raise DeliveryActError("no such message")
        retryable, refusal = message_retry_plan(message)
        if not retryable:
            raise DeliveryActError(refusal)
        ids = [d.id for d in retryable]
        moved = Delivery.objects.requeue(delivery_ids=ids, now=now)
        transaction.on_commit(lambda: deliveries_publish(delivery_ids=ids))
    before = ",".join(sorted({str(d.status) for d in retryable}))[:30]
    return DeliveryChange(before, DeliveryStatus.PENDING, moved)


# --- Recover since -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoverPlan:
    """What recover-since would send: failed or cancelled deliveries, and messages the endpoint
    never got (sent while it was disabled)."""

    failed: int
    missed: int

    @property
    def total(self) -> int:
        return self.failed + self.missed


def _recover_sets(endpoint: Endpoint, since: datetime, until: datetime) -> tuple[Any, Any]:
    failed = Delivery.objects.filter(
        endpoint=endpoint, status__in=RECOVERABLE, created_at__gte=since, created_at__lt=until
    ).exclude(message__invalid_reason__gt="")
    missed = OutboundMessage.objects.filter(
        organization_id=endpoint.organization_id,
        event_type__in=list(endpoint.event_types),
        created_at__gte=since,
        created_at__lt=until,
        invalid_reason="",
    ).exclude(deliveries__endpoint=endpoint)
    return failed, missed


def endpoint_recover_plan(*, endpoint: Endpoint, since: datetime, until: datetime | None = None) -> RecoverPlan:
    """The dry run: counts only, nothing changes."""
    failed, missed = _recover_sets(endpoint, since, until or timezone.now())
    return RecoverPlan(failed=failed.count(), missed=missed.count())


def endpoint_recover(
    *, endpoint_id: uuid.UUID, since: datetime, until: datetime | None = None, now: datetime | None = None
) -> DeliveryChange:
    """Send again what failed since `since`, and what the endpoint missed, paced at
    OUTBOUND_RECOVER_PER_SECOND: each second's share is due one second after the previous one,
    and beat's dispatcher hands them out when due."""
    now = now or timezone.now()
    until = until or now
    if since >= until:
        raise DeliveryActError("'since' must be in the past")
    per_second = max(1, settings.MENDHOOK_OUTBOUND_RECOVER_PER_SECOND)
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().filter(id=endpoint_id).first()
        if endpoint is None:
            raise DeliveryActError("no such endpoint")
        if not endpoint.enabled:
            raise DeliveryActError("the endpoint is disabled; enable it first")
        failed, missed = _recover_sets(endpoint, since, until)
        failed_ids = list(failed.order_by("created_at").values_list("id", flat=True))
        missed_rows = list(missed.order_by("created_at").values_list("id", "event_type"))
        if not failed_ids and not missed_rows:
            raise DeliveryActError("nothing failed or was missed since then")
        moved = 0
        for step, start in enumerate(range(0, len(failed_ids), per_second)):
            at = now + timedelta(seconds=step)
            moved += Delivery.objects.requeue(delivery_ids=failed_ids[start : start + per_second], now=now, at=at)
        offset = -(-len(failed_ids) // per_second)
        Delivery.objects.bulk_create(
            [
                Delivery(
                    message_id=message_id,
                    endpoint=endpoint,
                    organization_id=endpoint.organization_id,
                    event_type=event_type,
                    next_attempt_at=now + timedelta(seconds=offset + i // per_second),
                    created_at=now,
                    updated_at=now,
                )
                for i, (message_id, event_type) in enumerate(missed_rows)
            ],
            ignore_conflicts=True,  # a concurrent recover made it already
        )
    return DeliveryChange("failed" if failed_ids else "missed", DeliveryStatus.PENDING, moved + len(missed_rows))


# --- Endpoints ---------------------------------------------------------------------------------


def endpoint_create(*, endpoint: Endpoint) -> str:
    """Save a new endpoint with a new signing secret; the secret is returned, the one time it
    is seen."""
    endpoint.full_clean()
    secret = endpoint.signing_secret_new()
    endpoint.save(force_insert=True)
    return secret


def endpoint_secret_rotate(*, endpoint_id: uuid.UUID, grace: timedelta | None = None) -> str:
    """A new secret, returned once; requests carry a signature by the old ones too until
    `grace` (SIGNING_SECRET_GRACE_HOURS) has passed."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(id=endpoint_id)
        secret = endpoint.rotate_signing_secret(
            grace=signing_secret_grace() if grace is None else grace, now=timezone.now()
        )
        endpoint.save(update_fields=["signing_secret_entries", "updated_at"])
    return secret


def endpoints_disable_failing(*, now: datetime | None = None) -> int:
    """Disable (with an alert) every endpoint that has failed continuously for
    OUTBOUND_DISABLE_AFTER_DAYS. Safe to run twice: the disable is conditional."""
    now = now or timezone.now()
    days = settings.MENDHOOK_OUTBOUND_DISABLE_AFTER_DAYS
    cutoff = now - timedelta(days=days)
    disabled = 0
    for endpoint_id in Endpoint.objects.filter(enabled=True, failing_since__lt=cutoff).values_list("id", flat=True):
        try:
            endpoint_disable(
                endpoint_id=endpoint_id,
                reason=DisabledReason.FAILING,
                note=f"every attempt failed for {days:g} days",
                now=now,
            )
        except EndpointStateError:
            continue
        disabled += 1
    return disabled
