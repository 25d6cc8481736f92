"""Private PostgreSQL and Redis servers in a temporary directory, which the run may kill."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from glob import glob
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root; the cluster then belongs to the postgres account.
    return ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        candidates = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
        found = candidates[-1] if candidates else shutil.which("initdb")
        if not found:
            raise RuntimeError("initdb not found (install the PostgreSQL server)")
        self.bin = Path(found).parent
        self.dir = root / "postgres"
        self.port = free_port()
        self.log = root / "postgres.log"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/mendhook"

    def _run(self, *args: str) -> None:
        subprocess.run([*_as_postgres_user(), *args], check=True, capture_output=True)

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mendhook")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        # -m fast: open transactions are rolled back and every client is cut off, as in a failover.
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def stop_quietly(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        cmd = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            # As in docker-compose.yml: AOF (fsync every second) and no eviction of messages.
            "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "",
        ]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
