"""Publishing work to the broker by task name, and reading how much waits in a queue.

Services publish through here instead of importing task modules: tasks import services, never
the reverse, so no import cycle forms. The queue a task lands on comes from CELERY_TASK_ROUTES
(config.queues), which `send_task` applies by name like `apply_async` does.
"""

import contextlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import amqp.exceptions
from celery import current_app

# kombu's Redis transport keeps one list per priority step next to the queue's own list;
# these suffixes are its defaults (PRIORITY_STEPS 0, 3, 6, 9 with sep "\x06\x16").
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def publish(task_name: str, *args: Any, countdown: float | None = None) -> None:
    """Send one message for `task_name`. Raises on a broker error: callers decide whether that
    is fatal or left to a beat job (retry=False: an HTTP request is never held up waiting)."""
    current_app.send_task(task_name, args=args, countdown=countdown or None, retry=False)


def queue_depth(queue: str) -> int:
    """Messages waiting (not yet delivered) in `queue`. Raises when the broker is unreachable."""
    return queue_depths([queue])[queue]


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue, on one connection, through each transport's public API:
    LLEN on Redis (one round trip), a passive queue_declare on AMQP. Raises when the broker is
    unreachable (one try: a health check that waits out retries is no health check)."""
    names = list(queues)
    with current_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=0)
        if conn.transport.driver_type == "redis":
            channel: Any = conn.default_channel  # kombu's channel types do not declare these members
            pipe = channel.client.pipeline()
            for name in names:
                for suffix in _REDIS_PRIORITY_SUFFIXES:
                    pipe.llen(name + suffix)
            lengths = pipe.execute()
            step = len(_REDIS_PRIORITY_SUFFIXES)
            return {name: int(sum(lengths[i * step : (i + 1) * step])) for i, name in enumerate(names)}
        return {name: _amqp_depth(conn, name) for name in names}


def _amqp_depth(conn: Any, queue: str) -> int:
    # A channel of its own: the broker closes a channel after a failed passive declare.
    channel = conn.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except amqp.exceptions.NotFound:
        return 0  # not declared yet (no worker consumed it, nothing published): empty
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def queue_unacked() -> dict[str, int] | None:
    """Messages delivered to a worker but not yet acknowledged, per queue (acks_late keeps a
    message unacknowledged until its task ends). Raises when the broker is unreachable.

    Redis: kombu's transport keeps each such message in its `unacked` hash with the routing key
    it was published with, which names the queue here (config.queues). AMQP does not tell
    through the protocol (only the management API would), so None: unknown, not zero.
    """
    with current_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=0)
        channel: Any = conn.default_channel
        if conn.transport.driver_type != "redis":
            return None
        counts: Counter[str] = Counter()
        for raw in channel.client.hvals(channel.unacked_key):
            try:
                _message, _exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                routing_key = ""
            counts[str(routing_key)] += 1
        return dict(counts)
