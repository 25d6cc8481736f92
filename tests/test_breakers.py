"""Circuit breakers shared through Redis by every process: opened in one process, failing fast in
another; one half-open probe across processes; only transient failures count; an open breaker
defers events without using up their attempts, so nothing dead-letters for it."""

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone

from tests.factories import SourceFactory
from tests.support.breakers import QUICK, QUICK_OVERRIDES, QUICK_OVERRIDES_ENV, Callers, quick_slug
from tests.support.fake_http import FakeClio, Fault
from tests.support.signing import matter_payload
from tests.support.waiting import settle, wait_for
from tests.support.worker import worker_env
from webhooks_app.breakers import CLOSED, HALF_OPEN, OPEN, breaker_reset, breaker_state, breaker_states
from webhooks_app.connectors import connector_for
from webhooks_app.connectors.base import TaskSpec
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import ConnectorKind, EventStatus, Organization, Source, WebhookEvent
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.services.processing import event_process


@pytest.fixture
def quick_breakers(settings: Any) -> None:
    """This process uses the quick breaker settings the session worker has."""
    settings.MENDHOOK_BREAKER_OVERRIDES = QUICK_OVERRIDES


@pytest.fixture
def guarded_source(organization: Organization, fake_clio: FakeClio, quick_breakers: None) -> Source:
    return SourceFactory(
        organization=organization,
        slug=quick_slug(),
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.2,
        backoff_factor=1.0,
        max_attempts=2,
    )


def spec(n: int = 1) -> TaskSpec:
    return TaskSpec(
        organization_id=1,
        entity_id="matter-1",
        title=f"Task {n}",
        description="",
        assignee="someone",
        due_at=None,
        idempotency_key=f"{uuid.uuid4()}:{n}",
    )


def call(source: Source) -> str:
    """One call through the source's connector: the downstream id, or the error code."""
    try:
        return connector_for(source).create_task(spec())
    except ProcessingError as error:
        return error.code


def caller_env() -> dict[str, str]:
    return worker_env(BREAKER_OVERRIDES=QUICK_OVERRIDES_ENV)


def trip(source: Source, fake_clio: FakeClio) -> None:
    """Open the source's breaker from this process with real 5xx answers."""
    fake_clio.fail_next(*[Fault(500)] * QUICK["fail_max"])
    assert [call(source) for _ in range(QUICK["fail_max"])] == [ErrorCode.CLIO_API_FAILED] * QUICK["fail_max"]
    assert breaker_state(source.connector_breaker_name).state == OPEN


# --- Shared state and the probe -----------------------------------------------------------------


def test_a_breaker_opened_by_one_process_fails_fast_in_another(db, guarded_source, fake_clio):
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    fake_clio.fail_next(Fault(503), Fault(503))

    (opener,) = Callers(name=name, url=fake_clio.url, env=caller_env(), calls=2).go()
    assert [r["outcome"] for r in opener] == [ErrorCode.CLIO_API_FAILED] * 2
    sent = len(fake_clio.requests)

    (other,) = Callers(name=name, url=fake_clio.url, env=caller_env(), calls=1).go()

    assert other[0]["outcome"] == ErrorCode.CIRCUIT_OPEN
    assert 1.0 <= other[0]["retry_after"] <= QUICK["reset_seconds"]
    assert len(fake_clio.requests) == sent  # failed fast: nothing reached Clio
    state = breaker_state(name)
    assert (state.state, state.failures) == (OPEN, 2)
    assert state.opened_at is not None and abs((timezone.now() - state.opened_at).total_seconds()) < 5
    # And this process, which never called it, sees the same breaker open.
    assert call(guarded_source) == ErrorCode.CIRCUIT_OPEN


def test_only_one_process_probes_when_the_reset_time_has_passed(db, guarded_source, fake_clio):
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)
    racers = Callers(name=name, url=fake_clio.url, env=caller_env(), count=4, calls=1)
    wait_for(lambda: breaker_state(name).seconds_until_probe == 0, timeout=10, message="the reset time")
    # The probe is slow and fails: every other racer arrives while it is in flight.
    fake_clio.fail_next(Fault(500, delay=0.8))
    before = len(fake_clio.requests)

    outcomes = sorted(str(r[0]["outcome"]) for r in racers.go())

    assert len(fake_clio.requests) - before == 1
    assert outcomes == sorted([ErrorCode.CLIO_API_FAILED] + [ErrorCode.CIRCUIT_OPEN] * 3)
    assert breaker_state(name).state == OPEN  # the failed probe opened it again


def test_a_successful_probe_closes_the_breaker_for_every_process(db, guarded_source, fake_clio):
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)
    wait_for(lambda: breaker_state(name).seconds_until_probe == 0, timeout=10, message="the reset time")

    (probe,) = Callers(name=name, url=fake_clio.url, env=caller_env()).go()
    assert probe[0]["outcome"] == "created"

    state = breaker_state(name)
    assert (state.state, state.failures, state.opened_at) == (CLOSED, 0, None)
    assert call(guarded_source).isdigit()  # this process calls through again


def test_a_probe_whose_process_died_does_not_block_the_next_one(db, guarded_source, fake_clio, settings):
    settings.MENDHOOK_BREAKER_PROBE_SECONDS = 0.5
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)
    wait_for(lambda: breaker_state(name).seconds_until_probe == 0, timeout=10, message="the reset time")
    # A prober killed mid-call leaves the breaker half-open with its slot taken until it expires.
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(f"mendhook:breaker:{name}:pybreaker:state", HALF_OPEN)
    client.set(f"mendhook:breaker:{name}:probe", "dead-prober", px=500)
    assert call(guarded_source) == ErrorCode.CIRCUIT_OPEN

    time.sleep(0.6)
    assert call(guarded_source).isdigit()
    assert breaker_state(name).state == CLOSED


# --- What counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 422, 429])
def test_answers_that_are_not_outages_never_open_it(db, guarded_source, fake_clio, status):
    fake_clio.reset()
    fake_clio.fail_next(*[Fault(status, retry_after="1" if status == 429 else None)] * 4)

    outcomes = {call(guarded_source) for _ in range(4)}

    assert ErrorCode.CIRCUIT_OPEN not in outcomes
    state = breaker_state(guarded_source.connector_breaker_name)
    assert (state.state, state.failures) == (CLOSED, 0)
    assert call(guarded_source).isdigit()


def test_a_4xx_between_outage_answers_resets_the_count(db, guarded_source, fake_clio):
    fake_clio.reset()
    fake_clio.fail_next(Fault(500), Fault(422), Fault(500))

    assert [call(guarded_source) for _ in range(3)] == [
        ErrorCode.CLIO_API_FAILED,
        ErrorCode.DOWNSTREAM_REJECTED,
        ErrorCode.CLIO_API_FAILED,
    ]
    state = breaker_state(guarded_source.connector_breaker_name)
    assert (state.state, state.failures) == (CLOSED, 1)


def test_timeouts_and_refused_connections_count(db, organization, quick_breakers, settings):
    settings.MENDHOOK_HTTP_TIMEOUT_SECONDS = 0.5
    source = SourceFactory(
        organization=organization,
        slug=quick_slug(),
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url="http://127.0.0.1:9",  # the discard port: nothing listens
    )

    outcomes = [call(source) for _ in range(3)]

    assert outcomes == [ErrorCode.CONNECTION, ErrorCode.CONNECTION, ErrorCode.CIRCUIT_OPEN]


def test_an_operator_reset_closes_it_at_once_in_every_process(db, guarded_source, fake_clio):
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)

    before = breaker_reset(name)

    assert before.state == OPEN
    assert breaker_state(name).state == CLOSED
    (other,) = Callers(name=name, url=fake_clio.url, env=caller_env()).go()
    assert other[0]["outcome"] == "created"
    assert name in [s.name for s in breaker_states()]


# --- Processing: held back, never dead-lettered -----------------------------------------------------


def make_due(event_id: uuid.UUID) -> None:
    """Skip the wait of a scheduled retry (the schedule itself is asserted before)."""
    WebhookEvent.objects.filter(id=event_id).update(next_retry_at=timezone.now())


def test_an_open_breaker_defers_an_event_more_times_than_its_max_attempts_without_dead_letter(
    db, guarded_source, fake_clio, settings
):
    settings.MENDHOOK_BREAKER_OVERRIDES = {"clio:brk-*": {"fail_max": 2, "reset_seconds": 120}}
    fake_clio.reset()
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)
    sent = len(fake_clio.requests)
    event = WebhookEvent.objects.create(
        organization=guarded_source.organization,
        source=guarded_source,
        idempotency_key=uuid.uuid4().hex,
        event_type="matter.stage_changed",
        payload=matter_payload(location="miami"),
        max_attempts=guarded_source.max_attempts,
        status=EventStatus.QUEUED,
    )

    for n in range(1, guarded_source.max_attempts + 4):
        assert event_process(event_id=event.id, task_id=f"task-{n}", worker="test") == EventStatus.RETRY_SCHEDULED
        event.refresh_from_db()
        opened_at = breaker_state(name).opened_at
        assert opened_at is not None
        # Scheduled after the reset time, not by the 0.2 s backoff.
        assert event.next_retry_at >= opened_at + timedelta(seconds=119)
        assert (event.round_attempts, event.attempts, event.last_error_code) == (0, n, ErrorCode.CIRCUIT_OPEN)
        make_due(event.id)

    assert len(fake_clio.requests) == sent  # nothing was sent while it was open
    breaker_reset(name)
    assert event_process(event_id=event.id, task_id="task-last", worker="test") == EventStatus.SUCCEEDED
    assert fake_clio.creations == 10
    assert set(event.attempt_log.values_list("outcome", flat=True)) == {
        AttemptOutcome.RETRY_SCHEDULED,
        AttemptOutcome.SUCCEEDED,
    }


def test_items_failing_before_the_breaker_opened_still_use_up_the_attempt(db, guarded_source, fake_clio):
    fake_clio.reset()
    fake_clio.fail_next(Fault(500), Fault(500))  # items 1 and 2 fail; the breaker then opens
    event = WebhookEvent.objects.create(
        organization=guarded_source.organization,
        source=guarded_source,
        idempotency_key=uuid.uuid4().hex,
        event_type="matter.stage_changed",
        payload=matter_payload(location="miami"),
        max_attempts=guarded_source.max_attempts,
        status=EventStatus.QUEUED,
    )

    assert event_process(event_id=event.id, task_id="task-1", worker="test") == EventStatus.RETRY_SCHEDULED

    event.refresh_from_db()
    assert event.round_attempts == 1
    codes = list(event.items.order_by("number").values_list("error_code", flat=True))
    assert codes == [ErrorCode.CLIO_API_FAILED] * 2 + [ErrorCode.CIRCUIT_OPEN] * 8
    # The retry waits for the breaker, whichever failure came first.
    assert event.next_retry_at >= timezone.now() + timedelta(seconds=QUICK["reset_seconds"] - 1.5)


@pytest.mark.integration
def test_the_worker_holds_an_event_back_until_the_breaker_resets_then_creates_each_task_once(
    worker, guarded_source, post_webhook, fake_clio
):
    name = guarded_source.connector_breaker_name
    trip(guarded_source, fake_clio)
    opened_at = breaker_state(name).opened_at
    assert opened_at is not None
    fake_clio.reset()

    response = post_webhook(guarded_source, matter_payload(location="miami"))
    event = settle(response.json()["id"], statuses={EventStatus.SUCCEEDED}, timeout=30)

    attempts = list(event.attempt_log.order_by("number").values_list("outcome", "error_code", "started_at"))
    assert attempts[0][:2] == (AttemptOutcome.RETRY_SCHEDULED, ErrorCode.CIRCUIT_OPEN)
    assert attempts[-1][:2] == (AttemptOutcome.SUCCEEDED, "")
    assert attempts[-1][2] >= opened_at + timedelta(seconds=QUICK["reset_seconds"] - 1)
    assert fake_clio.creations == 10 and len(fake_clio.requests) == 10
    assert event.round_attempts == 1
    assert breaker_state(name).state == CLOSED
