"""The platform's processes (gunicorn, Celery workers, beat) as subprocesses the run can kill.

The run plays the process supervisor: a worker whose main process died is started again after
a short pause, the way `make run`'s supervisor or systemd would.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from config.queues import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[1]


class Process:
    def __init__(self, *, name: str, cmd: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            # A session of its own, so the run can end it with every child it forked.
            self.proc = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        if not self.alive():
            return []
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill_main(self) -> None:
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait()

    def end(self) -> None:
        """Stop the process and whatever it left behind (pool children orphaned by a kill)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def worker_cmd(python: str, number: int, concurrency: int) -> list[str]:
    return [
        python, "-m", "celery", "-A", "config", "worker", "-Q", ALL_QUEUES, "-c", str(concurrency),
        "-n", f"chaos{number}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip


class Platform:
    def __init__(self, *, env: dict[str, str], logs: Path, web_port: int, workers: int, concurrency: int) -> None:
        python = sys.executable
        self.web = Process(
            name="web",
            cmd=[python, "-m", "gunicorn", "-c", "config/gunicorn.py", "--bind", f"127.0.0.1:{web_port}"],
            env={**env, "WEB_CONCURRENCY": "2"},
            logs=logs,
        )
        self.workers = [
            Process(name=f"worker{n}", cmd=worker_cmd(python, n, concurrency), env=env, logs=logs)
            for n in range(1, workers + 1)
        ]
        self.beat = Process(
            name="beat",
            cmd=[python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
            env=env,
            logs=logs,
        )
        self.url = f"http://127.0.0.1:{web_port}"

    @property
    def processes(self) -> list[Process]:
        return [self.web, *self.workers, self.beat]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited early; see {process.log}")
            if all("ready." in w.log.read_text(errors="replace") for w in self.workers) and self._web_up():
                return
            time.sleep(0.5)
        raise RuntimeError("the platform did not come up")

    def _web_up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    def end(self) -> None:
        for process in self.processes:
            process.end()
