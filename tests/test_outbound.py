"""The seed's scenarios (database webhooks, seed 002) end to end: bookings change, a real worker
signs and posts to a real receiver that verifies the signature."""

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import DataError, connection, transaction

from localdev.bookings import BookingError, booking_answer
from localdev.models import Booking, BookingStatus
from ops_app.models import ErrorRecord
from tests.factories import BookingFactory
from tests.support.outbound import endpoint_listening
from tests.support.waiting import wait_for
from webhooks_app.models import Delivery, DeliveryStatus, OutboundMessage

pytestmark = [pytest.mark.integration]


def delivered(count: int, receiver, timeout: float = 30.0) -> list[dict[str, Any]]:
    return wait_for(
        lambda: len(receiver.verified()) >= count and receiver.verified(),
        timeout=timeout,
        message=f"{count} verified notification(s)",
    )


def test_a_new_booking_notifies_its_tutor_signed_once(worker, organization, receiver):
    endpoint = endpoint_listening(organization, receiver)
    booking = BookingFactory(organization=organization, tutor_email="tutor@example.com")

    [notification] = delivered(1, receiver)
    message = OutboundMessage.objects.get()
    assert notification["type"] == "booking.created"
    assert notification["data"]["bookingId"] == str(booking.id)
    assert notification["data"]["email"] == "tutor@example.com"
    assert notification["_id"] == message.webhook_id  # receivers dedupe on it
    delivery = wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).first())
    assert delivery.endpoint == endpoint and delivery.attempts == 1
    attempt = delivery.attempt_log.get()
    assert (attempt.succeeded, attempt.status_code) == (True, 200)
    assert attempt.response_excerpt == '{"ok": true}'


def test_a_booking_without_tutor_email_fails_at_once_with_a_clear_error_and_is_never_sent(
    worker, organization, receiver
):
    endpoint_listening(organization, receiver)
    BookingFactory(organization=organization, tutor_email="")
    BookingFactory(organization=organization, tutor_email="second@example.com")

    [sent] = delivered(1, receiver)
    assert sent["data"]["email"] == "second@example.com"
    broken = Delivery.objects.get(message__invalid_reason__gt="")
    assert broken.status == DeliveryStatus.FAILED
    assert (broken.last_error_code, broken.last_error) == ("ERR_VALIDATION", "payload invalid: tutor email is missing")
    assert broken.attempts == 0 and not broken.attempt_log.exists()
    assert ErrorRecord.objects.filter(error_code="ERR_VALIDATION", message__contains="tutor email is missing").exists()


def test_approval_notifies_the_student(worker, organization, receiver):
    endpoint_listening(organization, receiver, event_types=["booking.approved"])
    booking = BookingFactory(organization=organization, student_email="sam@example.com")
    booking_answer(booking_id=booking.id, status=BookingStatus.APPROVED)

    [sent] = delivered(1, receiver)
    assert sent["type"] == "booking.approved"
    assert (sent["data"]["email"], sent["data"]["status"]) == ("sam@example.com", "approved")


def test_rejection_notifies_the_student_with_the_notes(worker, organization, receiver):
    endpoint_listening(organization, receiver, event_types=["booking.rejected"])
    booking = BookingFactory(organization=organization)
    booking_answer(booking_id=booking.id, status=BookingStatus.REJECTED, notes="Tutor is away that week")

    [sent] = delivered(1, receiver)
    assert sent["type"] == "booking.rejected"
    assert sent["data"]["notes"] == "Tutor is away that week"


def test_changes_other_than_approval_or_rejection_notify_nothing(worker, organization, receiver):
    endpoint_listening(organization, receiver, event_types=["booking.approved", "booking.rejected"])
    cancelled = BookingFactory(organization=organization)
    booking_answer(booking_id=cancelled.id, status=BookingStatus.CANCELLED)
    edited = BookingFactory(organization=organization)
    edited.subject = "Geometry"
    edited.notes = "moved to room 4"
    edited.save()
    edited.save()  # saved again unchanged
    with pytest.raises(BookingError):
        booking_answer(booking_id=cancelled.id, status=BookingStatus.APPROVED)
    # The pipeline is live: the one change that notifies arrives, and nothing else did.
    answered = BookingFactory(organization=organization)
    booking_answer(booking_id=answered.id, status=BookingStatus.APPROVED)

    [sent] = delivered(1, receiver)
    assert sent["data"]["bookingId"] == str(answered.id)
    assert OutboundMessage.objects.count() == 1


def _together(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - collected for the test to look at
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_changes_make_one_message_each_and_no_duplicates(worker, organization, receiver):
    endpoint_listening(organization, receiver)
    assert _together(8, lambda i: BookingFactory(organization=organization, student_name=f"S{i}")) == []
    booking = BookingFactory(organization=organization)
    # Two people answer the same booking at once: one answer wins, the other is refused.
    refusals = _together(2, lambda i: booking_answer(booking_id=booking.id, status=BookingStatus.APPROVED))
    assert [type(e) for e in refusals] == [BookingError]
    # Two saves of the same stale row (no lock taken) report the same change once.
    other = BookingFactory(organization=organization)
    stale = [Booking.objects.get(id=other.id) for _ in range(2)]
    for row in stale:
        row.status = BookingStatus.APPROVED
    assert _together(2, lambda i: stale[i].save()) == []

    sent = delivered(12, receiver)
    assert sorted(s["type"] for s in sent) == ["booking.approved"] * 2 + ["booking.created"] * 10
    assert len({s["_id"] for s in sent}) == 12
    assert OutboundMessage.objects.filter(event_type="booking.approved").count() == 2
    assert OutboundMessage.objects.count() == 12


def test_invalid_booking_data_is_refused_and_sends_nothing(worker, organization, receiver):
    endpoint_listening(organization, receiver)
    with pytest.raises(DataError):
        BookingFactory(organization=organization, student_name="x" * 500)
    BookingFactory(organization=organization, student_name="Valid")

    [sent] = delivered(1, receiver)
    assert sent["data"]["studentName"] == "Valid"
    assert OutboundMessage.objects.count() == 1


def test_a_rolled_back_change_sends_nothing(worker, organization, receiver):
    endpoint_listening(organization, receiver)
    with pytest.raises(RuntimeError), transaction.atomic():
        BookingFactory(organization=organization, student_name="Rolled back")
        raise RuntimeError("the request failed after the insert")
    BookingFactory(organization=organization, student_name="Kept")

    [sent] = delivered(1, receiver)
    assert sent["data"]["studentName"] == "Kept"
    assert OutboundMessage.objects.count() == 1


def test_a_disabled_endpoint_gets_nothing_new(worker, organization, receiver):
    from webhooks_app.models import DisabledReason
    from webhooks_app.services.outbound.endpoint_state import endpoint_disable

    off = endpoint_listening(organization, receiver, event_types=["booking.created"])
    endpoint_disable(endpoint_id=off.id, reason=DisabledReason.MANUAL, note="maintenance")
    BookingFactory(organization=organization)
    assert OutboundMessage.objects.count() == 0  # nobody else subscribes: not even a message


def test_every_attempt_is_logged_with_its_latency(worker, organization, receiver):
    endpoint_listening(organization, receiver, retry_schedule=[0, 1])
    receiver.down(503)
    BookingFactory(organization=organization)
    wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED).exists(), timeout=30)
    delivery = Delivery.objects.get()
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.status_code, a.error_code) for a in attempts] == [
        (1, 503, "ERR_RECEIVER_STATUS"),
        (2, 503, "ERR_RECEIVER_STATUS"),
    ]
    assert (attempts[1].started_at - attempts[0].started_at) >= timedelta(seconds=1)
    assert all(a.latency_ms >= 0 and a.response_excerpt == '{"error": "down"}' for a in attempts)
