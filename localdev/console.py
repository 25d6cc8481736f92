"""What `make run` shows: every child's full output goes to var/log/<process>.log; the console
gets startup milestones, warnings, errors and their tracebacks, and the supervisor's own lines."""

import os
import re
import threading
from pathlib import Path
from typing import BinaryIO, TextIO

COLORS = {"redis": 31, "setup": 35, "web": 32, "worker": 33, "beat": 36, "flower": 34}

# The level as each child spells it: Django's LOGGING format (date time LEVEL name), Celery's
# "[date: LEVEL/Process]", gunicorn's "[date] [pid] [LEVEL]", Tornado's (Flower) "[W date ...]"
# and redis-server's "# WARNING". The working apps' warnings (one per failed item: the demo makes
# hundreds on purpose) are left out: each becomes a grouped error record in the admin, and their
# errors (a dead letter, a crash) still show here.
SERIOUS = re.compile(
    r"^\S+ \S+ (ERROR|CRITICAL) "
    r"|^\S+ \S+ WARNING (?!(webhooks_app|workflows_app)\.)"
    r"|^\[[^\]]*: (WARNING|ERROR|CRITICAL)/"
    r"|^\[[^\]]*\] \[\d+\] \[(WARNING|ERROR|CRITICAL)\]"
    r"|^\[[WEC] \d{6} "
    r"| # WARNING "
)
# Lines that say a process is up and where to reach it.
MILESTONES = re.compile(
    r"Listening at: "  # gunicorn
    r"|celery@\S+ ready\."  # worker
    r"|beat: Starting\.\.\."
    r"|Visit me at "  # Flower
    r"|Ready to accept connections"  # redis-server
    r"|beat schedule synced"
)
# A traceback or a multi-line message continues the record above it.
CONTINUATION = re.compile(r"^(\s|Traceback |During handling |The above exception |\w+(\.\w+)*(Error|Exception)\b)")
# Known to be harmless, kept out of the console (they stay in the log files):
HARMLESS = re.compile(
    # Flower inspects the workers once at start; the worker starting beside it is not up yet, so
    # no one answers. Flower inspects each worker again when its first event arrives.
    r"Inspect method \w+ failed$"
    # Linux's default overcommit policy; it matters for a production Redis under memory pressure
    # (docs for the compose setup), not for the embedded one on a workstation.
    r"|# WARNING Memory overcommit must be enabled"
)


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


class ChildOutput:
    """One child's output: every line into its log file, the lines that matter onto the console.

    With no log path (the setup step, whose few lines include the admin password and signing
    secrets shown once) every line goes to the console and nothing to disk.
    """

    def __init__(self, name: str, console: Console, log_path: Path | None) -> None:
        self.name = name
        self.console = console
        self.log: BinaryIO | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = log_path.open("ab", buffering=0)
        self.showing = False

    def line(self, raw: bytes) -> None:
        if self.log is not None:
            self.log.write(raw if raw.endswith(b"\n") else raw + b"\n")
        text = raw.decode(errors="replace").rstrip("\r\n")
        if self.log is None or self.shows(text):
            self.console.child_line(self.name, text)

    def shows(self, text: str) -> bool:
        if CONTINUATION.match(text):
            return self.showing
        self.showing = bool((SERIOUS.search(text) and not HARMLESS.search(text)) or MILESTONES.search(text))
        return self.showing

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
