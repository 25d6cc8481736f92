"""RabbitMQ as the broker: quorum queues with the same names, a delivery limit that dead-letters
instead of redelivering forever, countdowns that always publish, and queue depth read through
the protocol. (Dispatch, retries and redelivery after SIGKILL run on both brokers in
test_processing.py; the broker outage in test_outages.py.)"""

import contextlib
import socket
import time
import uuid
from typing import Any

import amqp.exceptions
import pytest
from kombu import Connection, Producer

from config.brokers import DEAD_LETTER_QUEUE, dead_letter_queue, work_queue
from config.publishing import publish, queue_depths, queue_unacked
from config.queues import Queue
from tests.support.waiting import wait_for
from tests.support.worker import WorkerProcess, worker_env

pytestmark = [pytest.mark.integration]


@pytest.fixture
def idle_rabbitmq(rabbitmq, rabbit_worker_process):
    """The test vhost with its worker started (which declares the queues and the delayed-delivery
    exchanges, as in production) but not consuming, so messages stay to be counted; this
    process publishes to it."""
    # Addressed to the one worker, so each broadcast returns on its reply instead of a timeout.
    node = [f"{rabbit_worker_process.name}@{socket.gethostname()}"]
    control = rabbitmq.app.control
    paused = [q.value for q in Queue if control.cancel_consumer(q.value, destination=node, reply=True, timeout=5)]
    assert len(paused) == len(Queue)
    rabbitmq.purge()
    with rabbitmq.current():
        yield rabbitmq
    rabbitmq.purge()
    for name in paused:
        control.add_consumer(name, destination=node, reply=True, timeout=5)


def test_it_publishes_onto_quorum_queues_of_the_same_names_and_reads_their_depth(idle_rabbitmq):
    publish("webhooks_app.tasks.process_event", "00000000-0000-0000-0000-000000000000")
    publish("webhooks_app.tasks.process_event", "00000000-0000-0000-0000-000000000001")
    publish("webhooks_app.tasks.send_dead_letter_alert", "00000000-0000-0000-0000-000000000000")
    publish("webhooks_app.tasks.heal_stuck_events")

    assert queue_depths([*(q.value for q in Queue), "never-used"]) == {
        **dict.fromkeys((q.value for q in Queue), 0),
        "webhooks": 2,
        "alerts": 1,
        "maintenance": 1,
        "never-used": 0,
    }
    # The protocol does not tell how many are delivered and unacknowledged: unknown, not zero.
    assert queue_unacked() is None
    with Connection(idle_rabbitmq.url) as conn:
        declared = channel_of(conn).queue_declare(queue="webhooks", passive=True)
        assert declared.message_count == 2


def test_a_sub_second_countdown_is_published_and_arrives_after_it(idle_rabbitmq):
    # Celery's native delayed delivery counts whole seconds and refuses a countdown that
    # truncates to 0; ours rounds up, so the message waits (at least) its countdown.
    published = time.monotonic()
    publish("webhooks_app.tasks.heal_stuck_events", countdown=0.3)

    assert idle_rabbitmq.depth(Queue.MAINTENANCE.value) == 0
    wait_for(lambda: idle_rabbitmq.depth(Queue.MAINTENANCE.value) == 1, timeout=10, interval=0.05)
    assert time.monotonic() - published >= 0.3


def test_a_message_handed_out_past_the_delivery_limit_is_dead_lettered(rabbitmq):
    name = f"mendhook-test-limit-{uuid.uuid4().hex[:8]}"
    with Connection(rabbitmq.url) as conn:
        channel = conn.channel()
        dead = dead_letter_queue()(channel)
        dead.declare()
        dead.purge()
        queue = work_queue(name, delivery_limit=2)(channel)
        queue.declare()
        try:
            Producer(channel).publish({"poison": True}, exchange=queue.exchange, routing_key=name, declare=[queue])
            handed_out = 0

            def hand_out_until_dead_lettered():
                nonlocal handed_out
                if (message := queue.get(no_ack=False)) is not None:
                    handed_out += 1
                    message.requeue()  # what acks_late + reject_on_worker_lost do when a worker dies
                return dead.get(no_ack=True)

            letter = wait_for(hand_out_until_dead_lettered, timeout=10, interval=0.02)
            # The first delivery and two redeliveries, then RabbitMQ moved it aside.
            assert handed_out == 3
            assert queue.get(no_ack=True) is None
            assert letter.payload == {"poison": True}
            assert letter.headers["x-death"][0]["reason"] == "delivery_limit"
            assert letter.headers["x-death"][0]["queue"] == name
        finally:
            with contextlib.suppress(amqp.exceptions.AMQPError):
                channel_of(conn).queue_delete(name)


def test_a_starting_worker_declares_the_dead_letter_queue(transactional_db, rabbitmq):
    with Connection(rabbitmq.url) as conn:
        channel_of(conn).queue_delete(DEAD_LETTER_QUEUE)
    assert not _exists(rabbitmq.url, DEAD_LETTER_QUEUE)

    worker = WorkerProcess(env=worker_env(CELERY_BROKER_URL=rabbitmq.url), name="dead-letter", concurrency=1)
    try:
        worker.start()
        assert _exists(rabbitmq.url, DEAD_LETTER_QUEUE)
    finally:
        worker.stop()


def _exists(url: str, queue: str) -> bool:
    with Connection(url) as conn:
        try:
            channel_of(conn).queue_declare(queue=queue, passive=True)
        except amqp.exceptions.NotFound:
            return False
        return True


def channel_of(conn: Connection) -> Any:
    # kombu's channel type does not declare the AMQP methods its pyamqp channels have.
    return conn.channel()
