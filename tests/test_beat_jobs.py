"""Beat's jobs and the claim they rely on: each is safe to run twice and loses nothing."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from config.beat import BEAT_SCHEDULE
from config.celery_app import app
from tests.support.events import make_event
from webhooks_app.models import EventAction, EventStatus, LocalTask, WebhookEvent
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.services.dispatch import (
    event_dispatch,
    events_heal_stuck,
    events_sweep_undispatched,
    retries_dispatch_due,
)
from webhooks_app.services.processing import event_process

pytestmark = pytest.mark.django_db


def test_the_sweeper_publishes_events_left_received_and_marks_them_queued(source, broker):
    old = make_event(source, received_at=timezone.now() - timedelta(seconds=60))
    fresh = make_event(source)  # its on-commit publish may still be under way

    assert events_sweep_undispatched() == 1
    assert broker() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == (EventStatus.QUEUED, EventStatus.RECEIVED)
    assert events_sweep_undispatched() == 0  # a second run finds nothing left


def test_due_retries_are_published_and_future_ones_wait(source, broker):
    now = timezone.now()
    due = make_event(source, status=EventStatus.RETRY_SCHEDULED, next_retry_at=now - timedelta(seconds=1))
    later = make_event(source, status=EventStatus.RETRY_SCHEDULED, next_retry_at=now + timedelta(minutes=5))

    assert retries_dispatch_due() == 1
    assert broker() == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status) == (EventStatus.QUEUED, EventStatus.RETRY_SCHEDULED)


def test_the_healer_hands_out_events_whose_worker_died(source, broker):
    now = timezone.now()
    make_event(source, status=EventStatus.PROCESSING, claimed_by="dead", claimed_until=now - timedelta(seconds=1))
    make_event(source, status=EventStatus.PROCESSING, claimed_by="alive", claimed_until=now + timedelta(minutes=5))
    make_event(source, status=EventStatus.QUEUED, updated_at=now)

    assert events_heal_stuck() == 1
    assert broker() == 1


def test_only_one_claim_wins_and_a_redelivered_message_may_resume(source):
    event = make_event(source)
    now = timezone.now()
    lease = now + timedelta(minutes=10)

    assert WebhookEvent.objects.claim(event_id=event.id, task_id="a", now=now, lease_until=lease)
    assert not WebhookEvent.objects.claim(event_id=event.id, task_id="b", now=now, lease_until=lease)
    # The same message again: its worker died (acks_late + reject_on_worker_lost redelivers it).
    assert WebhookEvent.objects.claim(event_id=event.id, task_id="a", now=now, lease_until=lease)
    # After the lease runs out anyone may take over.
    assert WebhookEvent.objects.claim(
        event_id=event.id, task_id="c", now=lease + timedelta(seconds=1), lease_until=lease
    )


def test_a_finished_event_is_not_processed_again(source):
    event = make_event(source)
    assert event_process(event_id=event.id, task_id="t1", worker="w:1") == EventStatus.SUCCEEDED
    assert event_process(event_id=event.id, task_id="t2", worker="w:1") is None
    assert LocalTask.objects.count() == 10
    assert event.attempt_log.count() == 1


def test_a_message_for_a_deleted_event_does_nothing(db):
    assert event_process(event_id=uuid.uuid4(), task_id="t", worker="w:1") is None


def test_an_event_type_without_a_handler_is_ignored(source):
    event = make_event(source, event_type="matter.created")
    assert event_process(event_id=event.id, task_id="t", worker="w:1") == EventStatus.SUCCEEDED
    event.refresh_from_db()
    assert (event.success, event.action, event.tasks_created) == (True, EventAction.IGNORED, 0)


def test_a_payload_without_a_matter_fails_permanently_with_validation_code(source):
    event = make_event(source, payload={"type": "matter.stage_changed", "data": {"stage": "consultation"}})
    assert event_process(event_id=event.id, task_id="t", worker="w:1") == EventStatus.FAILED
    event.refresh_from_db()
    assert (event.success, event.action, event.last_error_code) == (False, EventAction.FAILED, "ERR_VALIDATION")
    assert "matter_id" in event.last_error
    assert event.attempt_log.get().outcome == AttemptOutcome.FAILED


def test_registered_tasks_and_beat_schedule_are_what_we_expect():
    app.loader.import_default_modules()  # what a worker imports at start (autodiscovery)
    ours = sorted(name for name in app.tasks if name.split(".")[0] in {"webhooks_app", "workflows_app", "ops_app"})
    assert ours == [
        "ops_app.tasks.evaluate_alerts",
        "ops_app.tasks.evaluate_diagnostics",
        "ops_app.tasks.purge_expired_data",
        "ops_app.tasks.resolve_settled_error_groups",
        "ops_app.tasks.resume_stalled_replays",
        "ops_app.tasks.run_replay",
        "ops_app.tasks.send_alert_notifications",
        "webhooks_app.tasks.deliver_outbound",
        "webhooks_app.tasks.disable_failing_endpoints",
        "webhooks_app.tasks.dispatch_due_deliveries",
        "webhooks_app.tasks.dispatch_due_retries",
        "webhooks_app.tasks.heal_stuck_events",
        "webhooks_app.tasks.process_event",
        "webhooks_app.tasks.send_dead_letter_alert",
        "webhooks_app.tasks.send_outbound_alert",
        "webhooks_app.tasks.sweep_undispatched_events",
        "workflows_app.tasks.dispatch_due_runs",
        "workflows_app.tasks.execute_run_step",
        "workflows_app.tasks.heal_stuck_runs",
    ]
    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] < entry["schedule"], f"{name} must expire before its next run"


def test_a_queued_event_without_a_message_is_healed_after_a_minute_when_nothing_waits(source, broker):
    lost = make_event(source, status=EventStatus.QUEUED)
    WebhookEvent.objects.filter(id=lost.id).update(updated_at=timezone.now() - timedelta(seconds=90))

    assert events_heal_stuck() == 1  # the queue is empty, so its message is gone
    assert broker() == 1


def test_with_a_backlog_a_queued_event_waits_its_turn_instead_of_being_sent_twice(source, broker):
    waiting = make_event(source, status=EventStatus.QUEUED)
    waited_since = timezone.now() - timedelta(seconds=90)
    WebhookEvent.objects.filter(id=waiting.id).update(updated_at=waited_since)
    assert events_sweep_undispatched() == 0  # nothing is left `received`

    assert event_dispatch(event_id=make_event(source).id)  # one message waiting in the broker
    assert broker() == 1

    assert events_heal_stuck() == 0
    assert broker() == 1  # nothing was sent again
    waiting.refresh_from_db()
    assert (waiting.status, waiting.updated_at) == (EventStatus.QUEUED, waited_since)
