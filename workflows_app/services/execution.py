"""Executing one step of a run: claim it (with its delivery-log row, in one transaction), run
its connector outside any transaction under a kept-alive lease, and apply the outcome through
the failure strategies (services/strategies.py), as the claim holder only."""

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
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
    TRY_CONTINUES,
    ActionType,
    CallLog,
    CallProvider,
    CallStatus,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    WorkflowRun,
    WorkflowStep,
)
from workflows_app.services.dispatch import run_publish
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


def step_idempotency_key(*, run_id: uuid.UUID, position: int, attempt: int, previous: StepExecution | None) -> str:
    """One key per try of a step: the attempt that continues a try (after a transient failure,
    a lost worker, a lost claim) sends the key of the attempt before it; a new try (the retry
    strategy, a person's retry, a reset) gets a new one."""
    if previous is not None and previous.outcome in TRY_CONTINUES and previous.idempotency_key:
        return previous.idempotency_key
    return f"wf:{run_id}:{position}:{attempt}"


def _claim(
    run_id: uuid.UUID, task_id: str, worker: str, now: datetime
) -> tuple[WorkflowRun, WorkflowStep | None, StepExecution] | None:
    lease_until = now + timedelta(seconds=settings.WORKFLOW_LEASE_SECONDS)
    # The claim and its delivery-log row commit together, so no attempt goes unlogged whenever
    # the worker dies.
    with transaction.atomic():
        if not WorkflowRun.objects.claim(run_id=run_id, task_id=task_id, now=now, lease_until=lease_until):
            return None
        run = WorkflowRun.objects.select_related("workflow", "lead", "organization").get(id=run_id)
        # An attempt still open belonged to a worker that died before the healer noticed (this
        # message was redelivered, or the lease ran out).
        run.executions.filter(finished_at__isnull=True).update(outcome=StepOutcome.WORKER_LOST, finished_at=now)
        step = run.current_step()
        previous = run.executions.filter(position=run.current_position).order_by("-attempt").first()
        attempt = (previous.attempt if previous else 0) + 1
        execution = StepExecution.objects.create(
            run=run,
            step=step,
            position=run.current_position,
            action_type=step.action_type if step else "",
            attempt=attempt,
            task_id=task_id,
            worker=worker[:255],
            started_at=now,
            idempotency_key=step_idempotency_key(
                run_id=run.id, position=run.current_position, attempt=attempt, previous=previous
            ),
        )
    return run, step, execution


def run_step_execute(*, run_id: uuid.UUID, task_id: str, worker: str) -> StepOutcome | None:
    """Run the current step of the run once. Returns the attempt's outcome, or None when the run
    was not this message's to execute (not due, claimed by another, finished)."""
    claimed = _claim(run_id, task_id, worker, timezone.now())
    if claimed is None:
        logger.info("workflow run %s not claimable; message %s does nothing", run_id, task_id)
        WorkflowRun.objects.release_dispatch(run_id=run_id)
        return None
    run, step, execution = claimed
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

    ctx = StepContext(
        run_id=run.id,
        organization_id=run.organization_id,
        workflow_id=run.workflow_id,
        lead=run.lead,
        step=step,
        idempotency_key=execution.idempotency_key,
        now=execution.started_at,
    )
    result: StepResult | None = None
    error: ProcessingError | None = None
    try:
        # Network I/O outside any transaction; the heartbeat keeps the short lease alive.
        with run_lease_kept(run_id=run.id, task_id=task_id):
            result = STEP_RUNNERS[step.action_type](ctx)
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
    decision = step_decide(
        run=run, step=step, result=result, error=error, now=now, hours=business_hours_of(run.organization)
    )
    return _finish(run, execution, decision, result, error, task_id, now)


def _finish(
    run: WorkflowRun,
    execution: StepExecution,
    decision: StepDecision,
    result: StepResult | None,
    error: ProcessingError | None,
    task_id: str,
    now: datetime,
) -> StepOutcome | None:
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
        execution.finish(
            outcome=decision.outcome,
            now=now,
            error=error.message if error else "",
            error_code=str(error.code) if error else "",
            provider_id=result.provider_id if result else "",
            action=decision.action,
        )
        if decision.fields.get("status") == RunStatus.FAILED:
            _emit_failed(run, execution, error, now)
    if error is not None:
        _report(run, execution, decision, error)
    due = decision.fields.get("next_action_at")
    if decision.fields.get("status", RunStatus.ACTIVE) == RunStatus.ACTIVE and due is not None:
        wait = (due - now).total_seconds()
        if wait <= SHORT_WAIT_SECONDS:
            # The next step (or a short backoff) is published at once; beat covers a lost message.
            run_publish(run_id=run.id, countdown=wait if wait > 0 else None)
    return decision.outcome


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
