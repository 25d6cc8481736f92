"""The retry schedule, verified with controlled time (the claim and the dispatcher take `now`),
the alert after the last attempt, 410, Retry-After, the days-long failure that disables an
endpoint, and what brings failed notifications back: a person's retry and recover-since."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import BookingFactory
from tests.support.fake_http import Recorder
from tests.support.outbound import Receiver, endpoint_listening
from tests.support.processes import free_port
from tests.support.waiting import wait_for
from webhooks_app.breakers import breaker_reset
from webhooks_app.models import Delivery, DeliveryStatus, DisabledReason, Endpoint, OutboundMessage
from webhooks_app.services.outbound.delivery import breaker_name, delivery_run
from webhooks_app.services.outbound.dispatch import deliveries_dispatch_due
from webhooks_app.services.outbound.endpoint_state import endpoint_enable
from webhooks_app.services.outbound.operations import (
    delivery_retry,
    endpoint_recover,
    endpoint_recover_plan,
    endpoints_disable_failing,
    message_retry,
)

pytestmark = [pytest.mark.integration]
MINUTE = timedelta(minutes=1)


def settled(delivery: Delivery, *statuses: DeliveryStatus) -> Delivery:
    def check() -> Delivery | None:
        delivery.refresh_from_db()
        return delivery if delivery.status in statuses else None

    return wait_for(check, timeout=30, message=f"delivery to reach {statuses}")


def test_an_unreachable_receiver_is_tried_at_0_5_15_45_minutes_then_failed_with_an_alert(
    worker, organization, alert_receiver: Recorder
):
    endpoint = Endpoint.objects.create(
        organization=organization, url=f"http://127.0.0.1:{free_port()}/hooks", event_types=["booking.created"]
    )
    endpoint.signing_secret_new()
    endpoint.save()
    BookingFactory(organization=organization)
    delivery = settled(Delivery.objects.get(), DeliveryStatus.RETRY_SCHEDULED)  # attempt 1, by the worker
    first = delivery.last_attempt_at
    assert delivery.next_attempt_at == first + 5 * MINUTE
    assert delivery.last_error_code == "ERR_CONNECTION"

    # Beat's dispatcher hands it out exactly when it is due, not a second before.
    assert deliveries_dispatch_due(now=first + 5 * MINUTE - timedelta(seconds=1)) == 0
    assert deliveries_dispatch_due(now=first + 5 * MINUTE) == 1

    # Attempts 2 and 3 at their due time, each waiting the schedule's next step.
    for elapsed, wait in ((5, 15), (20, 45)):
        at = first + elapsed * MINUTE
        assert delivery_run(delivery_id=delivery.id, task_id=f"t{elapsed}", now=at) == DeliveryStatus.RETRY_SCHEDULED
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == at + wait * MINUTE
    # Not a moment early: a run before the due time claims nothing.
    assert delivery_run(delivery_id=delivery.id, task_id="early", now=first + 64 * MINUTE) is None

    assert delivery_run(delivery_id=delivery.id, task_id="t65", now=first + 65 * MINUTE) == DeliveryStatus.FAILED
    delivery.refresh_from_db()
    assert delivery.attempts == 4
    assert delivery.next_attempt_at is None
    assert list(delivery.attempt_log.values_list("number", "error_code")) == [
        (n, "ERR_CONNECTION") for n in (1, 2, 3, 4)
    ]
    alert = wait_for(lambda: alert_receiver.bodies("/slack"), message="the alert")
    text = json.loads(alert[0])["text"]
    assert "booking.created" in text and "after 4 attempts" in text and str(delivery.id) in text
    endpoint.refresh_from_db()
    assert endpoint.failing_since == first


def test_retry_after_delays_the_next_attempt_beyond_the_schedule_up_to_the_cap(
    worker, organization, receiver: Receiver, settings
):
    settings.MENDHOOK_OUTBOUND_RETRY_AFTER_MAX_SECONDS = 3600
    endpoint = endpoint_listening(organization, receiver, event_types=["booking.created"])
    receiver.down(429, retry_after="1800")
    BookingFactory(organization=organization)
    delivery = settled(Delivery.objects.get(), DeliveryStatus.RETRY_SCHEDULED)
    assert delivery.next_attempt_at == delivery.last_attempt_at + 30 * MINUTE  # not +5
    assert delivery.last_error_code == "ERR_RATE_LIMITED"

    receiver.down(503, retry_after="999999")  # far beyond the cap
    at = delivery.next_attempt_at
    delivery_run(delivery_id=delivery.id, task_id="t2", now=at)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == at + timedelta(seconds=3600)
    assert endpoint.retry_schedule == [0, 300, 900, 2700]


def test_410_gone_fails_the_delivery_and_disables_the_endpoint(worker, organization, receiver: Receiver):
    endpoint = endpoint_listening(organization, receiver, event_types=["booking.created"])
    receiver.down(410)
    BookingFactory(organization=organization)
    delivery = settled(Delivery.objects.get(), DeliveryStatus.FAILED)
    assert (delivery.attempts, delivery.last_error_code) == (1, "ERR_ENDPOINT_GONE")
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, DisabledReason.GONE)
    assert "410" in endpoint.disabled_note

    # A process that still has the endpoint in its subscription cache (up to its TTL) writes a
    # delivery; the worker cancels it instead of sending it.
    BookingFactory(organization=organization)
    later = Delivery.objects.exclude(id=delivery.id).first()
    if later is not None:
        later = settled(later, DeliveryStatus.CANCELLED)
        assert later.last_error_code == "ERR_ENDPOINT_DISABLED"
    assert len(receiver.requests) == 1


def _failed_bookings(organization, receiver: Receiver, count: int) -> list[Delivery]:
    endpoint_listening(organization, receiver, retry_schedule=[0])
    receiver.down(503)
    for _ in range(count):
        BookingFactory(organization=organization)
    wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == count, timeout=30)
    return list(Delivery.objects.order_by("created_at"))


def test_a_person_retries_one_delivery_and_it_arrives_exactly_once(worker, organization, receiver: Receiver):
    first, second = _failed_bookings(organization, receiver, 2)
    receiver.up()
    change = delivery_retry(delivery_id=first.id)
    assert (change.status_before, change.status_after) == ("failed", "pending")

    settled(first, DeliveryStatus.DELIVERED)
    assert [m["_id"] for m in receiver.verified()] == [first.message.webhook_id]
    second.refresh_from_db()
    assert second.status == DeliveryStatus.FAILED  # only the one retried


def test_retrying_a_message_resends_only_its_failed_deliveries(worker, organization, receiver: Receiver):
    [delivery] = _failed_bookings(organization, receiver, 1)
    receiver.up()
    message_retry(message_id=delivery.message_id)
    settled(delivery, DeliveryStatus.DELIVERED)
    with pytest.raises(Exception, match="nothing to retry"):
        message_retry(message_id=delivery.message_id)
    assert len(receiver.verified()) == 1


def test_recover_since_resends_what_failed_since_then_once_each(worker, organization, receiver: Receiver):
    old, *recent = _failed_bookings(organization, receiver, 4)
    since = recent[0].created_at
    endpoint = old.endpoint
    assert endpoint_recover_plan(endpoint=endpoint, since=since).failed == 3
    receiver.up()

    endpoint_recover(endpoint_id=endpoint.id, since=since)
    assert deliveries_dispatch_due() == 3  # beat hands them out
    for delivery in recent:
        settled(delivery, DeliveryStatus.DELIVERED)
    assert sorted(m["_id"] for m in receiver.verified()) == sorted(d.message.webhook_id for d in recent)
    old.refresh_from_db()
    assert old.status == DeliveryStatus.FAILED  # before `since`
    assert endpoint_recover_plan(endpoint=endpoint, since=since).total == 0


def test_recover_since_paces_its_deliveries_by_the_rate(organization, settings):
    settings.MENDHOOK_OUTBOUND_RECOVER_PER_SECOND = 2
    endpoint = Endpoint.objects.create(organization=organization, url="http://127.0.0.1:9/", event_types=["x"])
    now = timezone.now()
    OutboundMessage.objects.create(organization=organization, event_type="x", payload={}, created_at=now - MINUTE)
    for i in range(5):
        message = OutboundMessage.objects.create(organization=organization, event_type="x", payload={"i": i})
        Delivery.objects.create(
            message=message, endpoint=endpoint, organization=organization, event_type="x",
            status=DeliveryStatus.FAILED, created_at=now - timedelta(minutes=10 - i),
        )  # fmt: skip
    plan = endpoint_recover_plan(endpoint=endpoint, since=now - timedelta(hours=1))
    assert (plan.failed, plan.missed) == (5, 1)  # the first message never had a delivery

    endpoint_recover(endpoint_id=endpoint.id, since=now - timedelta(hours=1), now=now)
    due = sorted((d.next_attempt_at - now).total_seconds() for d in Delivery.objects.all())
    assert due == [0, 0, 1, 1, 2, 3]  # two per second, the missed one last


def test_an_endpoint_failing_for_five_days_is_disabled_with_an_alert_and_enabling_offers_recovery(
    worker, organization, alert_receiver: Recorder
):
    now = timezone.now()
    failing = Endpoint.objects.create(
        organization=organization,
        url="http://127.0.0.1:9/",
        event_types=["x"],
        failing_since=now - timedelta(days=5, minutes=1),
    )
    recent = Endpoint.objects.create(
        organization=organization, url="http://127.0.0.1:9/", event_types=["x"], failing_since=now - timedelta(days=4)
    )
    assert endpoints_disable_failing(now=now) == 1
    assert endpoints_disable_failing(now=now) == 0  # twice at once is harmless
    failing.refresh_from_db()
    recent.refresh_from_db()
    assert (failing.enabled, failing.disabled_reason, recent.enabled) == (False, DisabledReason.FAILING, True)
    alert = wait_for(lambda: alert_receiver.bodies("/slack"), message="the alert")
    assert "disabled the notification endpoint" in json.loads(alert[0])["text"]

    change = endpoint_enable(endpoint_id=failing.id)
    assert change.failing_since == now - timedelta(days=5, minutes=1)  # where recovery would start
    failing.refresh_from_db()
    assert (failing.enabled, failing.failing_since) == (True, None)


def test_a_dispatch_run_skips_rows_another_run_holds(transactional_db, organization, broker):
    from django.db import connections, transaction

    endpoint = Endpoint.objects.create(organization=organization, url="http://127.0.0.1:9/", event_types=["x"])
    past = timezone.now() - MINUTE
    rows = []
    for _ in range(3):
        message = OutboundMessage.objects.create(organization=organization, event_type="x", payload={})
        rows.append(
            Delivery.objects.create(
                message=message, endpoint=endpoint, organization=organization, event_type="x",
                status=DeliveryStatus.RETRY_SCHEDULED, next_attempt_at=past,
            )
        )  # fmt: skip
    # Another run holds one row's lock: this run publishes the other two.
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM webhooks_app_delivery WHERE id = %s FOR UPDATE", [rows[0].id])
            assert deliveries_dispatch_due() == 2
        other.rollback()
    finally:
        other.close()
    assert deliveries_dispatch_due() == 1  # published since: only the one that was held
    assert transaction.get_autocommit()


def test_an_event_left_partly_failed_notifies_the_endpoints_subscribed_to_it(
    worker, organization, source, receiver: Receiver, settings
):
    from tests.support.events import make_event
    from tests.support.signing import matter_payload
    from webhooks_app.services.processing import event_process

    settings.MENDHOOK_RECOVERABLE_MAX_ROUNDS = 0  # no automatic round: a person's problem at once
    endpoint_listening(organization, receiver, event_types=["event.partial_failure"])
    endpoint_listening(organization, Receiver(), event_types=["event.dead_lettered"])
    event = make_event(source, payload=matter_payload(location="naples"))
    assert event_process(event_id=event.id, task_id="t", worker="w:1") == "partial_failure"

    [sent] = wait_for(lambda: receiver.verified(), message="the operational event")
    assert sent["type"] == "event.partial_failure"
    assert sent["data"]["eventId"] == str(event.id)
    assert sent["data"]["failureDetails"][0]["error_code"] == "ERR_ASSIGNEE_NO_CSC"
    assert OutboundMessage.objects.count() == 1
    assert Delivery.objects.count() == 1  # the dead-letter subscriber gets nothing


@pytest.mark.django_db
def test_a_receiver_that_is_down_trips_its_endpoints_breaker_and_later_deliveries_wait_without_an_attempt(
    organization, settings
):
    endpoint = Endpoint.objects.create(
        organization=organization, url=f"http://127.0.0.1:{free_port()}/hooks", event_types=["booking.created"]
    )
    endpoint.signing_secret_new()
    endpoint.save()
    name = breaker_name(endpoint.id)
    settings.MENDHOOK_BREAKER_OVERRIDES = {name: {"fail_max": 2, "reset_seconds": 60}}
    deliveries = []
    for n in range(3):
        message = OutboundMessage.objects.create(
            organization=organization, event_type="booking.created", payload={"n": n}
        )
        deliveries.append(
            Delivery.objects.create(
                message=message, endpoint=endpoint, organization=organization, event_type="booking.created"
            )
        )
    now = timezone.now()
    try:
        # Two refused connections: each a real attempt, the second trips the endpoint's breaker.
        for delivery, task in zip(deliveries[:2], "ab", strict=True):
            assert delivery_run(delivery_id=delivery.id, task_id=task, now=now) == DeliveryStatus.RETRY_SCHEDULED
        # The third is held back before it is claimed: no attempt spent, none logged, due again
        # when the breaker lets a call probe.
        assert delivery_run(delivery_id=deliveries[2].id, task_id="c", now=now) is None
        held = Delivery.objects.get(id=deliveries[2].id)
        assert (held.status, held.attempts, held.attempt_log.count()) == (DeliveryStatus.PENDING, 0, 0)
        assert 50 < (held.next_attempt_at - now).total_seconds() <= 60
    finally:
        breaker_reset(name)
