"""LOG_FORMAT=json: one JSON object per line, with report_failure's fields as keys."""

import json
import os
import subprocess
import sys

from tests.support.processes import ROOT

SCRIPT = """
import logging, uuid
from webhooks_app.reporting import report_failure
report_failure(
    logging.getLogger("webhooks_app.services.dispatch"),
    "could not publish event %s",
    "e-1",
    event_id=uuid.UUID("00000000-0000-0000-0000-000000000001"),
    organization_id=7,
    function="webhooks_app.intake",
    action="publish",
    error_code="ERR_CONNECTION",
    error_record=False,
)
"""


def run_logging(log_format: str, script: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_FORMAT": log_format, "SECRET_KEY": "x", "PLAIN_HTTP": "true"}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_json_lines_carry_the_message_level_and_every_extra_field() -> None:
    result = run_logging("json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert {k: line[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "webhooks_app.services.dispatch",
        "message": "could not publish event e-1",
    }
    assert line["event_id"] == "00000000-0000-0000-0000-000000000001"
    assert (line["organization_id"], line["function"], line["action"], line["error_code"]) == (
        7,
        "webhooks_app.intake",
        "publish",
        "ERR_CONNECTION",
    )
    assert "time" in line


def test_plain_is_the_default_and_an_unknown_format_refuses_to_start() -> None:
    plain = run_logging("plain")
    assert plain.returncode == 0, plain.stderr
    last = plain.stderr.strip().splitlines()[-1]
    assert last.endswith("WARNING webhooks_app.services.dispatch could not publish event e-1")
    # manage.py reports a broken settings module and carries on; importing it is what a process does.
    env = {**os.environ, "LOG_FORMAT": "yaml", "SECRET_KEY": "x", "PLAIN_HTTP": "true"}
    wrong = subprocess.run(
        [sys.executable, "-c", "import config.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert wrong.returncode != 0
    assert "LOG_FORMAT must be plain or json" in wrong.stderr
