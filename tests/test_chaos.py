"""The chaos run in small: a few hundred signed events while a worker is killed and Redis is
killed and restarted; nothing may be lost, duplicated or left stuck."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]


def test_it_loses_nothing_duplicates_nothing_and_strands_nothing_while_a_worker_and_redis_die():
    # Its own PostgreSQL and Redis, so it touches nothing of the test run's; one worker kill
    # (a pool child) and one Redis kill -9 + restart in a 25-second window.
    command = [
        sys.executable, "-m", "chaos", "--events", "200", "--fault-seconds", "25", "--kill-every", "15",
        "--postgres-stop", "0", "--quiescence-timeout", "240",
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    for line in ("accepted:                  200", "lost:                      0 ", "stuck:                     0"):
        assert line in report, report
    assert "duplicate downstream items: 0" in report
    assert "kill -9 redis-server" in report and "SIGKILL worker" in report
