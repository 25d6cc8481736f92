"""Diagnostics: each configuration problem appears with its cause and is resolved when the cause
is fixed; two evaluations at once open it once; `manage.py diagnose`, the API and the dashboard
show what is open."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from html import unescape

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from ops_app.diagnostics import diagnostics_evaluate
from ops_app.models import Diagnostic, DiagnosticKind, DiagnosticSeverity, ErrorRecord
from tests.factories import (
    AssigneeRuleFactory,
    DispositionActionFactory,
    DispositionFactory,
    LeadFactory,
    OrganizationFactory,
    SourceFactory,
    TaskTemplateFactory,
    WorkflowFactory,
    WorkflowRunFactory,
    workflow_with_steps,
)
from tests.support.admin import login, make_user
from tests.support.api import api_for
from tests.support.events import make_event
from tests.support.signing import matter_payload
from webhooks_app.breakers import breaker_call, breaker_reset
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import Source, WebhookEvent
from webhooks_app.refusals import KEY_PREFIX
from workflows_app.models import RunStatus
from workflows_app.models.calls import DispositionActionType

pytestmark = pytest.mark.usefixtures("fresh_refusal_counts")


@pytest.fixture
def fresh_refusal_counts():
    """Refusal counts live in Redis by source id; a new test database reuses ids."""

    def forget() -> None:
        client = redis.Redis.from_url(settings.MENDHOOK_GUARDS_REDIS_URL)
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}:*"))
        if keys:
            client.delete(*keys)

    forget()
    yield
    forget()


@pytest.fixture
def organization(db):
    """An organization with no templates, rules or workflows of the demo: each test adds its own."""
    return OrganizationFactory()


def open_of(kind: DiagnosticKind) -> list[Diagnostic]:
    return list(Diagnostic.objects.open().filter(kind=kind))


def _events(source: Source, times, location: str = "miami") -> None:
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            organization=source.organization,
            source=source,
            idempotency_key=uuid.uuid4().hex,
            event_type="matter.stage_changed",
            payload=matter_payload(location=location),
            received_at=at,
        )
        for at in times
    )


# --- Each detector: the problem appears with its cause and goes with it ----------------------------


@pytest.mark.django_db
def test_a_template_role_without_a_rule_for_a_recent_location_appears_and_resolves_when_the_rule_is_added(source):
    org = source.organization
    TaskTemplateFactory(organization=org, assignee_role="csc", stage="intake", task_number=1, title="Call client")
    TaskTemplateFactory(organization=org, assignee_role="paralegal", stage="intake", task_number=2, title="Draft")
    AssigneeRuleFactory(organization=org, role="csc", location="miami")
    AssigneeRuleFactory(organization=org, role="paralegal", location="*")  # covers every location
    now = timezone.now()
    _events(source, [now - timedelta(days=2)], location="miami")
    _events(source, [now - timedelta(days=3), now - timedelta(days=1)], location="naples")
    _events(source, [now - timedelta(days=45)], location="tampa")  # not seen in the last 30 days
    make_event(source, payload={"type": "call.ended", "data": {}})  # events without a location

    first = diagnostics_evaluate(now=now)

    assert [(d.subject, d.severity) for d in first.opened] == [("csc@naples", DiagnosticSeverity.CRITICAL)]
    found = first.opened[0]
    assert found.organization_id == org.pk
    assert "ERR_ASSIGNEE_NO_CSC" in found.message and "'intake #1: Call client'" in found.message
    assert found.link == f"/admin/webhooks_app/assigneerule/add/?organization={org.pk}&role=csc&location=naples"

    AssigneeRuleFactory(organization=org, role="csc", location="naples")
    fixed = diagnostics_evaluate(now=now + timedelta(minutes=5))

    assert [d.pk for d in fixed.resolved] == [found.pk]
    found.refresh_from_db()
    assert found.resolved_at == now + timedelta(minutes=5)
    assert open_of(DiagnosticKind.ASSIGNEE_RULE_MISSING) == []


@pytest.mark.django_db
def test_a_diagnostic_found_again_is_refreshed_not_duplicated_and_recurs_as_a_new_episode(source):
    org = source.organization
    TaskTemplateFactory(organization=org, assignee_role="csc")
    now = timezone.now()
    _events(source, [now - timedelta(hours=1)], location="naples")

    first = diagnostics_evaluate(now=now)
    again = diagnostics_evaluate(now=now + timedelta(minutes=5))
    rule = AssigneeRuleFactory(organization=org, role="csc", location="*")
    diagnostics_evaluate(now=now + timedelta(minutes=10))
    rule.delete()
    recurred = diagnostics_evaluate(now=now + timedelta(minutes=15))

    assert (len(first.opened), again.opened, again.refreshed) == (1, [], 1)
    rows = list(Diagnostic.objects.filter(kind=DiagnosticKind.ASSIGNEE_RULE_MISSING).order_by("id"))
    assert [(r.first_seen, r.last_seen, r.resolved_at) for r in rows] == [
        (now, now + timedelta(minutes=5), now + timedelta(minutes=10)),
        (now + timedelta(minutes=15), now + timedelta(minutes=15), None),
    ]
    assert [d.pk for d in recurred.opened] == [rows[1].pk]


@pytest.mark.django_db
def test_a_source_silent_ten_times_its_usual_gap_appears_and_resolves_when_it_sends_again(source, settings):
    settings.MENDHOOK_DIAGNOSTIC_SILENT_MIN_SECONDS = 0
    last = timezone.now() - timedelta(days=1)
    _events(source, [last - timedelta(minutes=i) for i in range(30)])  # one a minute
    sparse = SourceFactory(organization=source.organization)
    _events(sparse, [last - timedelta(minutes=i) for i in range(10)])  # too few to judge

    early = diagnostics_evaluate(now=last + timedelta(minutes=9))
    late = diagnostics_evaluate(now=last + timedelta(minutes=11))
    _events(source, [last + timedelta(minutes=12)])
    back = diagnostics_evaluate(now=last + timedelta(minutes=12, seconds=30))

    assert [d for d in early.opened if d.kind == DiagnosticKind.SOURCE_SILENT] == []
    silent = [d for d in late.opened if d.kind == DiagnosticKind.SOURCE_SILENT]
    assert [(d.subject, d.severity) for d in silent] == [(f"source:{source.pk}", DiagnosticSeverity.WARNING)]
    assert "nothing for 11 min" in silent[0].message and "30 events" in silent[0].message
    assert silent[0].link == f"/admin/webhooks_app/source/{source.pk}/change/"
    assert [d.pk for d in back.resolved] == [silent[0].pk]


@pytest.mark.django_db
def test_a_source_silent_past_the_lookback_stays_flagged_until_it_sends(source, settings):
    settings.MENDHOOK_DIAGNOSTIC_SILENT_MIN_SECONDS = 0
    last = timezone.now() - timedelta(days=1)
    _events(source, [last - timedelta(minutes=i) for i in range(30)])
    opened = diagnostics_evaluate(now=last + timedelta(hours=1)).opened

    weeks_later = diagnostics_evaluate(now=last + timedelta(days=20))

    assert [d.subject for d in opened if d.kind == DiagnosticKind.SOURCE_SILENT] == [f"source:{source.pk}"]
    assert weeks_later.resolved == []
    (row,) = open_of(DiagnosticKind.SOURCE_SILENT)
    assert "over 14 days" in row.message


@pytest.mark.django_db
def test_a_disabled_source_still_sent_to_appears_and_resolves_when_enabled_again(source, post_webhook):
    Source.objects.filter(pk=source.pk).update(enabled=False)
    source.refresh_from_db()
    other = SourceFactory(organization=source.organization, enabled=False)  # disabled, and quiet

    answers = [post_webhook(source, matter_payload()).status_code for _ in range(3)]
    opened = diagnostics_evaluate().opened

    assert answers == [404, 404, 404]
    assert WebhookEvent.objects.count() == 0
    (row,) = [d for d in opened if d.kind == DiagnosticKind.DISABLED_SOURCE_TRAFFIC]
    assert (row.subject, row.organization_id) == (f"source:{source.pk}", source.organization_id)
    assert "sent 3 requests" in row.message and f"source:{other.pk}" not in row.subject

    source.enabled = True
    source.save()
    assert [d.pk for d in diagnostics_evaluate().resolved] == [row.pk]


@pytest.mark.django_db
def test_requests_to_an_unknown_slug_are_not_counted(client):
    answer = client.post("/webhooks/no-such-source/", data=b"{}", content_type="application/json")

    assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_source"
    client_redis = redis.Redis.from_url(settings.MENDHOOK_GUARDS_REDIS_URL)
    assert list(client_redis.scan_iter(match=f"{KEY_PREFIX}:*")) == []


@pytest.mark.django_db
def test_a_disabled_source_diagnostic_resolves_when_the_traffic_stops(source, post_webhook, settings):
    source.enabled = False
    source.save()
    post_webhook(source, matter_payload())
    now = timezone.now()

    opened = diagnostics_evaluate(now=now).opened
    window = timedelta(seconds=settings.MENDHOOK_DIAGNOSTIC_DISABLED_TRAFFIC_SECONDS)
    quiet = diagnostics_evaluate(now=now + window + timedelta(seconds=5))

    assert [d.kind for d in opened] == [DiagnosticKind.DISABLED_SOURCE_TRAFFIC]
    assert [d.pk for d in quiet.resolved] == [opened[0].pk]


@pytest.mark.django_db
@pytest.mark.parametrize("problem", ["inactive", "empty", "missing"])
def test_a_disposition_starting_an_unusable_workflow_appears_and_resolves_when_the_workflow_is_fixed(
    organization, problem
):
    if problem == "inactive":
        workflow = workflow_with_steps(organization, "call", active=False)
    else:
        workflow = WorkflowFactory(organization=organization)  # no steps
    workflow_id = workflow.pk if problem != "missing" else workflow.pk + 1000
    disposition = DispositionFactory(organization=organization, name="Interested")
    action = DispositionActionFactory(
        disposition=disposition, action_type=DispositionActionType.START_WORKFLOW, config={"workflow_id": workflow_id}
    )
    # A disabled action is not a problem.
    DispositionActionFactory(
        disposition=disposition,
        action_type=DispositionActionType.START_WORKFLOW,
        config={"workflow_id": 999999},
        enabled=False,
    )

    (row,) = diagnostics_evaluate().opened

    assert (row.kind, row.severity, row.subject) == (
        DiagnosticKind.DISPOSITION_WORKFLOW_UNUSABLE,
        DiagnosticSeverity.CRITICAL,
        f"disposition-action:{action.pk}",
    )
    wanted = {"inactive": "which is inactive", "empty": "which has no steps", "missing": "does not exist"}[problem]
    assert "Disposition 'Interested'" in row.message and wanted in row.message
    if problem == "missing":
        assert row.link == f"/admin/workflows_app/disposition/{disposition.pk}/change/"
        action.config = {"workflow_id": workflow_with_steps(organization, "sms").pk}
        action.save()
    else:
        assert row.link == f"/admin/workflows_app/workflow/{workflow.pk}/change/"
        if problem == "inactive":
            workflow.active = True
            workflow.save()
        else:
            workflow_with_steps(organization, "sms").steps.update(workflow=workflow)
    assert [d.pk for d in diagnostics_evaluate().resolved] == [row.pk]


@pytest.mark.django_db
def test_a_lead_without_a_valid_phone_in_an_open_run_with_a_call_ahead_appears_and_resolves_when_fixed(
    organization,
):
    calls = workflow_with_steps(organization, "update_lead", "call", name="Outreach")
    lead = LeadFactory(organization=organization, name="Ann", phone="555-01")  # stored as imported
    WorkflowRunFactory(workflow=calls, lead=lead, status=RunStatus.NEEDS_REVIEW)
    # Not flagged: a valid phone; the call already behind the run; a finished run; email only.
    WorkflowRunFactory(workflow=calls, lead=LeadFactory(organization=organization, phone="+14155550123"))
    WorkflowRunFactory(workflow=calls, lead=LeadFactory(organization=organization, phone=""), current_position=3)
    WorkflowRunFactory(
        workflow=calls, lead=LeadFactory(organization=organization, phone=""), status=RunStatus.CANCELLED
    )
    WorkflowRunFactory(
        workflow=workflow_with_steps(organization, "email"), lead=LeadFactory(organization=organization, phone="")
    )

    (row,) = diagnostics_evaluate().opened

    assert (row.kind, row.subject) == (DiagnosticKind.LEAD_PHONE_INVALID, f"lead:{lead.pk}")
    assert "Lead 'Ann' has phone '555-01', which is not a valid number" in row.message
    assert "'Outreach'" in row.message
    assert row.link == f"/admin/workflows_app/lead/{lead.pk}/change/"

    lead.phone = "+14155550199"
    lead.save()
    assert [d.pk for d in diagnostics_evaluate().resolved] == [row.pk]


@pytest.mark.django_db
def test_an_open_breaker_appears_for_its_organization_and_resolves_when_reset(source, settings):
    name = f"clio:{source.slug}"
    settings.MENDHOOK_BREAKER_OVERRIDES = {name: {"fail_max": 1, "reset_seconds": 3600}}

    def outage() -> None:
        raise ProcessingError("down", code=ErrorCode.CONNECTION)

    try:
        with pytest.raises(ProcessingError):
            breaker_call(name, outage)
        opened = [d for d in diagnostics_evaluate().opened if d.subject == name]
        breaker_reset(name)
        resolved = [d for d in diagnostics_evaluate().resolved if d.subject == name]
    finally:
        breaker_reset(name)

    assert [(d.kind, d.severity, d.organization_id) for d in opened] == [
        (DiagnosticKind.BREAKER_OPEN, DiagnosticSeverity.CRITICAL, source.organization_id)
    ]
    assert "is open" in opened[0].message and "1 failure" in opened[0].message
    assert opened[0].link == f"/admin/ops_app/breaker/?q=clio%3A{source.slug}"
    assert [d.pk for d in resolved] == [opened[0].pk]


# --- Evaluation as a whole ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_detector_that_cannot_run_leaves_its_open_diagnostics_open(source, post_webhook, settings):
    source.enabled = False
    source.save()
    post_webhook(source, matter_payload())
    (row,) = diagnostics_evaluate().opened

    settings.MENDHOOK_GUARDS_REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    blind = diagnostics_evaluate()

    assert blind.resolved == []
    assert any(n.startswith("disabled_source_traffic not checked") for n in blind.notes)
    record = ErrorRecord.objects.get(function="ops_app.diagnostic_detectors.disabled_sources_receiving")
    assert (record.severity, record.action) == ("warning", "diagnose")
    row.refresh_from_db()
    assert row.is_open


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_open_each_diagnostic_once():
    organization = OrganizationFactory()
    source = SourceFactory(organization=organization)
    TaskTemplateFactory(organization=organization, assignee_role="csc")
    now = timezone.now()
    _events(source, [now - timedelta(hours=1)], location="naples")
    _events(source, [now - timedelta(hours=2)], location="tampa")
    barrier = threading.Barrier(2)

    def evaluate():
        barrier.wait()
        try:
            return diagnostics_evaluate(now=now)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: evaluate(), range(2)))

    opened = sorted(d.subject for r in results for d in r.opened if d.kind == DiagnosticKind.ASSIGNEE_RULE_MISSING)
    assert opened == ["csc@naples", "csc@tampa"]  # each by exactly one of the two
    assert sorted(d.subject for d in open_of(DiagnosticKind.ASSIGNEE_RULE_MISSING)) == ["csc@naples", "csc@tampa"]


# --- Where they are shown ---------------------------------------------------------------------------


def _critical_and_warning(organization):
    source = SourceFactory(organization=organization)
    TaskTemplateFactory(organization=organization, assignee_role="csc")
    _events(source, [timezone.now() - timedelta(hours=1)], location="naples")
    lead = LeadFactory(organization=organization, name="Bo", phone="")
    WorkflowRunFactory(workflow=workflow_with_steps(organization, "sms"), lead=lead)


@pytest.mark.django_db
def test_the_command_lists_open_diagnostics_most_severe_first_and_exits_1_on_a_critical_one(organization, capsys):
    _critical_and_warning(organization)

    with pytest.raises(SystemExit) as exit_:
        call_command("diagnose", "--organization", organization.slug)
    out = capsys.readouterr().out

    assert exit_.value.code == 1
    lines = out.splitlines()
    assert lines[0].startswith("[CRITICAL] No assignee rule for a role at a location") and "naples" in lines[0]
    assert lines[1].startswith("    fix: Add an assignee rule for role 'csc' at location 'naples'")
    assert any(line.startswith("[WARNING] Lead without a valid phone") for line in lines)
    assert lines[-1] == "2 open, 1 critical."


@pytest.mark.django_db
def test_the_command_exits_0_without_a_critical_one_and_prints_json_for_one_organization(organization, capsys):
    other = OrganizationFactory()
    _critical_and_warning(other)  # another organization's critical problem
    lead = LeadFactory(organization=organization, phone="")
    WorkflowRunFactory(workflow=workflow_with_steps(organization, "call"), lead=lead)

    call_command("diagnose", "--organization", organization.slug, "--json")  # no SystemExit: 0
    body = json.loads(capsys.readouterr().out)

    assert [(d["kind"], d["severity"], d["organization"]) for d in body["diagnostics"]] == [
        ("lead_phone_invalid", "warning", organization.slug)
    ]
    assert body["diagnostics"][0]["fix"].startswith("Give lead")


@pytest.mark.django_db
def test_the_command_names_an_unknown_organization(organization):
    with pytest.raises(CommandError, match="no organization 'nope'"):
        call_command("diagnose", "--organization", "nope")


@pytest.mark.django_db
def test_the_api_shows_a_key_its_own_organizations_diagnostics_and_staff_all(organization, admin_client):
    _critical_and_warning(organization)
    _critical_and_warning(OrganizationFactory())
    diagnostics_evaluate()
    Diagnostic.objects.create(
        kind=DiagnosticKind.BREAKER_OPEN,
        severity=DiagnosticSeverity.CRITICAL,
        scope="global",
        subject="retell",
        message="Circuit breaker 'retell' is open",
        fix="Check Retell",
        link="/admin/ops_app/breaker/?q=retell",
        first_seen=timezone.now(),
        last_seen=timezone.now(),
    )
    api = api_for(organization)

    mine = api.get("diagnostics").json()
    staff = admin_client.get("/api/v1/diagnostics").json()

    assert [(d["kind"], d["scope"]) for d in mine["diagnostics"]] == [
        ("assignee_rule_missing", f"org:{organization.pk}"),  # the critical one first
        ("lead_phone_invalid", f"org:{organization.pk}"),
    ]
    assert mine["diagnostics"][0]["link"].startswith("/admin/webhooks_app/assigneerule/add/")
    assert staff["count"] == 5 and "global" in {d["scope"] for d in staff["diagnostics"]}

    Diagnostic.objects.filter(kind=DiagnosticKind.LEAD_PHONE_INVALID).update(resolved_at=timezone.now())
    resolved = api.get("diagnostics", state="resolved").json()
    assert [d["kind"] for d in resolved["diagnostics"]] == ["lead_phone_invalid"]
    assert resolved["diagnostics"][0]["resolvedAt"] is not None
    assert api.get("diagnostics", state="all").json()["count"] == 2
    bad = api.get("diagnostics", state="closed")
    assert bad.status_code == 400 and "state" in json.dumps(bad.json())


@pytest.mark.django_db
def test_the_dashboard_shows_open_diagnostics_with_their_fix_link_and_the_breaker_card(ops_group, source, settings):
    _critical_and_warning(source.organization)
    diagnostics_evaluate()
    name = f"clio:{source.slug}"
    settings.MENDHOOK_BREAKER_OVERRIDES = {name: {"fail_max": 1, "reset_seconds": 3600}}

    def outage() -> None:
        raise ProcessingError("down", code=ErrorCode.CONNECTION)

    try:
        with pytest.raises(ProcessingError):
            breaker_call(name, outage)
        page = unescape(login(make_user("ops.dee", group=ops_group)).get("/admin/").content.decode())
    finally:
        breaker_reset(name)

    diagnostics = page[page.index('id="diagnostics"') : page.index('id="breakers"')]
    assert "2 open" in diagnostics
    assert diagnostics.index("No csc is assigned") < diagnostics.index("Lead 'Bo' has no phone")
    rule_link = f'href="/admin/webhooks_app/assigneerule/add/?organization={source.organization_id}&role=csc'
    assert rule_link in diagnostics
    breakers = page[page.index('id="breakers"') :]
    assert 'href="/admin/ops_app/breaker/"' in breakers
    row = breakers[breakers.index(f"<code>{name}</code>") :]
    assert 'mh-breaker-open">open<' in row[:400] and '<td class="mh-num">1</td>' in row[:400]


@pytest.mark.django_db
def test_the_admin_lists_diagnostics_read_only_with_a_state_filter(ops_group, source):
    _critical_and_warning(source.organization)
    diagnostics_evaluate()
    Diagnostic.objects.filter(kind=DiagnosticKind.LEAD_PHONE_INVALID).update(resolved_at=timezone.now())
    ops = login(make_user("ops.eve", group=ops_group))

    open_page = ops.get("/admin/ops_app/diagnostic/?state=open").content.decode()
    resolved_page = ops.get("/admin/ops_app/diagnostic/?state=resolved").content.decode()

    assert "No csc is assigned" in open_page and "has no phone" not in open_page
    assert "has no phone" in resolved_page and "No csc is assigned" not in resolved_page
    assert ops.get("/admin/ops_app/diagnostic/add/").status_code == 403
