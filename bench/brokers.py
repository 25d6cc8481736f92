"""The brokers the end-to-end phase runs on, each with its own no-op baseline: Redis (the bench's
db 11) and RabbitMQ (a vhost of its own, `mendhook_bench`, made with rabbitmqctl if missing).

Each says how many messages wait in a queue, empties only the project's queues, makes this
process publish to it, and counts finished no-op tasks (Redis: kombu's `unacked` hash; RabbitMQ
does not tell unacknowledged messages over AMQP, so the worker's own "succeeded" log lines).
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import infra
from bench.infra import BenchFailure
from config.queues import Queue

QUEUE = Queue.WEBHOOKS.value
RABBITMQ_VHOST = os.environ.get("BENCH_RABBITMQ_VHOST", "mendhook_bench")


@dataclass
class Broker:
    name: str
    worker_env: dict[str, str]
    waiting: Callable[[], int]
    clean: Callable[[], object]
    publishing: Callable[[], contextlib.AbstractContextManager[object]]
    # (count, worker log) -> a progress() for drain(): finished no-op tasks.
    noop_progress: Callable[[int, Path], Callable[[], int]]


def redis() -> Broker:
    client = infra.redis_client()

    def noop_progress(count: int, _log: Path) -> Callable[[], int]:
        def done() -> int:
            # acks_late: a message leaves "unacked" only once its task has returned.
            with client.pipeline(transaction=False) as pipe:
                pipe.llen(QUEUE)
                pipe.hlen("unacked")
                waiting, unacked = pipe.execute()
            return count - int(waiting) - int(unacked)

        return done

    return Broker(
        name="Redis",
        worker_env={},
        waiting=lambda: int(client.llen(QUEUE)),
        clean=infra.redis_clean,
        publishing=contextlib.nullcontext,
        noop_progress=noop_progress,
    )


def rabbitmq() -> Broker:
    from tests.support.rabbitmq import RabbitMQUnavailable, rabbitmq_for

    try:
        rabbit = rabbitmq_for(RABBITMQ_VHOST)
    except RabbitMQUnavailable as exc:
        raise BenchFailure(str(exc)) from exc

    def noop_progress(count: int, log: Path) -> Callable[[], int]:
        seen = {"offset": 0, "done": 0}

        def done() -> int:
            # Read only what the worker appended since the last look.
            with contextlib.suppress(FileNotFoundError), log.open("rb") as out:
                out.seek(seen["offset"])
                chunk = out.read()
                whole = chunk[: chunk.rfind(b"\n") + 1]
                seen["offset"] += len(whole)
                # celery.app.trace: "Task bench.tasks.noop[<id>] succeeded in 0.0003s: None"
                seen["done"] += whole.count(b"] succeeded in ")
            return seen["done"]

        return done

    @contextlib.contextmanager
    def publishing() -> Iterator[object]:
        with rabbit.current() as app:
            yield app

    return Broker(
        name="RabbitMQ",
        worker_env={"CELERY_BROKER_URL": rabbit.url},
        waiting=lambda: rabbit.depth(QUEUE),
        clean=rabbit.purge,
        publishing=publishing,
        noop_progress=noop_progress,
    )


BROKERS: dict[str, Callable[[], Broker]] = {"redis": redis, "rabbitmq": rabbitmq}
