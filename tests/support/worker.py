"""A real Celery worker in a subprocess, pointed at the test database and broker, and the
broker state it leaves behind."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from config.celery_app import app
from config.queues import ALL_QUEUES, Queue

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**overrides: str) -> dict[str, str]:
    """The environment a worker (or another project process) needs to use the test database
    and Redis, with `overrides` on top."""
    db = connection.settings_dict
    base = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "test-only-insecure-key",
        "CONNECTOR_HTTP_TIMEOUT_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    return {**base, **overrides}


class WorkerProcess:
    def __init__(self, *, env: dict[str, str], name: str, concurrency: int = 2):
        self.env = {**os.environ, **env}
        self.name = name
        self.concurrency = concurrency
        self.log = Path(tempfile.mkstemp(prefix=f"worker-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "WorkerProcess":
        cmd = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", ALL_QUEUES, "-c", str(self.concurrency), "--pool", "prefork",
            "-n", f"{self.name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            if "ready." in self.output():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the main process and its pool children: a worker lost with its machine."""
        assert self.proc is not None
        for pid in [*self.child_pids(), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish current tasks
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def purge_queues() -> None:
    with app.connection_for_write() as conn:
        for queue in ALL_QUEUES.split(","):
            conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]


def clean_redis() -> None:
    """Remove the keys tests create in the test Redis database, and nothing else."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    purge_queues()
    for pattern in ("unacked*", "_kombu.binding.*", "mendhook:*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


def sibling_redis_url(url: str) -> str:
    """The same Redis, another database number: one no worker of the test session reads."""
    base, _, db = url.rpartition("/")
    number = int(db) if db.isdigit() else 0
    return f"{base}/{number - 1 if number > 0 else 1}"


def queues_delete(client: redis.Redis) -> None:
    """Delete the project's queue lists in `client`'s database, and nothing else."""
    names = [q.value for q in Queue]
    keys = [k for name in names for k in client.scan_iter(match=f"{name}*")]
    keys += list(client.scan_iter(match="unacked*"))
    if keys:
        client.delete(*keys)


@contextlib.contextmanager
def private_broker() -> Iterator[redis.Redis]:
    """This process publishes to a Redis database no worker reads, so what a test publishes
    stays there to be counted (pausing a running worker's consumers races its pending pop).
    Yields that database's client."""
    url = sibling_redis_url(settings.REDIS_URL)
    private = Celery("mendhook", set_as_current=False)
    private.config_from_object("django.conf:settings", namespace="CELERY")
    private.conf.update(broker_url=url)
    client = redis.Redis.from_url(url)
    queues_delete(client)
    private.set_current()
    try:
        yield client
    finally:
        app.set_current()
        queues_delete(client)
        private.close()
