"""The event record (its own outbox) and the delivery log of processing attempts."""

import uuid
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.db.models.lookups import IsNull
from django.utils import timezone

from webhooks_app.models.sources import Organization, Source


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL_FAILURE = "partial_failure", "Partial failure"
    FAILED = "failed", "Failed"
    DEAD_LETTER = "dead_letter", "Dead letter"
    MANUALLY_RESOLVED = "manually_resolved", "Manually resolved"


class IllegalTransition(Exception):
    """A move the transition table does not allow: a bug in the caller, never user input."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"an event cannot move from '{source}' to '{target}'")
        self.source = source
        self.target = target


# Every move an event may make; nothing else writes `status` (the methods below do the writes).
TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    # Published (queued), or claimed by a worker that got a message before the row said so.
    EventStatus.RECEIVED: frozenset({EventStatus.QUEUED, EventStatus.PROCESSING}),
    # Back to received when the broker refused the publish, so the sweeper sends it again;
    # queued again when the healer re-publishes it (its wait starts afresh).
    EventStatus.QUEUED: frozenset({EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING}),
    # An attempt ends in an outcome; processing -> processing is a takeover (lease ran out,
    # or the same message redelivered after its worker died).
    EventStatus.PROCESSING: frozenset(
        {
            EventStatus.PROCESSING,
            EventStatus.SUCCEEDED,
            EventStatus.PARTIAL_FAILURE,
            EventStatus.FAILED,
            EventStatus.DEAD_LETTER,
            EventStatus.RETRY_SCHEDULED,
        }
    ),
    # Due and published by beat, claimed straight from a countdown message, pulled forward by a
    # person, or resolved by a person who dealt with it.
    EventStatus.RETRY_SCHEDULED: frozenset({EventStatus.QUEUED, EventStatus.PROCESSING, EventStatus.MANUALLY_RESOLVED}),
    # Needs a human: retried (requeued) or resolved by a person.
    EventStatus.PARTIAL_FAILURE: frozenset({EventStatus.QUEUED, EventStatus.MANUALLY_RESOLVED}),
    EventStatus.FAILED: frozenset({EventStatus.QUEUED, EventStatus.MANUALLY_RESOLVED}),
    EventStatus.DEAD_LETTER: frozenset({EventStatus.QUEUED, EventStatus.MANUALLY_RESOLVED}),
    EventStatus.SUCCEEDED: frozenset(),
    EventStatus.MANUALLY_RESOLVED: frozenset(),
}


def transition_check(source: str, target: str) -> None:
    """Raise IllegalTransition unless the table allows source -> target."""
    if target not in TRANSITIONS[EventStatus(source)]:
        raise IllegalTransition(source, target)


def sources_of(target: EventStatus) -> tuple[EventStatus, ...]:
    """Every status the table allows a move to `target` from."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


class StatusGroup(models.TextChoices):
    """What a status means to someone counting events. Every status is in exactly one group, so
    counts by group partition the events and add up (docs/architecture.md, "Counting")."""

    WAITING = "waiting", "Waiting for a worker"
    IN_FLIGHT = "in_flight", "In flight"
    # Failed, and an automatic retry is scheduled: not yet a person's problem.
    RETRY_PENDING = "retry_pending", "Failed, automatic retry pending"
    # Terminal-bad until a person acts (retry or resolve).
    NEEDS_HUMAN = "needs_human", "Needs a human"
    # Terminal-good.
    DONE = "done", "Done"


GROUP_OF_STATUS: dict[EventStatus, StatusGroup] = {
    EventStatus.RECEIVED: StatusGroup.WAITING,
    EventStatus.QUEUED: StatusGroup.WAITING,
    EventStatus.PROCESSING: StatusGroup.IN_FLIGHT,
    EventStatus.RETRY_SCHEDULED: StatusGroup.RETRY_PENDING,
    EventStatus.PARTIAL_FAILURE: StatusGroup.NEEDS_HUMAN,
    EventStatus.FAILED: StatusGroup.NEEDS_HUMAN,
    EventStatus.DEAD_LETTER: StatusGroup.NEEDS_HUMAN,
    EventStatus.SUCCEEDED: StatusGroup.DONE,
    EventStatus.MANUALLY_RESOLVED: StatusGroup.DONE,
}


def statuses_in(*groups: StatusGroup) -> tuple[EventStatus, ...]:
    """The statuses of the given groups, in EventStatus order."""
    return tuple(s for s in EventStatus if GROUP_OF_STATUS[s] in groups)


WAITING = statuses_in(StatusGroup.WAITING)
IN_FLIGHT = statuses_in(StatusGroup.IN_FLIGHT)
RETRY_PENDING = statuses_in(StatusGroup.RETRY_PENDING)
NEEDS_HUMAN = statuses_in(StatusGroup.NEEDS_HUMAN)
DONE = statuses_in(StatusGroup.DONE)
# The failures a person may act on: everything that needs one, and a scheduled retry they may
# pull forward or settle themselves.
ACTIONABLE = (*NEEDS_HUMAN, *RETRY_PENDING)
# What retention may delete once old enough: finished for good, or dead letters nobody took up
# (partial_failure and failed wait for a person however old they are).
RETAINABLE = (EventStatus.SUCCEEDED, EventStatus.MANUALLY_RESOLVED, EventStatus.DEAD_LETTER)


class EventAction(models.TextChoices):
    """What processing did, in the seed's contract (success + action + failure_details)."""

    CREATED_TASKS = "created_tasks", "Created tasks"
    PARTIAL_FAILURE = "partial_failure", "Partial failure"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Ignored (no handler or no templates)"
    MANUALLY_RESOLVED = "manually_resolved", "Manually resolved"


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def renew_claim(self, *, event_id: uuid.UUID, task_id: str, lease_until: datetime) -> bool:
        """Extend the lease of a claim `task_id` still holds (no status move). False: the claim
        was taken over or released."""
        held = self.filter(id=event_id, status=EventStatus.PROCESSING, claimed_by=task_id)
        return held.update(claimed_until=lease_until) == 1

    def claim(self, *, event_id: uuid.UUID, task_id: str, now: datetime, lease_until: datetime) -> bool:
        """Take the event for one processing attempt. Exactly one caller wins.

        Claimable: waiting events; a due retry; an event whose claim is held by this very
        message (redelivered after its worker died: acks_late + reject_on_worker_lost); an
        event whose lease ran out (its worker is gone).
        """
        claimable = (
            Q(status__in=WAITING)
            | Q(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now)
            | Q(status=EventStatus.PROCESSING, claimed_by=task_id)
            | Q(status=EventStatus.PROCESSING, claimed_until__lt=now)
        )
        return self._move(
            event_id=event_id,
            target=EventStatus.PROCESSING,
            when=claimable,
            now=now,
            claimed_by=task_id,
            claimed_until=lease_until,
            attempts=F("attempts") + 1,
            round_attempts=F("round_attempts") + 1,
            last_attempt_at=now,
            next_retry_at=None,
        )

    def _move(self, *, event_id: uuid.UUID, target: EventStatus, when: Q, now: datetime, **fields: Any) -> bool:
        """One conditional UPDATE: the row moves only if it is still in a status `when` allows,
        so of two racing callers exactly one wins and the other sees False."""
        return self.filter(when, id=event_id).update(status=target, updated_at=now, **fields) == 1

    def mark_queued(self, *, event_id: uuid.UUID, now: datetime) -> bool:
        """Published: a waiting event, or a retry that is due, is now `queued` so sweeps stop
        re-sending it. A retry scheduled for later stays as it is."""
        waiting = Q(status__in=WAITING) | Q(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now)
        return self._move(event_id=event_id, target=EventStatus.QUEUED, when=waiting, now=now)

    def mark_unpublished(self, *, event_id: uuid.UUID, now: datetime) -> bool:
        """The broker refused the publish: `received` again, for the sweeper."""
        return self._move(event_id=event_id, target=EventStatus.RECEIVED, when=Q(status=EventStatus.QUEUED), now=now)

    def finish(self, *, event_id: uuid.UUID, task_id: str, target: EventStatus, now: datetime, **fields: Any) -> bool:
        """Record an attempt's outcome. Only the claim holder may: False when another worker
        took the event over after this attempt's lease ran out."""
        transition_check(EventStatus.PROCESSING, target)
        if target == EventStatus.PROCESSING:
            raise IllegalTransition(EventStatus.PROCESSING, target)  # a takeover is a claim
        held = Q(status=EventStatus.PROCESSING, claimed_by=task_id)
        return self._move(
            event_id=event_id, target=target, when=held, now=now, claimed_by="", claimed_until=None, **fields
        )

    def requeue(self, *, event_id: uuid.UUID, now: datetime) -> bool:
        """A person's retry: a new round (the transient budget applies afresh) that re-runs only
        what failed."""
        return self._move(
            event_id=event_id,
            target=EventStatus.QUEUED,
            when=Q(status__in=ACTIONABLE),
            now=now,
            round_attempts=0,
            next_retry_at=None,
        )

    def resolve(self, *, event_id: uuid.UUID, now: datetime) -> bool:
        """A person dealt with the failure outside mendhook."""
        return self._move(
            event_id=event_id,
            target=EventStatus.MANUALLY_RESOLVED,
            when=Q(status__in=sources_of(EventStatus.MANUALLY_RESOLVED)),
            now=now,
            success=True,
            action=EventAction.MANUALLY_RESOLVED,
            next_retry_at=None,
            completed_at=now,
        )

    def count_by_status(self) -> dict[EventStatus, int]:
        """Events per status, every status present (zero when none): the one way to count."""
        rows = self.order_by().values_list("status").annotate(n=models.Count("*"))
        counts = dict.fromkeys(EventStatus, 0)
        for status, n in rows:
            counts[EventStatus(status)] = n
        return counts


class WebhookEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="events")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="events")
    # webhook-id header, else the provider's event id, else a hash of the body.
    idempotency_key = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    entity_id = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    headers = models.JSONField(default=dict, help_text="The request headers that were verified")
    # The body byte for byte as signed: payload may differ where jsonb cannot hold the text
    # (NUL, lone surrogates). Null for events stored before it was kept.
    raw_body = models.BinaryField(null=True, editable=False)

    status = models.CharField(max_length=20, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    success = models.BooleanField(null=True)
    action = models.CharField(max_length=30, choices=EventAction.choices, blank=True)
    tasks_created = models.PositiveIntegerField(default=0)
    tasks_failed = models.PositiveIntegerField(default=0)
    # [{task_title, task_number, error, error_code}] for each failed item (seed contract).
    failure_details = models.JSONField(null=True, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    # Attempts since the last person- or recoverable-triggered retry; dead letter counts these.
    round_attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    recoverable_rounds = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=50, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)

    # The Celery task id holding the event, and until when (see WebhookEventQuerySet.claim).
    claimed_by = models.CharField(max_length=255, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    received_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        permissions = [
            ("retry_event", "Can retry failed items and requeue dead letters"),
            ("resolve_event", "Can mark events manually resolved"),
        ]
        constraints = [
            # Makes a duplicate delivery, even a concurrent one, fail to insert a second row.
            models.UniqueConstraint(fields=["source", "idempotency_key"], name="uniq_event_per_source_key"),
        ]
        indexes = [
            models.Index(fields=["organization", "-received_at"], name="event_org_received_idx"),
            models.Index(fields=["status", "-received_at"], name="event_status_received_idx"),
            # Used by the sweeper that publishes events whose on-commit dispatch never happened.
            models.Index(fields=["received_at"], condition=Q(status="received"), name="event_undispatched_idx"),
            # Used by beat's due-retry dispatcher.
            models.Index(fields=["next_retry_at"], condition=Q(status="retry_scheduled"), name="event_retry_due_idx"),
            # Used by the healer that hands out events whose worker died.
            models.Index(fields=["claimed_until"], condition=Q(status="processing"), name="event_claim_expiry_idx"),
            # REST API delivery stats (ops_app.stats) read event_org_day_stats_idx: (organization,
            # UTC day by date_bin, status, event type, source) including attempts and received_at.
            # PostgreSQL >= 14 only, so it is made by migration 0006 and not declared here.
            # ---
            # The admin's events list, newest first (the changelist orders by -received_at, -pk),
            # and its "received" filter: the first page without sorting the table.
            models.Index(fields=["-received_at", "-id"], name="event_received_idx"),
            # The dashboard's per-day chart (ops_app.selectors.daily_partial_failures): partial
            # failures by status, open or resolved by a person, and their failed items; from the
            # index alone. The condition is the query's own predicate, so the planner can use it.
            # (status and tasks_failed as keys, not INCLUDE: SQLite has no covering indexes.)
            models.Index(
                fields=["received_at", "status", "tasks_failed"],
                condition=Q(status="partial_failure") | Q(status="manually_resolved", tasks_failed__gt=0),
                name="event_partial_failures_day_idx",
            ),
            # Queue health: outcomes of the last 24 h, from the index alone.
            models.Index(fields=["organization", "completed_at", "status"], name="event_org_completed_idx"),
            # Queue health: waiting events and scheduled retries, a small share of all events.
            models.Index(
                fields=["organization", "status", "updated_at"],
                condition=Q(status__in=["received", "queued", "retry_scheduled"]),
                name="event_org_open_idx",
            ),
            # Retention (ops_app.retention): the oldest finished events, in batches, without
            # walking the events a person or a worker still needs. Keep the statuses in step
            # with RETAINABLE below.
            models.Index(
                fields=["completed_at"],
                condition=Q(status__in=["succeeded", "manually_resolved", "dead_letter"]),
                name="event_retention_idx",
            ),
            # /failures and /dead-letters: newest failures first without walking every event.
            models.Index(
                fields=["organization", "-received_at"],
                condition=Q(status__in=["partial_failure", "failed", "dead_letter", "retry_scheduled"]),
                name="event_org_failures_idx",
            ),
            # Diagnostics (ops_app.diagnostics): the distinct locations an organization's events
            # name (payload data.location) and when each was last seen, by a skip scan, one
            # index probe per location instead of a pass over 30 days of events. Partial: most
            # events (calls, documents) carry no location and cost intake nothing here.
            models.Index(
                F("organization"),
                KT("payload__data__location"),
                F("received_at"),
                condition=Q(IsNull(KT("payload__data__location"), False)),
                name="event_org_location_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"

    def requeue(self, *, now: datetime) -> None:
        """This row's own move for a person's retry (the caller holds its row lock)."""
        if self.status not in ACTIONABLE:
            raise IllegalTransition(self.status, EventStatus.QUEUED)
        if not WebhookEvent.objects.requeue(event_id=self.id, now=now):
            raise IllegalTransition(self.status, EventStatus.QUEUED)
        self.status = EventStatus.QUEUED

    def resolve(self, *, now: datetime) -> None:
        """This row's own move when a person settles it (the caller holds its row lock)."""
        transition_check(self.status, EventStatus.MANUALLY_RESOLVED)
        if not WebhookEvent.objects.resolve(event_id=self.id, now=now):
            raise IllegalTransition(self.status, EventStatus.MANUALLY_RESOLVED)
        self.status = EventStatus.MANUALLY_RESOLVED

    @property
    def group(self) -> StatusGroup:
        return GROUP_OF_STATUS[EventStatus(self.status)]

    @property
    def response_body(self) -> dict[str, Any]:
        return {"id": str(self.id), "status": self.status}


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL_FAILURE = "partial_failure", "Partial failure"
    FAILED = "failed", "Failed"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
    DEAD_LETTER = "dead_letter", "Dead letter"
    # The worker died mid-attempt (SIGKILL, OOM); found open when the next attempt started.
    WORKER_LOST = "worker_lost", "Worker lost"
    # Another worker took the event over after this attempt's lease ran out.
    CLAIM_LOST = "claim_lost", "Claim lost"


class ProcessingAttempt(models.Model):
    """The delivery log: one row per processing attempt of an event."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    task_id = models.CharField(max_length=255)
    worker = models.CharField(max_length=255, help_text="hostname:pid of the worker process")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["event", "number"]
        constraints = [models.UniqueConstraint(fields=["event", "number"], name="uniq_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.event_id}"

    def finish(self, *, outcome: str, error: str = "", error_code: str = "", now: datetime) -> None:
        self.finished_at = now
        self.duration_ms = max(0, int((now - self.started_at).total_seconds() * 1000))
        self.outcome = outcome
        self.error = error
        self.error_code = error_code
        self.save(update_fields=["finished_at", "duration_ms", "outcome", "error", "error_code"])
