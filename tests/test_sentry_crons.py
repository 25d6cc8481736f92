"""Beat's jobs are Sentry Cron monitors: the worker that runs a job beat sent checks it in (in
progress, then ok), so a job that stops running or keeps failing shows in Sentry. Sentry Crons
takes whole-minute schedules only; the seconds-apart dispatchers are left out, not warned about
on every tick."""

import json

import pytest

from config.beat import BEAT_SCHEDULE
from tests.support.fake_http import Recorder
from tests.support.processes import start_beat
from tests.support.waiting import wait_for
from tests.support.worker import WorkerProcess, worker_env

MINUTELY = [name for name, entry in BEAT_SCHEDULE.items() if entry["schedule"] == 60.0]


def check_ins(sentry_receiver: Recorder) -> list[dict[str, object]]:
    found = []
    for body in sentry_receiver.bodies("/api/1/envelope/"):
        lines = body.split(b"\n")
        for header, item in zip(lines[1::2], lines[2::2], strict=False):
            if header.strip() and json.loads(header).get("type") == "check_in":
                found.append(json.loads(item))
    return found


@pytest.mark.integration
@pytest.mark.timeout(170)
def test_a_minutely_beat_job_checks_in_to_sentry_and_a_seconds_apart_one_is_left_out(
    worker: WorkerProcess, sentry_receiver: Recorder
) -> None:
    assert MINUTELY, "a job every minute to watch"
    # The session worker reports to the local Sentry; this beat does too, which is what makes it
    # attach the monitor to the jobs it sends.
    beat = start_beat(worker_env(SENTRY_DSN=f"http://publickey@127.0.0.1:{sentry_receiver.port}/1"))
    try:

        def minutely_check_ins() -> list[dict[str, object]]:
            mine = [c for c in check_ins(sentry_receiver) if c.get("monitor_slug") in MINUTELY]
            return mine if {c.get("status") for c in mine} >= {"in_progress", "ok"} else []

        # A minutely job first falls due a minute after beat starts.
        found = wait_for(minutely_check_ins, timeout=120, interval=1, message=f"check-ins:\n{beat.output()}")
    finally:
        beat.stop()
    # One check-in pair per run: "in_progress" when the worker starts it, "ok" with its duration.
    ok = [c for c in found if c.get("status") == "ok"]
    assert ok and all(isinstance(c.get("duration"), float) for c in ok)
    assert any(c.get("monitor_config", {}).get("schedule") == {"type": "interval", "value": 1, "unit": "minute"}
               for c in found)  # fmt: skip
    slugs = {c.get("monitor_slug") for c in check_ins(sentry_receiver)}
    assert "dispatch-due-retries" not in slugs  # every 5 s: left out
    assert "not supported by Sentry Crons" not in beat.output()
