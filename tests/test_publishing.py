"""Publishing by task name lands each message on the queue its route names, and queue depth is
read through the broker's public API."""

import fnmatch

import pytest
import redis
from django.conf import settings

from config.celery_app import app
from config.publishing import publish, queue_depth, queue_depths
from config.queues import QUEUE_OF_TASK, Queue
from tests.support.worker import purge_queues


@pytest.fixture
def queues():
    """Queue lengths while no worker consumes: a session worker started by an earlier test would
    otherwise take the messages before they are counted. Its consumers come back afterwards."""
    names = [q.value for q in Queue]
    paused = [name for name in names if app.control.cancel_consumer(name, reply=True, timeout=2)]
    purge_queues()
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield lambda: {q.value: int(client.llen(q.value)) for q in Queue}
    purge_queues()
    for name in paused:
        app.control.add_consumer(name, reply=True, timeout=2)


def test_every_task_has_a_queue_from_the_enum():
    app.loader.import_default_modules()
    ours = [name for name in app.tasks if name.split(".")[0] in {"webhooks_app", "workflows_app", "ops_app"}]
    for name in ours:
        assert any(fnmatch.fnmatchcase(name, pattern) for pattern in QUEUE_OF_TASK), name


def test_it_publishes_by_name_onto_the_routed_queue(queues):
    publish("webhooks_app.tasks.process_event", "00000000-0000-0000-0000-000000000000")
    publish("webhooks_app.tasks.send_dead_letter_alert", "00000000-0000-0000-0000-000000000000")
    publish("webhooks_app.tasks.heal_stuck_events")

    assert queues() == {"webhooks": 1, "alerts": 1, "maintenance": 1, "workflows": 0, "outbound": 0}


def test_queue_depth_counts_the_messages_waiting(queues):
    for _ in range(3):
        publish("webhooks_app.tasks.process_event", "00000000-0000-0000-0000-000000000000")

    assert queue_depth(Queue.WEBHOOKS.value) == 3
    assert queue_depths([Queue.WEBHOOKS.value, Queue.ALERTS.value, "never-used"]) == {
        "webhooks": 3,
        "alerts": 0,
        "never-used": 0,
    }
