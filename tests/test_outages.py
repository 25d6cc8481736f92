"""Dependency outages at intake: nothing accepted is lost, nothing rejected is half-stored."""

import pytest
from django.db import connection

from tests.support.processes import PrivateRedis, free_port, start_beat, start_gunicorn
from tests.support.rabbitmq import HOST as RABBITMQ_HOST
from tests.support.rabbitmq import PORT as RABBITMQ_PORT
from tests.support.signing import encode, matter_payload, standard_headers
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.support.worker import WorkerProcess, worker_env
from webhooks_app.models import EventStatus, LocalTask, WebhookEvent

pytestmark = [pytest.mark.integration]


def test_broker_down_at_intake_answers_202_and_processes_once_the_broker_is_back(transactional_db, source):
    import httpx

    broker = PrivateRedis()  # not started yet: the broker is down
    env = worker_env(REDIS_URL=broker.url, SWEEP_AFTER_SECONDS="1")
    web, url = start_gunicorn(env)
    worker = beat = None
    try:
        body = encode(matter_payload(location="miami"))
        response = httpx.post(
            f"{url}/webhooks/{source.slug}/",
            content=body,
            headers={**standard_headers(source.signing_secrets[0], body), "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        event = WebhookEvent.objects.get(id=response.json()["id"])

        def unpublished():
            event.refresh_from_db()
            return event.status == EventStatus.RECEIVED  # stored, not yet published

        wait_for(unpublished, timeout=10, message="the refused publish to leave the event for the sweeper")

        broker.start()
        worker = WorkerProcess(env=env, name="outage").start()
        beat = start_beat(env)  # its sweeper publishes what intake could not

        def processed():
            event.refresh_from_db()
            return event.status == EventStatus.SUCCEEDED

        wait_for(processed, timeout=60, message="the swept event to be processed")
        assert event.attempt_log.count() == 1
        assert LocalTask.objects.count() == 10
    finally:
        for proc in (beat, worker, web):
            if proc is not None:
                proc.stop()
        broker.stop()


def test_rabbitmq_down_at_intake_answers_202_and_processes_once_it_is_back(transactional_db, source, rabbitmq):
    import httpx

    # The machine's RabbitMQ stays up for everyone else; this platform reaches it through a
    # proxy that refuses and cuts connections while it is down.
    proxy = TcpProxy(target_host=RABBITMQ_HOST, target_port=RABBITMQ_PORT)
    proxy.down()
    shared_state = PrivateRedis().start()  # beat lock and caches of this platform alone
    env = worker_env(CELERY_BROKER_URL=rabbitmq.url_at(proxy.port), REDIS_URL=shared_state.url, SWEEP_AFTER_SECONDS="1")
    web, url = start_gunicorn(env)
    worker = beat = None
    try:
        body = encode(matter_payload(location="miami"))
        response = httpx.post(
            f"{url}/webhooks/{source.slug}/",
            content=body,
            headers={**standard_headers(source.signing_secrets[0], body), "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        event = WebhookEvent.objects.get(id=response.json()["id"])

        def unpublished():
            event.refresh_from_db()
            return event.status == EventStatus.RECEIVED  # stored, not yet published

        wait_for(unpublished, timeout=10, message="the refused publish to leave the event for the sweeper")

        proxy.up()
        worker = WorkerProcess(env=env, name="rabbit-outage").start()
        beat = start_beat(env)  # its sweeper publishes what intake could not

        def processed():
            event.refresh_from_db()
            return event.status == EventStatus.SUCCEEDED

        wait_for(processed, timeout=60, message="the swept event to be processed")
        assert event.attempt_log.count() == 1
        assert LocalTask.objects.count() == 10
    finally:
        for proc in (beat, worker, web):
            if proc is not None:
                proc.stop()
        shared_state.stop()
        proxy.close()


def test_database_down_at_intake_answers_503_with_retry_after(transactional_db, source, post_webhook):
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there
    try:
        response = post_webhook(source, matter_payload())
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert WebhookEvent.objects.count() == 0
