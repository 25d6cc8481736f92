"""Alerts: delivery of the dead-letter alert (4xx permanent, 5xx retried), and alerts on trends
that fire once when a condition starts and once when it recovers."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.publishing import publish
from ops_app.alerting import alerts_evaluate
from ops_app.models import Alert, AlertCondition, AlertState, ErrorRecord
from ops_app.models.alerts import scope_key
from tests.factories import AlertFactory, OrganizationFactory
from tests.support.events import make_event
from tests.support.fake_http import Fault, Recorder
from tests.support.waiting import wait_for
from tests.support.worker import purge_queues
from webhooks_app.breakers import breaker_call, breaker_reset
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import EventStatus, Source, WebhookEvent

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


# --- Alerts on trends -------------------------------------------------------------------------


def _finished(source: Source, status: str, *, at, count: int, attempts: int = 1) -> None:
    """`count` events that finished `at` with `status` after `attempts` attempts."""
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            organization=source.organization,
            source=source,
            idempotency_key=uuid.uuid4().hex,
            event_type="matter.stage_changed",
            payload={},
            status=status,
            attempts=attempts,
            received_at=at - timedelta(minutes=1),
            completed_at=at,
        )
        for _ in range(count)
    )


def _finished_mixed(source: Source, at) -> None:
    """90 % success: 18 succeeded, 2 partial failures."""
    _finished(source, EventStatus.SUCCEEDED, at=at, count=18)
    _finished(source, EventStatus.PARTIAL_FAILURE, at=at, count=2)


def _changes(result) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    return ({(a.condition, a.scope) for a in result.started}, {(a.condition, a.scope) for a in result.recovered})


TREND_CASES = {
    # condition: (what makes it fire in the last hour, in the test's organization)
    AlertCondition.DEAD_LETTERS: lambda s, at: _finished(s, EventStatus.DEAD_LETTER, at=at, count=11),
    AlertCondition.SUCCESS_RATE: lambda s, at: _finished_mixed(s, at),
    AlertCondition.AVERAGE_ATTEMPTS: lambda s, at: _finished(s, EventStatus.SUCCEEDED, at=at, count=20, attempts=3),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("condition", list(TREND_CASES), ids=str)
def test_each_trend_condition_fires_once_and_recovers_once(condition, source, broker):
    now = timezone.now()
    TREND_CASES[condition](source, now - timedelta(minutes=5))
    org = scope_key(source.organization_id)

    first = alerts_evaluate(now=now)
    again = alerts_evaluate(now=now + timedelta(minutes=1))

    assert _changes(first) == ({(condition, org), (condition, "global")}, set())
    assert _changes(again) == (set(), set())  # still firing: nothing new to say
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 2
    # An hour on, the window holds none of it.
    later = alerts_evaluate(now=now + timedelta(minutes=70))
    assert _changes(later) == (set(), {(condition, org), (condition, "global")})
    assert _changes(alerts_evaluate(now=now + timedelta(minutes=71))) == (set(), set())
    alert = Alert.objects.get(scope=org)
    assert (alert.state, alert.started_at, alert.ended_at) == (
        AlertState.RESOLVED,
        now,
        now + timedelta(minutes=70),
    )
    assert broker() == 0  # notifications ride the alerts queue, not the processing one


@pytest.mark.django_db(transaction=True)
def test_it_does_not_fire_at_the_threshold_nor_judge_rates_on_too_little_volume(source, broker):
    now = timezone.now()
    _finished(source, EventStatus.DEAD_LETTER, at=now - timedelta(minutes=5), count=10)  # = 10, not > 10

    result = alerts_evaluate(now=now)

    # 10 dead letters of 10 events: 0 % success and 1 attempt each, but fewer than 20 events.
    assert _changes(result) == (set(), set())


@pytest.mark.django_db(transaction=True)
def test_the_oldest_waiting_event_fires_and_recovers_when_it_is_picked_up(source, broker):
    now = timezone.now()
    event = make_event(source, status=EventStatus.QUEUED)
    WebhookEvent.objects.filter(id=event.id).update(updated_at=now - timedelta(minutes=11))
    org = scope_key(source.organization_id)

    started = alerts_evaluate(now=now)
    WebhookEvent.objects.filter(id=event.id).update(status=EventStatus.PROCESSING)
    recovered = alerts_evaluate(now=now + timedelta(minutes=1))

    cond = AlertCondition.OLDEST_WAITING
    assert _changes(started) == ({(cond, org), (cond, "global")}, set())
    assert _changes(recovered) == (set(), {(cond, org), (cond, "global")})
    assert Alert.objects.get(scope=org).last_value is None  # nothing waits any more


@pytest.mark.django_db(transaction=True)
def test_a_breaker_open_longer_than_its_limit_fires_once_and_recovers_once(source, broker, settings):
    name = f"alert-{uuid.uuid4().hex[:8]}"
    settings.MENDHOOK_BREAKER_OVERRIDES = {name: {"fail_max": 1, "reset_seconds": 3600}}
    settings.MENDHOOK_ALERT_BREAKER_OPEN_MINUTES = 5

    def outage() -> None:
        raise ProcessingError("down", code=ErrorCode.CONNECTION)

    try:
        with pytest.raises(ProcessingError):
            breaker_call(name, outage)
        now = timezone.now()
        soon = alerts_evaluate(now=now + timedelta(minutes=4))  # open, but not for long yet
        late = alerts_evaluate(now=now + timedelta(minutes=6))
        again = alerts_evaluate(now=now + timedelta(minutes=7))
        breaker_reset(name)
        closed = alerts_evaluate(now=now + timedelta(minutes=8))
    finally:
        breaker_reset(name)

    mine = AlertCondition.BREAKER_OPEN
    assert [a for a in soon.started if a.condition == mine] == []
    assert [(a.condition, a.subject) for a in late.started if a.condition == mine] == [(mine, name)]
    assert [a for a in again.started if a.condition == mine] == []
    assert [(a.condition, a.subject) for a in closed.recovered if a.condition == mine] == [(mine, name)]


@pytest.mark.integration
def test_a_queue_deeper_than_its_limit_fires_once_and_recovers_once(transactional_db, worker_process, settings):
    worker_process.stop()  # nothing consumes, so messages stay waiting
    purge_queues()
    settings.MENDHOOK_ALERT_QUEUE_DEPTH_MAX = 3
    try:
        for _ in range(4):
            publish("webhooks_app.tasks.sweep_undispatched_events")
        now = timezone.now()
        started = alerts_evaluate(now=now)
        purge_queues()
        recovered = alerts_evaluate(now=now + timedelta(minutes=1))
    finally:
        purge_queues()
        worker_process.start()

    assert [(a.condition, a.subject, a.last_value) for a in started.started] == [
        (AlertCondition.QUEUE_DEPTH, "maintenance", 4.0)
    ]
    assert [(a.condition, a.subject) for a in recovered.recovered] == [(AlertCondition.QUEUE_DEPTH, "maintenance")]


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_start_each_alert_once(source, broker):
    now = timezone.now()
    _finished(source, EventStatus.DEAD_LETTER, at=now - timedelta(minutes=5), count=30)
    barrier = threading.Barrier(2)

    def evaluate():
        barrier.wait()
        try:
            return alerts_evaluate(now=now)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: evaluate(), range(2)))

    started = sorted((a.condition, a.scope) for r in results for a in r.started)
    assert len(started) == len(set(started))  # nobody started what the other did
    assert Alert.objects.filter(state=AlertState.FIRING).count() == len(started)
    assert {c for c, _ in started} == {AlertCondition.DEAD_LETTERS, AlertCondition.SUCCESS_RATE}


@pytest.mark.integration
def test_many_conditions_starting_together_go_out_as_one_digest_and_to_sentry(
    worker, source, alert_receiver: Recorder, sentry_receiver: Recorder
):
    now = timezone.now()
    _finished(source, EventStatus.DEAD_LETTER, at=now - timedelta(minutes=5), count=25, attempts=3)

    result = alerts_evaluate(now=now)

    # Dead letters, success rate and average attempts, each for the organization and globally.
    assert len(result.started) == 6
    body = json.loads(wait_for(lambda: alert_receiver.bodies("/slack"), message="the digest")[0])
    assert body["text"].startswith("mendhook alert digest: 6 started, 0 recovered")
    assert body["text"].count("\n• ") == 6
    assert sorted(body["alert_ids"]) == sorted(a.id for a in result.started)
    wait_for(lambda: Alert.objects.filter(notified_start_at__isnull=False).count() == 6, message="notified marks")

    def alert_envelopes():
        return [b for b in sentry_receiver.bodies("/api/1/envelope/") if b"mendhook-alert" in b]

    envelopes = wait_for(lambda: len(alert_envelopes()) >= 6 and alert_envelopes(), message="6 Sentry events")
    fingerprints = {tuple(json.loads(e.split(b"\n")[2])["fingerprint"]) for e in envelopes}
    assert ("mendhook-alert", "dead_letters", "global", "") in fingerprints
    assert len(fingerprints) == 6  # one Sentry issue per condition and scope

    recovered = alerts_evaluate(now=now + timedelta(hours=2))
    assert len(recovered.recovered) == 6
    bodies = wait_for(lambda: len(alert_receiver.bodies("/slack")) >= 2 and alert_receiver.bodies("/slack"))
    assert json.loads(bodies[1])["text"].startswith("mendhook alert digest: 0 started, 6 recovered")
    time.sleep(1.0)
    assert len(alert_receiver.bodies("/slack")) == 2  # one message per evaluation that changed something


@pytest.mark.django_db
def test_the_api_lists_alerts_by_state_for_the_keys_organization_only(source, api):
    mine = AlertFactory(organization=source.organization, condition=AlertCondition.DEAD_LETTERS)
    AlertFactory(organization=OrganizationFactory(), condition=AlertCondition.DEAD_LETTERS)
    AlertFactory(organization=None, condition=AlertCondition.QUEUE_DEPTH, subject="webhooks")
    resolved = AlertFactory(
        organization=source.organization, condition=AlertCondition.SUCCESS_RATE, state=AlertState.RESOLVED
    )

    firing = api.get("alerts", state="firing")
    every = api.get("alerts")
    bad = api.get("alerts", state="burning")

    assert firing.status_code == 200
    assert [a["id"] for a in firing.json()["alerts"]] == [mine.id]
    assert {a["id"] for a in every.json()["alerts"]} == {mine.id, resolved.id}
    assert bad.status_code == 400 and "state" in bad.content.decode()


@pytest.mark.django_db
def test_the_admin_lists_alerts_read_only(ops, source):
    AlertFactory(organization=source.organization, message="11 dead letters in the last hour in firm-x")

    page = ops.get("/admin/ops_app/alert/")

    assert page.status_code == 200
    assert b"11 dead letters in the last hour" in page.content
    assert ops.get("/admin/ops_app/alert/add/").status_code == 403
