"""Other real processes tests start: a private Redis they can stop, gunicorn, Celery beat."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class PrivateRedis:
    """A redis-server on its own port, so a test can take the broker down and bring it back
    without touching the machine's shared Redis."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; .ci/run installs it")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mendhook-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class ManagedProcess:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str]):
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_gunicorn(env: dict[str, str], workers: int = 1) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = ManagedProcess(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py"],
        {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"gunicorn did not come up:\n{proc.output()}")


def start_beat(env: dict[str, str]) -> ManagedProcess:
    schedule_dir = tempfile.mkdtemp(prefix="mendhook-beat-")
    return ManagedProcess(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel",
            "INFO",
            "--pidfile",
            f"{schedule_dir}/beat.pid",
        ],
        env,
    )
