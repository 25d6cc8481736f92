"""config/beat.py is the one beat schedule: django-celery-beat's tables follow it at beat start."""

from typing import Any

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from config.beat import BEAT_SCHEDULE
from ops_app.beat_sync import beat_schedule_sync
from tests.support.processes import start_beat
from tests.support.waiting import wait_for
from tests.support.worker import worker_env


def entry(task: str = "webhooks_app.tasks.heal_stuck_events", every: float = 60.0, expires: float = 55.0) -> Any:
    return {"task": task, "schedule": every, "options": {"queue": "maintenance", "expires": expires}}


def test_it_writes_every_entry_with_its_interval_queue_and_expiry(db: None) -> None:
    beat_schedule_sync()

    rows = {task.name: task for task in PeriodicTask.objects.select_related("interval")}
    assert set(rows) == set(BEAT_SCHEDULE)
    for name, wanted in BEAT_SCHEDULE.items():
        row = rows[name]
        assert row.enabled
        assert row.task == wanted["task"]
        assert (row.interval.every, row.interval.period) == (wanted["schedule"], IntervalSchedule.SECONDS)
        assert row.queue == wanted["options"]["queue"]
        # Stored where the scheduler reads it, and still shorter than the interval.
        assert row.expire_seconds == int(wanted["options"]["expires"])
        assert row.expire_seconds < row.interval.every


def test_it_disables_the_old_row_when_a_job_is_renamed(db: None) -> None:
    beat_schedule_sync(schedule={"heal-stuck": entry()})

    synced = beat_schedule_sync(schedule={"heal-stuck-events-v2": entry()})

    assert synced.disabled == ["heal-stuck"]
    assert dict(PeriodicTask.objects.values_list("name", "enabled")) == {
        "heal-stuck": False,
        "heal-stuck-events-v2": True,
    }


def test_it_updates_a_changed_interval_and_expiry(db: None) -> None:
    beat_schedule_sync(schedule={"heal-stuck": entry(every=60.0, expires=55.0)})

    synced = beat_schedule_sync(schedule={"heal-stuck": entry(every=30.0, expires=25.0)})

    row = PeriodicTask.objects.select_related("interval").get(name="heal-stuck")
    assert synced.written == ["heal-stuck"]
    assert (row.interval.every, row.expire_seconds) == (30, 25)


def test_it_enables_again_a_job_that_comes_back_to_the_schedule(db: None) -> None:
    beat_schedule_sync(schedule={"heal-stuck": entry()})
    beat_schedule_sync(schedule={})
    assert not PeriodicTask.objects.get(name="heal-stuck").enabled

    beat_schedule_sync(schedule={"heal-stuck": entry()})

    assert PeriodicTask.objects.get(name="heal-stuck").enabled


def test_it_changes_nothing_when_run_again(db: None) -> None:
    beat_schedule_sync()
    PeriodicTask.objects.filter(name="heal-stuck-events").update(total_run_count=7)
    changed_before = PeriodicTasks.last_change()

    synced = beat_schedule_sync()

    assert (synced.written, synced.disabled) == ([], [])
    assert PeriodicTask.objects.get(name="heal-stuck-events").total_run_count == 7
    assert PeriodicTasks.last_change() == changed_before


@pytest.mark.integration
def test_it_syncs_when_a_real_beat_starts(transactional_db: None) -> None:
    # A job renamed away in an earlier release, still enabled in the database.
    beat_schedule_sync(schedule={"sweep-undispatched-events-old": entry(every=10.0, expires=9.0)})

    beat = start_beat(worker_env())
    try:

        def synced() -> bool:
            rows = dict(PeriodicTask.objects.values_list("name", "enabled"))
            return rows.get("sweep-undispatched-events-old") is False and all(rows.get(n) for n in BEAT_SCHEDULE)

        wait_for(synced, timeout=60, message=f"beat to sync its schedule:\n{beat.output()}")
        assert "beat schedule synced from config/beat.py" in beat.output()
        assert PeriodicTask.objects.get(name="dispatch-due-retries").expire_seconds == 4
    finally:
        beat.stop()
