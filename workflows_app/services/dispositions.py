"""Disposition routing (seed 004 disposition-router, with the action tracking it lacked): the
call's disposition sets off its enabled actions, each run on its own and recorded in an
ActionExecution, one failing never stopping the others (seed scenario 4).

The actions are also the items of the event that routed the call (EventItem key
"<call id>:<action id>"), so a failed action makes that event a partial failure, the event's
retries (automatic for transient errors, "retry failed items" for a person) re-run only the
failed actions, and a succeeded one is never run again."""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import EventItem, ItemStatus, WebhookEvent
from webhooks_app.reporting import report_failure
from webhooks_app.services.operations import EventChange, OperationError, event_retry_failed
from workflows_app.action_configs import ActionConfigError, action_config_validate
from workflows_app.connectors.twilio import sms_post
from workflows_app.models import (
    OPEN_RUN_STATUSES,
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    DispositionAction,
    DispositionActionType,
    Lead,
    LeadStatus,
    Workflow,
    WorkflowRun,
)
from workflows_app.services.operations import RunActRefused, run_cancel
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start

logger = logging.getLogger(__name__)


def action_item_key(call_id: int, action_id: int) -> str:
    return f"{call_id}:{action_id}"


def _plan(call: CallLog, event: WebhookEvent) -> list[EventItem] | None:
    """The call's actions as this event's ledger, written once with their executions. None:
    another event of the call routed it already."""
    actions = list(
        DispositionAction.objects.filter(
            disposition__organization_id=call.organization_id, disposition__name=call.disposition, enabled=True
        )
        .select_related("disposition")
        .order_by("position", "id")
    )
    now = timezone.now()
    with transaction.atomic():
        # The claim, the executions and the items commit together: an event that dies after
        # the claim leaves its ledger behind for its own retry, never a routed call without one.
        if not CallLog.objects.route_claim(call_id=call.id, now=now):
            return None
        executions = [
            ActionExecution(
                call=call,
                action=action,
                action_type=action.action_type,
                lead_id=call.lead_id,
                idempotency_key=action_item_key(call.id, action.id),
            )
            for action in actions
        ]
        ActionExecution.objects.bulk_create(executions)
        items = [
            EventItem(
                event=event,
                number=number,
                title=f"{action.get_action_type_display()} ({action.disposition.name})"[:255],
                description=str(action.config)[:2000],
                idempotency_key=action_item_key(call.id, action.id),
            )
            for number, action in enumerate(actions, start=1)
        ]
        EventItem.objects.bulk_create(items)
    return items


def call_route(*, call: CallLog, event: WebhookEvent) -> list[EventItem] | None:
    """Plan the call's actions (first routing event only) and run this event's pending ones.
    Returns the event's whole ledger, or None when the event does not route the call."""
    items = list(event.items.order_by("number"))
    if not items:
        planned = _plan(call, event)
        if planned is None:
            return None
        items = planned
    pending = [i for i in items if i.status == ItemStatus.PENDING]
    executions = {
        e.idempotency_key: e
        for e in ActionExecution.objects.select_related("action").filter(
            idempotency_key__in=[i.idempotency_key for i in pending]
        )
    }
    for item in pending:
        execution = executions.get(item.idempotency_key)
        if execution is None:
            item.mark_failed(ProcessingError("the action's execution record is gone", code=ErrorCode.INTERNAL))
            continue
        _item_run(call, item, execution)
    return items


def _item_run(call: CallLog, item: EventItem, execution: ActionExecution) -> None:
    if execution.status == ActionExecutionStatus.SUCCEEDED:
        # It ran before its item was marked (a worker lost between the two): never again.
        item.mark_succeeded(downstream_id=execution.result[:200], assignee="")
        return
    started = time.monotonic()
    try:
        result = action_perform(call=call, execution=execution)
    except ProcessingError as error:
        failure: ProcessingError | None = error
    except Exception as exc:  # noqa: BLE001 - one action's bug must not stop the others
        # The traceback for the log and Sentry; the failed item is the error record.
        report_failure(
            logger,
            "disposition action %s crashed on call %s",
            execution.id,
            call.id,
            level=logging.ERROR,
            function="workflows_app.services.dispositions.action_perform",
            action=execution.action_type,
            organization_id=call.organization_id,
            error_record=False,
            exc_info=True,
        )
        failure = ProcessingError(f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)
    else:
        failure = None
    elapsed = int((time.monotonic() - started) * 1000)
    now = timezone.now()
    # The action's outcome and its item commit together, after the action's network call.
    with transaction.atomic():
        if failure is None:
            ActionExecution.objects.record_success(
                execution_id=execution.id, now=now, execution_time_ms=elapsed, result=result
            )
            item.mark_succeeded(downstream_id=result[:200], assignee="")
        else:
            ActionExecution.objects.record_failure(
                execution_id=execution.id,
                now=now,
                execution_time_ms=elapsed,
                error=failure.message,
                error_code=failure.code,
            )
            item.mark_failed(failure)


# --- The actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionContext:
    call: CallLog
    execution: ActionExecution
    config: dict[str, Any]

    def lead(self) -> Lead:
        # Read fresh for each action: an earlier action of the same call may have changed it.
        lead = Lead.objects.filter(id=self.call.lead_id).first() if self.call.lead_id else None
        if lead is None:
            raise ProcessingError("the call has no lead to act on", code=ErrorCode.VALIDATION)
        return lead


def _start_workflow(ctx: ActionContext) -> str:
    workflow_id = ctx.config["workflow_id"]
    workflow = Workflow.objects.filter(id=workflow_id, organization_id=ctx.call.organization_id).first()
    if workflow is None:
        raise ProcessingError(f"workflow {workflow_id} does not exist in this organization", code=ErrorCode.VALIDATION)
    try:
        run = run_start(workflow=workflow, lead=ctx.lead(), started_by=f"disposition on call {ctx.call.id}")
    except RunStartRefused as exc:
        raise ProcessingError(f"workflow {workflow.name!r} cannot start: {exc}", code=ErrorCode.VALIDATION) from None
    except RunAlreadyOpen as exc:
        # What the action asked for holds already: the lead is in the workflow.
        return f"run {exc.run.id} already open"
    return f"run {run.id} started"


def _stop_workflow(ctx: ActionContext) -> str:
    runs = WorkflowRun.objects.filter(lead=ctx.lead(), status__in=OPEN_RUN_STATUSES)
    target = ctx.config.get("workflow_id", "all")
    if target != "all":
        runs = runs.filter(workflow_id=target)
    cancelled, busy = [], []
    for run_id in runs.values_list("id", flat=True):
        try:
            run_cancel(run_id=run_id, reason=f"stopped by the disposition of call {ctx.call.id}")
        except RunActRefused as exc:
            busy.append(f"{run_id}: {exc}")
        else:
            cancelled.append(str(run_id))
    if busy:
        # Those cancelled stay cancelled; a retry finds only the busy ones still open.
        raise ProcessingError(f"runs not stopped yet: {'; '.join(busy)}", code=ErrorCode.RUN_BUSY)
    return f"cancelled {len(cancelled)} run(s)"


def _update_lead_status(ctx: ActionContext) -> str:
    lead = ctx.lead()
    status = LeadStatus(ctx.config["status"])
    Lead.objects.filter(id=lead.id).update(status=status, updated_at=timezone.now())
    return f"lead status {status}"


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _send_sms(ctx: ActionContext) -> str:
    lead = ctx.lead()
    if not lead.phone_valid:
        raise ProcessingError(f"lead {lead.name!r} has no valid phone number to text", code=ErrorCode.VALIDATION)
    body = ctx.config["body"].format_map(_Blank(name=lead.name))
    sid = sms_post(to=lead.phone, body=body, idempotency_key=ctx.execution.idempotency_key)
    return f"sms {sid}"


def _schedule_callback(ctx: ActionContext) -> str:
    lead = ctx.lead()
    # From the end of the call, so a retried action schedules the same moment.
    base = ctx.call.ended_at or timezone.now()
    callback_at = base + timedelta(minutes=ctx.config["delay_minutes"])
    Lead.objects.filter(id=lead.id).update(
        callback_at=callback_at, status=LeadStatus.CALLBACK, updated_at=timezone.now()
    )
    return f"callback at {callback_at.isoformat()}"


def _notify(ctx: ActionContext) -> str:
    """The team hears of the call through the alert webhook (Slack-compatible, ALERT_WEBHOOK_URL)
    when one is configured; else the note goes to the log as information: it is no failure, so
    it is no error record either."""
    lead_name = ctx.call.lead.name if ctx.call.lead else "unknown lead"
    text = f"{ctx.config['message']} (call {ctx.call.id}, {lead_name}, disposition {ctx.call.disposition!r})"
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if not url:
        logger.info("disposition notification: %s", text)
        return "logged (no ALERT_WEBHOOK_URL)"
    try:
        response = httpx.post(
            url,
            json={"text": text, "call_id": ctx.call.id},
            headers={"Idempotency-Key": ctx.execution.idempotency_key},
            timeout=settings.MENDHOOK_HTTP_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException as exc:
        raise ProcessingError(f"notification webhook timed out: {exc!r}", code=ErrorCode.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise ProcessingError(f"notification webhook unreachable: {exc!r}", code=ErrorCode.CONNECTION) from exc
    if response.status_code >= 500:
        raise ProcessingError(f"notification webhook failed: {response.status_code}", code=ErrorCode.CLIO_API_FAILED)
    if response.status_code >= 400:
        raise ProcessingError(
            f"notification webhook refused: {response.status_code}", code=ErrorCode.DOWNSTREAM_REJECTED
        )
    return "notified"


ACTIONS: dict[str, Callable[[ActionContext], str]] = {
    DispositionActionType.START_WORKFLOW: _start_workflow,
    DispositionActionType.STOP_WORKFLOW: _stop_workflow,
    DispositionActionType.UPDATE_LEAD_STATUS: _update_lead_status,
    DispositionActionType.SEND_SMS: _send_sms,
    DispositionActionType.SCHEDULE_CALLBACK: _schedule_callback,
    DispositionActionType.NOTIFY: _notify,
}


def action_perform(*, call: CallLog, execution: ActionExecution) -> str:
    """Run one action; return what it did. Raises ProcessingError with a catalogue code."""
    action = execution.action
    if action is None:
        raise ProcessingError("the disposition action was deleted", code=ErrorCode.VALIDATION)
    try:
        config = action_config_validate(action.action_type, action.config)
    except ActionConfigError as exc:
        raise ProcessingError(str(exc), code=ErrorCode.VALIDATION) from None
    return ACTIONS[action.action_type](ActionContext(call=call, execution=execution, config=config))


# --- Retrying --------------------------------------------------------------------------------


class CallActRefused(Exception):
    """Nothing to retry on the call as it is now. Safe to show."""


def call_retry_failed_actions(*, call_id: int, **_: Any) -> EventChange:
    """Re-run only the call's failed actions: a new round of the event that routed the call,
    whose ledger they are (succeeded actions are never touched again)."""
    failed_keys = list(
        ActionExecution.objects.filter(call_id=call_id, status=ActionExecutionStatus.FAILED).values_list(
            "idempotency_key", flat=True
        )
    )
    if not failed_keys:
        raise CallActRefused("the call has no failed actions")
    event_id: uuid.UUID | None = (
        EventItem.objects.filter(idempotency_key__in=failed_keys).values_list("event_id", flat=True).first()
    )
    if event_id is None:
        raise CallActRefused("the failed actions belong to no event any more")
    try:
        return event_retry_failed(event_id=event_id)
    except OperationError as exc:
        raise CallActRefused(str(exc)) from None
