"""One chaos run: private stores, the platform, a provider sending N events, faults on a
schedule, then quiescence and the figures."""

import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.platform import Platform
from chaos.stores import PrivatePostgres, PrivateRedis, free_port
from localdev.supervisor import RESTART_DELAY_MAX_SECONDS


@dataclass
class Plan:
    events: int
    fault_seconds: float  # the window in which events are sent and faults injected
    kill_every: float  # SIGKILL a worker process this often
    postgres_stop: float  # seconds PostgreSQL stays stopped (0: not stopped)
    redis_restart: bool
    quiescence_timeout: float
    workers: int = 2
    concurrency: int = 2
    client_threads: int = 8
    keep: bool = False


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Run:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.root = Path(tempfile.mkdtemp(prefix="mendhook-chaos-"))
        if os.getuid() == 0:
            shutil.chown(self.root, "postgres")  # its cluster lives inside
        self.postgres = PrivatePostgres(self.root)
        self.redis = PrivateRedis(self.root)
        self.faults: list[str] = []
        # One key for the whole run: signing secrets are stored encrypted with a key derived
        # from it, so the web process must hold the key the source was created with.
        self.secret_key = secrets.token_urlsafe(50)
        self.platform: Platform | None = None
        self._t0 = time.monotonic()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
            "SECRET_KEY": self.secret_key,
            # Its own gunicorn on loopback, over plain HTTP.
            "PLAIN_HTTP": "true",
            "MENDHOOK_VAR_DIR": str(self.root / "var"),
            "LOG_LEVEL": "INFO",
            "SENTRY_DSN": "",
        }

    def setup(self) -> str:
        """Stores up, schema migrated, one source with the demo templates. Returns its secret."""
        self.postgres.init()
        self.redis.start()
        env = self.env()
        os.environ.update(env)
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env=env, check=True)
        import django

        django.setup()
        # One line per request of the provider would drown the figures.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        from chaos.fixtures import source_create

        return source_create()

    def execute(self) -> int:
        plan = self.plan
        secret = self.setup()
        # Django is set up only now, pointed at the private stores.
        from chaos.client import Provider
        from chaos.report import figures_collect

        logs = self.root / "logs"
        logs.mkdir()
        self.platform = Platform(
            env=self.env(), logs=logs, web_port=free_port(), workers=plan.workers, concurrency=plan.concurrency
        )
        self.platform.start()
        self.platform.wait_ready()
        log(f"platform up in {self.root}; sending {plan.events} events over {plan.fault_seconds:.0f} s")

        provider = Provider(
            url=f"{self.platform.url}/webhooks/chaos/", secret=secret, threads=plan.client_threads, give_up_after=600
        )
        provider.start()
        self._t0 = time.monotonic()
        faults = threading.Thread(target=self._inject_faults, daemon=True)
        faults.start()
        started = time.monotonic()
        for number in range(plan.events):
            # Spread over most of the fault window, so faults land while work is in flight.
            due = started + number * plan.fault_seconds * 0.8 / plan.events
            time.sleep(max(0.0, due - time.monotonic()))
            provider.send(number)
        faults.join()
        faults_over = time.monotonic()
        deliveries = provider.finish()
        log(f"faults over; client done ({len(deliveries.accepted)} accepted); waiting for quiescence")

        quiet_after = self._wait_for_quiescence(since=faults_over)
        figures = figures_collect(deliveries=deliveries, quiescence_seconds=quiet_after)
        # A restart due waits out at most the supervisor's longest backoff, then boots.
        processes = self.platform.figures(settle_timeout=RESTART_DELAY_MAX_SECONDS + 15)
        passed = figures.passed and processes.passed and quiet_after is not None
        lines = ["", "fault schedule:", *(f"  {f}" for f in self.faults), "", *figures.lines(), *processes.lines()]
        print("\n".join([*lines, "RESULT: " + ("PASS" if passed else "FAIL")]), flush=True)
        return 0 if passed else 1

    def _wait_for_quiescence(self, *, since: float) -> float | None:
        from django.db import OperationalError, close_old_connections

        from chaos.report import unsettled_count

        deadline = since + self.plan.quiescence_timeout
        while time.monotonic() < deadline:
            close_old_connections()  # PostgreSQL was restarted under this connection
            try:
                if unsettled_count() == 0:
                    return time.monotonic() - since
            except OperationalError:
                close_old_connections()
            time.sleep(1.0)
        return None

    def _t(self) -> str:
        return f"t+{time.monotonic() - self._t0:6.1f}s"

    def _inject_faults(self) -> None:
        assert self.platform is not None
        plan = self.plan
        end = self._t0 + plan.fault_seconds
        once: list[tuple[float, Callable[[], None]]] = []
        if plan.redis_restart:
            once.append((self._t0 + plan.fault_seconds * 0.3, self._restart_redis))
        if plan.postgres_stop:
            once.append((self._t0 + plan.fault_seconds * 0.6, self._stop_postgres))
        next_kill = self._t0 + plan.kill_every
        kills = 0
        while time.monotonic() < end:
            now = time.monotonic()
            for at, fault in list(once):
                if now >= at:
                    once.remove((at, fault))
                    fault()
            if plan.kill_every and now >= next_kill:
                if self._kill_worker(main=kills % 2 == 1):
                    kills += 1
                next_kill = now + plan.kill_every
            time.sleep(0.2)
        for _, fault in once:  # a short window still gets every fault it planned
            fault()

    def _kill_worker(self, *, main: bool) -> bool:
        """SIGKILL a running worker's main process or one of its pool children; False when there
        was none to kill (both restarting), so the next beat tries the same kind again."""
        assert self.platform is not None
        running = [w for w in self.platform.workers if w.running()]
        if not running:
            return False
        worker = random.choice(running)
        if main:
            pid = self.platform.kill_main(worker)
            self.faults.append(f"{self._t()} SIGKILL {worker.name} main process {pid}")
            return True
        children = self.platform.pool_children(worker)
        if not children:
            return False
        victim = random.choice(children)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.faults.append(f"{self._t()} SIGKILL {worker.name} pool child {victim}")
        return True

    def _restart_redis(self) -> None:
        self.redis.kill()
        self.faults.append(f"{self._t()} kill -9 redis-server")
        time.sleep(2.0)
        self.redis.start()
        self.faults.append(f"{self._t()} redis-server restarted (AOF)")

    def _stop_postgres(self) -> None:
        self.postgres.stop()
        self.faults.append(f"{self._t()} PostgreSQL stopped (pg_ctl stop -m fast)")
        time.sleep(self.plan.postgres_stop)
        self.postgres.start()
        self.faults.append(f"{self._t()} PostgreSQL started")

    def cleanup(self) -> None:
        if self.platform is not None:
            self.platform.end()
        self.redis.kill()
        self.postgres.stop_quietly()
        if self.plan.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
