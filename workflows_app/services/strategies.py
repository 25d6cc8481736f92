"""What a step attempt's result does to its run: the seed's failure strategies, the transient
backoff before them, smart retry scheduling and escalation to review.

Order of decisions for a failed attempt:

1. Transient errors (timeout, connection, 5xx, 429, an unexpected exception) are tried again
   with backoff, WORKFLOW_TRANSIENT_TRIES tries in all (3): base * 2**(n-1) seconds plus up to
   25% jitter, never sooner than a 429's Retry-After. Step `retrying`, `transient_attempts` + 1,
   the same idempotency key. These tries are one *failure* of the step, not three.
2. Then (or at once, for a permanent error) the step's failure strategy:
   - skip -> outcome `skipped`, action `step_skipped_on_error`, the run moves on;
   - continue -> outcome `continued`, action `continued_despite_error`, the run moves on;
   - retry -> step `retrying`, `retry_count` + 1, next_action_at from smart scheduling
     (services/scheduling.py), action `scheduled_retry`, a new idempotency key;
   - stop -> run `failed` with `failure_reason` and `failure_code`.
3. Escalation, under the retry strategy: the failure that makes WORKFLOW_ESCALATE_AFTER_FAILURES
   (3) in a row (retry_count + 1 >= 3) sends the run to `needs_review` with an ERROR error
   record, instead of another retry. So escalation comes first and max_retries second: with the
   defaults (max_retries 3, escalation at 3) a step fails, retries, fails, retries, fails ->
   needs_review; the third retry never runs. A step whose max_retries runs out before the
   third failure (max_retries 0 or 1) ends as `stop` does: run failed, no review. Automatic
   retries of a step are min(max_retries, escalation - 1). A person's retry resets retry_count,
   so the count starts again. The other strategies fail a step once per try, so they never
   escalate by themselves.
"""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from webhooks_app.errors import DEFERRAL_CODES, ErrorCode, FailureKind, ProcessingError
from webhooks_app.models import Organization
from workflows_app.connectors.base import StepResult
from workflows_app.models import FailureStrategy, RunStatus, StepOutcome, StepStatus, WorkflowRun, WorkflowStep
from workflows_app.services.operations import UNREAD, Unread, advance_fields
from workflows_app.services.scheduling import BusinessHours, retry_at

# Seed actions recorded on the step execution.
ACTION_SKIPPED = "step_skipped_on_error"
ACTION_CONTINUED = "continued_despite_error"
ACTION_SCHEDULED_RETRY = "scheduled_retry"
ACTION_BACKOFF = "retry_with_backoff"
ACTION_ESCALATED = "escalated_to_review"
ACTION_STOPPED = "run_stopped"
ACTION_DEFERRED = "deferred_by_guard"

MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class StepDecision:
    outcome: StepOutcome
    fields: dict[str, Any] = field(default_factory=dict)  # the run's fields for finish_step
    action: str = ""


def business_hours_of(organization: Organization) -> BusinessHours:
    return BusinessHours(
        timezone=organization.timezone,
        start=organization.business_hours_start,
        end=organization.business_hours_end,
        days=frozenset(organization.business_days),
    )


def backoff_seconds(try_number: int, retry_after: float | None = None) -> float:
    """The wait before transient try `try_number` + 1: exponential with up to 25% jitter."""
    nominal = float(settings.WORKFLOW_BACKOFF_BASE_SECONDS) * 2.0 ** max(0, try_number - 1)
    return max(nominal * (1 + random.uniform(0, 0.25)), retry_after or 0.0)


def step_decide(
    *,
    run: WorkflowRun,
    step: WorkflowStep,
    result: StepResult | None,
    error: ProcessingError | None,
    now: datetime,
    hours: BusinessHours,
    following: int | Unread | None = UNREAD,
) -> StepDecision:
    """`following`: the next step's position, when the caller read it with the run."""
    if error is None:
        fields = advance_fields(
            workflow_id=run.workflow_id,
            position=step.position,
            now=now,
            step_status=StepStatus.COMPLETED,
            following=following,
        )
        if result is not None and result.next_action_at is not None and fields["status"] == RunStatus.ACTIVE:
            fields["next_action_at"] = result.next_action_at
        return StepDecision(StepOutcome.SUCCEEDED, fields)

    failure = {"failure_reason": error.message[:MAX_REASON_CHARS], "failure_code": str(error.code)}
    if error.code in DEFERRAL_CODES:
        # Held back by our own guard rails (breaker open, outbound rate limit): the provider was
        # not asked, so no try is used up; the step waits until the guard lets it through.
        fields = {
            **failure,
            "step_status": StepStatus.RETRYING,
            "next_action_at": now + timedelta(seconds=max(error.retry_after or 0.0, 1.0)),
        }
        return StepDecision(StepOutcome.DEFERRED, fields, ACTION_DEFERRED)
    if error.kind == FailureKind.TRANSIENT and run.transient_attempts + 1 < settings.WORKFLOW_TRANSIENT_TRIES:
        delay = backoff_seconds(run.transient_attempts + 1, error.retry_after)
        fields = {
            **failure,
            "step_status": StepStatus.RETRYING,
            "transient_attempts": run.transient_attempts + 1,
            "next_action_at": now + timedelta(seconds=delay),
        }
        return StepDecision(StepOutcome.RETRY_SCHEDULED, fields, ACTION_BACKOFF)

    strategy = step.failure_strategy
    if strategy == FailureStrategy.SKIP:
        fields = advance_fields(
            workflow_id=run.workflow_id,
            position=step.position,
            now=now,
            step_status=StepStatus.SKIPPED,
            following=following,
        )
        return StepDecision(StepOutcome.SKIPPED, fields, ACTION_SKIPPED)
    if strategy == FailureStrategy.CONTINUE:
        fields = advance_fields(
            workflow_id=run.workflow_id,
            position=step.position,
            now=now,
            step_status=StepStatus.FAILED,
            following=following,
        )
        return StepDecision(StepOutcome.CONTINUED, fields, ACTION_CONTINUED)
    if strategy == FailureStrategy.RETRY:
        if run.retry_count + 1 >= settings.WORKFLOW_ESCALATE_AFTER_FAILURES:
            fields = {
                **failure,
                "status": RunStatus.NEEDS_REVIEW,
                "step_status": StepStatus.FAILED,
                "next_action_at": None,
                "transient_attempts": 0,
            }
            return StepDecision(StepOutcome.FAILED, fields, ACTION_ESCALATED)
        if run.retry_count < step.max_retries:
            reset = None
            if error.code == ErrorCode.RATE_LIMITED and error.retry_after:
                reset = now + timedelta(seconds=error.retry_after)
            at = retry_at(
                now=now, hours=hours, delay=timedelta(minutes=step.retry_delay_minutes), rate_limit_reset=reset
            )
            fields = {
                **failure,
                "step_status": StepStatus.RETRYING,
                "retry_count": run.retry_count + 1,
                "transient_attempts": 0,
                "next_action_at": at,
            }
            return StepDecision(StepOutcome.FAILED, fields, ACTION_SCHEDULED_RETRY)
        # Retries spent: as stop.
    fields = {
        **failure,
        "status": RunStatus.FAILED,
        "step_status": StepStatus.FAILED,
        "next_action_at": None,
        "finished_at": now,
    }
    return StepDecision(StepOutcome.FAILED, fields, ACTION_STOPPED)
