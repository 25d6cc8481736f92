"""Handing deliveries to the workers: on commit, and beat's dispatcher for what is due (retries,
deliveries the broker refused at commit, deliveries whose worker died), in batches of 100 taken
with SKIP LOCKED like the seed's retry_failed_webhooks()."""

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.publishing import publish
from webhooks_app.models import Delivery, DeliveryStatus
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)

# Published by name (config.publishing): the tasks module imports services, never the reverse.
DELIVER_TASK = "webhooks_app.tasks.deliver_outbound"
ALERT_TASK = "webhooks_app.tasks.send_outbound_alert"

# The seed's batch; a run takes up to DISPATCH_BATCHES of them, the next run the rest.
DISPATCH_BATCH = 100
DISPATCH_BATCHES = 10


def deliveries_publish(*, delivery_ids: list[uuid.UUID], countdown: float | None = None) -> int:
    """Publish one message per delivery. Never raises: what the broker refused is marked
    undispatched, and beat's dispatcher sends it within seconds. Returns how many went out."""
    refused = []
    for delivery_id in delivery_ids:
        try:
            publish(DELIVER_TASK, str(delivery_id), countdown=countdown)
        except Exception:  # noqa: BLE001 - any broker error means "not published"
            refused.append(delivery_id)
    if refused:
        report_failure(
            logger,
            "could not publish %d outbound deliveries; beat's dispatcher will",
            len(refused),
            function="webhooks_app.services.outbound.dispatch.deliveries_publish",
            action="publish",
            error_record=False,
        )
        Delivery.objects.filter(id__in=refused).update(dispatched_at=None)
    return len(delivery_ids) - len(refused)


def _due(now: datetime) -> Q:
    republish_before = now - timedelta(seconds=settings.MENDHOOK_OUTBOUND_REDISPATCH_SECONDS)
    waiting = Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRY_SCHEDULED), next_attempt_at__lte=now)
    # Published long ago and still waiting: its message was lost (broker restart, a web process
    # that died between commit and publish).
    unpublished = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=republish_before)
    orphaned = Q(status=DeliveryStatus.DELIVERING, claimed_until__lt=now)
    return (waiting & unpublished) | orphaned


def deliveries_dispatch_due(*, now: datetime | None = None) -> int:
    """Publish deliveries whose time has come. Safe to run twice at once: SKIP LOCKED gives
    each run other rows, and the worker's claim decides anyway."""
    now = now or timezone.now()
    total = 0
    for _ in range(DISPATCH_BATCHES):
        with transaction.atomic():
            ids = list(
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(_due(now))
                .order_by("next_attempt_at")
                .values_list("id", flat=True)[:DISPATCH_BATCH]
            )
            Delivery.objects.filter(id__in=ids).update(dispatched_at=now)
        # After the commit: network I/O outside the transaction.
        total += deliveries_publish(delivery_ids=ids)
        if len(ids) < DISPATCH_BATCH:
            break
    return total


def alert_publish(*, text: str, function: str) -> None:
    """An outbound alert (Slack-compatible URL or an ERROR line), by the alerts queue."""
    try:
        publish(ALERT_TASK, text)
    except Exception:  # noqa: BLE001 - the failure itself is recorded; only its alert is lost
        report_failure(
            logger,
            "could not queue the alert: %s",
            text,
            level=logging.ERROR,
            function=function,
            action="queue_alert",
            exc_info=True,
        )
