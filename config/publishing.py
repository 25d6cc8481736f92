"""Publishing work to the broker by task name, and reading how much waits in a queue.

Services publish through here instead of importing task modules: tasks import services, never
the reverse, so no import cycle forms. The queue a task lands on comes from CELERY_TASK_ROUTES
(config.queues), which `send_task` applies by name like `apply_async` does.
"""

from typing import Any

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
        declared = channel.queue_declare(queue=queue, passive=True)
        return int(declared.message_count)
