"""`manage.py health_check --role web|worker|beat|platform`: the container probes.

django-health-check ships a command of this name that fetches a URL pattern and reads 500 as
"unhealthy"; ours answers 503 and judges per role, so it is replaced here: web asks its own
/health/ready over HTTP (the process must answer, not only its dependencies), worker pings its
own node, beat reads the heartbeat of the beat holding the lock. Exit 0 ready, 1 not, 2 when
the web process cannot be reached at all.
"""

import json
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops_app.health.readiness import Role, readiness


class Command(BaseCommand):
    help = "Probe this process's readiness for its role; exit 0 when ready."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", choices=[r.value for r in Role], default=Role.WEB.value)
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="web: where the web process listens")
        parser.add_argument(
            "--node",
            default=f"celery@{socket.gethostname()}",
            help="worker: the node name to ping (default: celery@<hostname>, Celery's own default)",
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="web: seconds to wait for an answer")

    def handle(self, *args: Any, **options: Any) -> None:
        role = Role(options["role"])
        if role is Role.WEB:
            sys.exit(self._probe_web(options["url"].rstrip("/"), options["timeout"]))
        report = readiness(role=role, node=options["node"])
        self.stdout.write(json.dumps(report.as_json(), indent=2))
        sys.exit(0 if report.ready else 1)

    def _probe_web(self, base: str, timeout: float) -> int:
        url = f"{base}/health/ready"
        if not url.startswith(("http://", "https://")):
            self.stderr.write(f"--url must be an http(s) URL, got {base!r}")
            return 2
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
                self.stdout.write(response.read().decode())
                return 0
        except urllib.error.HTTPError as exc:
            self.stdout.write(exc.read().decode(errors="replace"))
            return 1
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            self.stderr.write(f"{url} is not reachable: {exc}")
            return 2
