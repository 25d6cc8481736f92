"""Poison work is bounded: an event whose worker dies (killed, hard time limit) on every attempt
ends in dead letter with ERR_WORKER_LOST after its max attempts instead of being retried forever."""

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from tests.factories import ProcessingAttemptFactory, SourceFactory
from tests.support.events import make_event, with_items
from tests.support.fake_http import FakeClio, Fault, Recorder
from tests.support.signing import matter_payload
from tests.support.waiting import wait_for
from tests.support.worker import WorkerProcess, private_broker, purge_queues, sibling_redis_url, worker_env
from webhooks_app.errors import ErrorCode
from webhooks_app.models import ConnectorKind, EventStatus, ItemStatus, LocalTask, Organization, Source, WebhookEvent
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.services.dispatch import events_heal_stuck
from webhooks_app.services.processing import event_process


def _orphaned(source: Source, *, round_attempts: int, max_attempts: int = 3) -> WebhookEvent:
    """An event whose last attempt's worker died: still `processing`, lease run out, its
    delivery-log row open."""
    now = timezone.now()
    event = make_event(
        source,
        status=EventStatus.PROCESSING,
        claimed_by="dead-task",
        claimed_until=now - timedelta(seconds=1),
        attempts=round_attempts,
        round_attempts=round_attempts,
        max_attempts=max_attempts,
    )
    for number in range(1, round_attempts + 1):
        last = number == round_attempts
        ProcessingAttemptFactory(
            event=event,
            number=number,
            task_id="dead-task",
            worker="w:1",
            started_at=now - timedelta(minutes=1),
            finished_at=None if last else now - timedelta(seconds=50),
            outcome="" if last else AttemptOutcome.WORKER_LOST,
        )
    return event


@pytest.mark.django_db(transaction=True)
def test_a_takeover_of_the_last_allowed_attempt_dead_letters_without_running_the_handler(source):
    event = _orphaned(source, round_attempts=3, max_attempts=3)

    status = event_process(event_id=event.id, task_id="healer-task", worker="w:2")

    assert status == EventStatus.DEAD_LETTER
    event.refresh_from_db()
    assert (event.status, event.last_error_code, event.success) == (EventStatus.DEAD_LETTER, "ERR_WORKER_LOST", False)
    # The attempts really made: the claim that found the budget spent ran nothing.
    assert (event.attempts, event.round_attempts) == (3, 3)
    assert (event.claimed_by, event.claimed_until) == ("", None)
    log = list(event.attempt_log.order_by("number").values_list("outcome", "error_code"))
    assert log[-1] == (AttemptOutcome.WORKER_LOST, ErrorCode.WORKER_LOST)
    assert len(log) == 3
    assert LocalTask.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_takeover_within_the_budget_counts_the_lost_attempt_and_runs_again(source):
    event = _orphaned(source, round_attempts=2, max_attempts=3)

    status = event_process(event_id=event.id, task_id="healer-task", worker="w:2")

    assert status == EventStatus.SUCCEEDED
    event.refresh_from_db()
    assert (event.attempts, event.round_attempts) == (3, 3)
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.WORKER_LOST, AttemptOutcome.WORKER_LOST, AttemptOutcome.SUCCEEDED]
    assert LocalTask.objects.count() == 10


@pytest.mark.django_db(transaction=True)
def test_a_dead_lettered_lost_event_keeps_its_ledger_and_counts_unfinished_items(source):
    event = with_items(_orphaned(source, round_attempts=2, max_attempts=1), ItemStatus.SUCCEEDED, ItemStatus.PENDING)

    assert event_process(event_id=event.id, task_id="healer-task", worker="w:2") == EventStatus.DEAD_LETTER

    event.refresh_from_db()
    assert (event.action, event.tasks_failed) == ("partial_failure", 1)
    assert event.items.get(number=2).status == ItemStatus.PENDING  # untouched: a requeue resumes it


# --- End to end: a real worker that hits its hard time limit on every attempt ----------------


@pytest.fixture
def own_worker(transactional_db, worker_process, fake_clio, alert_receiver) -> Iterator[Callable[..., WorkerProcess]]:
    """A worker started by the test with its own limits, on a broker database of its own that
    this process publishes to meanwhile: no other worker of the session can take its messages."""
    worker_process.stop()
    fake_clio.reset()
    alert_receiver.reset()
    started: list[WorkerProcess] = []

    def start(name: str, **env: str) -> WorkerProcess:
        own = {"CELERY_BROKER_URL": sibling_redis_url(settings.REDIS_URL), **env}
        started.append(WorkerProcess(env=worker_env(**own), name=name).start())
        return started[-1]

    with private_broker():
        yield start
        for proc in started:
            proc.stop()
    fake_clio.reset()
    purge_queues()
    worker_process.start()


@pytest.mark.integration
def test_an_event_that_always_hits_the_hard_time_limit_ends_in_dead_letter_with_worker_lost(
    own_worker, organization: Organization, fake_clio: FakeClio, alert_receiver: Recorder, post_webhook, monkeypatch
):
    # Celery writes a task's time limits into each message from the publisher's configuration,
    # and the worker obeys the message: every process shares TASK_TIME_LIMIT_SECONDS in
    # production; here this process (the intake and the healer publish, through the fixture's
    # own broker app, whose tasks are bound on first use) takes the worker's 2 s.
    monkeypatch.setitem(current_app.conf, "task_time_limit", 2)
    monkeypatch.setitem(current_app.conf, "task_soft_time_limit", None)
    poison = own_worker(
        "poison",
        TASK_TIME_LIMIT_SECONDS="2",
        TASK_SOFT_TIME_LIMIT_SECONDS="0",  # none: nothing inside the task sees it coming
        PROCESSING_LEASE_SECONDS="2",
        CONNECTOR_HTTP_TIMEOUT_SECONDS="30",
        ALERT_WEBHOOK_URL=f"{alert_receiver.url}/slack",
    )
    # A downstream that never answers within the time limit, whatever is asked of it.
    fake_clio.fail_next(*[Fault(delay=15) for _ in range(10)])
    source = SourceFactory(
        organization=organization,
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        max_attempts=2,
    )
    response = post_webhook(source, matter_payload(location="miami"))
    assert response.status_code == 202
    event_id = response.json()["id"]

    # Beat's healer, run more often than beat would: each lost attempt is handed out again.
    # Generous: each attempt waits out a 2 s hard limit and a worker child's restart, which a
    # busy CI machine can stretch well past their nominal seconds.
    deadline = time.monotonic() + 150
    while WebhookEvent.objects.get(id=event_id).status != EventStatus.DEAD_LETTER:
        event = WebhookEvent.objects.get(id=event_id)
        assert time.monotonic() < deadline, (
            f"{event.status} after {event.attempts} attempts, claimed by {event.claimed_by!r} until "
            f"{event.claimed_until}; {len(fake_clio.requests)} downstream requests; worker log:\n"
            f"{poison.output()[-4000:]}"
        )
        events_heal_stuck()
        time.sleep(0.5)

    event = WebhookEvent.objects.get(id=event_id)
    assert (event.last_error_code, event.attempts) == ("ERR_WORKER_LOST", 2)
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.WORKER_LOST, AttemptOutcome.WORKER_LOST]
    # Each attempt reached the downstream once; the dead letter ran nothing more.
    assert len(fake_clio.requests) == 2
    alert = json.loads(wait_for(lambda: alert_receiver.bodies("/slack"), message="the dead-letter alert")[0])
    assert str(event.id) in alert["text"] and "ERR_WORKER_LOST" in alert["text"]
    time.sleep(3)  # a third attempt would have begun by now
    assert WebhookEvent.objects.get(id=event_id).attempts == 2
    assert len(fake_clio.requests) == 2
