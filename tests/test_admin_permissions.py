"""The admin-permission matrix: every page of every registered model (and the dashboard), as a
member of the Ops staff group and as a superuser. Ops staff get exactly what their group's
permissions allow, and no page, for anyone, shows a signing secret, a connector token, an API
key or the ciphertext of any of them.

The pages come from the admin registry, so a model registered later is covered too."""

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from ops_app.errors import record_error
from ops_app.retention import retention_purge
from tests.factories import (
    ActionExecutionFactory,
    AlertFactory,
    CallLogFactory,
    DiagnosticFactory,
    DispositionActionFactory,
    DispositionFactory,
    LeadFactory,
    SourceFactory,
    workflow_with_steps,
)
from tests.support.admin import login, make_user, ops_staff_group_ensure
from tests.support.events import event_with_ledger
from tests.support.signing import encode, matter_payload, standard_headers
from webhooks_app.connectors import TaskSpec
from webhooks_app.connectors.local import LocalConnector
from webhooks_app.models import Delivery, Endpoint, EventStatus, Organization, OutboundMessage, Source
from webhooks_app.services.outbound.operations import endpoint_create
from webhooks_app.services.sources import source_secret_rotate
from workflows_app.models import WorkflowStep
from workflows_app.services.runs import run_start

pytestmark = pytest.mark.django_db

TOKEN = "clio-token-5c0ffee9d2"
START_RUN = "workflows_app.start_workflowrun"


@dataclass
class World:
    secrets: list[str]  # everything no page may contain
    objects: dict[type[Model], Model]
    root: Client  # a superuser


def _beat_rows() -> None:
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    CrontabSchedule.objects.create(minute="0", hour="3")
    SolarSchedule.objects.create(event="sunrise", latitude=50, longitude=8)
    ClockedSchedule.objects.create(clocked_time="2030-01-01T00:00:00Z")
    PeriodicTask.objects.create(name="matrix", task="webhooks_app.tasks.dispatch_due_retries", interval=every)


@pytest.fixture
def world(organization: Organization, client: Client, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    """One row of everything, made the way the product makes it where it can be."""
    caplog.set_level(logging.DEBUG)
    source = SourceFactory(organization=organization, connector="clio_http", connector_base_url="https://c.example")
    source.connector_token = TOKEN
    source.save()
    first = source.signing_secrets[0]
    second = source_secret_rotate(source_id=source.pk, grace=timedelta(hours=1))
    hmac_source = SourceFactory(organization=organization, signing_scheme="hmac_sha256")

    body = encode(matter_payload())
    intake = client.post(
        f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=standard_headers(second, body)
    )
    assert intake.status_code == 202
    failed = event_with_ledger(source, status=EventStatus.PARTIAL_FAILURE)

    out = io.StringIO()
    call_command("create_api_key", "--org", organization.slug, "--name", "matrix", stdout=out, stderr=io.StringIO())
    raw_key = out.getvalue().strip()
    auth = {"Authorization": f"Bearer {raw_key}"}
    resolved = client.post(
        f"/api/v1/events/{failed.id}/resolve", {"note": "handled"}, content_type="application/json", headers=auth
    )
    replay = client.post("/api/v1/replays", {"filter": {}}, content_type="application/json", headers=auth)
    assert (resolved.status_code, replay.status_code) == (200, 202)

    record_error(function="webhooks_app.tasks.process_event", message="No CSC found", severity="warning")
    root = login(User.objects.create_superuser("root", password="correct horse battery"))
    record = admin_model("errorrecord")._default_manager.get()
    acted = root.post(
        reverse("admin:ops_app_errorrecord_act", args=[record.pk, "resolve_error_group"]),
        {"confirm": "yes", "note": "fixed"},
    )
    assert acted.status_code == 302
    spec = TaskSpec(
        organization_id=organization.pk,
        entity_id="1001",
        title="Call",
        description="",
        assignee="csc.naples",
        due_at=None,
        idempotency_key="matrix:1",
    )
    LocalConnector().create_task(spec)
    _beat_rows()
    admin_model("breaker")._default_manager.create(name="clio:matrix")  # a circuit breaker's row
    step_secrets = _workflow_rows(organization)
    AlertFactory(organization=organization)
    DiagnosticFactory(organization=organization)
    retention_purge()
    endpoint = Endpoint(
        organization=organization, url="https://hooks.example.com/in", event_types=["booking.created"],
        headers={"Authorization": "Bearer receiver-token-1234567"},
    )  # fmt: skip
    endpoint_secret = endpoint_create(endpoint=endpoint)
    message = OutboundMessage.objects.create(organization=organization, event_type="booking.created", payload={})
    Delivery.objects.create(message=message, endpoint=endpoint, organization=organization, event_type="booking.created")

    sources = Source.objects.all()
    secrets = [first, second, TOKEN, raw_key, *hmac_source.signing_secrets, *step_secrets]
    secrets += [endpoint_secret, "receiver-token-1234567", endpoint.signing_secret_entries[0]["ciphertext"]]
    for s in sources:
        secrets += [e["ciphertext"] for e in s.signing_secret_entries]
        secrets += [s.connector_token_encrypted] if s.connector_token_encrypted else []
    objects = {model: model._default_manager.order_by("pk").first() for model in admin.site._registry}
    yield World(secrets=secrets, objects={m: o for m, o in objects.items() if o is not None}, root=root)
    # Nor may a log line carry one (error records are made from log lines).
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert not [s for s in secrets if s in logged]


def _workflow_rows(organization: Organization) -> list[str]:
    """A workflow with a webhook step (whose secret no page may show), a run, a call with a
    failed disposition action. Returns the step's secret and its ciphertext."""
    workflow = workflow_with_steps(organization, "update_lead")
    step = WorkflowStep(
        workflow=workflow, position=2, action_type="webhook", config={"url": "https://crm.example.com/hook"}
    )
    secret = step.signing_secret_ensure()
    step.save()
    run = run_start(workflow=workflow, lead=LeadFactory(organization=organization), started_by="matrix")
    disposition = DispositionActionFactory(disposition=DispositionFactory(organization=organization)).disposition
    call = CallLogFactory(organization=organization, lead=run.lead, workflow_run=run, disposition=disposition.name)
    ActionExecutionFactory(call=call, status="failed", success=False, error="no such workflow")
    assert secret is not None
    return [secret, step.signing_secret_encrypted]


def admin_model(model_name: str) -> type[Model]:
    """A registered model by name, wherever its app keeps it."""
    return next(m for m in admin.site._registry if m._meta.model_name == model_name)


def pages(world: World) -> Iterator[tuple[type[Model], str, str]]:
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        yield model, "view", reverse("admin:{}_{}_changelist".format(*info))
        yield model, "add", reverse("admin:{}_{}_add".format(*info))
        obj = world.objects.get(model)
        if obj is not None:
            yield model, "view", reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
            yield model, "view", reverse("admin:{}_{}_history".format(*info), args=[obj.pk])
            yield model, "delete", reverse("admin:{}_{}_delete".format(*info), args=[obj.pk])


def leaked(world: World, content: bytes) -> list[str]:
    text = content.decode()
    return [secret for secret in world.secrets if secret in text]


def test_every_registered_model_has_a_row_so_its_object_pages_are_covered(world):
    assert set(admin.site._registry) - set(world.objects) == set()


def test_ops_staff_reach_exactly_what_their_group_allows_and_never_a_secret(world):
    user = make_user("ops.matrix", group=ops_staff_group_ensure())
    ops = login(user)
    results = []

    for model, action, url in pages(world):
        perm = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        # A run is "added" by starting it, which has its own permission.
        perm = START_RUN if perm == "workflows_app.add_workflowrun" else perm
        allowed = user.has_perm(perm) or (action == "view" and user.has_perm(perm.replace(".view_", ".change_")))
        response = ops.get(url)
        results.append((url, response.status_code, allowed, leaked(world, response.content)))

    wrong = [(url, status, allowed) for url, status, allowed, _ in results if (status == 200) != allowed]
    assert wrong == []
    assert {status for _, status, allowed, _ in results if not allowed} <= {302, 403}
    assert [(url, found) for url, _, _, found in results if found] == []


def test_the_ops_staff_group_may_add_only_assignee_rules_and_change_no_source(world):
    user = make_user("ops.pinned", group=ops_staff_group_ensure())
    addable = {
        m._meta.model_name
        for m in admin.site._registry
        if user.has_perm(f"{m._meta.app_label}.add_{m._meta.model_name}")
    }
    viewable = {
        m._meta.model_name
        for m in admin.site._registry
        if user.has_perm(f"{m._meta.app_label}.view_{m._meta.model_name}")
    }

    assert addable == {"assigneerule"}
    assert not user.has_perm("webhooks_app.change_source")
    assert {"source", "webhookevent", "errorrecord", "assigneerule"} <= viewable
    assert not {"user", "group", "periodictask"} & viewable


def test_the_dashboard_shows_no_secret_to_ops_staff_or_superusers(world):
    ops = login(make_user("ops.dash", group=ops_staff_group_ensure()))
    for client in (ops, world.root):
        response = client.get("/admin/")
        assert response.status_code == 200
        assert leaked(world, response.content) == []


def test_no_page_shows_a_superuser_a_secret_either(world):
    results = []

    for _model, _action, url in pages(world):
        response = world.root.get(url)
        results.append((url, response.status_code, leaked(world, response.content)))

    assert [(url, status) for url, status, _ in results if status >= 500] == []
    assert [(url, found) for url, _, found in results if found] == []
