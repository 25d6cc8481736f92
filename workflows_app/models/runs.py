"""A workflow run per (workflow, lead) (the seed's lead_workflow_progress) and the log of its step
attempts. A run's state is two fields, the run's `status` and its current step's `step_status`;
every move is one conditional UPDATE below, checked against RUN_TRANSITIONS, so two workers (or
a worker and a person) racing for the same run cannot both win."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, Subquery
from django.db.models.functions import JSONObject

from webhooks_app.models import Organization
from workflows_app.models.leads import Lead
from workflows_app.models.workflows import Workflow, WorkflowStep


class RunStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # Failed often enough that a person decides (seed: "3+ failures -> manual review").
    NEEDS_REVIEW = "needs_review", "Needs review"


class StepStatus(models.TextChoices):
    """The current step's status, exactly the seed's list."""

    PENDING = "pending", "Pending"
    EXECUTING = "executing", "Executing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    RETRYING = "retrying", "Retrying"


# Runs a new start for the same (workflow, lead) must wait for: a run a person still has to
# decide on is not over.
OPEN_RUN_STATUSES = (RunStatus.ACTIVE, RunStatus.NEEDS_REVIEW)
# Step statuses the dispatcher picks up once next_action_at is due.
DUE_STEP_STATUSES = (StepStatus.PENDING, StepStatus.RETRYING)


class IllegalRunTransition(Exception):
    """A move the table does not allow: a bug in the caller, never user input."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"a workflow run cannot move from '{source}' to '{target}'")
        self.source = source
        self.target = target


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # Each step attempt ends the run (completed, failed), keeps it active (next step, retry),
    # or escalates it; a person may cancel it.
    RunStatus.ACTIVE: frozenset(
        {RunStatus.ACTIVE, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.NEEDS_REVIEW}
    ),
    # A person retries the step, skips it, resets to a step (active again) or gives up.
    RunStatus.NEEDS_REVIEW: frozenset({RunStatus.ACTIVE, RunStatus.FAILED, RunStatus.CANCELLED}),
    # A person may retry a failed run's step or reset it to a step.
    RunStatus.FAILED: frozenset({RunStatus.ACTIVE, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


def run_transition_check(source: str, target: str) -> None:
    if target not in RUN_TRANSITIONS[RunStatus(source)]:
        raise IllegalRunTransition(source, target)


def run_sources_of(target: RunStatus) -> tuple[RunStatus, ...]:
    return tuple(s for s, targets in RUN_TRANSITIONS.items() if target in targets)


def claimable(*, task_id: str, now: datetime) -> Q:
    """The runs whose current step `task_id` may take for one attempt: a due step; a step whose
    claim this very message holds (redelivered after its worker died); a step whose lease ran
    out (its worker is gone)."""
    return Q(status=RunStatus.ACTIVE) & (
        Q(step_status__in=DUE_STEP_STATUSES, next_action_at__lte=now)
        | Q(step_status=StepStatus.EXECUTING, claimed_by=task_id)
        | Q(step_status=StepStatus.EXECUTING, claimed_until__lt=now)
    )


@dataclass(frozen=True)
class PreviousAttempt:
    attempt: int
    outcome: str
    idempotency_key: str


@dataclass(frozen=True)
class StepToRun:
    """A run locked for an attempt of its current step, with what the attempt needs."""

    run: "WorkflowRun"
    # None when the workflow was edited under the run and has no step at its position any more.
    step: WorkflowStep | None
    # The latest attempt at the current position (its key may be the one to send again).
    previous: PreviousAttempt | None
    # Some attempt of the run was never finished: its worker died before anyone noticed.
    attempt_open: bool
    # The position of the step after the current one; None when the current one is the last.
    following: int | None


class WorkflowRunQuerySet(models.QuerySet["WorkflowRun"]):
    def _move(self, *, run_id: uuid.UUID, when: Q, now: datetime, **fields: Any) -> bool:
        """One conditional UPDATE: moves only if the row still matches `when`."""
        target = fields.get("status")
        if target is not None:
            sources = [s for s in RunStatus if target in RUN_TRANSITIONS[s]]
            when &= Q(status__in=sources)
        return self.filter(when, id=run_id).update(updated_at=now, **fields) == 1

    def due(self, *, now: datetime) -> "WorkflowRunQuerySet":
        """Runs whose current step is waiting to run and whose time has come."""
        return self.filter(status=RunStatus.ACTIVE, step_status__in=DUE_STEP_STATUSES, next_action_at__lte=now)

    def claim(self, *, run_id: uuid.UUID, task_id: str, now: datetime, lease_until: datetime) -> bool:
        """Take the run's current step for one attempt. Exactly one caller wins. Claimable: a
        due step; a step whose claim this very message holds (redelivered after its worker
        died); a step whose lease ran out (its worker is gone)."""
        return self._move(
            run_id=run_id,
            when=claimable(task_id=task_id, now=now),
            now=now,
            step_status=StepStatus.EXECUTING,
            claimed_by=task_id,
            claimed_until=lease_until,
            # The message that was published for it is consumed: the next due time needs a new one.
            dispatched_at=None,
        )

    def lock_for_step(self, *, run_id: uuid.UUID, task_id: str, now: datetime) -> StepToRun | None:
        """Lock the run's row if `task_id` may take its current step (as claim decides), and
        read, in that one query, the run with its lead and organization, the current
        step, the latest attempt at it, whether any attempt is still open and the next step's
        position. None: not this message's to execute. Call it inside a transaction: the lock
        lasts until it ends, so a second message for the run waits, then finds the step taken
        (PostgreSQL re-checks the row once the lock is released); SQLite's IMMEDIATE
        transactions serialize the writers instead."""
        attempts = StepExecution.objects.filter(run=OuterRef("pk"))
        latest = (
            attempts.filter(position=OuterRef("current_position"))
            .order_by("-attempt")
            .values(json=JSONObject(attempt="attempt", outcome="outcome", key="idempotency_key"))[:1]
        )
        following = (
            WorkflowStep.objects.filter(workflow=OuterRef("workflow_id"), position__gt=OuterRef("current_position"))
            .order_by("position")
            .values("position")[:1]
        )
        rows = (
            self.filter(claimable(task_id=task_id, now=now), id=run_id)
            .annotate(
                current=FilteredRelation(
                    "workflow__steps", condition=Q(workflow__steps__position=F("current_position"))
                ),
                latest_attempt=Subquery(latest),
                attempt_open=Exists(attempts.filter(finished_at__isnull=True)),
                following_position=Subquery(following),
            )
            # django-stubs does not know FilteredRelation aliases.
            .select_related("lead", "organization", "current")  # type: ignore[misc]
            .select_for_update(of=("self",))
            .order_by()
        )
        run = next(iter(rows), None)
        if run is None:
            return None
        latest_row: dict[str, Any] | None = getattr(run, "latest_attempt", None)
        return StepToRun(
            run=run,
            step=getattr(run, "current", None),
            previous=PreviousAttempt(
                attempt=int(latest_row["attempt"]), outcome=latest_row["outcome"], idempotency_key=latest_row["key"]
            )
            if latest_row
            else None,
            attempt_open=bool(getattr(run, "attempt_open", False)),
            following=getattr(run, "following_position", None),
        )

    def dispatch_batch(self, *, now: datetime, limit: int, redispatch_before: datetime) -> list[uuid.UUID]:
        """Mark up to `limit` due runs as published and return their ids; the caller publishes
        them. A run already marked is left alone until `redispatch_before` (its message was
        lost: a broker restart without persistence), so two dispatchers running at once never
        publish the same run twice: the rows are locked FOR UPDATE SKIP LOCKED, and a row the
        other dispatcher marked meanwhile no longer matches when PostgreSQL re-checks it. (On
        SQLite the IMMEDIATE transaction serializes the dispatchers instead.)"""
        unpublished = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=redispatch_before)
        with transaction.atomic():
            ids = list(
                self.due(now=now)
                .filter(unpublished)
                .order_by("next_action_at")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:limit]
            )
            if ids:
                self.filter(id__in=ids).update(dispatched_at=now)
        return ids

    def mark_dispatched(self, *, run_id: uuid.UUID, now: datetime) -> bool:
        """Claim the right to publish one run's message (a start, the next step right after the
        previous one, a short backoff). False: someone else published it already."""
        return (
            self.filter(id=run_id, status=RunStatus.ACTIVE, dispatched_at__isnull=True).update(dispatched_at=now) == 1
        )

    def release_dispatch(self, *, run_id: uuid.UUID) -> bool:
        """A message that found its run not yet due (it came early: clock skew between
        machines) gives the marker back, so the dispatcher publishes the run when it is due
        instead of after WORKFLOW_REDISPATCH_SECONDS."""
        waiting = self.filter(id=run_id, status=RunStatus.ACTIVE, step_status__in=DUE_STEP_STATUSES)
        return waiting.exclude(dispatched_at=None).update(dispatched_at=None) == 1

    def unmark_dispatched(self, *, run_id: uuid.UUID, marked_at: datetime) -> bool:
        """The publish failed: let the next dispatcher run try again."""
        return self.filter(id=run_id, dispatched_at=marked_at).update(dispatched_at=None) == 1

    def renew_claim(self, *, run_id: uuid.UUID, task_id: str, lease_until: datetime) -> bool:
        held = self.filter(id=run_id, step_status=StepStatus.EXECUTING, claimed_by=task_id)
        return held.update(claimed_until=lease_until) == 1

    def finish_step(self, *, run_id: uuid.UUID, task_id: str, now: datetime, **fields: Any) -> bool:
        """Apply an attempt's outcome (the caller computes the fields: next step, retry, end of
        run). Only the claim holder may: False when the run was taken over or a person acted."""
        held = Q(status=RunStatus.ACTIVE, step_status=StepStatus.EXECUTING, claimed_by=task_id)
        return self._move(run_id=run_id, when=held, now=now, claimed_by="", claimed_until=None, **fields)

    def finish_local_step(self, *, run_id: uuid.UUID, task_id: str, now: datetime, **fields: Any) -> bool:
        """Apply the outcome of a step run inside the transaction that locked the run
        (lock_for_step) and was never claimed in a committed row: the run must still be
        claimable by `task_id`, which the lock guarantees; a False is a bug in the caller."""
        fields.setdefault("dispatched_at", None)  # the message that was published for it is consumed
        return self._move(
            run_id=run_id,
            when=claimable(task_id=task_id, now=now),
            now=now,
            claimed_by="",
            claimed_until=None,
            **fields,
        )

    def heal(self, *, run_id: uuid.UUID, now: datetime, stuck_before: datetime) -> bool:
        """Seed healFailedWorkflows: a step executing with an expired lease (or, for rows
        without one, untouched since `stuck_before`) goes back to pending, due now. The step's
        idempotency key makes running it again safe."""
        stuck = Q(status=RunStatus.ACTIVE, step_status=StepStatus.EXECUTING) & (
            Q(claimed_until__lt=now) | Q(claimed_until__isnull=True, updated_at__lt=stuck_before)
        )
        return self._move(
            run_id=run_id,
            when=stuck,
            now=now,
            step_status=StepStatus.PENDING,
            next_action_at=now,
            claimed_by="",
            claimed_until=None,
            dispatched_at=None,
            heals=F("heals") + 1,
        )

    def person_move(self, *, run_id: uuid.UUID, from_statuses: tuple[str, ...], now: datetime, **fields: Any) -> bool:
        """A person's act (retry now, skip, reset, cancel): only from the statuses the act
        allows and never under a running attempt (executing steps are left to their worker)."""
        when = Q(status__in=from_statuses) & ~Q(step_status=StepStatus.EXECUTING)
        return self._move(run_id=run_id, when=when, now=now, **fields)


class WorkflowRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="workflow_runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="workflow_runs")
    # 1-based position of the current step (WorkflowStep.position).
    current_position = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    step_status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.PENDING)
    next_action_at = models.DateTimeField(null=True, blank=True)
    # Failures of the current step under the `retry` strategy (seed retry_count).
    retry_count = models.PositiveSmallIntegerField(default=0)
    # Transient failures (timeouts, 5xx, 429) of the current step's current try, retried with
    # backoff before the failure strategy applies.
    transient_attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    failure_code = models.CharField(max_length=50, blank=True)
    # The Celery task id executing the current step and until when (see claim).
    claimed_by = models.CharField(max_length=255, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When a message to execute the due step was published (dispatcher, start, the previous
    # step); cleared by the claim. Keeps two dispatchers from publishing the same run twice.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # Times the healer handed the step out again after its worker vanished.
    heals = models.PositiveIntegerField(default=0)
    # Who started it: "api:<key>", "admin:<user>", "disposition:<call id>", "workflow:<run id>".
    started_by = models.CharField(max_length=200, blank=True)
    parent_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("act_on_workflowrun", "Can retry, skip, reset and cancel workflow runs"),
            ("start_workflowrun", "Can start workflow runs"),
        ]
        constraints = [
            # Seed scenario 5: two concurrent starts for the same lead and workflow make one run.
            models.UniqueConstraint(
                fields=["workflow", "lead"],
                condition=Q(status__in=["active", "needs_review"]),
                name="uniq_open_run_per_workflow_lead",
            ),
        ]
        indexes = [
            # The dispatcher: due steps, oldest first.
            models.Index(
                fields=["next_action_at"],
                condition=Q(status="active", step_status__in=["pending", "retrying"]),
                name="run_due_idx",
            ),
            # The healer: executing steps by lease expiry.
            models.Index(fields=["claimed_until"], condition=Q(step_status="executing"), name="run_executing_idx"),
            models.Index(fields=["organization", "status", "-created_at"], name="run_org_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} for {self.lead}"

    def current_step(self) -> WorkflowStep | None:
        return self.workflow.steps.filter(position=self.current_position).first()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_RUN_STATUSES


class StepOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    # Transient failure; the step is tried again with backoff.
    RETRY_SCHEDULED = "retry_scheduled", "Failed, retry scheduled"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Failed, skipped (strategy skip)"
    CONTINUED = "continued", "Failed, continued (strategy continue)"
    # The worker died mid-attempt; found open by the healer or the next attempt.
    WORKER_LOST = "worker_lost", "Worker lost"
    # Deferred without counting as a failure (circuit open, rate limit window).
    DEFERRED = "deferred", "Deferred"
    # The lease ran out and another worker took the step over before this attempt finished:
    # its result was not applied.
    CLAIM_LOST = "claim_lost", "Claim lost"


# What an attempt's finish writes (StepExecution.record).
FINISH_FIELDS = ["outcome", "finished_at", "duration_ms", "error", "error_code", "provider_id", "action"]


class StepExecution(models.Model):
    """The workflow delivery log: one row per attempt of a step."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="executions")
    step = models.ForeignKey(WorkflowStep, null=True, on_delete=models.SET_NULL, related_name="+")
    # Snapshots: the step may be edited or removed later; the log says what ran.
    position = models.PositiveSmallIntegerField()
    action_type = models.CharField(max_length=20)
    attempt = models.PositiveIntegerField(help_text="1-based, across the run's attempts of this step")
    task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=StepOutcome.choices, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    # Sent with every provider request of this step try, so re-executing it (a worker died, the
    # healer handed it out again) cannot place a second call or SMS.
    idempotency_key = models.CharField(max_length=200)
    # Strategy action of the seed, where one applied: step_skipped_on_error,
    # continued_despite_error, scheduled_retry.
    action = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["run", "started_at", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position", "attempt"], name="uniq_step_execution_attempt")
        ]
        indexes = [
            models.Index(fields=["action_type", "started_at"], name="stepexec_type_started_idx"),
            models.Index(fields=["error_code"], name="stepexec_error_code_idx"),
        ]

    def __str__(self) -> str:
        return f"step {self.position} attempt {self.attempt} of {self.run_id}"

    def finish(
        self,
        *,
        outcome: StepOutcome,
        now: datetime,
        error: str = "",
        error_code: str = "",
        provider_id: str = "",
        action: str = "",
    ) -> None:
        self.record(
            outcome=outcome, now=now, error=error, error_code=error_code, provider_id=provider_id, action=action
        )
        self.save(
            update_fields=["outcome", "finished_at", "duration_ms", "error", "error_code", "provider_id", "action"]
        )

    def record(
        self,
        *,
        outcome: StepOutcome,
        now: datetime,
        error: str = "",
        error_code: str = "",
        provider_id: str = "",
        action: str = "",
    ) -> None:
        """Set the attempt's outcome without saving (an attempt inserted already finished)."""
        self.outcome = outcome
        self.finished_at = now
        self.duration_ms = max(0, int((now - self.started_at).total_seconds() * 1000))
        self.error = error[:10_000]
        self.error_code = error_code
        self.provider_id = provider_id[:200]
        self.action = action


# Outcomes after which the same try of the step goes on: the next attempt sends the same
# idempotency key, so a provider that already acted (the response was lost with the worker)
# answers with what it did the first time instead of acting twice.
TRY_CONTINUES = frozenset(
    {StepOutcome.RETRY_SCHEDULED, StepOutcome.WORKER_LOST, StepOutcome.DEFERRED, StepOutcome.CLAIM_LOST}
)
