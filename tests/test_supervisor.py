"""The `make run` supervisor: children that die come back, Ctrl-C stops all, the console shows
what matters and the log files keep everything."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev import supervisor as supervisor_module
from localdev.console import ChildOutput, Console
from localdev.supervisor import Supervisor
from tests.support.waiting import wait_for

SLEEPER = [sys.executable, "-c", "import os, time; print('up', os.getpid(), flush=True); time.sleep(120)"]


class Tended:
    """A Supervisor whose watch loop (tend every 0.1 s until a stop) runs in a thread, as
    runplatform runs it."""

    def __init__(self, log_dir: Path) -> None:
        self.out = io.StringIO()
        self.supervisor = Supervisor(Console(self.out), dict(os.environ), log_dir=log_dir)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.supervisor.stop.wait(0.1):
            self.supervisor.tend()

    def console(self) -> str:
        return self.out.getvalue()


@pytest.fixture
def tended(tmp_path: Path) -> Iterator[Tended]:
    tended = Tended(tmp_path / "log")
    yield tended
    tended.supervisor.stop.set()
    tended.thread.join(timeout=5)
    tended.supervisor.shutdown()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_it_restarts_a_killed_child_and_logs_the_restart(tended: Tended, tmp_path: Path) -> None:
    child = tended.supervisor.start("worker", SLEEPER)
    tended.thread.start()
    first_pid = child.proc.pid
    wait_for(lambda: "up" in (tmp_path / "log" / "worker.log").read_text(), timeout=20, message="the child to start")

    os.kill(first_pid, signal.SIGKILL)

    wait_for(lambda: child.restarts == 1 and alive(child.proc.pid), timeout=20, message="the child to come back")
    assert child.proc.pid != first_pid
    assert not alive(first_pid)
    assert f"worker exited unexpectedly with code {-signal.SIGKILL}" in tended.console()
    assert f"worker restarted (pid {child.proc.pid}, restart 1)" in tended.console()
    # Both lives' output is kept, one after the other.
    wait_for(lambda: (tmp_path / "log" / "worker.log").read_text().count("up ") == 2, timeout=20)


def test_it_waits_longer_each_time_a_child_keeps_dying(
    tended: Tended, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "RESTART_DELAY_FIRST_SECONDS", 0.2)
    tended.supervisor.start("beat", [sys.executable, "-c", "raise SystemExit(3)"])
    tended.thread.start()

    wait_for(lambda: tended.console().count("restarting it in") >= 3, timeout=30, message="three restarts")

    lines = [line for line in tended.console().splitlines() if "restarting it in" in line]
    delays = [line.split("restarting it in ")[1].split(" s")[0] for line in lines]
    assert delays[:3] == ["0.2", "0.4", "0.8"]
    assert "beat exited unexpectedly with code 3" in tended.console()


def test_it_stops_every_child_on_a_stop_and_restarts_none(tended: Tended) -> None:
    children = [tended.supervisor.start(name, SLEEPER) for name in ("web", "worker")]
    tended.thread.start()
    pids = [c.proc.pid for c in children]

    tended.supervisor.stop.set()  # what SIGINT / SIGTERM do
    tended.thread.join(timeout=5)
    tended.supervisor.shutdown()

    assert not any(alive(pid) for pid in pids)
    assert tended.supervisor.children == []
    assert "restarted" not in tended.console()


def test_it_stops_on_sigterm_when_run_as_a_process(tmp_path: Path) -> None:
    # The real signal path: a supervisor process with a child, sent SIGTERM.
    script = (
        "import os, sys, io\n"
        "from pathlib import Path\n"
        "from localdev.console import Console\n"
        "from localdev.supervisor import Supervisor\n"
        "s = Supervisor(Console(sys.stdout), dict(os.environ), log_dir=Path(sys.argv[1]))\n"
        "s.signals_install()\n"
        f"c = s.start('worker', {SLEEPER!r})\n"
        "print('child', c.proc.pid, flush=True)\n"
        "while not s.stop.wait(0.1):\n"
        "    s.tend()\n"
        "s.shutdown()\n"
        "print('stopped', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "log")],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    child_pid = int(line.split()[1])
    wait_for(lambda: alive(child_pid), timeout=10)

    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[0]

    assert proc.returncode == 0
    assert "stopping worker" in rest and "stopped" in rest
    assert not alive(child_pid)


# --- what the console shows ----------------------------------------------------------------------

LINES = {
    # line: shown on the console?
    "[2026-11-29 10:00:00 +0000] [41] [INFO] Listening at: http://127.0.0.1:8000 (41)": True,
    "[2026-11-29 10:00:00 +0000] [41] [INFO] Booting worker with pid: 42": False,
    "[2026-11-29 10:00:01 +0000] [42] [ERROR] Exception in worker process": True,
    "[2026-11-29 10:00:02,000: INFO/MainProcess] celery@box ready.": True,
    "[2026-11-29 10:00:03,000: INFO/MainProcess] Task webhooks_app.tasks.process_event[1] received": False,
    "[2026-11-29 10:00:03,000: WARNING/MainProcess] consumer: Connection to broker lost.": True,
    "2026-11-29 10:00:04,000 INFO localdev.sandbox sandbox: scripted 503 for matter 17": False,
    "2026-11-29 10:00:04,000 WARNING webhooks_app.services.processing [ERR_CLIO_API_FAILED] (item #1)": False,
    "2026-11-29 10:00:04,000 ERROR webhooks_app.services.processing event 1 dead-lettered": True,
    "2026-11-29 10:00:04,000 WARNING django.security.DisallowedHost Invalid HTTP_HOST header": True,
    "Traceback (most recent call last):": True,
    '  File "x.py", line 1, in <module>': True,
    "ValueError: boom": True,
    "[W 251129 10:00:05 inspector:98] Inspect method stats failed": False,
    "2026-11-29 10:00:05,000 WARNING flower.inspector Inspect method conf failed": False,
    "[W 251129 10:00:05 inspector:93] Inspect method stats failed: [Errno 111] Connection refused": True,
    "[I 251129 10:00:05 command:168] Visit me at http://127.0.0.1:5555": True,
    "[I 251129 10:00:05 command:170] Broker: redis+socket:///tmp/x/redis.sock": False,
    "1:M 29 Nov 2026 10:00:00.000 * Ready to accept connections unix": True,
    "1:M 29 Nov 2026 10:00:00.000 # Redis version=7.2.4, bits=64": False,
    "1:M 29 Nov 2026 10:00:00.000 # WARNING Memory overcommit must be enabled! Without it...": False,
    "1:M 29 Nov 2026 10:00:00.000 # WARNING Could not create server TCP listening socket": True,
}


def test_it_shows_startup_warnings_and_errors_on_the_console_and_keeps_every_line_in_the_log(tmp_path: Path) -> None:
    out = io.StringIO()
    output = ChildOutput("web", Console(out), tmp_path / "log" / "web.log")

    for line in LINES:
        output.line(line.encode() + b"\n")
    output.close()

    shown = [line.split("| ", 1)[1] for line in out.getvalue().splitlines()]
    assert shown == [line for line, show in LINES.items() if show]
    assert (tmp_path / "log" / "web.log").read_text().splitlines() == list(LINES)


def test_it_shows_every_line_of_an_unlogged_child_and_writes_no_file(tmp_path: Path) -> None:
    out = io.StringIO()
    output = ChildOutput("setup", Console(out), None)

    output.line(b"created superuser 'admin' with password s3cret\n")

    assert "s3cret" in out.getvalue()
    assert list(tmp_path.iterdir()) == []


def test_it_waits_between_restarts_no_sooner_than_the_backoff(tended: Tended) -> None:
    child = tended.supervisor.start("flower", [sys.executable, "-c", "pass"])
    wait_for(child.has_exited, timeout=20)
    started = time.monotonic()
    tended.thread.start()

    wait_for(lambda: child.restarts >= 1, timeout=20, message="a restart")

    assert time.monotonic() - started >= supervisor_module.RESTART_DELAY_FIRST_SECONDS * 0.9


def test_it_records_each_death_of_a_child_by_pid_and_code_for_its_readers(
    tended: Tended, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chaos run tells the deaths it caused (SIGKILL of a known pid) from those a child
    # came to by itself (its own exit code) through these records.
    monkeypatch.setattr(supervisor_module, "RESTART_DELAY_FIRST_SECONDS", 3.0)
    child = tended.supervisor.start("worker", SLEEPER)
    tended.thread.start()
    first_pid = child.proc.pid
    wait_for(lambda: "up" in (tmp_path / "log" / "worker.log").read_text(), timeout=20, message="the child to start")
    assert child.running() and child.exits == []

    os.kill(first_pid, signal.SIGKILL)

    # Dead and waiting out its backoff: recorded, and not running.
    wait_for(lambda: child.exits != [], timeout=10, message="the death to be recorded")
    assert not child.running()
    [death] = child.exits
    assert (death.pid, death.code) == (first_pid, -signal.SIGKILL)
    assert death.ran_seconds >= 0
    wait_for(child.running, timeout=20, message="the child to come back")
    assert child.proc.pid != first_pid and child.restarts == 1


def test_it_records_the_exit_code_of_a_child_that_ended_by_itself(tended: Tended) -> None:
    child = tended.supervisor.start("beat", [sys.executable, "-c", "raise SystemExit(3)"])
    tended.thread.start()

    wait_for(lambda: child.exits != [], timeout=20, message="the exit to be recorded")

    assert child.exits[0].code == 3
