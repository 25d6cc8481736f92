"""Publishing work to the broker by task name, and reading how much waits in a queue.

Services publish through here instead of importing task modules: tasks import services, never
the reverse, so no import cycle forms. The queue a task lands on comes from CELERY_TASK_ROUTES
(config.queues), which `send_task` applies by name like `apply_async` does.
"""

import json
from collections import Counter
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
    """Messages waiting (not yet delivered) in `queue`, through each transport's public API:
    LLEN on Redis, a passive queue_declare on AMQP. Raises when the broker is unreachable."""
    with current_app.connection_for_read() as conn:
        channel: Any = conn.default_channel  # kombu's channel types do not declare these members
        if conn.transport.driver_type == "redis":
            client = channel.client
            pipe = client.pipeline()
            for suffix in _REDIS_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
            return int(sum(pipe.execute()))
        try:
            declared = channel.queue_declare(queue=queue, passive=True)
        except amqp.exceptions.NotFound:
            # Not declared yet (no worker has consumed it, nothing was published): empty. The
            # broker closes the channel after a failed passive declare; the connection goes with it.
            return 0
        return int(declared.message_count)


def queue_unacked() -> dict[str, int] | None:
    """Messages delivered to a worker but not yet acknowledged, per queue (acks_late keeps a
    message unacknowledged until its task ends). Raises when the broker is unreachable.

    Redis: kombu's transport keeps each such message in its `unacked` hash with the routing key
    it was published with, which names the queue here (config.queues). AMQP does not tell
    through the protocol (only the management API would), so None: unknown, not zero.
    """
    with current_app.connection_for_read() as conn:
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
