"""The database going away under a worker: the message waits for it instead of being spent."""

import time
import uuid

import pytest
from django.db import connection

from config.celery_app import app
from tests.support.processes import PrivateRedis
from tests.support.signing import matter_payload
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.support.worker import WorkerProcess, worker_env
from webhooks_app.models import EventStatus, LocalTask, WebhookEvent

pytestmark = [pytest.mark.integration]


def test_an_event_published_while_the_database_is_down_is_processed_once_it_is_back(transactional_db, source):
    db = connection.settings_dict
    proxy = TcpProxy(target_host=db["HOST"] or "127.0.0.1", target_port=int(db["PORT"] or 5432))
    # A broker of its own: the session's worker must not take this message.
    broker = PrivateRedis().start()
    env = worker_env(
        REDIS_URL=broker.url,
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
    )
    worker = WorkerProcess(env=env, name="dbdown").start()
    event = WebhookEvent.objects.create(
        organization=source.organization,
        source=source,
        idempotency_key=uuid.uuid4().hex,
        event_type="matter.stage_changed",
        payload=matter_payload(location="miami"),
        status=EventStatus.QUEUED,
    )
    try:
        proxy.down()
        with app.connection_for_write(broker.url) as conn:
            app.send_task("webhooks_app.tasks.process_event", args=(str(event.id),), connection=conn)
        # The worker takes the message and finds no database; before this was handled the
        # message was spent and the event waited for the healer (no beat runs here).
        wait_for(lambda: "OperationalError" in worker.output(), timeout=30, message="the worker to meet the outage")
        time.sleep(3)
        event.refresh_from_db()
        assert event.status == EventStatus.QUEUED

        proxy.up()

        def processed() -> bool:
            event.refresh_from_db()
            return event.status == EventStatus.SUCCEEDED

        wait_for(processed, timeout=90, message="the event to be processed after the outage")
        assert event.attempt_log.count() == 1
        assert LocalTask.objects.count() == 10
    finally:
        worker.stop()
        broker.stop()
        proxy.close()
