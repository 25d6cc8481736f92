"""Retention deletes only what it may (finished events past their days, with their items and
attempts; old error records, audit entries and finished runs' step logs), in short batches."""

import threading
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ops_app.models import AuditEntry, ErrorRecord
from ops_app.retention import expired_events, retention_purge
from tests.factories import OrganizationFactory, ProcessingAttemptFactory, SourceFactory
from tests.support.events import make_event, with_items
from webhooks_app.models import EventItem, EventStatus, ItemStatus, ProcessingAttempt, Source, WebhookEvent
from workflows_app.models import Lead, RunStatus, StepExecution, Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)


def _finished(source: Source, status: str, *, days_ago: float) -> WebhookEvent:
    at = timezone.now() - timedelta(days=days_ago)
    return make_event(source, status=status, received_at=at, completed_at=at)


def test_it_deletes_only_finished_events_past_their_retention_with_their_items_and_attempts(source):
    gone = [
        with_items(_finished(source, EventStatus.SUCCEEDED, days_ago=31), ItemStatus.SUCCEEDED, ItemStatus.SUCCEEDED),
        _finished(source, EventStatus.MANUALLY_RESOLVED, days_ago=40),
        _finished(source, EventStatus.DEAD_LETTER, days_ago=31),
    ]
    ProcessingAttemptFactory(event=gone[0], number=1, task_id="t", worker="w", started_at=timezone.now())
    kept = [
        # A person still has to act on these, however old.
        with_items(_finished(source, EventStatus.PARTIAL_FAILURE, days_ago=300), ItemStatus.FAILED),
        _finished(source, EventStatus.FAILED, days_ago=300),
        # Not finished.
        _finished(source, EventStatus.RETRY_SCHEDULED, days_ago=300),
        _finished(source, EventStatus.PROCESSING, days_ago=300),
        make_event(source, status=EventStatus.QUEUED, received_at=timezone.now() - timedelta(days=300)),
        # Not old enough.
        _finished(source, EventStatus.SUCCEEDED, days_ago=29),
    ]

    run = retention_purge()

    assert set(WebhookEvent.objects.values_list("id", flat=True)) == {e.id for e in kept}
    assert (run.events_deleted, run.items_deleted, run.attempts_deleted) == (3, 2, 1)
    assert EventItem.objects.filter(event_id=kept[0].id).count() == 1
    assert not ProcessingAttempt.objects.exists()
    assert run.finished_at is not None


def test_it_deletes_in_batches_of_the_configured_size(source):
    for _ in range(5):
        _finished(source, EventStatus.SUCCEEDED, days_ago=31)

    run = retention_purge(batch_size=2)

    assert (run.events_deleted, run.batches) == (5, 3)
    assert not WebhookEvent.objects.exists()


def test_an_organizations_own_retention_overrides_the_default(source):
    strict = SourceFactory(organization=OrganizationFactory(retention_days=7))
    lenient = SourceFactory(organization=OrganizationFactory(retention_days=90))
    strict_old = _finished(strict, EventStatus.SUCCEEDED, days_ago=10)
    default_young = _finished(source, EventStatus.SUCCEEDED, days_ago=10)
    lenient_old = _finished(lenient, EventStatus.SUCCEEDED, days_ago=60)
    default_old = _finished(source, EventStatus.SUCCEEDED, days_ago=60)

    retention_purge()

    remaining = set(WebhookEvent.objects.values_list("id", flat=True))
    assert remaining == {default_young.id, lenient_old.id}
    assert strict_old.id not in remaining and default_old.id not in remaining


def test_error_records_and_audit_entries_have_their_own_retention(source, settings):
    settings.MENDHOOK_ERROR_RECORD_RETENTION_DAYS = 90
    settings.MENDHOOK_AUDIT_RETENTION_DAYS = 365
    now = timezone.now()
    old_error = ErrorRecord.objects.create(
        fingerprint="a", function="f", message="m", last_seen_at=now - timedelta(days=91)
    )
    new_error = ErrorRecord.objects.create(
        fingerprint="b", function="f", message="m", last_seen_at=now - timedelta(days=89)
    )
    target = ContentType.objects.get_for_model(WebhookEvent)
    entries = [
        AuditEntry.objects.create(actor_label="x", via="admin", act="mark_resolved", target_type=target, target_id="1")
        for _ in range(2)
    ]
    AuditEntry.objects.filter(id=entries[0].id).update(created_at=now - timedelta(days=366))

    run = retention_purge()

    assert list(ErrorRecord.objects.values_list("id", flat=True)) == [new_error.id]
    assert old_error.id != new_error.id
    assert list(AuditEntry.objects.values_list("id", flat=True)) == [entries[1].id]
    assert (run.error_records_deleted, run.audit_entries_deleted) == (1, 1)


def test_step_executions_go_only_for_runs_finished_long_ago(organization):
    workflow = Workflow.objects.create(organization=organization, name="nurture")
    lead = Lead.objects.create(organization=organization, name="Lee", phone="+13055550100")
    now = timezone.now()

    def run_with_steps(status: str, finished_days_ago: float | None) -> WorkflowRun:
        finished = now - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
        run = WorkflowRun.objects.create(
            organization=organization, workflow=workflow, lead=lead, status=status, updated_at=now, finished_at=finished
        )
        for attempt in (1, 2):
            StepExecution.objects.create(
                run=run,
                position=1,
                action_type="sms",
                attempt=attempt,
                started_at=now,
                idempotency_key=f"{run.id}:{attempt}",
            )
        return run

    old_done = run_with_steps(RunStatus.COMPLETED, 31)
    old_failed = run_with_steps(RunStatus.FAILED, 31)  # a person may still retry it
    recent = run_with_steps(RunStatus.CANCELLED, 5)

    run = retention_purge()

    assert run.step_executions_deleted == 2
    assert not StepExecution.objects.filter(run=old_done).exists()
    assert StepExecution.objects.filter(run__in=[old_failed, recent]).count() == 4
    assert WorkflowRun.objects.count() == 3  # the runs themselves stay


def test_a_row_another_transaction_holds_is_skipped_not_waited_for(source):
    held = _finished(source, EventStatus.SUCCEEDED, days_ago=31)
    free = _finished(source, EventStatus.SUCCEEDED, days_ago=32)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            WebhookEvent.objects.select_for_update().get(id=held.id)
            locked.set()
            release.wait(timeout=30)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        run = retention_purge()
    finally:
        release.set()
        holder.join()

    assert run.events_deleted == 1
    assert set(WebhookEvent.objects.values_list("id", flat=True)) == {held.id}
    assert free.id != held.id


def test_the_batch_query_can_be_served_by_the_retention_index(source):
    query = expired_events(cutoff=timezone.now(), organization=Q()).order_by("completed_at").values("id")[:1000]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        # The test table is tiny, so the planner would rightly scan it; forbid that to see
        # whether an index matches the query's predicate and order at all.
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")

    assert "event_retention_idx" in plan, plan
    assert "Sort" not in plan, plan  # read in index order: the oldest first, no sort
