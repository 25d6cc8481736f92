"""The outbound phase: notifications delivered to a local receiver by a real worker, beside raw
httpx POSTs of the same signed body to the same receiver from the same worker command; and the
outbox's cost on the writing transaction (a Booking insert with and without a subscriber).

The receiver is a threaded HTTP/1.1 server in the bench process: it answers 204 at once, keeps
connections alive (as a real receiver would) and counts every POST by its webhook-id, so the
bench can tell "each message delivered exactly once" from "as many POSTs as messages".

Django is set up by __main__ before this module is imported.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from bench import infra
from bench.infra import BenchFailure
from bench.phases import Options, WorkerFigures, drain, reset
from bench.tasks import post
from config.queues import Queue
from localdev.bookings import CREATED
from localdev.models import Booking
from webhooks_app.models import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint, Organization, OutboundMessage
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for
from webhooks_app.services.outbound.delivery import request_build
from webhooks_app.services.outbound.emit import outbound_emit
from webhooks_app.services.outbound.subscriptions import subscriptions_forget

QUEUE = Queue.OUTBOUND.value
# Messages written per transaction while preloading: the outbox publishes each batch on commit.
EMIT_BATCH = 500
# The outbox cost is timed in alternating rounds, so a busy moment of the machine falls on both
# sides rather than on one.
OUTBOX_ROUNDS = 5
OUTBOX_WARMUP = 50


class Receiver:
    """Counts POSTs (total and per webhook-id) and answers 204 with no body."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts = 0
        self.ids: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the workers' pooled clients expect

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.posts += 1
                    receiver.ids[self.headers.get("webhook-id", "")] += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", infra.free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def count(self) -> int:
        with self.lock:
            return self.posts

    def clear(self) -> None:
        with self.lock:
            self.posts = 0
            self.ids.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class OutboxFigures:
    count: int
    plain_rate: float  # Booking inserts/s, nobody subscribed
    outbox_rate: float  # Booking inserts/s, one endpoint subscribed (message + delivery + publish)


def queue_waiting() -> int:
    return int(infra.redis_client().llen(QUEUE))


def endpoint_create(organization: Organization, url: str) -> Endpoint:
    return Endpoint.objects.create(
        organization=organization,
        url=url,
        event_types=[CREATED],
        signing_secret_entries=signing_secret_entries_for(new_signing_secret()),
    )


def booking_payload(n: int) -> dict[str, object]:
    return {"bookingId": f"bench-{n}", "email": f"tutor{n}@example.test", "status": "pending"}


def preload_messages(organization: Organization, count: int) -> None:
    """`count` messages through the product's outbox (outbound_emit), EMIT_BATCH per
    transaction; each delivery's broker message is published on commit."""
    for start in range(0, count, EMIT_BATCH):
        with transaction.atomic():
            for n in range(start, min(count, start + EMIT_BATCH)):
                outbound_emit(organization_id=organization.id, event_type=CREATED, payload=booking_payload(n))


def delivered_verify(endpoint: Endpoint, receiver: Receiver, count: int) -> str:
    by_status = dict(
        Delivery.objects.filter(endpoint=endpoint)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    more_than_one = Delivery.objects.filter(endpoint=endpoint).exclude(attempts=1).count()
    attempts = DeliveryAttempt.objects.filter(endpoint=endpoint)
    succeeded = attempts.filter(succeeded=True).count()
    twice = sum(1 for n in receiver.ids.values() if n > 1)
    if (
        by_status != {DeliveryStatus.DELIVERED.value: count}
        or more_than_one
        or attempts.count() != count
        or succeeded != count
        or receiver.count() != count
        or len(receiver.ids) != count
        or twice
    ):
        raise BenchFailure(
            f"outbound: deliveries by status {by_status}, {more_than_one} not in one attempt, {attempts.count()} "
            f"attempts ({succeeded} succeeded), receiver saw {receiver.count()} POSTs of {len(receiver.ids)} "
            f"webhook-ids ({twice} more than once); want {count} of each"
        )
    return (
        f"outbound: {count} messages delivered exactly once (receiver: {count} POSTs, {count} distinct "
        f"webhook-ids); every delivery delivered in one attempt"
    )


def deliveries_phase(
    options: Options, receiver: Receiver, log: Callable[[str], None]
) -> tuple[WorkerFigures, WorkerFigures, list[str]]:
    count = options.events
    timeout = max(600.0, count / 10)
    organization = Organization.objects.create(slug="bench-out", name="Bench Outbound")
    endpoint = endpoint_create(organization, receiver.url)
    log(f"outbound: preloading {count} messages through outbound_emit ({EMIT_BATCH} per transaction)")
    started = time.perf_counter()
    preload_messages(organization, count)
    log(f"  preloaded in {time.perf_counter() - started:.1f}s; starting the worker")
    if queue_waiting() != count:
        raise BenchFailure(f"outbound: {queue_waiting()} messages in '{QUEUE}', want {count}")

    delivered = Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.DELIVERED)
    last_failure_check = 0.0

    def deliveries_done() -> int:
        nonlocal last_failure_check
        if time.perf_counter() - last_failure_check > 1.0:
            last_failure_check = time.perf_counter()
            failed = Delivery.objects.filter(endpoint=endpoint, attempts__gt=0).exclude(
                status__in=(DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERING)
            )
            if failed.exists():
                raise BenchFailure(f"deliveries failed: {list(failed.values_list('status', 'last_error')[:5])}")
        return delivered.count()

    mendhook = drain("outbound", count, deliveries_done, poll=0.1, timeout=timeout, waiting=queue_waiting)
    checks = [delivered_verify(endpoint, receiver, count)]
    infra.redis_clean()

    # The baseline: the same signed request (as the product builds it), POSTed raw.
    sample = Delivery.objects.select_related("endpoint", "message").filter(endpoint=endpoint).first()
    assert sample is not None
    now = timezone.now()
    headers, body = request_build(sample, secrets=endpoint.signing_secrets_valid(now=now), sent_at=now)
    receiver.clear()
    log(f"baseline: {count} raw httpx POSTs of the same signed body on queue '{QUEUE}', same worker command")
    for _ in range(count):
        post.apply_async(args=(receiver.url, headers, body.decode()), retry=False)
    if queue_waiting() != count:
        raise BenchFailure(f"baseline: {queue_waiting()} messages in '{QUEUE}', want {count}")
    baseline = drain("outbound-httpx", count, receiver.count, poll=0.0, timeout=timeout, waiting=queue_waiting)
    if receiver.count() != count:
        raise BenchFailure(f"baseline: the receiver saw {receiver.count()} POSTs, want {count}")
    checks.append(f"outbound baseline: the receiver saw {count} raw POSTs")
    infra.redis_clean()
    return mendhook, baseline, checks


def bookings_insert(organization: Organization, count: int, start: int) -> float:
    """Seconds for `count` Booking inserts, each in its own transaction (commit and on-commit
    publish included: the request that writes the booking waits for both)."""
    starts_at = timezone.now() + timedelta(days=1)
    began = time.perf_counter()
    for n in range(start, start + count):
        with transaction.atomic():
            Booking.objects.create(
                organization=organization,
                student_name=f"Student {n}",
                student_email=f"student{n}@example.test",
                tutor_name="Tutor",
                tutor_email="tutor@example.test",
                subject="Algebra",
                starts_at=starts_at,
            )
    return time.perf_counter() - began


def outbox_phase(options: Options, receiver: Receiver, log: Callable[[str], None]) -> tuple[OutboxFigures, str]:
    count = max(OUTBOX_ROUNDS, options.events // 5)
    per_round = count // OUTBOX_ROUNDS
    count = per_round * OUTBOX_ROUNDS
    plain = Organization.objects.create(slug="bench-outbox-none", name="Bench Outbox (no subscriber)")
    subscribed = Organization.objects.create(slug="bench-outbox-one", name="Bench Outbox (one subscriber)")
    # No worker runs: the deliveries wait in the queue, cleared afterwards.
    endpoint_create(subscribed, receiver.url)
    log(f"outbox cost: {count} Booking inserts per side, one transaction each, in {OUTBOX_ROUNDS} alternating rounds")
    bookings_insert(plain, OUTBOX_WARMUP, 0)
    bookings_insert(subscribed, OUTBOX_WARMUP, 0)
    seconds = {plain.id: 0.0, subscribed.id: 0.0}
    for r in range(OUTBOX_ROUNDS):
        order = (plain, subscribed) if r % 2 == 0 else (subscribed, plain)
        for organization in order:
            seconds[organization.id] += bookings_insert(organization, per_round, OUTBOX_WARMUP + r * per_round)
    written = OutboundMessage.objects.values("organization_id").annotate(n=Count("id"))
    messages = {row["organization_id"]: row["n"] for row in written}
    deliveries = Delivery.objects.filter(organization=subscribed).count()
    want = count + OUTBOX_WARMUP
    if messages.get(subscribed.id) != want or deliveries != want or messages.get(plain.id):
        raise BenchFailure(
            f"outbox cost: messages by organization {messages}, {deliveries} deliveries; want {want} for the "
            "subscribed organization and none for the other"
        )
    infra.redis_clean()
    check = f"outbox cost: {want} messages and deliveries written with the subscribed bookings, none without"
    figures = OutboxFigures(
        count=count, plain_rate=count / seconds[plain.id], outbox_rate=count / seconds[subscribed.id]
    )
    return figures, check


def outbound_phase(
    options: Options, log: Callable[[str], None]
) -> tuple[WorkerFigures, WorkerFigures, OutboxFigures, list[str]]:
    reset()
    # The truncate restarts ids: an organization cached as subscribed must not be taken for a new one.
    subscriptions_forget()
    receiver = Receiver()
    try:
        mendhook, baseline, checks = deliveries_phase(options, receiver, log)
        reset()
        subscriptions_forget()
        outbox, outbox_check = outbox_phase(options, receiver, log)
    finally:
        receiver.stop()
    return mendhook, baseline, outbox, [*checks, outbox_check]
