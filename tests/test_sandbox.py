"""The demo's fake Clio: scripted faults answer as scripted without Django's error log."""

import json
import logging
import uuid

import pytest
from django.test import Client

from webhooks_app.models import LocalTask, Organization

pytestmark = pytest.mark.urls("localdev.sandbox")


def create(client: Client, matter_id: int, key: str) -> int:
    body = {"data": {"name": "Run Conflict Check", "matter": {"id": matter_id}}}
    response = client.post(
        "/api/v4/tasks.json", data=json.dumps(body), content_type="application/json", headers={"Idempotency-Key": key}
    )
    return response.status_code


def test_it_answers_scripted_failures_without_logging_them_as_server_errors(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    Organization.objects.create(slug="demo-law", name="Demo Law Firm")
    client = Client()
    flaky = f"flaky-{uuid.uuid4().hex}"  # the fail-twice counter lives in Redis for an hour

    with caplog.at_level(logging.INFO):
        codes = [create(client, 31007, "down"), *(create(client, 31003, flaky) for _ in range(3))]

    assert codes == [503, 500, 500, 201]
    assert LocalTask.objects.filter(idempotency_key=f"sandbox:{flaky}").count() == 1
    assert [r for r in caplog.records if r.name == "django.request"] == []
    assert [r.getMessage() for r in caplog.records if r.name == "localdev.sandbox"] == [
        "sandbox: scripted 503 for matter 31007",
        "sandbox: scripted 500 for matter 31003",
        "sandbox: scripted 500 for matter 31003",
    ]


def test_it_still_logs_a_real_server_error(db: None, caplog: pytest.LogCaptureFixture) -> None:
    # No organization: not a scripted fault, so Django's error log shows it.
    with caplog.at_level(logging.INFO):
        assert create(Client(), 31001, "no-org") == 500

    assert [r.levelname for r in caplog.records if r.name == "django.request"] == ["ERROR"]
