"""Tenant isolation: for every endpoint, organization A's key never sees, counts or changes
organization B's data, and B's objects are 'not found' to it, never 'forbidden'."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from ops_app.models import AuditEntry, Replay
from ops_app.replays import replay_run_batch
from tests.factories import (
    ActionExecutionFactory,
    CallLogFactory,
    EndpointFactory,
    StepExecutionFactory,
    WorkflowRunFactory,
    workflow_with_steps,
)
from tests.support.api import api_for, other_org_source
from tests.support.events import make_event, with_items
from webhooks_app.models import Delivery, DeliveryStatus, Endpoint, EventStatus, OutboundMessage, WebhookEvent
from workflows_app.models import CallLog, RunStatus, StepStatus, WorkflowRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(source):
    """A has one event of each kind; B has more of each, so any leak changes A's figures."""
    now = timezone.now()
    b_source = other_org_source()
    a = {
        "failed": make_event(source, status=EventStatus.FAILED, completed_at=now, attempts=1),
        "dead": make_event(source, status=EventStatus.DEAD_LETTER, completed_at=now, attempts=3),
        "retry": make_event(source, status=EventStatus.RETRY_SCHEDULED, next_retry_at=now + timedelta(minutes=5)),
        "done": make_event(source, status=EventStatus.SUCCEEDED, completed_at=now, attempts=1),
    }
    b = {}
    for kind, status in [("failed", "failed"), ("dead", "dead_letter"), ("retry", "retry_scheduled")]:
        b[kind] = make_event(b_source, status=status, completed_at=now, attempts=2, last_error_code="ERR_TIMEOUT")
        for _ in range(2):
            make_event(b_source, status=status, completed_at=now, attempts=2)
    with_items(b["failed"], "succeeded", "failed")
    b_api = api_for(b_source.organization)
    b["replay"] = b_api.post("replays", {}).json()["id"]
    return api_for(source.organization), a, b, b_source


def test_queue_health_counts_only_the_keys_organization(two_orgs):
    api, *_ = two_orgs

    body = api.get("queue-health").json()

    metrics = body["metrics"]
    assert (metrics["completed"], metrics["failed"], metrics["deadLetter"], metrics["delayed"]) == (1, 1, 1, 1)
    webhooks = next(q for q in body["queues"] if q["name"] == "webhooks")
    assert (webhooks["failed"], webhooks["deadLetter"], webhooks["scheduledRetries"]) == (1, 1, 1)


def test_delivery_stats_count_only_the_keys_organization(two_orgs, source):
    api, *_ = two_orgs

    body = api.get("delivery-stats", range="1h").json()

    assert body["summary"]["total"] == 4
    assert list(body["bySource"]) == [source.slug]


@pytest.mark.parametrize("path", ["failures", "dead-letters"])
def test_lists_show_only_the_keys_organization(two_orgs, path):
    api, a, _, b_source = two_orgs
    key = "failures" if path == "failures" else "deadLetters"

    listed = {e["id"] for e in api.get(path, limit=100).json()[key]}
    by_b_source = api.get(path, source=b_source.slug).json()[key]

    expected = (
        {str(a["failed"].id), str(a["dead"].id), str(a["retry"].id)} if path == "failures" else {str(a["dead"].id)}
    )
    assert listed == expected
    assert by_b_source == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "events/{event}"),
        ("post", "events/{event}/retry"),
        ("post", "events/{event}/resolve"),
        ("get", "replays/{replay}"),
        ("post", "replays/{replay}/cancel"),
    ],
)
def test_another_organizations_object_is_not_found_and_left_unchanged(two_orgs, method, path):
    api, _, b, _ = two_orgs
    url = path.format(event=b["failed"].id, replay=b["replay"])

    response = api.get(url) if method == "get" else api.post(url, {"note": "mine now"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    b["failed"].refresh_from_db()
    assert b["failed"].status == EventStatus.FAILED
    assert not AuditEntry.objects.exists()
    assert Replay.objects.get(id=b["replay"]).status == "pending"


def test_replays_match_and_retry_only_the_keys_organization(two_orgs):
    api, a, b, _ = two_orgs

    preview = api.post("replays", {"dry_run": True, "filter": {"status": ["failed", "dead_letter"]}}).json()
    assert preview["matched"] == 2
    replay_id = api.post("replays", {"filter": {"status": ["failed", "dead_letter"]}}).json()["id"]
    while replay_run_batch(replay_id=replay_id) is not None:
        pass

    assert Replay.objects.get(id=replay_id).done == 2
    b_ids = [e.id for e in b.values() if isinstance(e, WebhookEvent)]
    assert not WebhookEvent.objects.filter(id__in=b_ids, status=EventStatus.QUEUED).exists()
    assert set(AuditEntry.objects.values_list("target_id", flat=True)) == {str(a["failed"].id), str(a["dead"].id)}


def test_a_replay_cannot_name_another_organizations_source(two_orgs):
    api, _, _, b_source = two_orgs

    response = api.post("replays", {"dry_run": True, "filter": {"source": b_source.slug}})

    assert response.status_code == 400
    # The same words as for a source that does not exist: nothing to learn about B.
    assert response.json()["error"]["fields"] == {"filter.source": ["Unknown source."]}


# --- The matrix: every operation in the OpenAPI schema ------------------------------------------
# Derived from the schema the code generates, so an endpoint added later is covered, or fails
# here until someone says what organization B's object is for it.


def api_operations() -> list[tuple[str, str, list[str]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path, [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
        for path, operations in schema["paths"].items()
        for method, op in operations.items()
    ]


OPERATIONS = api_operations()
ON_ONE_OBJECT = [(m, p) for m, p, _ in OPERATIONS if "{" in p]
ON_COLLECTIONS = [(m, p, q) for m, p, q in OPERATIONS if "{" not in p]
# Bodies for collection POSTs that change nothing: what A would see of B, not a change to A.
HARMLESS_BODIES: dict[str, dict[str, object]] = {
    "/api/v1/replays": {"dry_run": True, "filter": {}},
    # Invalid (no lead, no name, no URL): answered 400 before and after, whatever B holds.
    "/api/v1/workflow-runs": {},
    "/api/v1/leads": {},
    "/api/v1/endpoints": {},
}
# Fields that differ between two identical requests a moment apart.
VOLATILE = {"timestamp", "generatedAt"}


def b_world(b_source) -> dict[str, str]:
    """Organization B's objects, by the resource the path names (the segment after /api/v1/)."""
    now = timezone.now()
    failed = make_event(b_source, status=EventStatus.FAILED, completed_at=now, attempts=2, last_error_code="ERR_B")
    with_items(failed, "succeeded", "failed")
    for status in ("dead_letter", "retry_scheduled", "succeeded", "partial_failure"):
        make_event(b_source, status=status, completed_at=now, attempts=2, last_error_code="ERR_B")
    replay = api_for(b_source.organization).post("replays", {}).json()["id"]
    workflow = workflow_with_steps(b_source.organization, "update_lead", "wait")
    run = WorkflowRunFactory(workflow=workflow, status=RunStatus.FAILED, step_status=StepStatus.FAILED)
    StepExecutionFactory(run=run, outcome="failed", error_code="ERR_B")
    call_log = CallLogFactory(organization=b_source.organization, lead=run.lead, ai_analysis_failed=True)
    ActionExecutionFactory(call=call_log, status="failed", success=False, error="B's failure")
    endpoint = EndpointFactory(organization=b_source.organization, event_types=["booking.created"])
    message = OutboundMessage.objects.create(
        organization=b_source.organization, event_type="booking.created", payload={}
    )
    delivery = Delivery.objects.create(
        message=message, endpoint=endpoint, organization=b_source.organization, event_type="booking.created",
        status=DeliveryStatus.FAILED,
    )  # fmt: skip
    return {
        "events": str(failed.id),
        "replays": str(replay),
        "workflow-runs": str(run.id),
        "call-logs": str(call_log.pk),
        "leads": str(run.lead_id),
        "workflows": str(workflow.pk),
        "endpoints": str(endpoint.id),
        "messages": str(message.id),
        "deliveries": str(delivery.id),
    }


def world_snapshot() -> list[list[dict[str, object]]]:
    models = (WebhookEvent, Replay, OutboundMessage, Delivery, Endpoint, WorkflowRun, CallLog)
    return [list(model.objects.order_by("pk").values()) for model in models]


def call(api, method: str, path: str, **params):
    url = path.removeprefix("/api/v1/")
    if method == "GET":
        return api.get(url, **params)
    if method == "PATCH":
        return api.patch(url, {"description": "mine now"})
    return api.post(url, HARMLESS_BODIES.get(path, {"note": "mine now"}))


def stable(body):
    if isinstance(body, dict):
        return {k: stable(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [stable(v) for v in body]
    return body


@pytest.mark.parametrize(("method", "path"), ON_ONE_OBJECT, ids=[f"{m} {p}" for m, p in ON_ONE_OBJECT])
def test_every_object_endpoint_answers_404_for_another_organizations_object(source, method, path):
    b_source = other_org_source()
    objects = b_world(b_source)
    resource = path.removeprefix("/api/v1/").split("/")[0]
    if resource not in objects:
        pytest.fail(f"{path}: give organization B a {resource!r} object in b_world()")
    url = re.sub(r"\{[^}]+\}", objects[resource], path)
    snapshot = world_snapshot()
    audit = AuditEntry.objects.count()

    response = call(api_for(source.organization), method, url)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert world_snapshot() == snapshot
    assert AuditEntry.objects.count() == audit
    # The object is real: its own organization reaches it.
    assert call(api_for(b_source.organization), method, url).status_code != 404


@pytest.mark.parametrize(("method", "path", "query"), ON_COLLECTIONS, ids=[f"{m} {p}" for m, p, _ in ON_COLLECTIONS])
def test_no_list_or_figure_changes_when_another_organization_has_data(source, method, path, query):
    if method != "GET" and path not in HARMLESS_BODIES:
        pytest.fail(f"{method} {path}: add a body to HARMLESS_BODIES that changes nothing")
    now = timezone.now()
    for status in ("failed", "dead_letter", "succeeded", "retry_scheduled"):
        make_event(source, status=status, completed_at=now, attempts=1, last_error_code="ERR_A")
    api = api_for(source.organization)
    variants: list[dict[str, str]] = [{}] + ([{"range": r} for r in ("1h", "24h")] if "range" in query else [])
    before = [stable(call(api, method, path, **v).json()) for v in variants]

    b_source = other_org_source()
    b_world(b_source)
    after = [stable(call(api, method, path, **v).json()) for v in variants]

    assert after == before
    if "source" in query:
        named = call(api, method, path, source=b_source.slug)
        unknown = call(api, method, path, source="no-such-source")
        assert (named.status_code, stable(named.json())) == (unknown.status_code, stable(unknown.json()))
