"""Exactly one beat schedules (a Redis lock), and every beat job is safe when two copies run at
once anyway (a lock can change hands while the old holder's message still waits in a queue)."""

import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import connection
from django.utils import timezone

from ops_app.acts.error_groups import error_groups_resolve_settled
from ops_app.beat_lock import BeatLock, heartbeat_read, lock_holder
from ops_app.errors import record_error
from ops_app.models import AuditEntry, ErrorRecord
from tests.support.events import make_event
from tests.support.processes import ManagedProcess, PrivateRedis, start_beat
from tests.support.waiting import settle, wait_for
from tests.support.worker import worker_env
from webhooks_app.models import EventStatus
from webhooks_app.models.events import ProcessingAttempt
from webhooks_app.services.dispatch import retries_dispatch_due

HOST = socket.gethostname()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


def test_a_second_lock_is_refused_until_the_holder_releases_it(private_redis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    first, second = BeatLock(client, ttl=30), BeatLock(client, ttl=30)
    second.identity = "other-host:7"

    assert first.hold() is True
    assert second.hold() is False
    assert lock_holder(client) == f"{HOST}:{os.getpid()}"
    assert first.hold() is True  # renewing is holding

    first.release()
    assert second.hold() is True
    assert lock_holder(client) == "other-host:7"
    assert first.hold() is False


def test_a_holder_whose_lock_expired_and_was_taken_never_gets_it_back_by_renewing(private_redis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    stalled, successor = BeatLock(client, ttl=30), BeatLock(client, ttl=30)
    assert stalled.hold()
    client.delete("mendhook:beat:lock")  # what the TTL does to a holder that stalled too long
    assert successor.hold()
    stalled.renewed_at = 0.0  # due for renewal

    assert stalled.hold() is False
    assert lock_holder(client) == f"{HOST}:{os.getpid()}"  # the successor's token still stands
    assert successor.hold() is True


def sent_tasks(beat: ManagedProcess) -> int:
    return beat.output().count("Sending due task")


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_two_real_beats_one_schedules_the_other_stands_by_and_takes_over_when_it_dies(
    transactional_db, private_redis
) -> None:
    env = worker_env(REDIS_URL=private_redis.url, CELERY_BROKER_URL=private_redis.url, BEAT_LOCK_TTL_SECONDS="4")
    client = redis.Redis.from_url(private_redis.url)
    first = start_beat(env)
    second: ManagedProcess | None = None
    try:
        wait_for(lambda: sent_tasks(first) >= 1, timeout=60, message=f"the first beat to send:\n{first.output()}")
        second = start_beat(env)
        wait_for(
            lambda: "is standing by and schedules nothing" in second.output(),
            timeout=60,
            message=f"the second beat to stand by:\n{second.output()}",
        )
        assert f"another beat holds the lock ({HOST}:{first.proc.pid})" in second.output()
        beat = heartbeat_read(client)
        assert beat is not None and beat.holder == f"{HOST}:{first.proc.pid}"

        # While the first holds the lock, only it sends (dispatch-due-retries is due every 5 s).
        before = sent_tasks(first)
        wait_for(lambda: sent_tasks(first) >= before + 2, timeout=30, message="the holder to keep sending")
        assert sent_tasks(second) == 0

        # Killed without a chance to release: the lock expires after its TTL and the standby
        # takes over.
        first.proc.kill()
        first.proc.wait()
        wait_for(lambda: sent_tasks(second) >= 1, timeout=30, message=f"the standby to take over:\n{second.output()}")
        assert f"beat lock taken by {HOST}:{second.proc.pid}" in second.output()
        assert lock_holder(client) == f"{HOST}:{second.proc.pid}"
        wait_for(lambda: (heartbeat_read(client) or beat).holder == f"{HOST}:{second.proc.pid}", timeout=10)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    # A clean stop gives the lock back at once instead of leaving it to the TTL.
    assert lock_holder(client) is None


# --- beat jobs, two copies at once --------------------------------------------------------------


def twice_at_once(job: Callable[[], Any]) -> list[Any]:
    """Run `job` in two threads that start together, each on its own database connection."""
    barrier = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(job())
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_resolve_settled_error_groups_resolve_and_audit_each_group_once(source) -> None:
    for place in "abcdefghijklmnopqrst":  # letters: a group's fingerprint ignores numbers
        event = make_event(source, status=EventStatus.SUCCEEDED)
        record_error(function="webhooks_app.tasks.process_event", message=f"no CSC in {place}", event_id=event.id)
    assert ErrorRecord.objects.filter(resolved=False).count() == 20

    results = twice_at_once(error_groups_resolve_settled)

    assert sum(results) == 20
    assert ErrorRecord.objects.filter(resolved=False).count() == 0
    assert AuditEntry.objects.filter(act="resolve_error_group").count() == 20


@pytest.mark.integration
def test_two_copies_of_dispatch_due_retries_still_process_each_event_once(worker, clio_source, fake_clio) -> None:
    now = timezone.now()
    events = [
        make_event(clio_source, status=EventStatus.RETRY_SCHEDULED, next_retry_at=now - timedelta(seconds=1))
        for _ in range(8)
    ]

    results = twice_at_once(retries_dispatch_due)

    assert sum(results) >= 8  # both copies may publish the same event: the claim decides
    for event in events:
        assert settle(event.id, timeout=60).status == EventStatus.SUCCEEDED
    assert ProcessingAttempt.objects.filter(event__in=events).count() == 8
    # Ten templates per Miami event, each sent and created downstream exactly once.
    assert fake_clio.creations == 80
    assert len([r for r in fake_clio.requests if r["method"] == "POST"]) == 80
