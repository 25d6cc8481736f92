"""The state changes behind people's acts on events: allowed only where they make sense (the act
flow that audits them is tested in test_acts)."""

import uuid

import pytest

from ops_app.models import AuditEntry
from tests.factories import EventItemFactory
from tests.support.events import make_event
from webhooks_app.models import EventAction, EventStatus, ItemStatus
from webhooks_app.services.operations import OperationError, event_resolve, event_retry_failed

pytestmark = pytest.mark.django_db


def test_resolving_requires_a_note_and_changes_nothing_without_one(source):
    event = make_event(source, status=EventStatus.PARTIAL_FAILURE)
    with pytest.raises(OperationError, match="note"):
        event_resolve(event_id=event.id, note="   ")
    event.refresh_from_db()
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert not AuditEntry.objects.exists()


def test_resolving_sets_the_seed_contract_and_says_what_changed(source):
    event = make_event(source, status=EventStatus.PARTIAL_FAILURE, success=False, action=EventAction.PARTIAL_FAILURE)

    change = event_resolve(event_id=event.id, note="created task 6 by hand in Clio")

    event.refresh_from_db()
    assert (event.status, event.success, event.action) == (
        EventStatus.MANUALLY_RESOLVED,
        True,
        EventAction.MANUALLY_RESOLVED,
    )
    assert (change.status_before, change.status_after) == (
        EventStatus.PARTIAL_FAILURE,
        EventStatus.MANUALLY_RESOLVED,
    )


@pytest.mark.parametrize("status", [EventStatus.SUCCEEDED, EventStatus.PROCESSING, EventStatus.MANUALLY_RESOLVED])
def test_resolving_an_event_that_needs_nothing_is_refused(source, status):
    event = make_event(source, status=status)
    with pytest.raises(OperationError):
        event_resolve(event_id=event.id, note="n")
    assert not AuditEntry.objects.exists()


def test_retrying_an_event_whose_items_all_succeeded_is_refused(source):
    event = make_event(source, status=EventStatus.PARTIAL_FAILURE)
    EventItemFactory(event=event, number=1, title="t", idempotency_key=f"{event.id}:1", status=ItemStatus.SUCCEEDED)
    with pytest.raises(OperationError, match="already succeeded"):
        event_retry_failed(event_id=event.id)


def test_requeueing_a_dead_letter_queues_it(source, broker, django_capture_on_commit_callbacks):
    event = make_event(source, status=EventStatus.DEAD_LETTER, round_attempts=3)
    EventItemFactory(event=event, number=1, title="t", idempotency_key=f"{event.id}:1", status=ItemStatus.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        change = event_retry_failed(event_id=event.id)

    event.refresh_from_db()
    assert (change.status_before, change.status_after) == (EventStatus.DEAD_LETTER, EventStatus.QUEUED)
    assert (event.status, event.round_attempts) == (EventStatus.QUEUED, 0)
    assert broker() == 1


def test_an_unknown_event_is_an_operation_error(db):
    with pytest.raises(OperationError, match="no such event"):
        event_retry_failed(event_id=uuid.uuid4())
