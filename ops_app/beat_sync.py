"""config/beat.py is the one source of the beat schedule; this makes django-celery-beat's tables
agree with it when beat starts.

django-celery-beat's DatabaseScheduler adds and updates the entries of the schedule it is given,
but it keeps running rows that no longer exist there (a renamed job would run under both names)
and it drops `options["expires"]` (it only knows `expire_seconds`), so the rule that every job
expires before its next run would not hold. Both are put right here.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery import schedules
from django.db import models, transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import ModelEntry

from config.beat import BEAT_SCHEDULE

SCHEDULE_FIELDS = ("interval", "crontab", "solar", "clocked")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatSync:
    written: list[str]
    disabled: list[str]


def _schedule_row(schedule: Any) -> tuple[models.Model, str]:
    every = schedules.maybe_schedule(schedule)
    if type(every) is schedules.schedule:
        seconds = int(every.seconds)
        # Looked up rather than saved: saving an unchanged schedule would still make every
        # running scheduler reload its table. The table has no unique key, hence first().
        interval = IntervalSchedule.objects.filter(every=seconds, period=IntervalSchedule.SECONDS).first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=seconds, period=IntervalSchedule.SECONDS)
        return interval, "interval"
    # crontab, solar or clocked: the library's own conversion.
    model_schedule, model_field = ModelEntry.to_model_schedule(schedule)
    return model_schedule, model_field


def _task_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(entry.get("options") or {})
    expires = options.get("expires")
    model_schedule, model_field = _schedule_row(entry["schedule"])
    fields: dict[str, Any] = dict.fromkeys(SCHEDULE_FIELDS)
    fields[model_field] = model_schedule
    fields.update(
        task=entry["task"],
        queue=options.get("queue"),
        # Rounded down: an expiry must stay shorter than the interval it was written for.
        expire_seconds=int(expires) if isinstance(expires, int | float) else None,
        enabled=True,
    )
    return fields


def beat_schedule_sync(*, schedule: Mapping[str, Mapping[str, Any]] = BEAT_SCHEDULE) -> BeatSync:
    """Upsert every entry (name = its key) and disable every other periodic task. Idempotent;
    a row is only written when it differs, so a restart does not reset run counts or times."""
    written: list[str] = []
    with transaction.atomic():
        for name, entry in schedule.items():
            fields = _task_fields(entry)
            task = PeriodicTask.objects.filter(name=name).first()
            if task is None:
                PeriodicTask.objects.create(name=name, **fields)
                written.append(name)
            elif any(getattr(task, field) != value for field, value in fields.items()):
                for field, value in fields.items():
                    setattr(task, field, value)
                task.save()
                written.append(name)
        # Including celery.backend_cleanup, which the scheduler adds by itself: there is no
        # result backend (CELERY_RESULT_BACKEND is None), so it has nothing to clean.
        stale = PeriodicTask.objects.filter(enabled=True).exclude(name__in=list(schedule))
        disabled = sorted(stale.values_list("name", flat=True))
        if disabled:
            stale.update(enabled=False)
            # update() sends no signals: tell running schedulers the table changed.
            PeriodicTasks.update_changed()
    return BeatSync(written=written, disabled=disabled)


def beat_schedule_sync_on_start(**kwargs: Any) -> None:
    """celery's beat_init receiver (connected in ops_app.apps)."""
    synced = beat_schedule_sync()
    logger.info(
        "beat schedule synced from config/beat.py: %d written, disabled %s",
        len(synced.written),
        ", ".join(synced.disabled) or "none",
    )
