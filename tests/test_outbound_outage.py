"""A change committed while the broker is down is notified once the broker is back: the outbox
row waits, and beat's dispatcher publishes it."""

import os
import subprocess
import sys

import pytest

from tests.support.outbound import endpoint_listening
from tests.support.processes import PrivateRedis, start_beat
from tests.support.waiting import wait_for
from tests.support.worker import ROOT, WorkerProcess, worker_env
from webhooks_app.models import Delivery, DeliveryStatus

pytestmark = [pytest.mark.integration]

CREATE_BOOKING = """
from django.utils import timezone
from localdev.models import Booking
Booking.objects.create(organization_id={org}, student_name="Offline", student_email="s@example.com",
    tutor_name="T", tutor_email="t@example.com", subject="Physics", starts_at=timezone.now())
"""


def test_a_booking_committed_while_the_broker_is_down_is_delivered_once_it_is_back(
    transactional_db, organization, receiver
):
    endpoint_listening(organization, receiver, event_types=["booking.created"])
    broker = PrivateRedis()  # not started: the broker is down
    env = worker_env(REDIS_URL=broker.url)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CREATE_BOOKING.format(org=organization.pk)],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.dispatched_at) == (DeliveryStatus.PENDING, None)  # committed, not published
    assert receiver.requests == []

    worker = beat = None
    try:
        broker.start()
        worker = WorkerProcess(env=env, name="outbound-outage").start()
        beat = start_beat(env)  # its dispatcher publishes what the commit could not

        def arrived() -> bool:
            delivery.refresh_from_db()
            return delivery.status == DeliveryStatus.DELIVERED

        wait_for(arrived, timeout=60, message="the waiting delivery to arrive")
        [sent] = receiver.verified()
        assert sent["data"]["studentName"] == "Offline"
        assert delivery.attempts == 1
    finally:
        for proc in (beat, worker):
            if proc is not None:
                proc.stop()
        broker.stop()
