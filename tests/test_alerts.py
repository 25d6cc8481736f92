"""Alerts: delivery of the dead-letter alert (4xx permanent, 5xx retried), and alerts on trends
that fire once when a condition starts and once when it recovers."""

import json
import time

import pytest

from config.publishing import publish
from ops_app.models import ErrorRecord
from tests.support.events import make_event
from tests.support.fake_http import Fault, Recorder
from tests.support.waiting import wait_for
from webhooks_app.models import EventStatus, Source

DEAD_LETTER_ALERT = "webhooks_app.tasks.send_dead_letter_alert"


def _dead_letter(source: Source):
    return make_event(source, status=EventStatus.DEAD_LETTER, last_error_code="ERR_TIMEOUT", attempts=3)


@pytest.mark.integration
def test_a_4xx_from_the_alert_receiver_is_permanent_and_recorded_once(worker, source, alert_receiver: Recorder):
    alert_receiver.fail_next(Fault(404), Fault(404), Fault(404))
    event = _dead_letter(source)

    publish(DEAD_LETTER_ALERT, str(event.id))

    wait_for(lambda: alert_receiver.bodies("/slack"), message="the first delivery")
    record = wait_for(
        lambda: ErrorRecord.objects.filter(function=DEAD_LETTER_ALERT, event_id=event.id).first(),
        message="the refusal as an error record",
    )
    # A retry would come within 0.25 s (ALERT_RETRY_BACKOFF_SECONDS=0.2 in the test worker).
    time.sleep(2.0)
    assert len(alert_receiver.bodies("/slack")) == 1
    record.refresh_from_db()
    assert record.occurrences == 1
    assert "404" in record.message


@pytest.mark.integration
def test_a_5xx_timeout_or_dropped_connection_is_retried_until_delivered(worker, source, alert_receiver: Recorder):
    alert_receiver.fail_next(Fault(503), Fault(drop=True), Fault(429, retry_after="1"))
    event = _dead_letter(source)
    started = time.monotonic()

    publish(DEAD_LETTER_ALERT, str(event.id))

    bodies = wait_for(lambda: len(alert_receiver.bodies("/slack")) >= 4 and alert_receiver.bodies("/slack"))
    assert str(event.id) in json.loads(bodies[-1])["text"]
    # The 429 asked for a second; the backoff alone would have waited well under one.
    assert time.monotonic() - started >= 1.0
    time.sleep(1.0)
    assert len(alert_receiver.bodies("/slack")) == 4  # delivered once, never again
    assert not ErrorRecord.objects.filter(function=DEAD_LETTER_ALERT, event_id=event.id).exists()
