"""Celery tasks of the ops app (maintenance queue, see config.queues)."""

import logging
import uuid

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from ops_app import alerting, diagnostics, replays, retention
from ops_app.acts.error_groups import error_groups_resolve_settled
from webhooks_app.services.alerting import AlertDeliveryError, alert_retry_countdown

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # A database blip: the batch rolled back whole, so running it again is safe.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def run_replay(self: Task[[str], None], replay_id: str) -> None:
    """One batch per message, then the next message after the rate's delay: a replay never
    holds a maintenance worker while it waits, and beat's jobs on that queue keep running."""
    try:
        delay = replays.replay_run_batch(replay_id=uuid.UUID(replay_id))
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        logger.exception("replay %s failed", replay_id)
        replays.replay_mark_failed(replay_id=uuid.UUID(replay_id), error=f"{type(exc).__name__}: {exc}")
        raise
    if delay is not None:
        run_replay.apply_async(args=(replay_id,), countdown=delay)


@shared_task(ignore_result=True)
def resume_stalled_replays() -> int:
    """Beat: give a replay whose next-batch message was lost a new one. A duplicate chain is
    harmless: each batch holds the replay's row lock and advances its cursor exactly once."""
    stalled = replays.replays_stalled()
    for replay_id in stalled:
        logger.warning("replay %s stalled; resuming it", replay_id)
        run_replay.apply_async(args=(str(replay_id),))
    return len(stalled)


@shared_task(ignore_result=True)
def resolve_settled_error_groups() -> int:
    """Beat: resolve, as the system, error groups whose event has since succeeded or been
    resolved. Safe to run twice at once (each group is resolved under its row lock, once)."""
    return error_groups_resolve_settled()


@shared_task(ignore_result=True)
def evaluate_alerts() -> int:
    """Beat: open and close alerts on trends; returns how many started or recovered. Safe to
    run twice at once (ops_app.alerting)."""
    result = alerting.alerts_evaluate()
    return len(result.started) + len(result.recovered)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def send_alert_notifications(
    self: Task[[list[int], list[int]], int], started_ids: list[int], recovered_ids: list[int]
) -> int:
    try:
        # Sentry only on the first try: a retry is about the Slack message alone.
        return alerting.alerts_notify(
            started_ids=started_ids, recovered_ids=recovered_ids, to_sentry=not self.request.retries
        )
    except AlertDeliveryError as exc:
        countdown = alert_retry_countdown(retries=self.request.retries, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(ignore_result=True)
def purge_expired_data() -> int:
    """Beat, daily: delete what is past its retention in short batches; returns how many events
    went (the RetentionRun row in the admin has every count). Safe twice at once (SKIP LOCKED)."""
    return retention.retention_purge().events_deleted


@shared_task(ignore_result=True)
def evaluate_diagnostics() -> int:
    """Beat: find configuration problems, resolve those whose cause is gone; returns how many
    are open. Safe to run twice at once (ops_app.diagnostics)."""
    result = diagnostics.diagnostics_evaluate()
    return len(result.opened) + result.refreshed
