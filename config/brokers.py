"""The broker behind Celery, chosen by CELERY_BROKER_URL: Redis (the default) or RabbitMQ.

Both carry the same queues (config.queues). On RabbitMQ they are quorum queues (replicated,
persisted, and able to count redeliveries) with a delivery limit, and every publish waits for
the broker's confirm. Settings and the tests' RabbitMQ app both build their Celery options here.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange
from kombu import Queue as KombuQueue

from config.queues import Queue

AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})

# Where RabbitMQ moves a message handed out more often than the delivery limit allows. Nothing
# consumes it: the event row in PostgreSQL stays the truth, and the healer and sweeper recover the
# event whatever happened to its message. The queue keeps the messages two weeks for a look.
DEAD_LETTER_EXCHANGE = "mendhook.dead-letter"
DEAD_LETTER_QUEUE = "mendhook.dead-letter"
DEAD_LETTER_TTL_MS = 14 * 24 * 3600 * 1000

# Redis redelivers a message its worker never acknowledged after this many seconds; every
# countdown we send is far below it, so Redis never redelivers a message that a healthy worker
# still holds (DESIGN.md, safety rules).
REDIS_VISIBILITY_TIMEOUT_SECONDS = 3600


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


def work_queue(name: str, *, delivery_limit: int) -> KombuQueue:
    """A RabbitMQ work queue. Its exchange is a topic exchange named like it, because Celery's
    native delayed delivery (countdowns on quorum queues) cannot route through a direct one; the
    routing key stays the queue's name, as on Redis."""
    return KombuQueue(
        name,
        Exchange(name, type="topic"),
        routing_key=name,
        queue_arguments={
            "x-queue-type": "quorum",
            # A message whose worker keeps dying with it (acks_late + reject_on_worker_lost
            # requeues it each time) stops here instead of going round forever.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )


def dead_letter_queue() -> KombuQueue:
    return KombuQueue(
        DEAD_LETTER_QUEUE,
        Exchange(DEAD_LETTER_EXCHANGE, type="fanout"),
        queue_arguments={"x-queue-type": "quorum", "x-message-ttl": DEAD_LETTER_TTL_MS},
    )


@dataclass(frozen=True)
class BrokerOptions:
    transport_options: dict[str, Any]
    # None: Celery declares each queue on first use, with a direct exchange of its name (Redis).
    task_queues: list[KombuQueue] | None
    queue_type: str

    def celery_conf(self) -> dict[str, Any]:
        """The same options as Celery's lowercase settings, for an app configured in code."""
        return {
            "broker_transport_options": self.transport_options,
            "task_queues": self.task_queues,
            "task_default_queue_type": self.queue_type,
            "task_create_missing_queue_type": self.queue_type,
        }


def broker_options(url: str, *, delivery_limit: int) -> BrokerOptions:
    if is_amqp(url):
        return BrokerOptions(
            # Each publish returns once RabbitMQ has taken the message (written to a quorum of
            # nodes): an accepted event is never only in a socket buffer.
            transport_options={"confirm_publish": True},
            task_queues=[work_queue(q.value, delivery_limit=delivery_limit) for q in Queue],
            queue_type="quorum",
        )
    return BrokerOptions(
        transport_options={
            "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": 2,
        },
        task_queues=None,
        queue_type="classic",
    )
