"""What a person (or a disposition) may do to a run: retry the current step now, skip it, reset
the run to a step, cancel it. Each is one conditional move (WorkflowRunQuerySet.person_move),
never under a running attempt; the act flow (ops_app.acts) audits them."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from workflows_app.models import RunStatus, StepStatus, WorkflowRun, WorkflowStep


class RunActRefused(Exception):
    """The act does not apply to the run as it is now. Safe to show."""


@dataclass(frozen=True)
class RunChange:
    run: WorkflowRun
    status_before: str
    status_after: str


# Statuses each act applies from (step executing is always excluded: its worker decides).
RETRYABLE = (RunStatus.ACTIVE, RunStatus.NEEDS_REVIEW, RunStatus.FAILED)
SKIPPABLE = (RunStatus.ACTIVE, RunStatus.NEEDS_REVIEW, RunStatus.FAILED)
RESETTABLE = (RunStatus.ACTIVE, RunStatus.NEEDS_REVIEW, RunStatus.FAILED)
CANCELLABLE = (RunStatus.ACTIVE, RunStatus.NEEDS_REVIEW, RunStatus.FAILED)


def next_position(workflow_id: int, position: int) -> int | None:
    """The position of the step after `position`, or None when it was the last."""
    return (
        WorkflowStep.objects.filter(workflow_id=workflow_id, position__gt=position)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )


class Unread:
    """The next step's position was not read with the run: advance_fields reads it."""


UNREAD = Unread()


def advance_fields(
    *,
    workflow_id: int,
    position: int,
    now: datetime,
    step_status: StepStatus,
    following: int | Unread | None = UNREAD,
) -> dict[str, Any]:
    """The fields that move a run past the step at `position`: to the next step (`following`,
    read here unless the caller read it already), due now, or, after the last step, to
    completed with `step_status` (completed, skipped or failed) kept as the last step's."""
    if isinstance(following, Unread):
        following = next_position(workflow_id, position)
    fresh = {"retry_count": 0, "transient_attempts": 0, "failure_reason": "", "failure_code": ""}
    if following is None:
        return {
            **fresh,
            "status": RunStatus.COMPLETED,
            "step_status": step_status,
            "next_action_at": None,
            "finished_at": now,
        }
    return {
        **fresh,
        "status": RunStatus.ACTIVE,
        "current_position": following,
        "step_status": StepStatus.PENDING,
        "next_action_at": now,
        "finished_at": None,
    }


def _acted(run_id: uuid.UUID, before: str, moved: bool, refusal: str) -> RunChange:
    if not moved:
        raise RunActRefused(refusal)
    run = WorkflowRun.objects.get(id=run_id)
    return RunChange(run=run, status_before=before, status_after=run.status)


def _reopening(run_id: uuid.UUID, move: Callable[[], bool]) -> bool:
    """A failed run made active again must not become a second open run for its lead."""
    try:
        with transaction.atomic():
            return move()
    except IntegrityError:
        raise RunActRefused("another run of this workflow is already open for the lead") from None


def _load(run_id: uuid.UUID) -> WorkflowRun:
    try:
        return WorkflowRun.objects.get(id=run_id)
    except WorkflowRun.DoesNotExist:
        raise RunActRefused("no such workflow run") from None


def _refusal(run: WorkflowRun, verb: str) -> str:
    if run.step_status == StepStatus.EXECUTING:
        return f"its step is executing right now; try again once it finishes to {verb}"
    return f"the run is {run.get_status_display().lower()}: nothing to {verb}"


def run_retry_now(*, run_id: uuid.UUID, **_: Any) -> RunChange:
    """The current step runs again as soon as a worker is free, with a fresh retry budget."""
    run = _load(run_id)
    now = timezone.now()
    moved = _reopening(
        run_id,
        lambda: WorkflowRun.objects.person_move(
            run_id=run_id,
            from_statuses=RETRYABLE,
            now=now,
            status=RunStatus.ACTIVE,
            step_status=StepStatus.PENDING,
            next_action_at=now,
            retry_count=0,
            transient_attempts=0,
            finished_at=None,
        ),
    )
    return _acted(run_id, run.status, moved, _refusal(run, "retry"))


def run_skip_step(*, run_id: uuid.UUID, **_: Any) -> RunChange:
    """Move past the current step without running it (the last step: the run completes)."""
    run = _load(run_id)
    now = timezone.now()
    fields = advance_fields(
        workflow_id=run.workflow_id, position=run.current_position, now=now, step_status=StepStatus.SKIPPED
    )
    moved = (
        WorkflowRun.objects.person_move(
            run_id=run_id,
            from_statuses=SKIPPABLE,
            now=now,
            **fields,
        )
        and WorkflowRun.objects.filter(id=run_id, current_position__gte=run.current_position).exists()
    )
    return _acted(run_id, run.status, moved, _refusal(run, "skip"))


def run_reset_to_step(*, run_id: uuid.UUID, position: int, **_: Any) -> RunChange:
    """Start again from the step at `position`, due now."""
    run = _load(run_id)
    if not WorkflowStep.objects.filter(workflow_id=run.workflow_id, position=position).exists():
        raise RunActRefused(f"the workflow has no step {position}")
    now = timezone.now()
    moved = _reopening(
        run_id,
        lambda: WorkflowRun.objects.person_move(
            run_id=run_id,
            from_statuses=RESETTABLE,
            now=now,
            status=RunStatus.ACTIVE,
            current_position=position,
            step_status=StepStatus.PENDING,
            next_action_at=now,
            retry_count=0,
            transient_attempts=0,
            failure_reason="",
            failure_code="",
            finished_at=None,
        ),
    )
    return _acted(run_id, run.status, moved, _refusal(run, "reset"))


def run_cancel(*, run_id: uuid.UUID, reason: str = "", **_: Any) -> RunChange:
    """Stop the run for good (a disposition's stop_workflow, or a person)."""
    run = _load(run_id)
    now = timezone.now()
    moved = WorkflowRun.objects.person_move(
        run_id=run_id,
        from_statuses=CANCELLABLE,
        now=now,
        status=RunStatus.CANCELLED,
        next_action_at=None,
        failure_reason=reason[:1000],
        finished_at=now,
    )
    return _acted(run_id, run.status, moved, _refusal(run, "cancel"))
