"""The bookings' change subscriptions (the seed's two triggers, as declarations) and the moves
people make on a booking."""

import uuid
from typing import Any

from django.db import transaction

from localdev.models import Booking, BookingStatus
from webhooks_app.services.outbound.registry import watch

CREATED = "booking.created"
APPROVED = "booking.approved"
REJECTED = "booking.rejected"


class BookingError(Exception):
    """The booking cannot make that move. Safe to show."""


def booking_payload(booking: Booking, event_type: str) -> dict[str, Any]:
    # The seed's payload {type, bookingId, email}: the tutor hears of a new request, the
    # student of the answer.
    email = booking.tutor_email if event_type == CREATED else booking.student_email
    payload: dict[str, Any] = {
        "bookingId": str(booking.id),
        "email": email,
        "studentName": booking.student_name,
        "tutorName": booking.tutor_name,
        "subject": booking.subject,
        "startsAt": booking.starts_at.isoformat(),
        "durationMinutes": booking.duration_minutes,
        "status": booking.status,
    }
    if event_type == REJECTED:
        payload["notes"] = booking.notes
    return payload


def booking_invalid(booking: Booking, event_type: str) -> str:
    if event_type == CREATED and not booking.tutor_email:
        return "tutor email is missing"
    if event_type != CREATED and not booking.student_email:
        return "student email is missing"
    return ""


def bookings_watch() -> None:
    """Called once at start (LocaldevConfig.ready)."""
    watch(
        Booking,
        organization_of=lambda booking: booking.organization_id,
        payload=booking_payload,
        created=CREATED,
        field="status",
        changed_to={BookingStatus.APPROVED.value: APPROVED, BookingStatus.REJECTED.value: REJECTED},
        invalid=booking_invalid,
    )


# Only a pending booking gets an answer; an answered one stays answered.
ANSWERS = {BookingStatus.APPROVED, BookingStatus.REJECTED, BookingStatus.CANCELLED}


def booking_answer(*, booking_id: uuid.UUID, status: BookingStatus, notes: str = "") -> Booking:
    """Approve, reject (with notes) or cancel a pending booking. The row lock makes two people
    answering at once one answer and one refusal, so one notification."""
    if status not in ANSWERS:
        raise BookingError(f"'{status}' is not an answer")
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(id=booking_id)
        if booking.status != BookingStatus.PENDING:
            raise BookingError(f"the booking is {booking.status} already")
        booking.status = status
        if notes:
            booking.notes = notes
        booking.save(update_fields=["status", "notes", "updated_at"])
    return booking
