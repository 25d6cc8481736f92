"""Backoff and the decision of what happens after an attempt."""

import pytest

from webhooks_app.errors import FailureKind
from webhooks_app.models import EventStatus, Source, WebhookEvent
from webhooks_app.services.processing import _decide, backoff_seconds


def event(round_attempts=1, max_attempts=3, recoverable_rounds=0) -> WebhookEvent:
    return WebhookEvent(
        source=Source(backoff_base_seconds=2.0, backoff_factor=2.0),
        round_attempts=round_attempts,
        max_attempts=max_attempts,
        recoverable_rounds=recoverable_rounds,
    )


@pytest.mark.parametrize(("attempt", "nominal"), [(1, 2.0), (2, 4.0), (3, 8.0)])
def test_backoff_grows_exponentially_with_bounded_jitter(attempt, nominal):
    delays = [backoff_seconds(Source(backoff_base_seconds=2.0, backoff_factor=2.0), attempt) for _ in range(200)]
    assert min(delays) >= nominal
    assert max(delays) <= nominal * 1.25
    assert len(set(delays)) > 1  # jittered: retries of many events do not stampede together


def test_backoff_never_undercuts_retry_after():
    assert backoff_seconds(Source(backoff_base_seconds=2.0, backoff_factor=2.0), 1, retry_after=30) == 30


def test_no_failures_means_succeeded():
    assert _decide(event(), set(), True, None).status == EventStatus.SUCCEEDED


def test_transient_failures_retry_until_max_attempts_then_dead_letter():
    assert _decide(event(round_attempts=2), {FailureKind.TRANSIENT}, True, None).status == EventStatus.RETRY_SCHEDULED
    assert _decide(event(round_attempts=3), {FailureKind.TRANSIENT}, True, None).status == EventStatus.DEAD_LETTER


def test_recoverable_failures_retry_later_for_a_bounded_number_of_rounds(settings):
    settings.MENDHOOK_RECOVERABLE_RETRY_DELAY_SECONDS = 300
    settings.MENDHOOK_RECOVERABLE_MAX_ROUNDS = 3
    decision = _decide(event(recoverable_rounds=2), {FailureKind.RECOVERABLE}, True, None)
    assert (decision.status, decision.delay, decision.recoverable_round) == (EventStatus.RETRY_SCHEDULED, 300, True)
    exhausted = _decide(event(recoverable_rounds=3), {FailureKind.RECOVERABLE}, True, None)
    assert exhausted.status == EventStatus.PARTIAL_FAILURE


def test_a_permanent_failure_among_recoverable_ones_waits_for_a_person():
    decision = _decide(event(), {FailureKind.RECOVERABLE, FailureKind.PERMANENT}, True, None)
    assert decision.status == EventStatus.PARTIAL_FAILURE


def test_an_event_level_permanent_failure_without_items_is_failed():
    assert _decide(event(), {FailureKind.PERMANENT}, False, None).status == EventStatus.FAILED
