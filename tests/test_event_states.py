"""An event's moves: the transition table is the whole truth, each move is a conditional UPDATE
that a lost race cannot break, and every status sits in exactly one group."""

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ops_app import error_store
from ops_app.models import ErrorRecord
from tests.support.events import make_event
from webhooks_app.errors import ErrorCode
from webhooks_app.models import EventAction, EventStatus, WebhookEvent
from webhooks_app.models.events import (
    GROUP_OF_STATUS,
    TRANSITIONS,
    AttemptOutcome,
    IllegalTransition,
    StatusGroup,
    statuses_in,
)
from webhooks_app.services.processing import event_process

pytestmark = pytest.mark.django_db

OUTCOMES = (
    EventStatus.SUCCEEDED,
    EventStatus.PARTIAL_FAILURE,
    EventStatus.FAILED,
    EventStatus.DEAD_LETTER,
    EventStatus.RETRY_SCHEDULED,
)


def moves_to(target: EventStatus) -> list[Callable[[WebhookEvent], bool]]:
    """Every method that moves an event to `target`, called as its callers call it."""
    now = timezone.now()
    events = WebhookEvent.objects
    if target == EventStatus.QUEUED:
        return [
            lambda e: events.mark_queued(event_id=e.id, now=now),  # published
            lambda e: events.requeue(event_id=e.id, now=now),  # a person's retry
        ]
    if target == EventStatus.RECEIVED:
        return [lambda e: events.mark_unpublished(event_id=e.id, now=now)]
    if target == EventStatus.PROCESSING:
        return [
            lambda e: events.claim(event_id=e.id, task_id="other", now=now, lease_until=now + timedelta(minutes=10))
        ]
    if target == EventStatus.MANUALLY_RESOLVED:
        return [lambda e: events.resolve(event_id=e.id, now=now)]
    return [lambda e: events.finish(event_id=e.id, task_id="holder", target=target, now=now)]


@pytest.mark.parametrize("source_status", list(EventStatus))
def test_it_walks_the_transition_table_and_nothing_else_moves(source, source_status):
    reached = set()
    for target in EventStatus:
        for move in moves_to(target):
            # Every precondition a move could ask for is met: a lease ran out, a retry is due.
            event = make_event(
                source,
                status=source_status,
                claimed_by="holder",
                claimed_until=timezone.now() - timedelta(seconds=1),
                next_retry_at=timezone.now() - timedelta(seconds=1),
            )
            if move(event):
                event.refresh_from_db()
                assert event.status == target
                reached.add(target)
            else:
                event.refresh_from_db()
                assert event.status == source_status  # a refused move changes nothing

    assert reached == set(TRANSITIONS[source_status])


def test_an_illegal_move_raises():
    with pytest.raises(IllegalTransition):
        WebhookEvent.objects.finish(event_id=None, task_id="t", target=EventStatus.QUEUED, now=timezone.now())
    with pytest.raises(IllegalTransition):
        # A takeover goes through the claim, never through recording an outcome.
        WebhookEvent.objects.finish(event_id=None, task_id="t", target=EventStatus.PROCESSING, now=timezone.now())


@pytest.mark.parametrize("status", [EventStatus.SUCCEEDED, EventStatus.RECEIVED, EventStatus.PROCESSING])
def test_a_row_refuses_a_person_s_move_its_status_does_not_allow(source, status):
    event = make_event(source, status=status)

    with pytest.raises(IllegalTransition):
        event.requeue(now=timezone.now())
    with pytest.raises(IllegalTransition):
        event.resolve(now=timezone.now())
    event.refresh_from_db()
    assert event.status == status


def test_resolving_sets_the_seed_contract_fields(source):
    event = make_event(source, status=EventStatus.DEAD_LETTER, success=False, action=EventAction.PARTIAL_FAILURE)

    event.resolve(now=timezone.now())

    event.refresh_from_db()
    assert (event.status, event.success, event.action) == (
        EventStatus.MANUALLY_RESOLVED,
        True,
        EventAction.MANUALLY_RESOLVED,
    )
    assert event.completed_at is not None


def test_every_status_is_in_exactly_one_group():
    assert set(GROUP_OF_STATUS) == set(EventStatus) == set(TRANSITIONS)
    grouped = [s for group in StatusGroup for s in statuses_in(group)]
    assert sorted(grouped) == sorted(EventStatus)
    assert statuses_in(StatusGroup.NEEDS_HUMAN) == (
        EventStatus.PARTIAL_FAILURE,
        EventStatus.FAILED,
        EventStatus.DEAD_LETTER,
    )
    assert statuses_in(StatusGroup.RETRY_PENDING) == (EventStatus.RETRY_SCHEDULED,)
    # Terminal-good and terminal-bad: only a person moves an event out of them (or nobody).
    for status in statuses_in(StatusGroup.DONE):
        assert TRANSITIONS[status] == frozenset()
    for status in statuses_in(StatusGroup.NEEDS_HUMAN):
        assert TRANSITIONS[status] == {EventStatus.QUEUED, EventStatus.MANUALLY_RESOLVED}


def test_count_by_status_names_every_status(source):
    make_event(source, status=EventStatus.FAILED)
    make_event(source, status=EventStatus.FAILED)
    make_event(source, status=EventStatus.QUEUED)

    counts = WebhookEvent.objects.count_by_status()

    assert counts == {**dict.fromkeys(EventStatus, 0), EventStatus.FAILED: 2, EventStatus.QUEUED: 1}


# --- The paths that end in the table's rarer moves ------------------------------------------


def test_a_handler_crash_becomes_an_error_code_then_a_dead_letter_after_max_attempts(source, broker):
    # A JSON array where the handler expects an object: a real bug path (AttributeError), not
    # a validation failure, so it is retried as transient.
    event = make_event(source, payload=["not", "an", "object"], max_attempts=3)

    statuses = []
    for attempt in range(1, 4):
        statuses.append(event_process(event_id=event.id, task_id=f"t{attempt}", worker="w:1"))
        # The retry falls due (beat would publish it now).
        WebhookEvent.objects.filter(id=event.id).update(next_retry_at=timezone.now() - timedelta(seconds=1))

    assert statuses == [EventStatus.RETRY_SCHEDULED, EventStatus.RETRY_SCHEDULED, EventStatus.DEAD_LETTER]
    event.refresh_from_db()
    assert (event.last_error_code, event.success, event.action) == (ErrorCode.INTERNAL, False, EventAction.FAILED)
    assert "AttributeError" in event.last_error
    assert list(event.attempt_log.values_list("outcome", flat=True)) == [
        AttemptOutcome.RETRY_SCHEDULED,
        AttemptOutcome.RETRY_SCHEDULED,
        AttemptOutcome.DEAD_LETTER,
    ]
    # The typed failure reports reached the error records with their context.
    crash = ErrorRecord.objects.get(action="run_handler")
    assert (crash.error_code, crash.function, crash.occurrences) == (
        ErrorCode.INTERNAL,
        "webhooks_app.tasks.process_event",
        3,
    )
    assert crash.request_payload == ["not", "an", "object"]
    assert ErrorRecord.objects.filter(action="dead_letter", error_code=ErrorCode.INTERNAL).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_attempt_whose_event_was_taken_over_records_claim_lost_and_changes_nothing(clio_source, fake_clio):
    event = make_event(clio_source)
    fake_clio.reset()
    fake_clio.hold_on_request = 1  # the first downstream call waits until the takeover happened
    fake_clio.gate.clear()
    outcome: dict[str, object] = {}

    def slow_worker() -> None:
        try:
            outcome["status"] = event_process(event_id=event.id, task_id="slow", worker="w:1")
        finally:
            connection.close()

    thread = threading.Thread(target=slow_worker)
    thread.start()
    try:
        assert fake_clio.held.wait(timeout=30), "the attempt never called downstream"
        # Seen from after its lease ran out, another worker takes the event over.
        later = timezone.now() + timedelta(seconds=settings.MENDHOOK_PROCESSING_LEASE_SECONDS + 1)
        assert WebhookEvent.objects.claim(
            event_id=event.id, task_id="fast", now=later, lease_until=later + timedelta(minutes=10)
        )
    finally:
        fake_clio.gate.set()
    thread.join(timeout=60)

    assert not thread.is_alive() and outcome["status"] is None
    event.refresh_from_db()
    assert (event.status, event.claimed_by, event.success) == (EventStatus.PROCESSING, "fast", None)
    assert event.attempt_log.get(number=1).outcome == AttemptOutcome.CLAIM_LOST
    # Reported inside the outcome's transaction: the record is written by the detached writer.
    assert error_store.detached_writer.flush(timeout=10)
    assert ErrorRecord.objects.filter(action="record_outcome", event_id=event.id).exists()
