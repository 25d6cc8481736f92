"""Circuit-breaker tests: breaker names the session worker gives short settings, and other
processes calling a breaker at the same moment (tests/support/breaker_caller.py)."""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from django.conf import settings

from tests.support.processes import ROOT

# Sources whose slug starts with "brk-" get a quick breaker in every process of the tests
# (the session worker's env and the test's own settings), so opening and resetting one takes
# seconds; every other source keeps the defaults.
QUICK = {"fail_max": 2, "reset_seconds": 3}
QUICK_OVERRIDES = {"clio:brk-*": QUICK}
QUICK_OVERRIDES_ENV = json.dumps(QUICK_OVERRIDES)


def quick_slug() -> str:
    return f"brk-{uuid.uuid4().hex[:10]}"


class Callers:
    """`count` processes, each making `calls` connector calls through one breaker, all released
    at the same instant once every one of them has started (a start file, not a sleep)."""

    def __init__(self, *, name: str, url: str, env: dict[str, str], count: int = 1, calls: int = 1):
        self.dir = Path(tempfile.mkdtemp(prefix="breaker-callers-"))
        cmd = [sys.executable, "-m", "tests.support.breaker_caller", name, url, str(self.dir), str(calls)]
        self.procs = [
            subprocess.Popen(
                cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(count)
        ]

    def go(self, timeout: float = 60.0) -> list[list[dict[str, object]]]:
        """Release them together; each one's outcomes, in the order of its calls."""
        deadline = time.monotonic() + timeout
        while len(list(self.dir.glob("ready-*"))) < len(self.procs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(self._errors())
            time.sleep(0.02)
        (self.dir / "go").touch()
        results = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(err)
            results.append([json.loads(line) for line in out.splitlines() if line.startswith("{")])
        return results

    def _errors(self) -> str:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        return "\n".join(p.communicate()[1] for p in self.procs)


def breakers_forget() -> None:
    """Drop every circuit breaker's state from the test Redis: breakers are shared by all
    processes, so one a test opened would otherwise still be open for the next test's health,
    diagnostics and alerts, which read them all. Only the keys breakers write are touched."""
    client = redis.Redis.from_url(settings.MENDHOOK_GUARDS_REDIS_URL)
    keys = list(client.scan_iter(match="mendhook:breaker:*", count=1000))
    if keys:
        client.delete(*keys)
