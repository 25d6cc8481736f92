"""The demo: load_demo adds two notification endpoints; make_demo_bookings notifies them, and a
cancellation notifies nothing, and the tutor without an email fails at once."""

import io

import pytest
from django.core.management import call_command

from webhooks_app.models import Delivery, DeliveryStatus, Endpoint, OutboundMessage

pytestmark = pytest.mark.django_db


def test_demo_bookings_notify_the_demo_endpoints(broker):
    call_command("load_demo", stdout=io.StringIO())
    call_command("load_demo", stdout=io.StringIO())  # idempotent: no second pair of endpoints
    assert Endpoint.objects.count() == 2

    call_command("make_demo_bookings", "--count", "4", stdout=io.StringIO())

    types = sorted(OutboundMessage.objects.values_list("event_type", flat=True))
    assert types == ["booking.approved", "booking.created", "booking.created", "booking.created", "booking.created",
                     "booking.rejected"]  # fmt: skip
    invalid = OutboundMessage.objects.get(invalid_reason__gt="")
    assert invalid.invalid_reason == "tutor email is missing"
    assert set(Delivery.objects.filter(message=invalid).values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    assert Delivery.objects.count() == 12  # every message to both endpoints
