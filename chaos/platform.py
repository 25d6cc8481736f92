"""The platform's processes (gunicorn, Celery workers, beat) under `make run`'s own supervisor.

The run only injects faults; every process that dies, killed by the run or by itself during a
Redis or PostgreSQL outage, comes back through localdev.supervisor, whose watch loop runs here
in a thread, as runplatform runs it in its main loop.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from config.queues import ALL_QUEUES
from localdev.console import Console
from localdev.supervisor import Child, Supervisor

# How often the watch loop looks for dead children (runplatform: 0.2 s).
TEND_SECONDS = 0.2


class RunConsole(Console):
    """The supervisor's own lines (a child exited, restarted) go to the run's output with the
    fault schedule; the children's startup lines, warnings and errors only to console.log (each
    child's full output is in <name>.log), so an outage's warnings do not drown the figures."""

    def __init__(self, path: Path, out: TextIO) -> None:
        super().__init__(path.open("a", buffering=1))
        self.run_out = out

    def write(self, text: str) -> None:
        super().write(text)
        print(f"[supervisor {time.strftime('%H:%M:%S')}] {text}", file=self.run_out, flush=True)

    def child_line(self, name: str, text: str) -> None:
        Console.write(self, f"{name:<8} | {text}")


def worker_cmd(number: int, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ALL_QUEUES, "-c", str(concurrency),
        "-n", f"chaos{number}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip


@dataclass(frozen=True)
class ProcessFigures:
    """Per process: how often it died, which deaths the run caused, and whether it is up now."""

    restarts: dict[str, int]
    killed_by_run: dict[str, int]
    died_by_themselves: dict[str, list[int]]  # name -> exit codes of deaths the run did not cause
    causes: list[str]  # what those who died by themselves last said (Celery's CRITICAL lines)
    down: list[str]  # not running at the end
    workers_answering: int
    workers: int

    @property
    def passed(self) -> bool:
        return not self.down and self.workers_answering == self.workers

    def lines(self) -> list[str]:
        itself = {name: codes for name, codes in self.died_by_themselves.items() if codes}
        return [
            f"restarts by the supervisor: {sum(self.restarts.values())} ({_per_process(self.restarts)})",
            f"  main processes killed:    {sum(self.killed_by_run.values())} ({_per_process(self.killed_by_run)})",
            f"  died by themselves:       {sum(len(c) for c in itself.values())}"
            + "".join(f"; {name} exit codes {codes}" for name, codes in sorted(itself.items())),
            *(f"    {cause}" for cause in self.causes),
            f"processes alive at end:    {'all' if not self.down else 'NOT ' + ', '.join(self.down)}"
            f" (workers answering a ping: {self.workers_answering} of {self.workers})",
        ]


def _per_process(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}={n}" for name, n in counts.items())


class Platform:
    def __init__(self, *, env: dict[str, str], logs: Path, web_port: int, workers: int, concurrency: int) -> None:
        self.env = env
        self.logs = logs
        self.web_port = web_port
        self.worker_count = workers
        self.concurrency = concurrency
        self.supervisor = Supervisor(RunConsole(logs / "console.log", sys.stdout), env, log_dir=logs)
        self.web: Child | None = None
        self.workers: list[Child] = []
        self.beat: Child | None = None
        self.killed_pids: set[int] = set()
        self._tending = threading.Thread(target=self._tend, name="supervisor", daemon=True)
        self.url = f"http://127.0.0.1:{web_port}"

    @property
    def processes(self) -> list[Child]:
        return list(self.supervisor.children)

    def start(self) -> None:
        start = self.supervisor.start
        web = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "--bind", f"127.0.0.1:{self.web_port}"]
        # gunicorn's control socket defaults to one path per user, shared with any other gunicorn.
        web += ["--control-socket", str(self.logs.parent / "gunicorn.ctl")]
        self.web = start("web", web, {**self.env, "WEB_CONCURRENCY": "2"})
        self.workers = [start(f"worker{n}", worker_cmd(n, self.concurrency)) for n in range(1, self.worker_count + 1)]
        self.beat = start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"])
        self._tending.start()

    def _tend(self) -> None:
        while not self.supervisor.stop.wait(TEND_SECONDS):
            self.supervisor.tend()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in self.processes:
                if child.exits:
                    raise RuntimeError(f"{child.name} exited during startup; see {self.logs / child.name}.log")
            if all(self._said_ready(w) for w in self.workers) and self._web_up():
                return
            time.sleep(0.5)
        raise RuntimeError("the platform did not come up")

    def _said_ready(self, worker: Child) -> bool:
        return "ready." in (self.logs / f"{worker.name}.log").read_text(errors="replace")

    def _web_up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    def pool_children(self, worker: Child) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(worker.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill_main(self, worker: Child) -> int:
        """SIGKILL a worker's main process and nothing else; the supervisor must notice."""
        pid = worker.proc.pid
        self.killed_pids.add(pid)
        # os.kill, not Popen.kill: the supervisor alone reaps its children (Child.has_exited).
        os.kill(pid, signal.SIGKILL)
        return pid

    def all_up(self, timeout: float) -> list[str]:
        """Wait for every child to run (a restart may be waiting out its backoff); the names of
        those still down at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            down = [c.name for c in self.processes if not c.running()]
            if not down or time.monotonic() > deadline:
                return down
            time.sleep(0.5)

    def workers_answering(self, timeout: float) -> int:
        """Workers that answer a broadcast ping: up and consuming again, not merely a process."""
        from config.celery_app import app

        deadline = time.monotonic() + timeout
        answered: set[str] = set()
        while time.monotonic() < deadline and len(answered) < len(self.workers):
            for reply in app.control.ping(timeout=2.0) or []:
                answered.update(reply)
        return len(answered)

    def _causes(self, name: str) -> list[str]:
        log = (self.logs / f"{name}.log").read_text(errors="replace")
        return [line.split("] ", 1)[-1] for line in log.splitlines() if "CRITICAL/MainProcess" in line]

    def figures(self, *, settle_timeout: float) -> ProcessFigures:
        down = self.all_up(settle_timeout)
        answering = self.workers_answering(settle_timeout)
        died = {c.name: [e.code for e in c.exits if e.pid not in self.killed_pids] for c in self.processes}
        return ProcessFigures(
            restarts={c.name: c.restarts for c in self.processes},
            killed_by_run={c.name: sum(e.pid in self.killed_pids for e in c.exits) for c in self.processes},
            died_by_themselves=died,
            causes=[f"{name}: {cause}" for name, codes in died.items() if codes for cause in self._causes(name)],
            down=down,
            workers_answering=answering,
            workers=len(self.workers),
        )

    def end(self) -> None:
        self.supervisor.stop.set()
        if self._tending.is_alive():
            self._tending.join(timeout=5)
        self.supervisor.shutdown()
