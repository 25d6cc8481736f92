"""Publishing events to the broker, and the beat jobs that make sure each one gets published."""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from webhooks_app.models import EventStatus, WebhookEvent

logger = logging.getLogger(__name__)

# The most events one sweep hands out; the next run takes the rest.
SWEEP_BATCH = 500


def event_dispatch(*, event_id: uuid.UUID, countdown: float | None = None) -> bool:
    """Publish one processing message. Never raises: a failed publish leaves the event in a state
    a beat job picks up again, so the caller (an HTTP request, often) is never held up."""
    from webhooks_app.tasks import process_event

    try:
        # retry=False: with the broker down, answer now and let the sweeper publish later.
        process_event.apply_async(args=(str(event_id),), countdown=countdown or 0, retry=False)
    except Exception:
        logger.warning("could not publish event %s; the sweeper will", event_id, exc_info=True)
        return False
    if countdown is None:
        # Published: waiting events become `queued`, so sweeps stop re-sending them. A retry
        # that is due counts as waiting; one the worker just scheduled for later does not.
        now = timezone.now()
        waiting = Q(status__in=[EventStatus.RECEIVED, EventStatus.QUEUED]) | Q(
            status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now
        )
        WebhookEvent.objects.filter(waiting, id=event_id).update(status=EventStatus.QUEUED, updated_at=now)
    return True


def events_sweep_undispatched() -> int:
    """Publish events still `received` some seconds after commit (broker was down, or the web
    process died between commit and publish)."""
    cutoff = timezone.now() - timedelta(seconds=settings.MENDHOOK_SWEEP_AFTER_SECONDS)
    ids = list(
        WebhookEvent.objects.filter(status=EventStatus.RECEIVED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    return sum(event_dispatch(event_id=event_id) for event_id in ids)


def retries_dispatch_due() -> int:
    """Publish retries whose time has come. Safe to run twice at once: the claim decides."""
    now = timezone.now()
    ids = list(
        WebhookEvent.objects.filter(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now)
        .order_by("next_retry_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    return sum(event_dispatch(event_id=event_id) for event_id in ids)


def events_heal_stuck() -> int:
    """Hand out again what a dead worker or a lost message left behind: processing with an
    expired lease, or queued for far longer than any queue wait."""
    now = timezone.now()
    queued_cutoff = now - timedelta(seconds=settings.MENDHOOK_QUEUED_STALE_SECONDS)
    stuck = Q(status=EventStatus.PROCESSING, claimed_until__lt=now) | Q(
        status=EventStatus.QUEUED, updated_at__lt=queued_cutoff
    )
    ids = list(WebhookEvent.objects.filter(stuck).values_list("id", flat=True)[:SWEEP_BATCH])
    for event_id in ids:
        logger.warning("re-dispatching stuck event %s", event_id)
    return sum(event_dispatch(event_id=event_id) for event_id in ids)
