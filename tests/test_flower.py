"""Flower against the real broker and worker: engineers see the worker and every task it ran."""

import sys
from collections.abc import Iterator

import httpx
import pytest

from config.queues import Queue
from tests.support.processes import ManagedProcess, free_port, wait_port
from tests.support.signing import matter_payload
from tests.support.waiting import wait_for
from tests.support.worker import worker_env
from webhooks_app.models import EventStatus, WebhookEvent

pytestmark = [pytest.mark.integration]

AUTH = ("flower", "test-only-password")


@pytest.fixture
def flower(worker) -> Iterator[httpx.Client]:
    """Flower on a free port, with basic auth, started before any task of the test runs: it
    only knows about tasks whose events it received."""
    port = free_port()
    proc = ManagedProcess(
        "flower",
        [
            sys.executable, "-m", "celery", "-A", "config", "flower",
            f"--port={port}", "--address=127.0.0.1", f"--basic-auth={AUTH[0]}:{AUTH[1]}",
        ],
        worker_env(),
    )  # fmt: skip
    try:
        wait_port(port, timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=AUTH, timeout=10) as client:
            # The worker marked online in its metrics (from heartbeat events) means its event
            # receiver is live, so the events of the task this test runs will not go by unseen.
            wait_for(
                lambda: 'flower_worker_online{worker="test@' in client.get("/metrics").text,
                timeout=30,
                message=f"Flower to receive worker events:\n{proc.output()}",
            )
            yield client
    finally:
        proc.stop()


def test_flower_shows_the_worker_and_the_task_that_processed_an_event(flower, worker, source, post_webhook):
    response = post_webhook(source, matter_payload(location="miami"))
    event_id = response.json()["id"]
    wait_for(lambda: WebhookEvent.objects.get(id=event_id).status == EventStatus.SUCCEEDED, message="the event")
    task_id = WebhookEvent.objects.get(id=event_id).attempt_log.get().task_id

    def task_seen():
        info = flower.get(f"/api/task/info/{task_id}")
        return info.json() if info.status_code == 200 and info.json().get("state") == "SUCCESS" else None

    task = wait_for(task_seen, timeout=20, message="Flower to show the task as succeeded")
    assert task["name"] == "webhooks_app.tasks.process_event"
    assert event_id in task["args"]
    assert task["worker"].startswith("test@")
    assert task_id in flower.get("/api/tasks", params={"taskname": "webhooks_app.tasks.process_event"}).json()

    workers = flower.get("/api/workers", params={"refresh": "1"}).json()
    (name,) = [n for n in workers if n.startswith("test@")]
    assert {q["name"] for q in workers[name]["active_queues"]} == {queue.value for queue in Queue}


def test_flower_refuses_requests_without_its_password(flower):
    assert httpx.get(f"{flower.base_url}/api/workers", timeout=10).status_code == 401
