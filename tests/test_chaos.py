"""The chaos run in small: a few hundred signed events while a worker's pool child and main
process are killed and Redis is killed and restarted; nothing may be lost, duplicated or left
stuck, and every process that died must be back, restarted by the platform's supervisor."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]


def test_it_loses_nothing_duplicates_nothing_and_strands_nothing_while_a_worker_and_redis_die():
    # Its own PostgreSQL and Redis, so it touches nothing of the test run's; in a 25-second
    # window Redis is killed -9 and restarted at 7.5 s, a pool child is killed at 10 s and a
    # worker's main process at 20 s (work it held comes back within a lease plus the healer's
    # interval, ~90 s).
    command = [
        sys.executable, "-m", "chaos", "--events", "200", "--fault-seconds", "25", "--kill-every", "10",
        "--postgres-stop", "0", "--quiescence-timeout", "240",
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    for line in (
        "accepted:                  200",
        "rejected (4xx):            0",
        "lost:                      0 ",
        "stuck:                     0",
        "duplicate downstream items: 0",
        "RESULT: PASS",
    ):
        assert line in report, report
    assert "kill -9 redis-server" in report and "SIGKILL worker" in report

    # The killed main process came back through the supervisor, not the harness.
    killed = re.search(r"SIGKILL (worker\d) main process (\d+)", report)
    assert killed, report
    name = killed[1]
    assert f"{name} exited unexpectedly with code -9" in report, report
    assert re.search(rf"\[supervisor [\d:]+\] {name} restarted \(pid (?!{killed[2]}\))\d+, restart \d+\)", report)
    assert "main processes killed:    1 (" in report, report
    assert "processes alive at end:    all (workers answering a ping: 2 of 2)" in report, report
