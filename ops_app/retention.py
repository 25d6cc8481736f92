"""Retention: deleting what has been finished for long enough, in short batches.

Each batch is one short transaction: up to RETENTION_BATCH_SIZE ids, oldest first, taken with
FOR UPDATE SKIP LOCKED through a partial index (event_retention_idx), then the rows and their
items and attempts deleted by id. No long transaction, no table lock: intake keeps inserting
and a worker holding an event's row is skipped, not waited for. Two runs at once split the work
(SKIP LOCKED) instead of deleting the same rows twice.

Events a person still needs (partial_failure, failed) and anything not finished are never
selected, however old.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from ops_app.models import AuditEntry, ErrorRecord, RetentionRun
from webhooks_app.models import EventItem, Organization, ProcessingAttempt, WebhookEvent
from webhooks_app.models.events import RETAINABLE
from workflows_app.models import RunStatus, StepExecution

logger = logging.getLogger(__name__)

# Runs whose step log may go: over for good (a failed run may still be retried by a person).
FINISHED_RUNS = (RunStatus.COMPLETED, RunStatus.CANCELLED)


@dataclass
class Counts:
    events: int = 0
    items: int = 0
    attempts: int = 0
    error_records: int = 0
    audit_entries: int = 0
    step_executions: int = 0
    batches: int = 0


def _pause() -> None:
    # A breath between batches leaves the database to intake (bench: make bench, retention phase).
    if settings.MENDHOOK_RETENTION_BATCH_PAUSE_SECONDS:
        time.sleep(settings.MENDHOOK_RETENTION_BATCH_PAUSE_SECONDS)


def expired_events(*, cutoff: datetime, organization: Q) -> QuerySet[WebhookEvent]:
    """Events retention may delete: finished, and finished before `cutoff` (event_retention_idx)."""
    return WebhookEvent.objects.filter(organization, status__in=RETAINABLE, completed_at__lt=cutoff)


def _event_batch(*, cutoff: datetime, organization: Q, size: int, counts: Counts) -> int:
    with transaction.atomic():
        ids = list(
            expired_events(cutoff=cutoff, organization=organization)
            .order_by("completed_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:size]
        )
        if not ids:
            return 0
        # Children first, each one DELETE by event id; then the events, fetched as ids only
        # (Django's collector would otherwise load every payload to cascade).
        counts.items += EventItem.objects.filter(event_id__in=ids).delete()[0]
        counts.attempts += ProcessingAttempt.objects.filter(event_id__in=ids).delete()[0]
        _total, per_model = WebhookEvent.objects.filter(id__in=ids).only("id").delete()
        deleted = per_model.get(WebhookEvent._meta.label, 0)
    counts.events += deleted
    counts.batches += 1
    return len(ids)


def _events_purge(*, now: datetime, size: int, counts: Counts) -> None:
    default_days = settings.MENDHOOK_RETENTION_DAYS
    overrides = dict(Organization.objects.exclude(retention_days=None).values_list("id", "retention_days"))
    scopes = [(Q(organization_id=org), int(days or default_days)) for org, days in overrides.items()]
    scopes.append((~Q(organization_id__in=list(overrides)) if overrides else Q(), default_days))
    for organization, days in scopes:
        cutoff = now - timedelta(days=days)
        while _event_batch(cutoff=cutoff, organization=organization, size=size, counts=counts) == size:
            _pause()


def _purge_by_id(queryset: QuerySet[Model], *, size: int, counts: Counts) -> int:
    """Delete what `queryset` selects, `size` ids per short transaction; returns how many."""
    deleted = 0
    while True:
        with transaction.atomic():
            # of=self: a join (a step's run) must not lock the joined rows too.
            locked = queryset.select_for_update(skip_locked=True, of=("self",))
            ids = list(locked.values_list("pk", flat=True)[:size])
            if not ids:
                return deleted
            deleted += queryset.model._default_manager.filter(pk__in=ids).delete()[0]
        counts.batches += 1
        if len(ids) < size:
            return deleted
        _pause()


def retention_purge(*, now: datetime | None = None, batch_size: int | None = None) -> RetentionRun:
    """Delete everything past its retention and record what went in a RetentionRun."""
    now = now or timezone.now()
    size = batch_size or settings.MENDHOOK_RETENTION_BATCH_SIZE
    run = RetentionRun.objects.create(started_at=timezone.now())
    counts = Counts()
    _events_purge(now=now, size=size, counts=counts)
    steps = StepExecution.objects.filter(
        run__status__in=FINISHED_RUNS,
        run__finished_at__lt=now - timedelta(days=settings.MENDHOOK_RETENTION_DAYS),
    ).order_by("id")
    counts.step_executions = _purge_by_id(steps, size=size, counts=counts)
    errors = ErrorRecord.objects.filter(
        last_seen_at__lt=now - timedelta(days=settings.MENDHOOK_ERROR_RECORD_RETENTION_DAYS)
    ).order_by("last_seen_at")
    counts.error_records = _purge_by_id(errors, size=size, counts=counts)
    audits = AuditEntry.objects.filter(
        created_at__lt=now - timedelta(days=settings.MENDHOOK_AUDIT_RETENTION_DAYS)
    ).order_by("created_at")
    counts.audit_entries = _purge_by_id(audits, size=size, counts=counts)

    RetentionRun.objects.filter(id=run.id).update(
        finished_at=timezone.now(),
        events_deleted=counts.events,
        items_deleted=counts.items,
        attempts_deleted=counts.attempts,
        error_records_deleted=counts.error_records,
        audit_entries_deleted=counts.audit_entries,
        step_executions_deleted=counts.step_executions,
        batches=counts.batches,
    )
    run.refresh_from_db()
    logger.info(
        "retention deleted %s events (%s items, %s attempts), %s step executions, %s error records, "
        "%s audit entries in %s batches",
        counts.events,
        counts.items,
        counts.attempts,
        counts.step_executions,
        counts.error_records,
        counts.audit_entries,
        counts.batches,
    )
    return run
