"""A process of its own calling the Clio connector through a circuit breaker, as a worker
process would: `python -m tests.support.breaker_caller <name> <url> <dir> <calls>`. It says it
is ready (a file in <dir>), waits for <dir>/go, makes its calls and prints one JSON line each."""

import json
import os
import sys
import time
from pathlib import Path

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from webhooks_app.connectors.base import TaskSpec
    from webhooks_app.connectors.clio import ClioHttpConnector
    from webhooks_app.errors import ProcessingError

    name, url, directory, calls = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    connector = ClioHttpConnector(base_url=url, token="", breaker_name=name)
    (directory / f"ready-{os.getpid()}").touch()
    while not (directory / "go").exists():
        time.sleep(0.005)
    for n in range(calls):
        spec = TaskSpec(
            organization_id=1,
            entity_id="matter-1",
            title="Call",
            description="",
            assignee="someone",
            due_at=None,
            idempotency_key=f"caller-{os.getpid()}-{n}",
        )
        try:
            print(json.dumps({"outcome": "created", "id": connector.create_task(spec)}), flush=True)
        except ProcessingError as error:
            print(json.dumps({"outcome": error.code.value, "retry_after": error.retry_after}), flush=True)


if __name__ == "__main__":
    main()
