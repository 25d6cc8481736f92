"""Queue health tells the truth: what the broker holds, what the real worker runs, what the
database says failed, and why it is unhealthy when it is."""

import socket
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from kombu import Connection
from kombu.utils.json import dumps

from config.celery_app import app
from ops_app.queue_health import worker_snapshot_forget
from tests.support.api import api_for
from tests.support.events import make_event
from tests.support.signing import matter_payload
from tests.support.waiting import wait_for
from tests.support.worker import purge_queues, sibling_redis_url
from webhooks_app.models import EventStatus, WebhookEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]


def queue(body, name):
    return next(q for q in body["queues"] if q["name"] == name)


@pytest.mark.integration
def test_it_sees_the_worker_and_the_task_it_is_running(worker, clio_source, post_webhook, fake_clio):
    api = api_for(clio_source.organization)
    fake_clio.hold_on_request = 1  # the event's first downstream call hangs until the gate opens
    fake_clio.gate.clear()
    try:
        response = post_webhook(clio_source, matter_payload(location="miami"))
        assert fake_clio.held.wait(timeout=30), "the worker never called downstream"
        worker_snapshot_forget()

        body = api.get("queue-health").json()
    finally:
        fake_clio.gate.set()

    webhooks = queue(body, "webhooks")
    assert webhooks["active"] == 1
    assert body["metrics"]["active"] >= 1
    assert body["stats"]["workersOnline"] >= 1
    assert all(q["workers"] >= 1 for q in body["queues"])
    event_id = response.json()["id"]
    wait_for(lambda: WebhookEvent.objects.get(id=event_id).status == EventStatus.SUCCEEDED, message="the event")


@pytest.mark.integration
def test_a_queue_no_worker_consumes_makes_it_unhealthy_and_counts_as_paused(worker, organization):
    api = api_for(organization)
    app.control.cancel_consumer("alerts", reply=True)
    try:
        for _ in range(3):
            app.send_task("webhooks_app.tasks.send_dead_letter_alert", args=[str(uuid.uuid4())], queue="alerts")
        worker_snapshot_forget()

        body = api.get("queue-health").json()
    finally:
        purge_queues()
        app.control.add_consumer("alerts", reply=True)
        worker_snapshot_forget()

    alerts = queue(body, "alerts")
    assert (alerts["waiting"], alerts["workers"]) == (3, 0)
    assert (body["metrics"]["waiting"], body["metrics"]["paused"], body["stats"]["queueDepth"]) == (3, 3, 3)
    assert body["healthy"] is False
    assert "queue 'alerts' has 3 waiting and no worker consuming it" in body["reasons"]


def test_an_unreachable_broker_is_reported_as_unhealthy_not_as_an_error(organization, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    monkeypatch.setattr(
        app,
        "connection_for_read",
        lambda: Connection(f"redis://127.0.0.1:{dead_port}/0", transport_options={"socket_connect_timeout": 0.5}),
    )

    response = api_for(organization).get("queue-health")

    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is False
    assert any(r.startswith("the broker is unreachable") for r in body["reasons"])
    assert (body["metrics"]["waiting"], body["stats"]["workersOnline"], body["stats"]["totalJobs"]) == (
        None,
        None,
        None,
    )


def test_failure_rate_dead_letters_and_old_waiting_events_are_reasons(source):
    now = timezone.now()
    make_event(source, status=EventStatus.SUCCEEDED, completed_at=now)
    for _ in range(11):
        make_event(source, status=EventStatus.DEAD_LETTER, received_at=now - timedelta(hours=1))
    make_event(source, status=EventStatus.DEAD_LETTER, received_at=now - timedelta(hours=25))  # outside 24h
    waiting = make_event(source, status=EventStatus.QUEUED)
    WebhookEvent.objects.filter(id=waiting.id).update(updated_at=now - timedelta(minutes=10))

    body = api_for(source.organization).get("queue-health").json()

    assert body["healthy"] is False
    assert (body["metrics"]["completed"], body["metrics"]["deadLetter"]) == (1, 11)
    # 11 of the 13 received in the window; the waiting one counts in the denominator too.
    assert body["stats"]["failureRate"] == "84.62%"
    assert body["stats"]["oldestWaitingSeconds"] >= 600
    reasons = " | ".join(body["reasons"])
    assert "failure rate of events received in the last 24h is 84.62%" in reasons
    assert "11 events received in the last 24h are dead letters" in reasons
    assert "the oldest waiting event has waited" in reasons


def test_it_uses_delivery_stats_groups_and_denominator(source):
    now = timezone.now()
    for status in (
        EventStatus.SUCCEEDED,
        EventStatus.SUCCEEDED,
        EventStatus.SUCCEEDED,
        EventStatus.PARTIAL_FAILURE,
        EventStatus.FAILED,
        EventStatus.RETRY_SCHEDULED,
        EventStatus.RETRY_SCHEDULED,
        EventStatus.PROCESSING,
    ):
        make_event(source, status=status, received_at=now - timedelta(minutes=5))
    make_event(source, status=EventStatus.RETRY_SCHEDULED, received_at=now - timedelta(days=3))  # outside 24h
    api = api_for(source.organization)

    health = api.get("queue-health").json()
    summary = api.get("delivery-stats", range="24h").json()["summary"]

    metrics = health["metrics"]
    assert (metrics["completed"], metrics["failed"], metrics["deadLetter"], metrics["retryPending"]) == (3, 2, 0, 2)
    assert {k: metrics[k] for k in ("completed", "failed", "deadLetter", "retryPending")} == {
        k: summary[k] for k in ("completed", "failed", "deadLetter", "retryPending")
    }
    assert summary["pending"] == 1  # the processing one; retries are never plain pending
    assert metrics["delayed"] == 3  # every scheduled retry now, the old one too
    # Both rates over the 8 events received in the window: 3/8 succeeded, 2/8 need a person.
    assert (summary["successRate"], health["stats"]["failureRate"]) == ("37.50%", "25.00%")


def test_it_counts_messages_delivered_to_a_worker_but_not_acknowledged(organization, broker):
    client = redis.Redis.from_url(sibling_redis_url(settings.REDIS_URL))  # the `broker` fixture's
    # What kombu's Redis transport writes when it hands a message to a consumer (acks_late).
    held = {
        "tag-1": dumps([{"body": ""}, "webhooks", "webhooks"]),
        "tag-2": dumps([{"body": ""}, "webhooks", "webhooks"]),
        "tag-3": dumps([{"body": ""}, "alerts", "alerts"]),
    }
    client.hset("unacked", mapping=held)
    try:
        body = api_for(organization).get("queue-health").json()
    finally:
        client.delete("unacked")

    assert (queue(body, "webhooks")["unacked"], queue(body, "alerts")["unacked"]) == (2, 1)
    assert queue(body, "maintenance")["unacked"] == 0
    assert body["metrics"]["unacked"] == 3


def test_nothing_finished_means_no_failure_rate_rather_than_zero(organization):
    body = api_for(organization).get("queue-health").json()

    assert body["stats"]["failureRate"] is None
    assert not any("failure rate" in r for r in body["reasons"])
