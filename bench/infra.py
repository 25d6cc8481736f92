"""The bench's own database, Redis db and processes (gunicorn, Celery worker), and RSS sampling.

Isolation: a database of its own (mendhook_bench) and Redis db 11. At start the bench truncates
the mendhook tables of that database only, and deletes only the Redis keys Celery/kombu and
mendhook create there; never FLUSHDB. It stops only the processes it started.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / "var" / "bench"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mendhook_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
BENCH_SETTINGS = "bench.settings"
# Variables that would make the bench measure something other than the shipped configuration.
STRIPPED_VARIABLES = (
    "SENTRY_DSN",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_ACCESS_LOG",
    "GUNICORN_BIND",
    "CELERY_BROKER_URL",
)


class BenchFailure(Exception):
    """A check the figures depend on did not hold: the run measured the wrong thing."""


def configure_environment() -> dict[str, str]:
    """Point this process (before Django starts) and every child at the bench stores."""
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    for name in STRIPPED_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": BENCH_SETTINGS,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DJANGO_DEBUG": "false",  # DEBUG keeps every query in memory: not what ships
            "LOG_LEVEL": "INFO",
            # The bench talks plain HTTP to its own gunicorn on loopback.
            "PLAIN_HTTP": "true",
            # Intake's rate limits are checked on every request (their cost is in the figure)
            # but set far above what one machine sends, so none is refused.
            "INTAKE_RATE_LIMIT_DEFAULT": "1000000/second",
            "INTAKE_RATE_LIMIT_GLOBAL": "1000000/second",
        }
    )
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-key")
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


def database_create(database_url: str) -> None:
    """CREATE DATABASE if missing, connecting to the server's `postgres` database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise BenchFailure(f"refusing to use database {name!r}: the bench database's name must contain 'bench'")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def million_database_url(bench_url: str) -> str:
    """The million phase's database: the bench database's name + "_million", same server."""
    parts = urlsplit(bench_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_million"))


def database_truncate(using: str = "default") -> None:
    """Empty the mendhook tables of a bench database (and only of a bench database)."""
    from django.apps import apps
    from django.db import connections

    connection = connections[using]

    name = connection.settings_dict["NAME"]
    if "bench" not in str(name):
        raise BenchFailure(f"refusing to truncate database {name!r}")
    tables = sorted(
        {
            model._meta.db_table
            for label in ("webhooks_app", "workflows_app", "ops_app")
            for model in apps.get_app_config(label).get_models(include_auto_created=True)
        }
    )
    existing = set(connection.introspection.table_names())
    quoted = ", ".join(connection.ops.quote_name(t) for t in tables if t in existing)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


def redis_client() -> redis.Redis:
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def redis_clean() -> int:
    """Delete the keys the bench's Celery traffic creates in its Redis db; nothing else."""
    from config.queues import Queue

    client = redis_client()
    keys: set[bytes] = set()
    for queue in Queue:
        keys.add(queue.value.encode())
        # kombu's priority sub-queues: "<queue>\x06\x16<priority>".
        keys.update(client.scan_iter(match=f"{queue.value}\x06\x16*"))
    # kombu 5.7 also keeps "_kombu.binding_permanent.<queue>" and "_kombu.binding_deadlines".
    for pattern in ("unacked*", "_kombu.binding*", "mendhook:*"):
        keys.update(client.scan_iter(match=pattern))
    return int(client.delete(*keys)) if keys else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Direct children from /proc (no psutil)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; fields after its ")" are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB, or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    if len(values) < 2:
        return None
    return values["VmRSS"], values["VmHWM"]


class ManagedProcess:
    """A child process with its output in var/bench/<name>.log."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = LOG_DIR / f"{name}.log"
        environment = {**os.environ, **(env or {})}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
        self.known_children: set[int] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        found = children_of(self.pid) if self.alive() else []
        self.known_children.update(found)
        return found

    def stop(self, timeout: float = 30.0) -> None:
        self.children()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Children this process started must not outlive it (only the pids we saw it start).
        for pid in self.known_children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def gunicorn_command() -> list[str]:
    """config/gunicorn.py as shipped, except worker recycling (max_requests=10000) is off.

    At the no-op view's rate (several thousand requests/s) recycling would restart each
    gunicorn worker every few seconds, so the baseline would measure Django boot time instead
    of a request, and swing by 30-40% with how many restarts fall into the window. At intake's
    rate it never triggers within a run. Off for both targets keeps them alike and the
    baseline honest (higher, so the intake ratio is the conservative one).
    """
    return [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "--max-requests", "0"]


def start_gunicorn(env: dict[str, str] | None = None) -> tuple[ManagedProcess, int]:
    """The product's gunicorn configuration (config/gunicorn.py), bench URLconf, a free port;
    env overrides variables of the bench environment (the million phase's DATABASE_URL)."""
    import httpx

    port = free_port()
    proc = ManagedProcess("gunicorn", gunicorn_command(), env={**(env or {}), "GUNICORN_BIND": f"127.0.0.1:{port}"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        try:
            answered = httpx.get(f"http://127.0.0.1:{port}/bench/noop/", timeout=2).status_code == 200
            # Every gunicorn worker must have booted before the clock starts.
            if answered and len(proc.children()) >= gunicorn_workers():
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.stop()
    raise BenchFailure(f"gunicorn did not come up:\n{proc.output()[-3000:]}")


def gunicorn_workers() -> int:
    import importlib

    module = importlib.import_module("config.gunicorn")
    return int(module.workers)


def gunicorn_threads() -> int:
    import importlib

    module = importlib.import_module("config.gunicorn")
    return int(module.threads)


WORKER_CONCURRENCY = 2


def worker_command(name: str) -> list[str]:
    """The worker `make run` starts (ops_app runplatform), with every queue."""
    from config.queues import ALL_QUEUES

    return [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "-Q", ALL_QUEUES, "-c", str(WORKER_CONCURRENCY), "--pool", "prefork", "-E",
        "--without-gossip", "--without-mingle", "-n", f"{name}@%h", "--loglevel", "INFO",
    ]  # fmt: skip


def start_worker(name: str, env: dict[str, str] | None = None) -> ManagedProcess:
    proc = ManagedProcess(f"worker-{name}", worker_command(name), env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        if "ready." in proc.output():
            return proc
        time.sleep(0.05)
    proc.stop()
    raise BenchFailure(f"worker did not become ready:\n{proc.output()[-3000:]}")


@dataclass
class RssSampler:
    """Polls VmRSS/VmHWM of a process and its children; keeps the peak of each pid seen."""

    proc: ManagedProcess
    interval: float = 0.25
    peak_kb: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for pid in [self.proc.pid, *self.proc.children()]:
            mem = memory_kb(pid)
            if mem is not None:
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), *mem)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "RssSampler":
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.sample()  # VmHWM at the end covers any peak between samples
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def children_rss_kb(self) -> list[tuple[int, int]]:
        """(VmRSS, VmHWM) of the pool children now."""
        return [mem for pid in self.proc.children() if (mem := memory_kb(pid)) is not None]

    def child_peak_mb(self) -> float:
        peaks = [kb for pid, kb in self.peak_kb.items() if pid != self.proc.pid]
        return max(peaks, default=0) / 1024

    def peak_mb(self) -> tuple[float, str]:
        """The largest single process, and which one it was."""
        pid, kb = max(self.peak_kb.items(), key=lambda kv: kv[1])
        role = "main" if pid == self.proc.pid else "pool child"
        return kb / 1024, f"{role} pid {pid}"
