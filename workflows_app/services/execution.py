"""Executing one step of a run. A step that waits on a provider: claim it (with its delivery-log
row, in one transaction), run its connector outside any transaction under a kept-alive lease,
and apply the outcome through the failure strategies (services/strategies.py), as the claim
holder only. A local step (update the lead, start a workflow, wait): all of it in one
transaction that holds the run's row lock."""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.reporting import report_failure
from webhooks_app.services.outbound import outbound_emit
from workflows_app.connectors.base import StepContext, StepResult
from workflows_app.connectors.email import email_send
from workflows_app.connectors.retell import call_create
from workflows_app.connectors.twilio import sms_send
from workflows_app.connectors.webhook import webhook_send
from workflows_app.models import (
    FINISH_FIELDS,
    TRY_CONTINUES,
    ActionType,
    CallLog,
    CallProvider,
    CallStatus,
    PreviousAttempt,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    StepToRun,
    WorkflowRun,
    WorkflowStep,
)
from workflows_app.services.dispatch import run_publish_marked
from workflows_app.services.leases import run_lease_kept
from workflows_app.services.local_steps import lead_update, wait, workflow_start
from workflows_app.services.strategies import (
    ACTION_ESCALATED,
    ACTION_STOPPED,
    StepDecision,
    business_hours_of,
    step_decide,
)

logger = logging.getLogger(__name__)

# Where error records say these failures happened: the task that runs them.
STEP_FUNCTION = "workflows_app.tasks.execute_run_step"
# A next step due within this many seconds is published at once (with a countdown) rather than
# left to beat's dispatcher; longer waits live in next_action_at only.
SHORT_WAIT_SECONDS = 30.0


def _call(ctx: StepContext) -> StepResult:
    result = call_create(ctx)
    # The call-ended webhook finds its run through this row. It may have arrived first (a very
    # short call) and made the row without a run: then the run is filled in.
    call, created = CallLog.objects.get_or_create(
        provider=CallProvider.RETELL,
        provider_call_id=result.provider_id,
        defaults={
            "organization_id": ctx.organization_id,
            "lead": ctx.lead,
            "workflow_run_id": ctx.run_id,
            "status": CallStatus.REGISTERED,
            "direction": "outbound",
            "to_number": ctx.lead.phone,
            "from_number": ctx.step.config_value("from_number") or settings.RETELL_FROM_NUMBER,
        },
    )
    if not created and call.workflow_run_id is None:
        CallLog.objects.filter(id=call.id, workflow_run__isnull=True).update(workflow_run_id=ctx.run_id, lead=ctx.lead)
    return result


STEP_RUNNERS: dict[str, Callable[[StepContext], StepResult]] = {
    ActionType.CALL: _call,
    ActionType.SMS: sms_send,
    ActionType.EMAIL: email_send,
    ActionType.WEBHOOK: webhook_send,
    ActionType.UPDATE_LEAD: lead_update,
    ActionType.START_WORKFLOW: workflow_start,
    ActionType.WAIT: wait,
}
# Steps that act only on mendhook's own database: each runs in one transaction with its
# attempt's row and outcome (_local_attempt), without a lease.
LOCAL_ACTIONS = frozenset({ActionType.UPDATE_LEAD, ActionType.START_WORKFLOW, ActionType.WAIT})


def step_idempotency_key(*, run_id: uuid.UUID, position: int, attempt: int, previous: PreviousAttempt | None) -> str:
    """One key per try of a step: the attempt that continues a try (after a transient failure,
    a lost worker, a lost claim) sends the key of the attempt before it; a new try (the retry
    strategy, a person's retry, a reset) gets a new one."""
    if previous is not None and previous.outcome in TRY_CONTINUES and previous.idempotency_key:
        return previous.idempotency_key
    return f"wf:{run_id}:{position}:{attempt}"


@dataclass(frozen=True)
class _Attempt:
    """One attempt whose outcome is committed, for what follows the commit."""

    run: WorkflowRun
    execution: StepExecution
    decision: StepDecision
    error: ProcessingError | None
    now: datetime


class _LocalStepFailed(Exception):
    """Raised out of a local step's transaction, so that whatever the step wrote before it
    failed rolls back with it; the failure is then recorded in a transaction of its own."""

    def __init__(self, error: ProcessingError, *, crashed: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.crashed = crashed


def _is_local(step: WorkflowStep | None) -> bool:
    return step is not None and step.action_type in LOCAL_ACTIONS


def _attempt_begin(found: StepToRun, *, task_id: str, worker: str, now: datetime) -> StepExecution:
    """The attempt's delivery-log row, not saved yet; any attempt left open is closed first."""
    run = found.run
    if found.attempt_open:
        # An attempt still open belonged to a worker that died before the healer noticed (this
        # message was redelivered, or the lease ran out).
        run.executions.filter(finished_at__isnull=True).update(outcome=StepOutcome.WORKER_LOST, finished_at=now)
    attempt = (found.previous.attempt if found.previous else 0) + 1
    return StepExecution(
        run=run,
        step=found.step,
        position=run.current_position,
        action_type=found.step.action_type if found.step else "",
        attempt=attempt,
        task_id=task_id,
        worker=worker[:255],
        started_at=now,
        idempotency_key=step_idempotency_key(
            run_id=run.id, position=run.current_position, attempt=attempt, previous=found.previous
        ),
    )


def _context(run: WorkflowRun, step: WorkflowStep, execution: StepExecution) -> StepContext:
    return StepContext(
        run_id=run.id,
        organization_id=run.organization_id,
        workflow_id=run.workflow_id,
        lead=run.lead,
        step=step,
        idempotency_key=execution.idempotency_key,
        now=execution.started_at,
    )


def _publish_marked(decision: StepDecision, now: datetime) -> StepDecision:
    """A next step (or short backoff) due within SHORT_WAIT_SECONDS is published right after
    the outcome commits: the outcome's own UPDATE sets the run's dispatch marker, so no second
    UPDATE is needed to claim the right to publish (dispatch.run_publish's)."""
    due = decision.fields.get("next_action_at")
    if decision.fields.get("status", RunStatus.ACTIVE) != RunStatus.ACTIVE or due is None:
        return decision
    if (due - now).total_seconds() > SHORT_WAIT_SECONDS:
        return decision
    return replace(decision, fields={**decision.fields, "dispatched_at": now})


def _local_attempt(
    found: StepToRun,
    *,
    task_id: str,
    worker: str,
    started_at: datetime,
    failure: ProcessingError | None = None,
) -> _Attempt:
    """A local step (LOCAL_ACTIONS) in the caller's transaction, the one that locked the run:
    the attempt's row, the step's own writes and the outcome commit together. A worker dying
    anywhere in it rolls all of it back and leaves the run as it was, due, so nothing is done
    twice and no lease or heartbeat is needed. With `failure`, the step is not run: its failure
    (raised by an earlier try of this transaction, rolled back) is recorded."""
    run, step = found.run, found.step
    assert step is not None  # _is_local
    execution = _attempt_begin(found, task_id=task_id, worker=worker, now=started_at)
    result: StepResult | None = None
    if failure is None:
        try:
            result = STEP_RUNNERS[step.action_type](_context(run, step, execution))
        except (OperationalError, InterfaceError):
            raise  # the database is unreachable: all of it rolls back and the task retries
        except ProcessingError as exc:
            raise _LocalStepFailed(exc, crashed=False) from exc
        except Exception as exc:  # a bug in a step becomes an error code, not a stuck run
            error = ProcessingError(f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)
            raise _LocalStepFailed(error, crashed=True) from exc
    now = timezone.now()
    decision = step_decide(
        run=run,
        step=step,
        result=result,
        error=failure,
        now=now,
        hours=business_hours_of(run.organization),
        following=found.following,
    )
    decision = _publish_marked(decision, now)
    if not WorkflowRun.objects.finish_local_step(run_id=run.id, task_id=task_id, now=now, **decision.fields):
        # The row is locked by this transaction since lock_for_step: nobody could move it.
        raise RuntimeError(f"workflow run {run.id} changed under its row lock")
    _attempt_record(run, execution, decision, result, failure, now, save=execution.save)
    return _Attempt(run, execution, decision, failure, now)


def _attempt_record(
    run: WorkflowRun,
    execution: StepExecution,
    decision: StepDecision,
    result: StepResult | None,
    error: ProcessingError | None,
    now: datetime,
    *,
    save: Callable[[], None],
) -> None:
    execution.record(
        outcome=decision.outcome,
        now=now,
        error=error.message if error else "",
        error_code=str(error.code) if error else "",
        provider_id=result.provider_id if result else "",
        action=decision.action,
    )
    save()
    if decision.fields.get("status") == RunStatus.FAILED:
        _emit_failed(run, execution, error, now)


def _local_failure_record(run_id: uuid.UUID, task_id: str, worker: str, failed: _LocalStepFailed) -> _Attempt | None:
    if failed.crashed:
        report_failure(
            logger,
            "workflow run %s: its step crashed",
            run_id,
            level=logging.ERROR,
            workflow_run_id=run_id,
            error_code=ErrorCode.INTERNAL,
            function=STEP_FUNCTION,
            action="step_local",
            exc_info=True,
        )
    started_at = timezone.now()
    with transaction.atomic():
        found = WorkflowRun.objects.lock_for_step(run_id=run_id, task_id=task_id, now=started_at)
        if found is None or not _is_local(found.step):
            return None  # a person acted on the run meanwhile: the failure is not applied
        return _local_attempt(found, task_id=task_id, worker=worker, started_at=started_at, failure=failed.error)


def _claim(found: StepToRun, *, task_id: str, worker: str, now: datetime) -> StepExecution:
    """Claim a step that waits on a provider under a lease, in the transaction that locked the
    run; the claim and its delivery-log row commit together, so no attempt goes unlogged
    whenever the worker dies."""
    lease_until = now + timedelta(seconds=settings.WORKFLOW_LEASE_SECONDS)
    run = found.run
    if not WorkflowRun.objects.claim(run_id=run.id, task_id=task_id, now=now, lease_until=lease_until):
        raise RuntimeError(f"workflow run {run.id} changed under its row lock")
    execution = _attempt_begin(found, task_id=task_id, worker=worker, now=now)
    execution.save()
    return execution


def run_step_execute(*, run_id: uuid.UUID, task_id: str, worker: str) -> StepOutcome | None:
    """Run the current step of the run once. Returns the attempt's outcome, or None when the run
    was not this message's to execute (not due, claimed by another, finished)."""
    now = timezone.now()
    local: _Attempt | None = None
    claimed: tuple[StepToRun, StepExecution] | None = None
    try:
        with transaction.atomic():
            found = WorkflowRun.objects.lock_for_step(run_id=run_id, task_id=task_id, now=now)
            if found is not None and _is_local(found.step):
                local = _local_attempt(found, task_id=task_id, worker=worker, started_at=now)
            elif found is not None:
                claimed = found, _claim(found, task_id=task_id, worker=worker, now=now)
    except _LocalStepFailed as failed:
        local = _local_failure_record(run_id, task_id, worker, failed)
        if local is None:
            _not_claimable(run_id, task_id)
            return None
    if local is not None:
        return _after_commit(local)
    if claimed is None:
        _not_claimable(run_id, task_id)
        return None
    found, execution = claimed
    run, step = found.run, found.step
    if step is None:
        # The workflow was edited under the run: nothing to execute, whatever the strategy.
        missing = ProcessingError(
            f"the workflow has no step {run.current_position} any more", code=ErrorCode.VALIDATION
        )
        now = timezone.now()
        decision = StepDecision(
            StepOutcome.FAILED,
            {
                "status": RunStatus.FAILED,
                "step_status": StepStatus.FAILED,
                "failure_reason": missing.message,
                "failure_code": str(missing.code),
                "next_action_at": None,
                "finished_at": now,
            },
            ACTION_STOPPED,
        )
        return _finish(run, execution, decision, None, missing, task_id, now)

    result: StepResult | None = None
    error: ProcessingError | None = None
    try:
        # Network I/O outside any transaction; the heartbeat keeps the short lease alive.
        with run_lease_kept(run_id=run.id, task_id=task_id):
            result = STEP_RUNNERS[step.action_type](_context(run, step, execution))
    except ProcessingError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - a bug in a step becomes an error code, not a stuck run
        report_failure(
            logger,
            "workflow run %s: step %s crashed",
            run.id,
            step.position,
            level=logging.ERROR,
            organization_id=run.organization_id,
            workflow_run_id=run.id,
            lead_id=run.lead_id,
            error_code=ErrorCode.INTERNAL,
            function=STEP_FUNCTION,
            action=f"step_{step.action_type}",
            exc_info=True,
        )
        error = ProcessingError(f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)
    now = timezone.now()
    # The next step's position is read again: the workflow may have been edited meanwhile.
    decision = step_decide(
        run=run, step=step, result=result, error=error, now=now, hours=business_hours_of(run.organization)
    )
    return _finish(run, execution, decision, result, error, task_id, now)


def _not_claimable(run_id: uuid.UUID, task_id: str) -> None:
    logger.info("workflow run %s not claimable; message %s does nothing", run_id, task_id)
    WorkflowRun.objects.release_dispatch(run_id=run_id)


def _finish(
    run: WorkflowRun,
    execution: StepExecution,
    decision: StepDecision,
    result: StepResult | None,
    error: ProcessingError | None,
    task_id: str,
    now: datetime,
) -> StepOutcome | None:
    decision = _publish_marked(decision, now)
    with transaction.atomic():
        # Only the claim holder may apply the outcome; a takeover after the lease ran out wins.
        if not WorkflowRun.objects.finish_step(run_id=run.id, task_id=task_id, now=now, **decision.fields):
            execution.finish(outcome=StepOutcome.CLAIM_LOST, now=now, error=error.message if error else "")
            report_failure(
                logger,
                "workflow run %s was taken over before attempt %s of step %s finished",
                run.id,
                execution.attempt,
                execution.position,
                workflow_run_id=run.id,
                function=STEP_FUNCTION,
                action="record_outcome",
            )
            return None
        _attempt_record(
            run,
            execution,
            decision,
            result,
            error,
            now,
            save=lambda: execution.save(update_fields=FINISH_FIELDS),
        )
    return _after_commit(_Attempt(run, execution, decision, error, now))


def _after_commit(attempt: _Attempt) -> StepOutcome:
    """Reporting and publishing the next step, once the outcome is committed."""
    if attempt.error is not None:
        _report(attempt.run, attempt.execution, attempt.decision, attempt.error)
    marked_at = attempt.decision.fields.get("dispatched_at")
    if marked_at is not None:
        # The next step (or a short backoff) is published at once; beat covers a lost message.
        wait = (attempt.decision.fields["next_action_at"] - attempt.now).total_seconds()
        run_publish_marked(run_id=attempt.run.id, marked_at=marked_at, countdown=wait if wait > 0 else None)
    return attempt.decision.outcome


def _emit_failed(run: WorkflowRun, execution: StepExecution, error: ProcessingError | None, now: datetime) -> None:
    """workflow_run.failed to the organization's subscribed endpoints, in the failing move's
    transaction (a run fails once per round: the key is the run and the failing attempt)."""
    outbound_emit(
        organization_id=run.organization_id,
        event_type="workflow_run.failed",
        key=f"workflow_run:{run.id}:failed:{execution.position}:{execution.attempt}",
        payload={
            "run_id": str(run.id),
            "workflow_id": run.workflow_id,
            "lead_id": run.lead_id,
            "step": {"position": execution.position, "action_type": execution.action_type},
            "error": error.message if error else "",
            "error_code": str(error.code) if error else "",
        },
        now=now,
    )


def _report(run: WorkflowRun, execution: StepExecution, decision: StepDecision, error: ProcessingError) -> None:
    if decision.outcome in (StepOutcome.RETRY_SCHEDULED, StepOutcome.DEFERRED):
        # One try of several, or held back by a guard rail: the delivery log shows it; the
        # failure, if it stays, is reported once.
        logger.info(
            "workflow run %s: step %s attempt %s failed, trying again: [%s] %s",
            run.id,
            execution.position,
            execution.attempt,
            error.code,
            error.message,
        )
        return
    serious = decision.action in (ACTION_ESCALATED, ACTION_STOPPED)
    report_failure(
        logger,
        "workflow run %s: step %s (%s) failed: [%s] %s (%s)",
        run.id,
        execution.position,
        execution.action_type or "missing",
        error.code,
        error.message,
        decision.action,
        level=logging.ERROR if serious else logging.WARNING,
        organization_id=run.organization_id,
        workflow_run_id=run.id,
        lead_id=run.lead_id,
        error_code=error.code,
        function=STEP_FUNCTION,
        action=decision.action or "step_failed",
        payload={
            "step": execution.position,
            "attempt": execution.attempt,
            "idempotency_key": execution.idempotency_key,
        },
    )
