"""Waiting for what a real worker or process does elsewhere: poll a condition until it holds, or
until an event comes to rest."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from webhooks_app.models import EventStatus, WebhookEvent


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, message: str = "") -> Any:
    """Poll until predicate() is truthy; fail the test with `message` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")


# Where an event rests after an attempt: done, waiting for a person, or waiting for its retry.
SETTLED = {
    EventStatus.SUCCEEDED,
    EventStatus.PARTIAL_FAILURE,
    EventStatus.FAILED,
    EventStatus.DEAD_LETTER,
    EventStatus.RETRY_SCHEDULED,
}


def settle(event_id: Any, statuses: set[EventStatus] = SETTLED, timeout: float = 30.0) -> WebhookEvent:
    """Wait for the real worker to bring the event to one of `statuses`; return it fresh."""

    def done() -> WebhookEvent | None:
        event = WebhookEvent.objects.get(id=event_id)
        return event if event.status in statuses else None

    return wait_for(done, timeout=timeout, message=f"event {event_id} to reach {sorted(statuses)}")
