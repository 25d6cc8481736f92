"""/health/live and /health/ready: shapes, verdicts per role, and a real Redis outage."""

import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from health_check.exceptions import ServiceUnavailable

from config.queues import Queue
from ops_app.beat_lock import heartbeat_write
from ops_app.health import checks
from ops_app.health.readiness import Role, readiness
from tests.support.events import make_event
from tests.support.processes import PrivateRedis, free_port, start_gunicorn
from tests.support.waiting import wait_for
from tests.support.worker import worker_env
from webhooks_app.breakers import breaker_call, breaker_reset
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import EventStatus, WebhookEvent
from workflows_app.models import Lead, Workflow, WorkflowRun


def test_live_answers_without_asking_the_database(client: Client) -> None:
    # No db fixture: pytest-django makes any database access in this test raise.
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_refuses_an_unknown_role_and_other_methods_with_json(client: Client) -> None:
    bad_role = client.get("/health/ready?role=cook")
    assert bad_role.status_code == 400
    assert bad_role.json()["error"]["code"] == "invalid_role"
    posted = client.post("/health/live")
    assert posted.status_code == 405
    assert posted.json()["error"]["code"] == "method_not_allowed"


def test_the_first_health_endpoint_still_answers(client: Client, db: None) -> None:
    assert client.get("/health/").json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_old_waiting_events_and_overdue_runs_only_warn_a_web_process(source, settings) -> None:
    settings.MENDHOOK_HEALTH_MAX_WAIT_SECONDS = 60
    now = timezone.now()
    young = make_event(source, status=EventStatus.QUEUED)
    old = make_event(source, status=EventStatus.QUEUED)
    WebhookEvent.objects.filter(id=young.id).update(updated_at=now - timedelta(seconds=10))
    WebhookEvent.objects.filter(id=old.id).update(updated_at=now - timedelta(seconds=600))
    org = source.organization
    run = WorkflowRun.objects.create(
        organization=org,
        workflow=Workflow.objects.create(organization=org, name="Intake"),
        lead=Lead.objects.create(organization=org, name="Lee"),
        next_action_at=now - timedelta(seconds=120),
        updated_at=now,
    )

    report = readiness(role=Role.WEB)

    events, runs = report.components["events"], report.components["workflow_runs"]
    assert events["ok"] is False and events["critical"] is False
    assert 595 <= events["oldest_waiting_seconds"] <= 660
    assert "oldest waiting is 6" in events["detail"]
    assert runs["ok"] is False and 115 <= runs["oldest_due_run_seconds"] <= 180
    assert report.ready and report.status == "degraded"
    assert readiness(role=Role.PLATFORM).ready is False

    # Once the work is picked up, nothing is left to warn about.
    WebhookEvent.objects.filter(id=old.id).update(status=EventStatus.SUCCEEDED)
    WorkflowRun.objects.filter(id=run.id).update(step_status="executing")
    report = readiness(role=Role.WEB)
    assert report.components["events"]["ok"] is True
    assert report.components["events"]["oldest_waiting_seconds"] < 60
    assert report.components["workflow_runs"] == {**report.components["workflow_runs"], "ok": True}
    assert report.components["workflow_runs"]["oldest_due_run_seconds"] is None


def test_an_open_breaker_fails_the_breakers_component_until_it_is_reset(settings) -> None:
    name = f"health-{uuid.uuid4().hex[:8]}"
    settings.MENDHOOK_BREAKER_OVERRIDES = {name: {"fail_max": 1, "reset_seconds": 60}}

    def outage() -> None:
        raise ProcessingError("down", code=ErrorCode.CONNECTION)

    try:
        with pytest.raises(ProcessingError):
            breaker_call(name, outage)
        check = checks.Breakers()
        with pytest.raises(ServiceUnavailable, match=name):
            check.run()
        assert check.facts["states"][name] == "open"
        breaker_reset(name)
        check = checks.Breakers()
        check.run()
        assert check.facts["states"][name] == "closed"
    finally:
        breaker_reset(name)


# --- a real web process on a Redis the test owns ---------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


def ready(url: str, role: str = "web") -> httpx.Response:
    return httpx.get(f"{url}/health/ready", params={"role": role}, timeout=10)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_readiness_turns_503_when_redis_is_stopped_and_back_to_200(transactional_db, private_redis) -> None:
    env = worker_env(REDIS_URL=private_redis.url, CELERY_BROKER_URL=private_redis.url)
    web, url = start_gunicorn(env)
    try:
        # No worker and no beat use this Redis: the web process is ready, with warnings.
        first = ready(url)
        body = first.json()
        assert first.status_code == 200, body
        assert body["status"] == "degraded" and body["role"] == "web" and body["reasons"] == []
        components = body["components"]
        assert {n: c["ok"] for n, c in components.items() if c["critical"]} == {
            "database": True,
            "redis": True,
            "broker": True,
        }
        assert components["broker"]["waiting"] == dict.fromkeys((queue.value for queue in Queue), 0)
        assert components["workers"]["ok"] is False and components["workers"]["detail"] == "no worker answered"
        assert components["beat"] == {**components["beat"], "ok": False, "detail": "no beat has ticked"}
        assert set(body["warnings"]) >= {"workers: no worker answered", "beat: no beat has ticked"}

        platform = ready(url, "platform")
        assert platform.status_code == 503
        assert platform.headers["Retry-After"] == "5"
        assert "workers: no worker answered" in platform.json()["reasons"]

        # A beat that ticked a moment ago makes the beat role ready; an old tick does not.
        client = redis.Redis.from_url(private_redis.url)
        heartbeat_write(client, holder="beat-host:42")
        beat = ready(url, "beat").json()
        assert beat["status"] == "ok", beat
        assert beat["components"]["beat"]["holder"] == "beat-host:42"
        assert beat["components"]["beat"]["age_seconds"] < 5
        heartbeat_write(client, holder="beat-host:42", now=time.time() - 600)
        stale = ready(url, "beat")
        assert stale.status_code == 503
        assert stale.json()["reasons"][0].startswith("beat: the last beat tick was 60")

        assert probe("--role", "web", "--url", url)[0] == 0

        private_redis.stop()
        down = ready(url)
        assert down.status_code == 503
        assert down.headers["Retry-After"] == "5"
        reasons = down.json()["reasons"]
        assert any(r.startswith("broker: the broker is unreachable") for r in reasons), reasons
        assert any(r.startswith("redis: Unable to connect to Redis") for r in reasons), reasons
        assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
        code, output = probe("--role", "web", "--url", url)
        assert code == 1 and json.loads(output)["status"] == "unavailable"

        private_redis.start()
        wait_for(lambda: ready(url).status_code == 200, timeout=30, message="readiness to come back")
    finally:
        web.stop()


# --- manage.py health_check, the container probes ----------------------------------------------


def probe(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("health_check", *args, stdout=out, stderr=out)
    return int(exited.value.code or 0), out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_beat_probe_passes_on_a_fresh_heartbeat_and_fails_on_a_stale_one(settings) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    heartbeat_write(client, holder="beat-host:1")
    code, output = probe("--role", "beat")
    assert code == 0, output
    assert json.loads(output)["components"]["beat"]["holder"] == "beat-host:1"

    heartbeat_write(client, holder="beat-host:1", now=time.time() - settings.MENDHOOK_BEAT_STALE_SECONDS - 5)
    code, output = probe("--role", "beat")
    assert code == 1
    assert json.loads(output)["reasons"][0].startswith("beat: the last beat tick was")


@pytest.mark.integration
def test_the_worker_probe_pings_its_own_node_only(worker) -> None:
    node = f"test@{socket.gethostname()}"  # the session worker's name (tests/support/worker.py)
    code, output = probe("--role", "worker", "--node", node)
    assert code == 0, output
    code, output = probe("--role", "worker", "--node", "celery@no-such-host")
    assert code == 1
    assert "node: worker celery@no-such-host did not answer" in json.loads(output)["reasons"][0]


def test_the_web_probe_says_when_nothing_listens() -> None:
    code, output = probe("--role", "web", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert code == 2
    assert "is not reachable" in output
