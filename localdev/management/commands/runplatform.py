"""`make run`: Redis, migrations, web, worker, beat and Flower on one machine, in the foreground.

The process supervision lives in localdev/supervisor.py; this is the platform's plan.
"""

import contextlib
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.bootstrap import BASE_DIR, read_or_create, secret_key_ensure, var_dir
from localdev.console import Console
from localdev.supervisor import (
    ADMIN_USERNAME,
    DEFAULT_SANDBOX_PATH,
    READY_TIMEOUT_SECONDS,
    UNIX_SOCKET_PATH_MAX,
    Supervisor,
    port_check,
    redis_server_path,
    redis_urls,
)

# The demo's sender numbers and Twilio account: fictional, the sandbox accepts any.
DEMO_RETELL_FROM_NUMBER = "+14155550100"
DEMO_TWILIO_FROM_NUMBER = "+14155550101"
DEMO_TWILIO_ACCOUNT_SID = "AC" + "0" * 30 + "de"


@dataclass
class Plan:
    web_port: int
    flower_port: int
    demo: bool


class Platform:
    def __init__(self, plan: Plan, console: Console) -> None:
        self.plan = plan
        self.console = console
        self.var = var_dir()
        self.env = dict(os.environ)
        self.private_redis: Path | None = None
        self.flower_auth_from_env = bool(self.env.get("FLOWER_BASIC_AUTH"))
        self.supervisor = Supervisor(console, self.env, log_dir=self.var / "log")

    def configure(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        env = self.env
        secret_key_ensure(env, create=True)
        env["PYTHONUNBUFFERED"] = "1"
        # Production settings insist on HTTPS; the embedded platform serves plain HTTP on loopback.
        env["PLAIN_HTTP"] = "true"
        env.setdefault("DEMO_SANDBOX", "true" if self.plan.demo else "false")
        env.setdefault("STATIC_ROOT", str(self.var / "static"))
        env.setdefault("WEB_CONCURRENCY", "2")
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.plan.web_port}"
        if env["DEMO_SANDBOX"].lower() in ("1", "true", "yes", "on"):
            self._demo_providers(env)
        if not env.get("DATABASE_URL"):
            # Spelled out so the database follows MENDHOOK_VAR_DIR even where settings do not.
            env["DATABASE_URL"] = f"sqlite:///{self.var / 'mendhook.sqlite3'}"
        if env.get("REDIS_URL"):
            self._external_redis_check(env["REDIS_URL"])
        else:
            sock = self.var / "redis.sock"
            if len(str(sock)) > UNIX_SOCKET_PATH_MAX:
                raise CommandError(f"{sock} is too long for a unix socket; set MENDHOOK_VAR_DIR to a shorter path")
            self._stale_socket_clear(sock)
            self.private_redis = sock
            env["REDIS_URL"], broker_url = redis_urls(sock)
            env.setdefault("CELERY_BROKER_URL", broker_url)
        port_check(self.plan.web_port, "--web-port")
        port_check(self.plan.flower_port, "--flower-port")

    def _demo_providers(self, env: dict[str, str]) -> None:
        """Point the workflow connectors at the sandbox providers on the web port, unless the
        environment names real ones. The demo's Retell API key is made once and kept in var/:
        the call steps send it and the retell-demo source verifies webhooks with it."""
        sandbox = f"http://127.0.0.1:{self.plan.web_port}/sandbox"
        env.setdefault("RETELL_BASE_URL", f"{sandbox}/retell")
        if not env.get("RETELL_API_KEY"):
            env["RETELL_API_KEY"], _ = read_or_create(
                self.var / "retell_api_key", lambda: f"key_{secrets.token_hex(16)}"
            )
        env.setdefault("RETELL_FROM_NUMBER", DEMO_RETELL_FROM_NUMBER)
        env.setdefault("TWILIO_BASE_URL", f"{sandbox}/twilio")
        env.setdefault("TWILIO_ACCOUNT_SID", DEMO_TWILIO_ACCOUNT_SID)
        env.setdefault("TWILIO_AUTH_TOKEN", "demo-auth-token")
        env.setdefault("TWILIO_FROM_NUMBER", DEMO_TWILIO_FROM_NUMBER)
        env.setdefault("ANALYSIS_BASE_URL", f"{sandbox}/analysis/v1")
        # The workflows' email step: to the worker's log instead of an SMTP server on port 25.
        env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
        # Breakers open as in production (the sandbox's down numbers trip them) but close again
        # after 15 s instead of 60, so the demo's flaky leads finish within a minute or two.
        env.setdefault("BREAKER_RESET_SECONDS", "15")

    def _external_redis_check(self, url: str) -> None:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        except (redis.RedisError, ValueError) as exc:
            raise CommandError(f"REDIS_URL is set but Redis does not answer: {exc}") from None

    def _stale_socket_clear(self, sock: Path) -> None:
        import redis

        if not sock.exists():
            return
        try:
            redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()
        except redis.RedisError:
            sock.unlink()  # left by a Redis that was killed; nobody listens on it
            return
        raise CommandError(
            f"a Redis already answers on {sock}: another runplatform uses this var directory. "
            "Stop it first, or set MENDHOOK_VAR_DIR to another directory."
        )

    def run(self) -> None:
        self.configure()
        supervisor = self.supervisor
        supervisor.signals_install()
        try:
            if self.private_redis is not None:
                self._redis_start(self.private_redis)
            if not supervisor.stop.is_set():
                self._setup()
            if not supervisor.stop.is_set():
                self._services_start()
                self._watch()
        finally:
            if supervisor.stop_reason:
                self.console.write(f"received {supervisor.stop_reason}")
            supervisor.shutdown()
        self.console.write("all processes stopped")

    def _redis_start(self, sock: Path) -> None:
        import redis

        argv = [
            redis_server_path(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(self.var),
            # The broker's messages survive a restart (AOF), as in production; no RDB snapshots.
            "--appendonly", "yes",
            "--appendfilename", "redis.aof",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        child = self.supervisor.start("redis", argv)
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
        deadline = time.monotonic() + 15
        while not self.supervisor.stop.is_set():
            if child.has_exited():
                raise CommandError(f"redis exited during startup (see {self.var / 'log' / 'redis.log'})")
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise CommandError(f"redis did not answer on {sock} within 15 s")
            time.sleep(0.1)

    def _setup(self) -> None:
        # Same environment as the services, so migrations land in the database they will use.
        argv = [sys.executable, str(BASE_DIR / "manage.py"), "runplatform", "--prepare-only"]
        argv += ["--web-port", str(self.plan.web_port)]
        if not self.plan.demo:
            argv.append("--no-demo")
        code = self.supervisor.run_to_end("setup", argv)
        if code not in (0, None):
            raise CommandError(f"setup (migrate, collectstatic, demo data, admin user) failed with code {code}")

    def _services_start(self) -> None:
        from config.queues import ALL_QUEUES

        celery = [sys.executable, "-m", "celery", "-A", "config"]
        start = self.supervisor.start
        # gunicorn's control socket defaults to one path per user; two gunicorns would share it.
        control = ["--control-socket", str(self.var / "gunicorn.ctl")]
        start("web", [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", *control])
        worker = ["worker", "-Q", ALL_QUEUES, "-c", "2", "-E", "--without-gossip", "--without-mingle"]
        start("worker", [*celery, *worker, "--loglevel", "INFO"])
        beat = ["beat", "--scheduler", "ops_app.beat_lock:LockedDatabaseScheduler"]
        files = ["--pidfile", str(self.var / "celerybeat.pid"), "--schedule", str(self.var / "celerybeat-schedule")]
        start("beat", [*celery, *beat, *files, "--loglevel", "INFO"])
        # Through the environment, not argv, so the password does not show in `ps`.
        flower_env = dict(self.env)
        if not self.flower_auth_from_env:
            password, _ = read_or_create(self.var / "admin_password", lambda: secrets.token_urlsafe(16))
            flower_env["FLOWER_BASIC_AUTH"] = f"{ADMIN_USERNAME}:{password}"
        start(
            "flower",
            [*celery, "flower", f"--port={self.plan.flower_port}", "--address=127.0.0.1", "--persistent=False"],
            env=flower_env,
        )

    def _watch(self) -> None:
        """Until a stop signal: restart any child that dies, and announce the URLs once web
        answers."""
        announced = False
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        next_probe = 0.0
        while not self.supervisor.stop.wait(0.2):
            self.supervisor.tend()
            if not announced and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + 0.5
                if self._web_answers("/health/"):
                    announced = True
                    self._banner()
                elif time.monotonic() > deadline:
                    announced = True
                    self.console.write(f"web does not answer /health/ after {READY_TIMEOUT_SECONDS:.0f} s")

    def _web_answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.plan.web_port}{path}", timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            return False

    def _banner(self) -> None:
        web = f"http://127.0.0.1:{self.plan.web_port}"
        password_file = self.var / "admin_password"
        flower_auth = "FLOWER_BASIC_AUTH" if self.flower_auth_from_env else f"{ADMIN_USERNAME} + {password_file}"
        sample = ".venv/bin/python manage.py send_sample_webhooks --count 50 --wait 180"
        if self.plan.web_port != 8000:
            sample += f" --url {web}"
        lines = [
            "",
            "mendhook is running",
            f"  admin   {web}/admin/   (user {ADMIN_USERNAME}, password in {password_file})",
            f"  flower  http://127.0.0.1:{self.plan.flower_port}/   (basic auth: {flower_auth})",
        ]
        if self.plan.demo:
            lines.append(f"  intake  {web}/webhooks/clio-demo/")
            lines.append(f"  try     {sample}")
        else:
            lines.append(f"  intake  {web}/webhooks/<source>/   (manage.py create_source --help)")
        if not self._web_answers("/static/admin/css/base.css"):
            lines.append("  note    static files are not served (DEBUG is off): the admin shows without CSS")
        lines.append(f"  logs    {self.var / 'log'}/<process>.log   (here: startup, warnings and errors)")
        lines += ["  A process that dies is restarted; Ctrl-C stops everything.", ""]
        self.console.write("\n".join(lines))


def prepare(*, web_port: int, demo: bool, write: Callable[[str], None]) -> None:
    """What must happen before the services start, run inside the services' environment."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    write(f"database ready: {connection.vendor} {connection.settings_dict['NAME']}")
    call_command("collectstatic", interactive=False, verbosity=0)
    write(f"static files collected in {settings.STATIC_ROOT}")
    if demo:
        call_command("load_demo", sandbox_url=f"http://127.0.0.1:{web_port}{DEFAULT_SANDBOX_PATH}")
    password_file = var_dir() / "admin_password"
    password, _ = read_or_create(password_file, lambda: secrets.token_urlsafe(16))
    user_model = get_user_model()
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        write(f"superuser '{ADMIN_USERNAME}' already exists; its password is in {password_file}")
        return
    user_model.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
    write(f"created superuser '{ADMIN_USERNAME}' with password {password} (kept in {password_file})")


class Command(BaseCommand):
    help = "Start Redis (unless REDIS_URL is set), migrate, then web, worker, beat and Flower; Ctrl-C stops all."
    # The setup step runs the checks (migrate does); the supervisor itself never touches Django.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo organization and sources")
        parser.add_argument(
            "--web-port", type=int, default=int(os.environ.get("WEB_PORT") or 8000), help="default $WEB_PORT or 8000"
        )
        parser.add_argument(
            "--flower-port",
            type=int,
            default=int(os.environ.get("FLOWER_PORT") or 5555),
            help="default $FLOWER_PORT or 5555",
        )
        parser.add_argument(
            "--prepare-only",
            action="store_true",
            help="only migrate, collect static files, load the demo and ensure the admin user, then exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        demo = not options["no_demo"]
        if options["prepare_only"]:
            prepare(web_port=options["web_port"], demo=demo, write=self.stdout.write)
            return
        plan = Plan(web_port=options["web_port"], flower_port=options["flower_port"], demo=demo)
        Platform(plan, Console(sys.stdout)).run()
