"""The event record (its own outbox) and the delivery log of processing attempts."""

import uuid
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import F, Q
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


# States a person has to look at; a retry may start from any of them.
NEEDS_ATTENTION = (EventStatus.PARTIAL_FAILURE, EventStatus.FAILED, EventStatus.DEAD_LETTER)


class EventAction(models.TextChoices):
    """What processing did, in the seed's contract (success + action + failure_details)."""

    CREATED_TASKS = "created_tasks", "Created tasks"
    PARTIAL_FAILURE = "partial_failure", "Partial failure"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Ignored (no handler or no templates)"
    MANUALLY_RESOLVED = "manually_resolved", "Manually resolved"


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def claim(self, *, event_id: uuid.UUID, task_id: str, now: datetime, lease_until: datetime) -> bool:
        """Take the event for one processing attempt. Exactly one caller wins.

        Claimable: waiting events; a due retry; an event whose claim is held by this very
        message (redelivered after its worker died: acks_late + reject_on_worker_lost); an
        event whose lease ran out (its worker is gone).
        """
        claimable = (
            Q(status__in=[EventStatus.RECEIVED, EventStatus.QUEUED])
            | Q(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=now)
            | Q(status=EventStatus.PROCESSING, claimed_by=task_id)
            | Q(status=EventStatus.PROCESSING, claimed_until__lt=now)
        )
        updated = self.filter(claimable, id=event_id).update(
            status=EventStatus.PROCESSING,
            claimed_by=task_id,
            claimed_until=lease_until,
            attempts=F("attempts") + 1,
            round_attempts=F("round_attempts") + 1,
            last_attempt_at=now,
            next_retry_at=None,
            updated_at=now,
        )
        return updated == 1


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
            # The dashboard (ops_app.selectors): partial failures of the last days, per day, and
            # their failed items; from the index alone for the counts.
            # (action and tasks_failed as keys, not INCLUDE: SQLite has no covering indexes.)
            models.Index(
                fields=["received_at", "action", "tasks_failed"],
                condition=Q(action__in=["partial_failure", "manually_resolved"]),
                name="event_partial_failures_idx",
            ),
            # Queue health: outcomes of the last 24 h, from the index alone.
            models.Index(fields=["organization", "completed_at", "status"], name="event_org_completed_idx"),
            # Queue health: waiting events and scheduled retries, a small share of all events.
            models.Index(
                fields=["organization", "status", "updated_at"],
                condition=Q(status__in=["received", "queued", "retry_scheduled"]),
                name="event_org_open_idx",
            ),
            # /failures and /dead-letters: newest failures first without walking every event.
            models.Index(
                fields=["organization", "-received_at"],
                condition=Q(status__in=["partial_failure", "failed", "dead_letter", "retry_scheduled"]),
                name="event_org_failures_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"

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
