"""Workflow runs, calls, leads and workflow stats over the API: the start (201/409/400, also
under a concurrent double start), the acts through the audited act flow, filters and tenancy."""

import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.db import connection
from django.utils import timezone

from ops_app.models import AuditEntry
from tests.factories import (
    ActionExecutionFactory,
    CallLogFactory,
    LeadFactory,
    OrganizationFactory,
    StepExecutionFactory,
    WorkflowRunFactory,
    workflow_with_steps,
)
from tests.support.admin import login, make_user
from tests.support.api import Api, api_for
from workflows_app.models import ActionExecutionStatus, Lead, RunStatus, StepOutcome, StepStatus, WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]


# --- Start ---------------------------------------------------------------------------------------


def test_a_start_answers_201_with_the_new_run_due_now(organization, api):
    workflow = workflow_with_steps(organization, "update_lead", "wait")
    lead = LeadFactory(organization=organization)

    response = api.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk})

    assert response.status_code == 201
    body = response.json()
    run = WorkflowRun.objects.get()
    assert body["id"] == str(run.id)
    assert response["Location"] == f"/api/v1/workflow-runs/{run.id}"
    assert (body["status"], body["stepStatus"], body["currentPosition"]) == ("active", "pending", 1)
    assert (body["lead"], body["workflow"]) == (lead.pk, workflow.pk)
    assert run.started_by.startswith("api:api-key:")
    assert run.next_action_at is not None and run.next_action_at <= timezone.now()


def test_a_second_start_answers_409_with_the_open_run_and_creates_nothing(organization, api):
    workflow = workflow_with_steps(organization)
    lead = LeadFactory(organization=organization)
    first = api.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk}).json()

    response = api.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_already_open"
    assert response.json()["run"]["id"] == first["id"]
    assert WorkflowRun.objects.count() == 1


def test_a_start_for_a_lead_whose_phone_does_not_parse_is_400_naming_the_phone(organization, api):
    workflow = workflow_with_steps(organization, "call")
    lead = LeadFactory(organization=organization, phone="555-CALL-NOW")

    response = api.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk})

    assert response.status_code == 400
    (message,) = response.json()["error"]["fields"]["lead"]
    assert "555-CALL-NOW" in message and "calls or texts" in message
    assert WorkflowRun.objects.count() == 0


@pytest.mark.parametrize(
    ("problem", "field", "words"),
    [
        ("inactive", "workflow", "is inactive"),
        ("no_email", "lead", "no email address"),
        ("empty", "workflow", "has no steps"),
    ],
)
def test_a_start_the_pre_start_checks_refuse_is_400_and_stores_nothing(organization, api, problem, field, words):
    if problem == "empty":
        workflow = workflow_with_steps(organization)
        workflow.steps.all().delete()
    else:
        workflow = workflow_with_steps(organization, "email", active=problem != "inactive")
    lead = LeadFactory(organization=organization, email="" if problem == "no_email" else "a@example.com")

    response = api.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk})

    assert response.status_code == 400
    assert any(words in m for m in response.json()["error"]["fields"][field])
    assert WorkflowRun.objects.count() == 0


def test_another_organizations_lead_or_workflow_is_unknown_like_a_missing_one(organization, api):
    other = OrganizationFactory()
    mine_lead, mine_workflow = LeadFactory(organization=organization), workflow_with_steps(organization)
    their_lead, their_workflow = LeadFactory(organization=other), workflow_with_steps(other)

    foreign = api.post("workflow-runs", {"lead": their_lead.pk, "workflow": mine_workflow.pk})
    foreign_workflow = api.post("workflow-runs", {"lead": mine_lead.pk, "workflow": their_workflow.pk})
    missing = api.post("workflow-runs", {"lead": 999999, "workflow": mine_workflow.pk})
    malformed = api.post("workflow-runs", {"lead": "abc"})

    assert [r.status_code for r in (foreign, foreign_workflow, missing, malformed)] == [400, 400, 400, 400]
    assert foreign.json()["error"]["fields"] == missing.json()["error"]["fields"] == {"lead": ["Unknown lead."]}
    assert foreign_workflow.json()["error"]["fields"] == {"workflow": ["Unknown workflow."]}
    assert set(malformed.json()["error"]["fields"]) == {"lead", "workflow"}
    assert WorkflowRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_starts_make_one_run_one_201_and_one_409(organization):
    workflow = workflow_with_steps(organization)
    lead = LeadFactory(organization=organization)
    clients = [api_for(organization), api_for(organization)]
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def start(client: Api) -> None:
        try:
            barrier.wait(timeout=10)
            codes.append(client.post("workflow-runs", {"lead": lead.pk, "workflow": workflow.pk}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(codes) == [201, 409]
    assert WorkflowRun.objects.filter(workflow=workflow, lead=lead).count() == 1


# --- Lists and detail ----------------------------------------------------------------------------


def test_runs_filter_by_status_step_status_workflow_lead_and_needs_review(organization, api):
    workflow, other_workflow = workflow_with_steps(organization), workflow_with_steps(organization)
    review = WorkflowRunFactory(workflow=workflow, status=RunStatus.NEEDS_REVIEW, step_status=StepStatus.FAILED)
    retrying = WorkflowRunFactory(workflow=workflow, step_status=StepStatus.RETRYING)
    elsewhere = WorkflowRunFactory(workflow=other_workflow, status=RunStatus.COMPLETED, step_status="completed")

    def ids(**params: str) -> set[str]:
        response = api.get("workflow-runs", **params)
        assert response.status_code == 200, response.json()
        return {r["id"] for r in response.json()["runs"]}

    assert ids() == {str(review.id), str(retrying.id), str(elsewhere.id)}
    assert ids(status="needs_review") == {str(review.id)}
    assert ids(needs_review="true") == {str(review.id)}
    assert ids(needs_review="false") == {str(retrying.id), str(elsewhere.id)}
    assert ids(step_status="retrying") == {str(retrying.id)}
    assert ids(workflow=str(other_workflow.pk)) == {str(elsewhere.id)}
    assert ids(lead=str(retrying.lead_id)) == {str(retrying.id)}


def test_a_filter_value_that_does_not_fit_is_400_naming_the_parameter(api):
    bad_status = api.get("workflow-runs", status="stuck")
    bad_flag = api.get("call-logs", has_failed_actions="maybe")

    assert bad_status.status_code == 400
    assert list(bad_status.json()["error"]["fields"]) == ["status"]
    assert bad_flag.status_code == 400
    assert list(bad_flag.json()["error"]["fields"]) == ["has_failed_actions"]


def test_a_filter_given_empty_is_400_not_ignored(api):
    for path, name in (("call-logs", "ai_analysis_failed"), ("workflow-runs", "needs_review"), ("leads", "status")):
        response = api.get(path, **{name: ""})
        assert response.status_code == 400, path
        assert list(response.json()["error"]["fields"]) == [name]


def test_runs_page_newest_first_with_a_cursor(organization, api):
    workflow = workflow_with_steps(organization)
    runs = [WorkflowRunFactory(workflow=workflow) for _ in range(3)]
    expected = [str(r.id) for r in sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)]

    first = api.get("workflow-runs", limit=2).json()
    second = api.client.get(first["next"], headers=api.headers).json()

    assert [r["id"] for r in first["runs"]] + [r["id"] for r in second["runs"]] == expected
    assert (first["count"], second["count"], second["next"]) == (2, 1, None)


def test_a_run_detail_lists_its_step_executions_and_another_organizations_run_is_404(organization, api):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization, "call", "sms"))
    StepExecutionFactory(
        run=run, position=1, action_type="call", attempt=1, outcome=StepOutcome.FAILED, error_code="ERR_TIMEOUT"
    )
    StepExecutionFactory(run=run, position=1, action_type="call", attempt=2, outcome=StepOutcome.SUCCEEDED)
    theirs = WorkflowRunFactory(workflow=workflow_with_steps(OrganizationFactory()))

    body = api.get(f"workflow-runs/{run.id}").json()

    assert [(e["attempt"], e["outcome"], e["errorCode"]) for e in body["executions"]] == [
        (1, "failed", "ERR_TIMEOUT"),
        (2, "succeeded", ""),
    ]
    assert api.get(f"workflow-runs/{theirs.id}").status_code == 404
    assert api.get("workflow-runs/not-a-uuid").status_code == 404
    assert api.post(f"workflow-runs/{theirs.id}/cancel").status_code == 404
    assert WorkflowRun.objects.get(id=theirs.id).status == RunStatus.ACTIVE
    assert str(theirs.id) not in {r["id"] for r in api.get("workflow-runs").json()["runs"]}


# --- Acts ----------------------------------------------------------------------------------------


def test_retry_makes_a_run_in_review_active_and_due_now_and_is_audited_once(organization, api):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization),
        status=RunStatus.NEEDS_REVIEW,
        step_status=StepStatus.FAILED,
        retry_count=3,
        next_action_at=None,
    )

    response = api.post(f"workflow-runs/{run.id}/retry", {"note": "provider fixed"})

    assert response.status_code == 200
    body = response.json()
    assert (body["run"]["status"], body["run"]["stepStatus"], body["run"]["retryCount"]) == ("active", "pending", 0)
    (entry,) = AuditEntry.objects.for_target(run)
    assert (entry.act, entry.status_before, entry.status_after, entry.note) == (
        "retry_run_step",
        "needs_review",
        "active",
        "provider fixed",
    )
    assert body["action"]["kind"] == "retry_run_step"


def test_skip_moves_to_the_next_step_and_needs_a_note(organization, api):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization, "update_lead", "wait"), status=RunStatus.FAILED, step_status="failed"
    )

    without_note = api.post(f"workflow-runs/{run.id}/skip")
    skipped = api.post(f"workflow-runs/{run.id}/skip", {"note": "lead asked by email instead"})

    assert without_note.status_code == 400
    assert list(without_note.json()["error"]["fields"]) == ["note"]
    assert skipped.status_code == 200
    assert (skipped.json()["run"]["currentPosition"], skipped.json()["run"]["status"]) == (2, "active")
    assert AuditEntry.objects.for_target(run).count() == 1


def test_reset_takes_the_position_and_an_unknown_one_is_400(organization, api):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization, "update_lead", "wait", "update_lead"),
        current_position=3,
        status=RunStatus.FAILED,
        step_status=StepStatus.FAILED,
    )

    missing = api.post(f"workflow-runs/{run.id}/reset", {})
    unknown = api.post(f"workflow-runs/{run.id}/reset", {"position": 7})
    reset = api.post(f"workflow-runs/{run.id}/reset", {"position": 2})

    assert (missing.status_code, unknown.status_code) == (400, 400)
    assert "no step 7" in unknown.json()["error"]["fields"]["position"][0]
    assert reset.status_code == 200
    run.refresh_from_db()
    assert (run.status, run.current_position, run.step_status) == ("active", 2, "pending")
    assert [e.act for e in AuditEntry.objects.for_target(run)] == ["reset_run_to_step"]


@pytest.mark.parametrize("act", ["retry", "skip", "cancel", "reset"])
def test_an_act_on_a_finished_run_is_409_and_changes_nothing(organization, api, act):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization),
        status=RunStatus.CANCELLED,
        step_status=StepStatus.PENDING,
        finished_at=timezone.now() - timedelta(hours=1),
    )
    before = WorkflowRun.objects.filter(id=run.id).values().get()

    response = api.post(f"workflow-runs/{run.id}/{act}", {"note": "try", "position": 1})

    assert response.status_code == 409
    assert "cancelled" in response.json()["error"]["message"]
    assert WorkflowRun.objects.filter(id=run.id).values().get() == before
    assert AuditEntry.objects.for_target(run).count() == 0


def test_an_act_on_a_step_executing_right_now_is_409(organization, api):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization), step_status=StepStatus.EXECUTING)

    response = api.post(f"workflow-runs/{run.id}/cancel")

    assert response.status_code == 409
    assert "executing" in response.json()["error"]["message"]
    assert WorkflowRun.objects.get(id=run.id).status == RunStatus.ACTIVE


def test_cancel_ends_the_run_with_the_note_as_reason(organization, api):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization))

    response = api.post(f"workflow-runs/{run.id}/cancel", {"note": "duplicate lead"})

    assert response.status_code == 200
    run.refresh_from_db()
    assert (run.status, run.failure_reason) == ("cancelled", "duplicate lead")
    assert run.finished_at is not None


# --- Sessions: the admin's permissions -----------------------------------------------------------


def test_a_staff_session_needs_the_run_permissions_and_ops_staff_have_them(organization, ops):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization), status=RunStatus.FAILED, step_status="failed")
    viewer = login(make_user("runs.viewer", perms=("workflows_app.view_workflowrun",)))

    listed = viewer.get("/api/v1/workflow-runs")
    refused = viewer.post(f"/api/v1/workflow-runs/{run.id}/retry", {}, content_type="application/json")
    done = ops.post(f"/api/v1/workflow-runs/{run.id}/retry", {}, content_type="application/json")

    assert listed.status_code == 200
    assert refused.status_code == 403
    assert done.status_code == 200
    (entry,) = AuditEntry.objects.for_target(run)
    assert entry.actor_label == "ops.anna"


# --- Calls ---------------------------------------------------------------------------------------


def test_calls_filter_by_failed_actions_fallback_and_disposition(organization, api):
    fallback = CallLogFactory(organization=organization, ai_analysis_failed=True, disposition="No Answer")
    with_failure = CallLogFactory(organization=organization, disposition="Interested")
    ActionExecutionFactory(call=with_failure, status=ActionExecutionStatus.FAILED, success=False, error="boom")
    ActionExecutionFactory(call=with_failure)
    CallLogFactory(organization=OrganizationFactory())  # another organization's

    def ids(**params: str) -> list[int]:
        return sorted(c["id"] for c in api.get("call-logs", **params).json()["calls"])

    assert ids() == sorted([fallback.pk, with_failure.pk])
    assert ids(has_failed_actions="true") == [with_failure.pk]
    assert ids(has_failed_actions="false") == [fallback.pk]
    assert ids(ai_analysis_failed="true") == [fallback.pk]
    assert ids(disposition="Interested") == [with_failure.pk]


def test_a_call_detail_carries_its_action_executions(organization, api):
    call = CallLogFactory(organization=organization, ai_analysis_failed=True, ai_analysis_error="timeout")
    ActionExecutionFactory(call=call, action_type="start_workflow", status="failed", success=False, error="no wf")
    ActionExecutionFactory(call=call, action_type="notify", status="succeeded", success=True)

    body = api.get(f"call-logs/{call.pk}").json()

    assert (body["aiAnalysisFailed"], body["aiAnalysisError"], body["failedActions"]) == (True, "timeout", 1)
    assert [(a["actionType"], a["status"]) for a in body["actionExecutions"]] == [
        ("start_workflow", "failed"),
        ("notify", "succeeded"),
    ]
    assert api.get(f"call-logs/{CallLogFactory().pk}").status_code == 404


def test_retrying_the_actions_of_a_call_without_failures_is_409_and_unaudited(organization, api):
    call = CallLogFactory(organization=organization)
    ActionExecutionFactory(call=call)

    response = api.post(f"call-logs/{call.pk}/retry-actions")

    assert response.status_code == 409
    assert response.json()["error"] == {"code": "nothing_to_retry", "message": "the call has no failed actions"}
    assert AuditEntry.objects.for_target(call).count() == 0


# --- Leads and workflows -------------------------------------------------------------------------


def test_a_lead_is_created_with_its_phone_in_e164_and_an_invalid_phone_is_400(organization, api):
    created = api.post("leads", {"name": "Ada", "phone": "+1 (415) 555-2671", "email": "ada@example.com"})
    invalid = api.post("leads", {"name": "Bob", "phone": "12"})

    assert created.status_code == 201
    assert created.json()["phone"] == "+14155552671"
    assert Lead.objects.get(pk=created.json()["id"]).organization == organization
    assert invalid.status_code == 400
    assert "E.164" in invalid.json()["error"]["fields"]["phone"][0]
    assert Lead.objects.count() == 1


def test_leads_and_workflows_are_listed_for_the_keys_organization_only(organization, api):
    mine = LeadFactory(organization=organization)
    LeadFactory(organization=OrganizationFactory())
    workflow = workflow_with_steps(organization, "call", "wait")
    workflow_with_steps(OrganizationFactory())

    leads = api.get("leads").json()["leads"]
    workflows = api.get("workflows").json()["workflows"]

    assert [lead["id"] for lead in leads] == [mine.pk]
    assert [(w["id"], [s["actionType"] for s in w["steps"]]) for w in workflows] == [(workflow.pk, ["call", "wait"])]
    assert api.get(f"workflows/{workflow.pk}").json()["steps"][0]["config"] == {"agent_id": "agent-1"}


# --- Stats ---------------------------------------------------------------------------------------


def test_workflow_stats_count_steps_attempts_and_runs_by_status(organization, api):
    workflow = workflow_with_steps(organization, "call", "sms")
    run = WorkflowRunFactory(workflow=workflow)
    # Call: failed twice, then succeeded (one step, three attempts); SMS: failed once.
    for attempt, outcome in enumerate((StepOutcome.FAILED, StepOutcome.RETRY_SCHEDULED, StepOutcome.SUCCEEDED), 1):
        StepExecutionFactory(run=run, position=1, action_type="call", attempt=attempt, outcome=outcome)
    StepExecutionFactory(run=run, position=2, action_type="sms", attempt=1, outcome=StepOutcome.FAILED)
    WorkflowRunFactory(workflow=workflow, status=RunStatus.NEEDS_REVIEW, step_status="failed")
    other = WorkflowRunFactory(workflow=workflow_with_steps(OrganizationFactory()))
    StepExecutionFactory(run=other, position=1, outcome=StepOutcome.SUCCEEDED)

    body = api.get("workflow-stats", range="24h").json()

    assert body["timeRange"] == "24h"
    assert body["summary"] == {
        "steps": 2,
        "succeeded": 1,
        "failed": 1,
        "attempts": 4,
        "successRate": "50.00%",
        "avgAttempts": "2.00",
    }
    assert body["byStepType"]["call"]["avgAttempts"] == "3.00"
    assert body["byStepType"]["sms"]["successRate"] == "0.00%"
    assert body["runsByStatus"] == {"active": 1, "completed": 0, "failed": 0, "cancelled": 0, "needsReview": 1}
    assert (body["runsTotal"], body["needsReview"]) == (2, 1)
    assert api.get("workflow-stats", range="1y").status_code == 400


def test_an_unknown_run_id_is_404_in_the_api_shape(api):
    response = api.get(f"workflow-runs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Schema ----------------------------------------------------------------------------------------


def test_the_checked_in_schema_documents_every_workflow_endpoint():

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text())
    operations = {
        (method, path): op["operationId"]
        for path, ops in schema["paths"].items()
        if "workflow" in path or "call-logs" in path or "leads" in path
        for method, op in ops.items()
    }

    assert operations == {
        ("get", "/api/v1/leads"): "leads_list",
        ("post", "/api/v1/leads"): "lead_create",
        ("get", "/api/v1/leads/{id}"): "lead_retrieve",
        ("get", "/api/v1/workflows"): "workflows_list",
        ("get", "/api/v1/workflows/{id}"): "workflow_retrieve",
        ("get", "/api/v1/workflow-runs"): "workflow_runs_list",
        ("post", "/api/v1/workflow-runs"): "workflow_run_start",
        ("get", "/api/v1/workflow-runs/{id}"): "workflow_run_retrieve",
        ("post", "/api/v1/workflow-runs/{id}/retry"): "workflow_run_retry",
        ("post", "/api/v1/workflow-runs/{id}/skip"): "workflow_run_skip",
        ("post", "/api/v1/workflow-runs/{id}/cancel"): "workflow_run_cancel",
        ("post", "/api/v1/workflow-runs/{id}/reset"): "workflow_run_reset",
        ("get", "/api/v1/call-logs"): "call_logs_list",
        ("get", "/api/v1/call-logs/{id}"): "call_log_retrieve",
        ("post", "/api/v1/call-logs/{id}/retry-actions"): "call_log_retry_actions",
        ("get", "/api/v1/workflow-stats"): "workflow_stats",
    }
    start = schema["paths"]["/api/v1/workflow-runs"]["post"]["responses"]
    assert {"201", "400", "409"} <= set(start)
    filters = {p["name"] for p in schema["paths"]["/api/v1/workflow-runs"]["get"]["parameters"]}
    assert {"status", "step_status", "workflow", "lead", "needs_review", "limit", "cursor"} <= filters


def test_a_lead_whose_custom_fields_jsonb_cannot_hold_is_400_and_not_stored(organization, api):
    response = api.post("leads", {"name": "Nul", "custom_fields": {"note": "a\u0000b"}})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["custom_fields"]
    assert not Lead.objects.filter(name="Nul").exists()
