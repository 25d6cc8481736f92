"""Make demo bookings that notify the demo receivers: new requests, approvals, a rejection with
notes, a cancellation (which notifies nothing), and the seed's tutor without an email."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from localdev.bookings import booking_answer
from localdev.models import Booking, BookingStatus
from webhooks_app.models import Organization


class Command(BaseCommand):
    help = "Create demo bookings and answer some of them (run load_demo first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=5, help="bookings to make (default 5)")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug="demo-law").first()
        if organization is None:
            raise CommandError("no demo organization: run load_demo first")
        count = max(1, min(options["count"], 1000))
        answers = [BookingStatus.APPROVED, BookingStatus.REJECTED, BookingStatus.CANCELLED, None]
        for i in range(count):
            booking = Booking.objects.create(
                organization=organization, student_name=f"Student {i + 1}", student_email=f"student{i + 1}@example.com",
                tutor_name="Ada Tutor", tutor_email="" if i == 0 else "ada.tutor@example.com", subject="Algebra",
                starts_at=timezone.now() + timedelta(days=1 + i),
            )  # fmt: skip
            answer = answers[i % len(answers)]
            if answer is not None:
                notes = "Tutor is away that week" if answer == BookingStatus.REJECTED else ""
                booking_answer(booking_id=booking.id, status=answer, notes=notes)
            self.stdout.write(f"booking {booking.id}: {answer or 'pending'}")
