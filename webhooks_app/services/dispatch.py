"""Publishing events to the broker, and the beat jobs that make sure each one gets published."""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from config.publishing import publish, queue_depth
from config.queues import Queue
from webhooks_app.models import EventStatus, WebhookEvent
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)

# The most events one sweep hands out; the next run takes the rest.
SWEEP_BATCH = 500

# Published by name (config.publishing): the tasks module imports this one, never the reverse.
PROCESS_EVENT_TASK = "webhooks_app.tasks.process_event"
DEAD_LETTER_ALERT_TASK = "webhooks_app.tasks.send_dead_letter_alert"


def event_dispatch(*, event_id: uuid.UUID, countdown: float | None = None) -> bool:
    """Publish one processing message. Never raises: a failed publish leaves the event in a state
    a beat job picks up again, so the caller (an HTTP request, often) is never held up."""
    try:
        # publish() never retries: with the broker down, answer now and let the sweeper publish.
        publish(PROCESS_EVENT_TASK, str(event_id), countdown=countdown)
    except Exception:
        logger.warning("could not publish event %s; the sweeper will", event_id, exc_info=True)
        return False
    if countdown is None:
        # A retry the worker just scheduled for later (countdown given) stays scheduled.
        WebhookEvent.objects.mark_queued(event_id=event_id, now=timezone.now())
    return True


def event_publish_new(*, event_id: uuid.UUID) -> None:
    """Publish a just-committed event, which was stored as `queued`. If the broker refuses,
    set it back to `received` so the sweeper publishes it within seconds.

    Storing it `queued` up front saves the intake an UPDATE per event; the one case it leaves
    to the healer is a web process dying between commit and publish (events_heal_stuck)."""
    try:
        publish(PROCESS_EVENT_TASK, str(event_id))
    except Exception:  # noqa: BLE001 - any broker error means "not published"; reported below
        report_failure(
            logger,
            "could not publish event %s; the sweeper will",
            event_id,
            event_id=event_id,
            function="webhooks_app.intake",
            action="publish",
            exc_info=True,
        )
        WebhookEvent.objects.mark_unpublished(event_id=event_id, now=timezone.now())


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
    # With nothing waiting in the broker, a queued event this old has no message: its web
    # process died between commit and publish. With a backlog, only a much older one is lost.
    queued_for = (
        settings.MENDHOOK_QUEUED_LOST_SECONDS if _processing_queue_empty() else settings.MENDHOOK_QUEUED_STALE_SECONDS
    )
    stuck = Q(status=EventStatus.PROCESSING, claimed_until__lt=now) | Q(
        status=EventStatus.QUEUED, updated_at__lt=now - timedelta(seconds=queued_for)
    )
    ids = list(WebhookEvent.objects.filter(stuck).values_list("id", flat=True)[:SWEEP_BATCH])
    for event_id in ids:
        logger.warning("re-dispatching stuck event %s", event_id)
    return sum(event_dispatch(event_id=event_id) for event_id in ids)


def _processing_queue_empty() -> bool:
    try:
        return queue_depth(Queue.WEBHOOKS.value) == 0
    except Exception:  # noqa: BLE001 - unknown means "assume a backlog": the cautious threshold
        return False
