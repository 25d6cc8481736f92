"""Claims and their leases, against the real database."""

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from tests.factories import ProcessingAttemptFactory
from tests.support.events import make_event
from webhooks_app.models import EventStatus
from webhooks_app.services.leases import lease_kept, lease_renew
from webhooks_app.services.processing import event_process

pytestmark = pytest.mark.django_db


def test_it_rolls_the_claim_back_when_its_delivery_log_row_cannot_be_written(source):
    event = make_event(source, status=EventStatus.QUEUED)
    # A log row already numbered 1 makes the attempt's own row fail to insert.
    ProcessingAttemptFactory(event=event, number=1, task_id="t-0", worker="w", started_at=timezone.now(), outcome="")

    with pytest.raises(IntegrityError):
        event_process(event_id=event.id, task_id="t-1", worker="w:1")

    event.refresh_from_db()
    assert (event.status, event.attempts, event.claimed_by) == (EventStatus.QUEUED, 0, "")


def test_it_renews_the_lease_only_for_the_claim_holder(source):
    until = timezone.now() + timedelta(seconds=1)
    event = make_event(source, status=EventStatus.PROCESSING, claimed_by="t-1", claimed_until=until)

    assert lease_renew(event_id=event.id, task_id="t-2", lease_seconds=30) is False
    event.refresh_from_db()
    assert event.claimed_until == until

    assert lease_renew(event_id=event.id, task_id="t-1", lease_seconds=30) is True
    event.refresh_from_db()
    assert event.claimed_until > timezone.now() + timedelta(seconds=25)


def test_it_does_not_renew_a_lease_once_the_attempt_recorded_its_outcome(source):
    event = make_event(source, status=EventStatus.SUCCEEDED, claimed_by="", claimed_until=None)

    assert lease_renew(event_id=event.id, task_id="t-1", lease_seconds=30) is False


# The heartbeat thread reads with its own connection: these rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_the_process_heartbeat_keeps_two_claims_of_one_worker_alive_past_their_lease(source, settings):
    settings.MENDHOOK_PROCESSING_LEASE_SECONDS = 0.6
    soon = timezone.now() + timedelta(seconds=0.6)
    first = make_event(source, status=EventStatus.PROCESSING, claimed_by="t-1", claimed_until=soon)
    second = make_event(source, status=EventStatus.PROCESSING, claimed_by="t-2", claimed_until=soon)

    with lease_kept(event_id=first.id, task_id="t-1") as first_lost, lease_kept(event_id=second.id, task_id="t-2"):
        time.sleep(1.5)  # two and a half leases
        for event in (first, second):
            event.refresh_from_db()
            assert event.claimed_until > timezone.now()
    assert not first_lost.is_set()


@pytest.mark.django_db(transaction=True)
def test_the_process_heartbeat_tells_an_attempt_its_claim_was_taken_over(source, settings):
    settings.MENDHOOK_PROCESSING_LEASE_SECONDS = 0.6
    soon = timezone.now() + timedelta(seconds=0.6)
    event = make_event(source, status=EventStatus.PROCESSING, claimed_by="t-new", claimed_until=soon)

    with lease_kept(event_id=event.id, task_id="t-old") as lost:
        assert lost.wait(timeout=2)
    event.refresh_from_db()
    assert (event.claimed_by, event.claimed_until) == ("t-new", soon)
