"""Replays: one request to retry every event matching a filter, worked off in the background at a
bounded rate, pollable and cancellable."""

import uuid
from datetime import datetime

from django.db import models

from ops_app.models.api_keys import ApiKey
from webhooks_app.models.sources import Organization, Source


class ReplayStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


# A replay in one of these states may still retry events; cancelling applies only to them.
REPLAY_ACTIVE = (ReplayStatus.PENDING, ReplayStatus.RUNNING)


class ReplayQuerySet(models.QuerySet["Replay"]):
    def cancel(self, *, replay_id: uuid.UUID, now: datetime) -> bool:
        """Stop a replay that is still going. The next batch reads the status first and stops;
        a batch already under way finishes, because it holds the row lock."""
        updated = self.filter(id=replay_id, status__in=REPLAY_ACTIVE).update(
            status=ReplayStatus.CANCELLED, finished_at=now, updated_at=now
        )
        return updated == 1


class Replay(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null: every organization (only staff can ask for that).
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="replays"
    )
    requested_by = models.CharField(max_length=200, help_text="API key prefix or username, as audited")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="replays")

    # The filter. Events received after the replay was requested (created_at) are never part of it.
    statuses = models.JSONField(help_text="Event statuses to retry")
    error_code = models.CharField(max_length=50, blank=True)
    # PROTECT: a deleted source must not silently widen the filter to every source.
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    received_after = models.DateTimeField(null=True, blank=True)
    received_before = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=20, choices=ReplayStatus.choices, default=ReplayStatus.PENDING)
    matched_events = models.PositiveIntegerField(help_text="Events matching when the replay was requested")
    matched_items = models.PositiveIntegerField(help_text="Failed or pending items of those events")
    done = models.PositiveIntegerField(default=0, help_text="Events queued for a retry")
    failed = models.PositiveIntegerField(default=0, help_text="Events that had nothing left to retry when reached")
    batch_size = models.PositiveIntegerField()
    events_per_second = models.FloatField()
    # Keyset position: the last event handled, in (received_at, id) order.
    cursor_received_at = models.DateTimeField(null=True, blank=True)
    cursor_event_id = models.UUIDField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReplayQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="replay_org_created_idx")]

    def __str__(self) -> str:
        return f"replay {self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in REPLAY_ACTIVE
