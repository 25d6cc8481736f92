"""End to end through a real worker: the seed's scenarios, retries, dead letters, crashes."""

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.factories import AssigneeRuleFactory, TaskTemplateFactory
from tests.support.fake_http import Fault
from tests.support.signing import encode, matter_payload, standard_headers
from tests.support.waiting import settle, wait_for
from webhooks_app.models import (
    AssigneeRule,
    EventAction,
    EventStatus,
    ItemStatus,
    LocalTask,
    WebhookEvent,
)
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.services.dispatch import retries_dispatch_due
from webhooks_app.services.operations import OperationError, event_retry_failed

pytestmark = [pytest.mark.integration]


def send(post_webhook, source, **payload_kw) -> str:
    response = post_webhook(source, matter_payload(**payload_kw))
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_it_creates_all_ten_tasks_when_every_template_succeeds(any_broker_worker, source, post_webhook):
    event = settle(send(post_webhook, source, location="miami"))

    assert event.status == EventStatus.SUCCEEDED
    assert (event.success, event.action, event.tasks_created, event.failure_details) == (
        True,
        EventAction.CREATED_TASKS,
        10,
        None,
    )
    assert LocalTask.objects.filter(entity_id="1001").count() == 10
    assert list(event.attempt_log.values_list("outcome", flat=True)) == [AttemptOutcome.SUCCEEDED]
    assert event.completed_at is not None


def test_it_marks_event_partial_failure_when_one_item_fails(worker, source, post_webhook):
    event = settle(send(post_webhook, source, location="naples"))

    assert (event.success, event.action, event.tasks_created, event.tasks_failed) == (
        False,
        EventAction.PARTIAL_FAILURE,
        9,
        1,
    )
    assert event.failure_details == [
        {
            "task_title": "Send Initial Consultation Packet",
            "task_number": 6,
            "error": "No CSC found for location: naples",
            "error_code": "ERR_ASSIGNEE_NO_CSC",
        }
    ]
    # A recoverable code: retried automatically after the configured delay (default 5 minutes).
    assert event.status == EventStatus.RETRY_SCHEDULED
    delay = (event.next_retry_at - event.last_attempt_at).total_seconds()
    assert 299 <= delay <= 301
    assert LocalTask.objects.count() == 9


def test_it_reports_every_item_when_all_fail(worker, source, post_webhook):
    AssigneeRule.objects.filter(organization=source.organization).delete()

    event = settle(send(post_webhook, source, location="miami"))

    assert (event.success, event.action, event.tasks_created, event.tasks_failed) == (
        False,
        EventAction.PARTIAL_FAILURE,
        0,
        10,
    )
    assert [d["task_number"] for d in event.failure_details] == list(range(1, 11))
    # Attorney gaps are not in the recoverable list, so this waits for a person.
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert LocalTask.objects.count() == 0


def test_fix_then_retry_creates_only_the_missing_task(worker, source, post_webhook):
    event = settle(send(post_webhook, source, location="naples"))
    assert event.status == EventStatus.RETRY_SCHEDULED
    first_ids = set(event.items.filter(status=ItemStatus.SUCCEEDED).values_list("downstream_id", flat=True))

    AssigneeRuleFactory(organization=source.organization, role="csc", location="naples", assignee="csc.lee")
    WebhookEvent.objects.filter(id=event.id).update(next_retry_at=timezone.now() - timedelta(seconds=1))
    assert retries_dispatch_due() == 1  # what beat runs every few seconds

    event = settle(event.id, statuses={EventStatus.SUCCEEDED})
    assert (event.success, event.action, event.tasks_created, event.failure_details) == (
        True,
        EventAction.CREATED_TASKS,
        10,
        None,
    )
    assert LocalTask.objects.count() == 10
    items = {i.number: i for i in event.items.all()}
    assert items[6].attempts == 2 and items[6].assignee == "csc.lee"
    assert all(items[n].attempts == 1 for n in items if n != 6)
    assert first_ids <= set(event.items.values_list("downstream_id", flat=True))
    assert event.recoverable_rounds == 1


def test_a_person_can_retry_a_partial_failure_after_fixing_the_cause(worker, source, post_webhook):
    TaskTemplateFactory(
        organization=source.organization, stage="consultation", task_number=11, title="Notarize", assignee_role="notary"
    )
    event = settle(send(post_webhook, source, location="miami"))
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert event.failure_details[0]["error_code"] == "ERR_ASSIGNEE_NOT_FOUND"

    AssigneeRuleFactory(organization=source.organization, role="notary", location="*", assignee="n.one")
    change = event_retry_failed(event_id=event.id)
    assert (change.status_before, change.status_after) == (EventStatus.PARTIAL_FAILURE, EventStatus.QUEUED)
    with pytest.raises(OperationError):  # already queued: nothing more to retry
        event_retry_failed(event_id=event.id)

    event = settle(event.id, statuses={EventStatus.SUCCEEDED})
    assert event.tasks_created == 11
    assert LocalTask.objects.count() == 11
    assert event.attempts == 2


def test_a_downstream_that_fails_twice_then_recovers_is_retried_with_backoff(
    any_broker_worker, clio_source, post_webhook, fake_clio
):
    fake_clio.fail_key(":1", Fault(500), Fault(429, retry_after="1"))

    event = settle(send(post_webhook, clio_source, location="miami"), statuses={EventStatus.SUCCEEDED}, timeout=45)

    assert event.attempts == 3
    attempts = list(event.attempt_log.order_by("number"))
    assert [a.outcome for a in attempts] == [
        AttemptOutcome.RETRY_SCHEDULED,
        AttemptOutcome.RETRY_SCHEDULED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert [a.error_code for a in attempts] == ["ERR_CLIO_API_FAILED", "ERR_RATE_LIMITED", ""]
    # base 0.5 s then 1 s, but the 429 asked for 1 s: the gaps honour both.
    gap1 = (attempts[1].started_at - attempts[0].finished_at).total_seconds()
    gap2 = (attempts[2].started_at - attempts[1].finished_at).total_seconds()
    assert gap1 >= 0.5 and gap2 >= 1.0
    assert all(a.duration_ms is not None for a in attempts)
    # One creation per item downstream, though item 1 was requested three times.
    assert fake_clio.creations == 10
    assert len(fake_clio.tasks) == 10
    item1 = event.items.get(number=1)
    assert item1.attempts == 3 and item1.status == ItemStatus.SUCCEEDED


def test_a_downstream_that_never_recovers_dead_letters_with_alert_and_sentry(
    worker, clio_source, post_webhook, fake_clio, alert_receiver, sentry_receiver
):
    fake_clio.fail_next(*[Fault(503) for _ in range(30)])

    event = settle(send(post_webhook, clio_source, location="miami"), statuses={EventStatus.DEAD_LETTER}, timeout=45)

    assert (event.attempts, event.success, event.last_error_code) == (3, False, "ERR_CLIO_API_FAILED")
    assert event.tasks_failed == 10
    alerts = wait_for(lambda: alert_receiver.bodies("/slack"), message="the Slack alert")
    alert = json.loads(alerts[0])
    assert str(event.id) in alert["text"] and "dead letter" in alert["text"]

    def dead_letter_envelope():
        return [
            body
            for body in sentry_receiver.bodies("/api/1/envelope/")
            if b"dead-lettered" in body and str(event.id).encode() in body
        ]

    envelope = wait_for(dead_letter_envelope, message="the dead letter as a Sentry envelope")[0]
    _header, item_header, item = envelope.split(b"\n")[:3]
    assert json.loads(item_header)["type"] == "event"
    sentry_event = json.loads(item)
    assert sentry_event["level"] == "error"
    assert sentry_event["environment"] == "test"


def test_timeouts_and_dropped_connections_are_transient(worker, clio_source, post_webhook, fake_clio):
    fake_clio.fail_key(":1", Fault(delay=2.0), Fault(drop=True))

    event = settle(send(post_webhook, clio_source, location="miami"), statuses={EventStatus.SUCCEEDED}, timeout=45)

    codes = list(event.attempt_log.order_by("number").values_list("error_code", flat=True))
    assert codes == ["ERR_TIMEOUT", "ERR_CONNECTION", ""]
    assert fake_clio.creations == 10


def test_a_worker_killed_mid_event_still_completes_without_duplicates(
    any_broker_worker, clio_source, post_webhook, fake_clio
):
    fake_clio.hold_on_request = 5  # task 5 is created downstream, then its response hangs
    fake_clio.gate.clear()
    event_id = send(post_webhook, clio_source, location="miami")
    assert fake_clio.held.wait(timeout=30), "the worker never reached task 5"

    attempt = WebhookEvent.objects.get(id=event_id).attempt_log.get()
    pid = int(attempt.worker.rsplit(":", 1)[1])
    assert pid in any_broker_worker.child_pids()
    os.kill(pid, signal.SIGKILL)
    fake_clio.hold_on_request = None
    fake_clio.gate.set()

    event = settle(event_id, statuses={EventStatus.SUCCEEDED}, timeout=60)
    assert event.tasks_created == 10
    assert fake_clio.creations == 10  # task 5 was re-sent with its key and not created again
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.WORKER_LOST, AttemptOutcome.SUCCEEDED]


def test_twenty_concurrent_deliveries_make_one_event_and_one_run(worker, source, live_server):
    payload = matter_payload(location="miami")
    body = encode(payload)
    headers = {
        **standard_headers(source.signing_secrets[0], body, msg_id="msg_concurrent"),
        "Content-Type": "application/json",
    }

    def deliver(_):
        return httpx.post(f"{live_server.url}/webhooks/{source.slug}/", content=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(deliver, range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert WebhookEvent.objects.count() == 1
    event = settle(responses[0].json()["id"], statuses={EventStatus.SUCCEEDED})
    assert event.attempt_log.count() == 1
    assert LocalTask.objects.count() == 10
