"""Celery tasks: thin wrappers that take ids and call one service each."""

import logging
import os
import uuid

import httpx
from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from webhooks_app.models import WebhookEvent
from webhooks_app.reporting import report_failure
from webhooks_app.services import dispatch, processing
from webhooks_app.services.outbound import delivery as outbound_delivery
from webhooks_app.services.outbound import dispatch as outbound_dispatch
from webhooks_app.services.outbound import operations as outbound_operations

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # Only for the database being unreachable: the message would otherwise be acknowledged as
    # failed and its event left `queued` until the healer noticed. The retry keeps the task id,
    # so a claim taken just before the connection dropped is this message's to resume.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=40,
)
def process_event(self: Task[[str], str | None], event_id: str) -> str | None:
    # Processing outcomes are not retried here: the service schedules them as new messages with
    # their delay recorded in the database, so they survive broker restarts and show in the
    # delivery log.
    worker = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    status = processing.event_process(event_id=uuid.UUID(event_id), task_id=str(self.request.id), worker=worker)
    return str(status) if status else None


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(httpx.TransportError, httpx.HTTPStatusError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def send_dead_letter_alert(self: Task[[str], None], event_id: str) -> None:
    event = WebhookEvent.objects.select_related("source", "organization").get(id=event_id)
    text = (
        f":red_circle: mendhook dead letter: {event.event_type} from {event.source.slug} "
        f"({event.organization.slug}) failed after {event.attempts} attempts. "
        f"[{event.last_error_code}] {event.last_error} (event {event.id})"
    )
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if not url:
        # The dead letter itself is already an error record; this line is only the alert.
        report_failure(
            logger,
            "ALERT %s",
            text,
            level=logging.ERROR,
            event=event,
            function="webhooks_app.tasks.send_dead_letter_alert",
            action="alert",
            error_record=False,
        )
        return
    response = httpx.post(url, json={"text": text, "event_id": str(event.id)}, timeout=10)
    response.raise_for_status()


@shared_task(ignore_result=True)
def dispatch_due_retries() -> int:
    return dispatch.retries_dispatch_due()


@shared_task(ignore_result=True)
def sweep_undispatched_events() -> int:
    return dispatch.events_sweep_undispatched()


@shared_task(ignore_result=True)
def heal_stuck_events() -> int:
    return dispatch.events_heal_stuck()


# --- Outbound notifications --------------------------------------------------------------------


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # As process_event: only the database being unreachable is retried here; a receiver's
    # failure is scheduled by the service, its delay stored in the database.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=40,
)
def deliver_outbound(self: Task[[str], str | None], delivery_id: str) -> str | None:
    status = outbound_delivery.delivery_run(delivery_id=uuid.UUID(delivery_id), task_id=str(self.request.id))
    return str(status) if status else None


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(httpx.TransportError, httpx.HTTPStatusError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def send_outbound_alert(self: Task[[str], None], text: str) -> None:
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if not url:
        # The failure itself is already an error record; this line is only the alert.
        report_failure(
            logger,
            "ALERT %s",
            text,
            level=logging.ERROR,
            function="webhooks_app.tasks.send_outbound_alert",
            action="alert",
            error_record=False,
        )
        return
    response = httpx.post(url, json={"text": text}, timeout=10)
    response.raise_for_status()


@shared_task(ignore_result=True)
def dispatch_due_deliveries() -> int:
    return outbound_dispatch.deliveries_dispatch_due()


@shared_task(ignore_result=True)
def disable_failing_endpoints() -> int:
    return outbound_operations.endpoints_disable_failing()
