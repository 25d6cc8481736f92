"""Acts on workflow runs (retry the step now, skip it, reset the run to a step, cancel it) and on
calls (retry their failed disposition actions). The state changes are workflows_app's services;
the plans mirror their checks, which decide again when the act runs."""

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ops_app.acts.base import Act, Change, Plan
from ops_app.models import AuditAct
from webhooks_app.services.operations import Actor
from workflows_app.models import ActionExecution, ActionExecutionStatus, CallLog, StepStatus, WorkflowRun
from workflows_app.services.dispositions import CallActRefused, call_retry_failed_actions
from workflows_app.services.operations import (
    CANCELLABLE,
    RESETTABLE,
    RETRYABLE,
    SKIPPABLE,
    RunActRefused,
    run_cancel,
    run_reset_to_step,
    run_retry_now,
    run_skip_step,
)

RUN_PERMISSION = "workflows_app.act_on_workflowrun"


def _run_planner(statuses: tuple[str, ...], verb: str) -> Callable[[Sequence[WorkflowRun]], list[Plan]]:
    def plan_many(runs: Sequence[WorkflowRun]) -> list[Plan]:
        plans = []
        for run in runs:
            if run.status not in statuses:
                plans.append(Plan(run, False, f"{run.get_status_display().lower()}: nothing to {verb}"))
            elif run.step_status == StepStatus.EXECUTING:
                # Its worker decides the attempt's outcome; a person acts once it has.
                plans.append(Plan(run, False, f"its step is executing right now; {verb} once it finishes"))
            else:
                plans.append(Plan(run, True))
        return plans

    return plan_many


def _retry(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return run_retry_now(run_id=target_id)


def _skip(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return run_skip_step(run_id=target_id)


def _reset(*, target_id: uuid.UUID, actor: Actor, note: str, position: int | None = None) -> Change:
    if position is None:
        raise RunActRefused("choose the step to reset the run to")
    return run_reset_to_step(run_id=target_id, position=position)


def _cancel(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return run_cancel(run_id=target_id, reason=note or f"cancelled by {actor.label}")


RETRY_STEP = Act(
    name=AuditAct.RETRY_RUN_STEP,
    title="Retry the current step now",
    button="Retry step now",
    verb="retry",
    permission=RUN_PERMISSION,
    model=WorkflowRun,
    needs_note=False,
    plan_many=_run_planner(RETRYABLE, "retry"),
    run=_retry,
    refused_by=RunActRefused,
)
SKIP_STEP = Act(
    name=AuditAct.SKIP_RUN_STEP,
    title="Skip the current step",
    button="Skip step",
    verb="skip",
    permission=RUN_PERMISSION,
    model=WorkflowRun,
    needs_note=True,
    plan_many=_run_planner(SKIPPABLE, "skip"),
    run=_skip,
    refused_by=RunActRefused,
)
RESET_TO_STEP = Act(
    name=AuditAct.RESET_RUN_TO_STEP,
    title="Reset the run to a step",
    button="Reset to step",
    verb="reset",
    permission=RUN_PERMISSION,
    model=WorkflowRun,
    needs_note=False,
    plan_many=_run_planner(RESETTABLE, "reset"),
    run=_reset,
    refused_by=RunActRefused,
)
CANCEL_RUN = Act(
    name=AuditAct.CANCEL_RUN,
    title="Cancel the run",
    button="Cancel run",
    verb="cancel",
    permission=RUN_PERMISSION,
    model=WorkflowRun,
    needs_note=False,
    plan_many=_run_planner(CANCELLABLE, "cancel"),
    run=_cancel,
    refused_by=RunActRefused,
)


def _call_planner(calls: Sequence[CallLog]) -> list[Plan]:
    failed: dict[Any, list[ActionExecution]] = {call.pk: [] for call in calls}
    executions = ActionExecution.objects.filter(call__in=list(calls), status=ActionExecutionStatus.FAILED)
    for execution in executions.order_by("call_id", "id"):
        failed[execution.call_id].append(execution)
    return [
        Plan(call, True, open_items=tuple(failed[call.pk]))
        if failed[call.pk]
        else Plan(call, False, "no failed actions")
        for call in calls
    ]


def _retry_actions(*, target_id: int, actor: Actor, note: str) -> Change:
    return call_retry_failed_actions(call_id=target_id)


RETRY_CALL_ACTIONS = Act(
    name=AuditAct.RETRY_CALL_ACTIONS,
    title="Retry failed actions",
    button="Retry failed actions",
    verb="retry",
    permission="workflows_app.retry_call_actions",
    model=CallLog,
    needs_note=False,
    plan_many=_call_planner,
    run=_retry_actions,
    refused_by=CallActRefused,
)

RUN_ACTS = (RETRY_STEP, SKIP_STEP, RESET_TO_STEP, CANCEL_RUN)
WORKFLOW_ACTS = (*RUN_ACTS, RETRY_CALL_ACTIONS)
