"""Downstream faults and dead workers, end to end through real workers: a 429's Retry-After on
one item, and work orphaned by a worker killed mid-attempt."""

import time
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone

from tests.factories import SourceFactory
from tests.support.fake_http import FakeClio, Fault
from tests.support.signing import matter_payload
from tests.support.waiting import settle
from tests.support.worker import WorkerProcess, purge_queues, worker_env
from webhooks_app.models import ConnectorKind, EventStatus, Organization, Source, WebhookEvent
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.services.dispatch import events_heal_stuck

pytestmark = [pytest.mark.integration]


@pytest.fixture
def impatient_clio_source(organization: Organization, fake_clio: FakeClio) -> Source:
    """Backoff far shorter than any Retry-After below, so honouring it is visible."""
    return SourceFactory(
        organization=organization,
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.2,
        backoff_factor=1.0,
    )


def send(post_webhook, source, **payload_kw) -> str:
    response = post_webhook(source, matter_payload(**payload_kw))
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_it_waits_for_an_items_retry_after_before_the_next_attempt(
    worker, impatient_clio_source, post_webhook, fake_clio
):
    fake_clio.fail_key(":3", Fault(429, retry_after="4"))

    event = settle(
        send(post_webhook, impatient_clio_source, location="miami"), statuses={EventStatus.SUCCEEDED}, timeout=45
    )

    first, second = fake_clio.request_times(":3")
    # The backoff alone would ask again after 0.2-0.25 s; the downstream asked for 4.
    assert second - first >= 4.0
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", "error_code"))
    assert outcomes == [(AttemptOutcome.RETRY_SCHEDULED, "ERR_RATE_LIMITED"), (AttemptOutcome.SUCCEEDED, "")]
    assert fake_clio.creations == 10
    assert event.items.get(number=3).retry_after is None  # cleared once the item succeeded


@pytest.fixture
def own_workers(transactional_db, worker_process, fake_clio) -> Iterator[Callable[..., WorkerProcess]]:
    """Workers started by the test itself, with the session's worker paused meanwhile, so the
    test knows which worker holds an event and with which lease."""
    worker_process.stop()
    fake_clio.reset()
    purge_queues()
    started: list[WorkerProcess] = []

    def start(name: str, **env: str) -> WorkerProcess:
        started.append(WorkerProcess(env=worker_env(**env), name=name).start())
        return started[-1]

    yield start
    fake_clio.gate.set()
    for proc in started:
        proc.stop()
    purge_queues()
    worker_process.start()


def heal_until(event_id: str, done: Callable[[WebhookEvent], bool], timeout: float) -> WebhookEvent:
    """Run the healer the way beat does, but every second, until done(event) or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = WebhookEvent.objects.get(id=event_id)
        if done(event):
            return event
        events_heal_stuck()
        time.sleep(1.0)
    pytest.fail(f"event {event_id} not done after {timeout}s: {WebhookEvent.objects.get(id=event_id).status}")


def test_it_keeps_the_claim_of_a_handler_slower_than_its_lease(own_workers, clio_source, post_webhook, fake_clio):
    own_workers("slow", PROCESSING_LEASE_SECONDS="3", CONNECTOR_HTTP_TIMEOUT_SECONDS="30")
    fake_clio.hold_on_request = 2  # item 2 is created downstream; its answer takes 10 s
    fake_clio.gate.clear()
    event_id = send(post_webhook, clio_source, location="miami")
    assert fake_clio.held.wait(timeout=30), "the worker never reached item 2"
    holder = WebhookEvent.objects.get(id=event_id).claimed_by

    # Three leases long, with the healer running every second: the claim never runs out.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert events_heal_stuck() == 0
        event = WebhookEvent.objects.get(id=event_id)
        assert (event.status, event.claimed_by) == (EventStatus.PROCESSING, holder)
        assert event.claimed_until > timezone.now()
        time.sleep(1.0)
    fake_clio.gate.set()

    event = settle(event_id, statuses={EventStatus.SUCCEEDED}, timeout=30)
    assert list(event.attempt_log.values_list("outcome", flat=True)) == [AttemptOutcome.SUCCEEDED]
    assert event.attempts == 1
    assert fake_clio.creations == 10
    assert len(fake_clio.requests) == 10  # no second worker ever asked for anything


def test_it_hands_a_killed_workers_event_to_another_worker_within_a_lease(
    own_workers, clio_source, post_webhook, fake_clio
):
    # The default lease, as in production: orphaned work must be back within about a minute.
    workers = [own_workers(name, CONNECTOR_HTTP_TIMEOUT_SECONDS="30") for name in ("left", "right")]
    fake_clio.hold_on_request = 5
    fake_clio.gate.clear()
    event_id = send(post_webhook, clio_source, location="miami")
    assert fake_clio.held.wait(timeout=30), "no worker reached item 5"

    held_by = WebhookEvent.objects.get(id=event_id).attempt_log.get().worker
    dead = next(w for w in workers if held_by.startswith(f"{w.name}@"))
    dead.kill()  # main process and pool children: its unacked message stays hidden for an hour
    killed_at = time.monotonic()
    fake_clio.hold_on_request = None
    fake_clio.gate.set()

    event = heal_until(event_id, lambda e: e.status == EventStatus.SUCCEEDED, timeout=90)
    assert time.monotonic() - killed_at <= 60
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.WORKER_LOST, AttemptOutcome.SUCCEEDED]
    assert fake_clio.creations == 10  # item 5 was re-sent with its key, not created twice
