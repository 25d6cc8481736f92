"""Processing one event: claim, run the handler, derive the outcome from the ledger, and decide
what happens next (done, retry soon, retry later, dead letter, wait for a person)."""

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.publishing import publish
from webhooks_app.errors import DEFERRAL_CODES, ErrorCode, FailureKind, ProcessingError
from webhooks_app.handlers import HandlerResult, handler_for
from webhooks_app.models import (
    EventAction,
    EventItem,
    EventStatus,
    ItemStatus,
    ProcessingAttempt,
    Source,
    WebhookEvent,
)
from webhooks_app.models.events import NEEDS_HUMAN, AttemptOutcome
from webhooks_app.reporting import report_failure
from webhooks_app.services.dispatch import DEAD_LETTER_ALERT_TASK, event_dispatch
from webhooks_app.services.leases import lease_kept
from webhooks_app.services.outbound import outbound_emit

# Where error records say these failures happened: the task that runs them.
PROCESS_FUNCTION = "webhooks_app.tasks.process_event"
WORKER_LOST_MESSAGE = "the worker died or hit the hard time limit before recording an outcome"

logger = logging.getLogger(__name__)

# Outcomes that notify the organization's endpoints (mendhook's operational events).
OUTBOUND_EVENT_TYPE_OF = {
    EventStatus.DEAD_LETTER: "event.dead_lettered",
    EventStatus.PARTIAL_FAILURE: "event.partial_failure",
}


def _outbound_payload(event: WebhookEvent, status: EventStatus, fields: dict[str, object]) -> dict[str, object]:
    return {
        "eventId": str(event.id),
        "source": event.source.slug,
        "eventType": event.event_type,
        "status": str(status),
        "attempts": event.attempts,
        "lastError": fields["last_error"],
        "lastErrorCode": fields["last_error_code"],
        "failureDetails": fields["failure_details"],
    }


def backoff_seconds(source: Source, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with up to 25% added jitter; never sooner than the downstream asked."""
    nominal = source.backoff_base_seconds * source.backoff_factor ** max(0, attempt - 1)
    delay = nominal * (1 + random.uniform(0, 0.25))
    return max(delay, retry_after or 0.0)


@dataclass
class Decision:
    status: EventStatus
    outcome: AttemptOutcome
    delay: float | None = None
    recoverable_round: bool = False
    # Nothing was sent, only held back: the attempt does not count towards max_attempts.
    deferred: bool = False


def _deferred_only(failed: list[EventItem], event_error: ProcessingError | None) -> bool:
    """Every failure was a call held back by a breaker or an outbound rate limit."""
    codes = {i.error_code for i in failed}
    if event_error is not None:
        codes.add(event_error.code)
    return bool(codes) and codes <= DEFERRAL_CODES


def _decide(
    event: WebhookEvent, kinds: set[str], has_items: bool, retry_after: float | None, *, deferred: bool = False
) -> Decision:
    if not kinds:
        return Decision(EventStatus.SUCCEEDED, AttemptOutcome.SUCCEEDED)
    if deferred:
        # Retry when the breaker may probe or the rate window resets, spread by up to 10% so
        # the events held back together do not all come back in the same instant.
        delay = (retry_after or 1.0) * (1 + random.uniform(0, 0.1))
        return Decision(EventStatus.RETRY_SCHEDULED, AttemptOutcome.RETRY_SCHEDULED, delay, deferred=True)
    if FailureKind.TRANSIENT in kinds:
        if event.round_attempts < event.max_attempts:
            delay = backoff_seconds(event.source, event.round_attempts, retry_after)
            return Decision(EventStatus.RETRY_SCHEDULED, AttemptOutcome.RETRY_SCHEDULED, delay)
        return Decision(EventStatus.DEAD_LETTER, AttemptOutcome.DEAD_LETTER)
    if kinds == {FailureKind.RECOVERABLE} and event.recoverable_rounds < settings.MENDHOOK_RECOVERABLE_MAX_ROUNDS:
        delay = float(settings.MENDHOOK_RECOVERABLE_RETRY_DELAY_SECONDS)
        return Decision(EventStatus.RETRY_SCHEDULED, AttemptOutcome.RETRY_SCHEDULED, delay, recoverable_round=True)
    if has_items:
        return Decision(EventStatus.PARTIAL_FAILURE, AttemptOutcome.PARTIAL_FAILURE)
    return Decision(EventStatus.FAILED, AttemptOutcome.FAILED)


def event_process(*, event_id: uuid.UUID, task_id: str, worker: str) -> EventStatus | None:
    """Run one processing attempt. Returns the new status, or None when the event was not ours
    to process (already claimed or finished: a duplicate or redelivered message)."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.MENDHOOK_PROCESSING_LEASE_SECONDS)
    # The claim and its delivery-log row commit together: a worker killed between two commits
    # left an attempt that the delivery log never showed.
    with transaction.atomic():
        _claim_commit_unflushed()
        if not WebhookEvent.objects.claim(event_id=event_id, task_id=task_id, now=now, lease_until=lease_until):
            logger.info("event %s not claimable; message %s does nothing", event_id, task_id)
            return None
        event = WebhookEvent.objects.select_related("source", "organization").get(id=event_id)
        lost = 0
        if event.attempts > 1:
            # An attempt still open belonged to a worker that died mid-way (killed, out of
            # memory, hard time limit). It counts against the round's budget like a transient
            # failure: otherwise work that kills its worker every time is retried forever.
            lost = event.attempt_log.filter(finished_at__isnull=True).update(
                outcome=AttemptOutcome.WORKER_LOST,
                finished_at=now,
                error=WORKER_LOST_MESSAGE,
                error_code=ErrorCode.WORKER_LOST,
            )
        # The claim already counted this attempt; the lost one was the round's last allowed.
        if lost and event.round_attempts > event.max_attempts:
            return _event_dead_letter_lost(event, task_id, now)
        if event.attempts > 1:
            # Retries re-run only what failed; succeeded items are never touched again.
            event.items.filter(status=ItemStatus.FAILED).update(status=ItemStatus.PENDING)
        attempt = ProcessingAttempt.objects.create(
            event=event, number=event.attempts, task_id=task_id, worker=worker, started_at=now
        )

    event_error: ProcessingError | None = None
    result = HandlerResult()
    handler = handler_for(event.source.kind, event.event_type)
    if handler is None:
        result = HandlerResult(action_without_items=EventAction.IGNORED)
    else:
        try:
            # The heartbeat keeps the short lease alive while the handler runs (services/leases.py).
            with lease_kept(event_id=event_id, task_id=task_id):
                result = handler(event)
        except ProcessingError as error:
            report_failure(
                logger,
                "event %s failed: [%s] %s",
                event_id,
                error.code,
                error.message,
                # Held back by a guard rail is not a failure: no error record for it.
                level=logging.INFO if error.code in DEFERRAL_CODES else logging.WARNING,
                event=event,
                error_code=error.code,
                function=PROCESS_FUNCTION,
                action="run_handler",
            )
            event_error = error
        except Exception as exc:  # noqa: BLE001 - a handler bug becomes an error code, not a lost event
            report_failure(
                logger,
                "handler crashed on event %s",
                event_id,
                level=logging.ERROR,
                event=event,
                error_code=ErrorCode.INTERNAL,
                function=PROCESS_FUNCTION,
                action="run_handler",
                payload=event.payload,
                exc_info=True,
            )
            event_error = ProcessingError(f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)
    return _event_finish(event, attempt, result, event_error, task_id)


def _claim_commit_unflushed() -> None:
    """The claim's commit does not wait for its WAL flush (PostgreSQL; the outcome's does).

    Losing it takes a server crash within a fraction of a second of the commit, and then
    nothing is lost: the event is back to waiting, its message is redelivered or the healer
    hands it out, and the outcome's conditional UPDATE (held: processing by this task) fails,
    rolling back the local writes that went with it; remote ones carry idempotency keys. A
    dying worker is not a crashing server: its committed claim and attempt stay, as before.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _event_dead_letter_lost(event: WebhookEvent, task_id: str, now: datetime) -> EventStatus | None:
    """Dead-letter an event whose worker died on the round's last allowed attempt, without
    running its handler again (called inside the claim's transaction; alerts after commit).

    The claim counted an attempt that never runs, so the counters go back to the attempts
    really made: the delivery log and `attempts` agree (max_attempts rows, the last lost)."""
    failed = event.items.exclude(status=ItemStatus.SUCCEEDED).count()
    has_items = event.items.exists()
    last_error = f"{WORKER_LOST_MESSAGE} (attempt {event.round_attempts - 1} of {event.max_attempts})"
    still_ours = WebhookEvent.objects.finish(
        event_id=event.id,
        task_id=task_id,
        target=EventStatus.DEAD_LETTER,
        now=now,
        attempts=F("attempts") - 1,
        round_attempts=F("round_attempts") - 1,
        success=False,
        action=EventAction.PARTIAL_FAILURE if has_items else EventAction.FAILED,
        tasks_failed=failed,
        last_error=last_error,
        last_error_code=ErrorCode.WORKER_LOST,
        completed_at=now,
    )
    if not still_ours:
        return None
    event.attempts -= 1
    decision = Decision(EventStatus.DEAD_LETTER, AttemptOutcome.DEAD_LETTER)
    transaction.on_commit(lambda: _after_commit(event, decision, last_error, ErrorCode.WORKER_LOST))
    return EventStatus.DEAD_LETTER


class _WriteFailed(Exception):
    def __init__(self, error: ProcessingError) -> None:
        super().__init__(error.message)
        self.error = error


def _event_finish(
    event: WebhookEvent,
    attempt: ProcessingAttempt,
    result: HandlerResult,
    event_error: ProcessingError | None,
    task_id: str,
) -> EventStatus | None:
    now = timezone.now()
    try:
        recorded = _outcome_record(event, attempt, result, event_error, task_id, now)
    except _WriteFailed as failed_write:
        # Nothing of the handler's writes stayed; the event fails as a crashed handler would,
        # on the ledger the database holds.
        recorded = _outcome_record(event, attempt, HandlerResult(), failed_write.error, task_id, now)
    if recorded is None:
        attempt.finish(outcome=AttemptOutcome.CLAIM_LOST, now=now)
        report_failure(
            logger,
            "event %s was taken over before attempt %s finished",
            event.id,
            attempt.number,
            event=event,
            function=PROCESS_FUNCTION,
            action="record_outcome",
        )
        return None
    decision, last_error, last_code, failed = recorded
    _failures_report(event, failed)
    if decision.deferred:
        # Not a failure (no error record): the calls were held back and wait for their window.
        logger.info("event %s deferred %.1fs: [%s] %s", event.id, decision.delay or 0, last_code, last_error)
    _after_commit(event, decision, last_error, last_code)
    return decision.status


def _outcome_record(
    event: WebhookEvent,
    attempt: ProcessingAttempt,
    result: HandlerResult,
    event_error: ProcessingError | None,
    task_id: str,
    now: datetime,
) -> tuple[Decision, str, str, list[EventItem]] | None:
    """One transaction: the handler's deferred writes (HandlerResult.write), the status move and
    the attempt's end, so downstream rows, ledger and outcome commit together. None when the
    claim was taken over: then nothing of it is kept (the new claim holder does the work)."""
    with transaction.atomic():
        if result.write is not None:
            try:
                result.write()
            except Exception as exc:
                report_failure(
                    logger,
                    "handler writes failed on event %s",
                    event.id,
                    level=logging.ERROR,
                    event=event,
                    error_code=ErrorCode.INTERNAL,
                    function=PROCESS_FUNCTION,
                    action="write_handler_rows",
                    exc_info=True,
                )
                # Leaving the block by an exception rolls the writes back.
                raise _WriteFailed(ProcessingError(f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)) from exc
        decision, fields, failed = _outcome(event, result, event_error, now)
        last_error, last_code = str(fields["last_error"]), str(fields["last_error_code"])
        # Only the claim holder may record the outcome; a takeover after lease expiry wins.
        if not WebhookEvent.objects.finish(
            event_id=event.id, task_id=task_id, target=decision.status, now=now, **fields
        ):
            transaction.set_rollback(True)
            return None
        attempt.finish(outcome=decision.outcome, error=last_error, error_code=last_code, now=now)
        if decision.status in OUTBOUND_EVENT_TYPE_OF:
            # In the outcome's transaction (the outbox); no query unless someone subscribes.
            outbound_emit(
                organization_id=event.organization_id,
                event_type=OUTBOUND_EVENT_TYPE_OF[decision.status],
                payload=_outbound_payload(event, decision.status, fields),
                key=f"event:{event.id}:{decision.status}:{event.attempts}",
                now=now,
            )
    return decision, last_error, last_code, failed


def _outcome(
    event: WebhookEvent, result: HandlerResult, event_error: ProcessingError | None, now: datetime
) -> tuple[Decision, dict[str, object], list[EventItem]]:
    """What the ledger says happened: the decision, the event's fields, the failed items."""
    # The handler hands back the ledger it just wrote; reading it again would cost a query.
    items = result.items if result.items is not None else list(event.items.order_by("number"))
    failed = [i for i in items if i.status != ItemStatus.SUCCEEDED]
    kinds = {i.failure_kind or FailureKind.TRANSIENT for i in failed}
    if event_error is not None:
        kinds.add(event_error.kind)
    retry_after = _retry_after(failed, event_error)
    decision = _decide(event, kinds, bool(items), retry_after, deferred=_deferred_only(failed, event_error))
    last_error, last_code = _last_error(failed, event_error)

    fields: dict[str, object] = {
        "tasks_created": len(items) - len(failed),
        "tasks_failed": len(failed),
        "failure_details": [i.failure_detail() for i in failed] or None,
        "last_error": last_error,
        "last_error_code": last_code,
    }
    if decision.status == EventStatus.SUCCEEDED:
        fields.update(success=True, action=result.action_without_items or EventAction.CREATED_TASKS, completed_at=now)
    else:
        fields.update(
            success=False, action=EventAction.PARTIAL_FAILURE if items else EventAction.FAILED, completed_at=None
        )
    if decision.delay is not None:
        fields["next_retry_at"] = now + timedelta(seconds=decision.delay)
    if decision.recoverable_round:
        fields.update(recoverable_rounds=event.recoverable_rounds + 1, round_attempts=0)
    if decision.deferred:
        # The claim counted this attempt (round_attempts + 1); it is given back, so an event
        # held back by an open breaker any number of times never dead-letters for it.
        fields["round_attempts"] = F("round_attempts") - 1
    if decision.status in NEEDS_HUMAN:
        fields["completed_at"] = now
    return decision, fields, failed


def _failures_report(event: WebhookEvent, failed: list[EventItem]) -> None:
    for item in failed:
        if item.status == ItemStatus.FAILED and item.error_code not in DEFERRAL_CODES:
            # One line per failed item, after the outcome committed: each counts in the error
            # record group of its code and message (ops_app), so a storm is one row.
            report_failure(
                logger,
                "[%s] %s (item #%s of event %s)",
                item.error_code,
                item.error,
                item.number,
                event.id,
                event=event,
                error_code=item.error_code,
                function=PROCESS_FUNCTION,
                action="create_item",
                payload={"item": item.number, "title": item.title, "role": item.assignee_role},
            )


def _retry_after(failed: list[EventItem], event_error: ProcessingError | None) -> float | None:
    # The longest wait any downstream asked for, whether it answered the event or one item.
    asked = [i.retry_after for i in failed if i.retry_after is not None]
    if event_error is not None and event_error.retry_after is not None:
        asked.append(event_error.retry_after)
    return max(asked, default=None)


def _last_error(failed: list[EventItem], event_error: ProcessingError | None) -> tuple[str, str]:
    if event_error is not None:
        return event_error.message, event_error.code
    if failed:
        first = failed[0]
        return f"{len(failed)} item(s) failed; #{first.number}: {first.error}", first.error_code
    return "", ""


def _after_commit(event: WebhookEvent, decision: Decision, last_error: str, last_code: str) -> None:
    # Network I/O (broker, alerts) only after the outcome is committed.
    if decision.delay is not None and decision.delay <= settings.MENDHOOK_SHORT_RETRY_MAX_SECONDS:
        # Short waits also ride a countdown; beat's due-retry dispatcher covers a lost message.
        event_dispatch(event_id=event.id, countdown=decision.delay)
    if decision.status == EventStatus.DEAD_LETTER:
        # ERROR level: Sentry's logging integration turns this into an issue.
        report_failure(
            logger,
            "event %s dead-lettered after %s attempts: [%s] %s",
            event.id,
            event.attempts,
            last_code,
            last_error,
            level=logging.ERROR,
            event=event,
            error_code=last_code,
            with_source=True,
            function=PROCESS_FUNCTION,
            action="dead_letter",
        )
        try:
            publish(DEAD_LETTER_ALERT_TASK, str(event.id))
        except Exception:  # noqa: BLE001 - the dead letter is recorded; only its alert is lost
            report_failure(
                logger,
                "could not queue the dead-letter alert for event %s",
                event.id,
                level=logging.ERROR,
                event=event,
                function=PROCESS_FUNCTION,
                action="queue_alert",
                exc_info=True,
            )
