"""The OpenAPI schema: checked in, in step with the code, and honoured by every response,
including the ones Schemathesis provokes with generated input."""

import io
from pathlib import Path

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi import checks

from config.wsgi import application
from ops_app.models import ApiKey
from tests.factories import (
    ActionExecutionFactory,
    CallLogFactory,
    LeadFactory,
    StepExecutionFactory,
    workflow_with_steps,
)
from tests.support.events import make_event, with_items
from webhooks_app.models import EventStatus

pytestmark = pytest.mark.usefixtures("fresh_api_cache")

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
REGENERATE = "python manage.py spectacular --file docs/openapi.yaml --validate"


def test_the_checked_in_schema_is_what_the_code_generates():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    assert out.getvalue() == SCHEMA_FILE.read_text(), f"docs/openapi.yaml is stale; regenerate it: {REGENERATE}"


def test_the_schema_names_no_secret_field():
    text = SCHEMA_FILE.read_text().lower()

    assert [word for word in ("signing_secret", "connector_token", "ciphertext", "whsec_") if word in text] == []


def test_the_schema_and_its_docs_are_served_without_a_key(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert schema.content.decode() == SCHEMA_FILE.read_text()
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


# --- Generated requests -------------------------------------------------------------------------


@pytest.fixture
def raw_key(source) -> str:
    """A real key, and real data for it to find: failures, dead letters, a finished replay."""
    with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded", "failed")
    make_event(source, status=EventStatus.DEAD_LETTER, failure_details=[])
    make_event(source, status=EventStatus.SUCCEEDED, attempts=1)
    _, raw = ApiKey.issue(organization=source.organization, name="schemathesis")
    return raw


@pytest.fixture
def secrets_held(source, raw_key) -> list[str]:
    """What no response may contain: the source's secrets, its token, the key, their ciphertexts."""
    source.connector_token = "clio-token-schemathesis-91c2"
    source.save()
    ciphertexts = [e["ciphertext"] for e in source.signing_secret_entries] + [source.connector_token_encrypted]
    return [*source.signing_secrets, source.connector_token, raw_key, *ciphertexts]


@pytest.fixture
def wsgi_calls(db):
    """Lets requests go straight to the WSGI app inside the test's transaction.

    Django closes the database connection around each request it handles (close_old_connections);
    inside a test's transaction that would close the test's own connection. Django's test Client
    switches this off the same way for its requests.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def unthrottled(settings):
    """Generated requests come faster than any real client; the throttle has its own test."""
    unlimited = {"read": "100000/min", "write": "100000/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": unlimited}


# The published contract itself (test_the_checked_in_schema_is_what_the_code_generates keeps it
# equal to the code's), with requests sent to the WSGI app in this process.
schema = schemathesis.openapi.from_path(SCHEMA_FILE)
schema.app = application


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    # The database fixtures are function-scoped on purpose: every example sees the same data.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_gets_a_5xx_or_a_response_outside_the_schema(
    case, raw_key, secrets_held, wsgi_calls, unthrottled
):
    # Every built-in check but one: a pagination cursor is opaque, so the schema cannot tell a
    # valid one from a forged one (nor a replay window whose end precedes its start), and such
    # input is rightly a 400.
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {raw_key}"}, excluded_checks=[checks.positive_data_acceptance]
    )

    answer = response.content.decode(errors="replace") + str(dict(response.headers))
    assert [s for s in secrets_held if s in answer] == []


# --- Real objects against the schema ------------------------------------------------------------


def test_responses_about_real_objects_conform_to_the_schema(source, raw_key, wsgi_calls):
    """Generated ids rarely hit a real event or replay; these do, so the 200 and 202 shapes of
    every endpoint are checked against the schema too (with the same checks, through WSGI; not
    Django's test Client, which would switch close_old_connections back on)."""
    event = with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded", "failed")
    dead = make_event(source, status=EventStatus.DEAD_LETTER, failure_details=[])

    def call(method: str, path: str, **kw):
        case = schema[path][method].Case(media_type="application/json" if "body" in kw else None, **kw)
        return case.call_and_validate(headers={"Authorization": f"Bearer {raw_key}"})

    replay = call("POST", "/api/v1/replays", body={"filter": {"status": ["dead_letter"]}})
    replay_id = replay.json()["id"]
    responses = [
        call("GET", "/api/v1/queue-health"),
        call("GET", "/api/v1/delivery-stats", query={"range": "7d"}),
        call("GET", "/api/v1/failures", query={"limit": 1}),
        call("GET", "/api/v1/dead-letters"),
        call("GET", "/api/v1/events/{id}", path_parameters={"id": str(event.id)}),
        call("POST", "/api/v1/events/{id}/retry", path_parameters={"id": str(event.id)}, body={"note": "n"}),
        call("POST", "/api/v1/events/{id}/resolve", path_parameters={"id": str(dead.id)}, body={"note": "n"}),
        call("POST", "/api/v1/replays", body={"dry_run": True}),
        call("GET", "/api/v1/replays/{id}", path_parameters={"id": replay_id}),
        call("POST", "/api/v1/replays/{id}/cancel", path_parameters={"id": replay_id}),
        call("POST", "/api/v1/replays/{id}/cancel", path_parameters={"id": replay_id}),
    ]
    assert replay.status_code == 202
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 202, 200, 200, 200, 200, 409]


def test_workflow_responses_about_real_objects_conform_to_the_schema(source, raw_key, wsgi_calls):
    """The 200, 201 and 409 shapes of the workflow endpoints with real leads, runs and calls."""
    organization = source.organization
    workflow = workflow_with_steps(organization, "update_lead", "wait")
    lead = LeadFactory(organization=organization)
    call_log = CallLogFactory(organization=organization, lead=lead, ai_analysis_failed=True)
    ActionExecutionFactory(call=call_log, status="failed", success=False, error="no such workflow")

    def call(method: str, path: str, **kw):
        case = schema[path][method].Case(media_type="application/json" if "body" in kw else None, **kw)
        return case.call_and_validate(headers={"Authorization": f"Bearer {raw_key}"})

    started = call("POST", "/api/v1/workflow-runs", body={"lead": lead.pk, "workflow": workflow.pk})
    run_id = {"id": started.json()["id"]}
    StepExecutionFactory(run_id=run_id["id"], outcome="failed", error_code="ERR_TIMEOUT")
    responses = [
        call("POST", "/api/v1/workflow-runs", body={"lead": lead.pk, "workflow": workflow.pk}),
        call("GET", "/api/v1/workflow-runs", query={"needs_review": "false"}),
        call("GET", "/api/v1/workflow-runs/{id}", path_parameters=run_id),
        call("POST", "/api/v1/workflow-runs/{id}/skip", path_parameters=run_id, body={"note": "n"}),
        call("POST", "/api/v1/workflow-runs/{id}/reset", path_parameters=run_id, body={"position": 1}),
        call("POST", "/api/v1/workflow-runs/{id}/retry", path_parameters=run_id, body={}),
        call("POST", "/api/v1/workflow-runs/{id}/cancel", path_parameters=run_id, body={}),
        call("POST", "/api/v1/workflow-runs/{id}/cancel", path_parameters=run_id, body={}),
        call("GET", "/api/v1/call-logs", query={"has_failed_actions": "true"}),
        call("GET", "/api/v1/call-logs/{id}", path_parameters={"id": call_log.pk}),
        call("GET", "/api/v1/leads"),
        call("POST", "/api/v1/leads", body={"name": "Ada", "phone": "+14155552671"}),
        call("GET", "/api/v1/leads/{id}", path_parameters={"id": lead.pk}),
        call("GET", "/api/v1/workflows"),
        call("GET", "/api/v1/workflows/{id}", path_parameters={"id": workflow.pk}),
        call("GET", "/api/v1/workflow-stats", query={"range": "7d"}),
    ]
    assert started.status_code == 201
    assert [r.status_code for r in responses] == [
        409,
        200,
        200,
        200,
        200,
        200,
        200,
        409,
        200,
        200,
        200,
        201,
        200,
        200,
        200,
        200,
    ]


def test_swagger_ui_is_served_without_any_cdn(client):
    import re

    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in a for a in assets)
    assert not [a for a in assets if a.startswith(("http://", "https://", "//"))]
