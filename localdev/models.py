"""The seed's booking requests (database webhooks, seed 002), as the demo of outbound
notifications: a new booking notifies its tutor; approval or rejection notifies the student;
nothing else does. The subscriptions are declared in localdev/bookings.py."""

import uuid

from django.db import models
from django.utils import timezone

from webhooks_app.models import Organization


class BookingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class Booking(models.Model):
    """A student asks a tutor for a session (the seed's booking_requests)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    student_name = models.CharField(max_length=200)
    student_email = models.EmailField()
    tutor_name = models.CharField(max_length=200)
    # The seed's edge case: a tutor without an email on file. The booking is kept; its
    # notification fails at once with a clear error instead of being retried forever.
    tutor_email = models.EmailField(blank=True)
    subject = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField(default=60)
    status = models.CharField(max_length=20, choices=BookingStatus.choices, default=BookingStatus.PENDING)
    # Why it was rejected (or any note from the tutor); sent with booking.rejected.
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.student_name} with {self.tutor_name} ({self.status})"
