"""Celery tasks: thin wrappers that take ids and call one service each."""

import logging
import os
import uuid

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from webhooks_app.services import alerting, dispatch, processing
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


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def send_dead_letter_alert(self: Task[[str], None], event_id: str) -> None:
    # Only a transient refusal comes back here (5xx, 429, timeout, connection): a 4xx is
    # reported once by the service and never sent again.
    try:
        alerting.dead_letter_alert_send(event_id=uuid.UUID(event_id))
    except alerting.AlertDeliveryError as exc:
        countdown = alerting.alert_retry_countdown(retries=self.request.retries, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from exc


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


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def send_outbound_alert(self: Task[[str], None], text: str) -> None:
    # As send_dead_letter_alert: a 4xx is reported once by the service, never sent again.
    try:
        alerting.alert_text_send(text=text)
    except alerting.AlertDeliveryError as exc:
        countdown = alerting.alert_retry_countdown(retries=self.request.retries, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(ignore_result=True)
def dispatch_due_deliveries() -> int:
    return outbound_dispatch.deliveries_dispatch_due()


@shared_task(ignore_result=True)
def disable_failing_endpoints() -> int:
    return outbound_operations.endpoints_disable_failing()
