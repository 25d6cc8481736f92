"""The admin of workflows and calls: the workflow editor (per-type config errors on the field, a
webhook step's secret shown once), starting a run with its pre-start problems shown, the run acts
through the act flow (audited once, refusals change nothing, who may), calls with their failed
actions, and the dashboard's workflow cards."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from ops_app.models import AuditEntry
from tests.factories import (
    ActionExecutionFactory,
    CallLogFactory,
    LeadFactory,
    StepExecutionFactory,
    WorkflowRunFactory,
    workflow_with_steps,
)
from tests.support.admin import login, make_user
from workflows_app.models import RunStatus, StepOutcome, StepStatus, Workflow, WorkflowRun, WorkflowStep

pytestmark = pytest.mark.django_db

RUNS = "/admin/workflows_app/workflowrun/"
CALLS = "/admin/workflows_app/calllog/"


def run_act_url(run: WorkflowRun, act: str) -> str:
    return reverse("admin:workflows_app_workflowrun_act", args=[run.pk, act])


def run_url(run: WorkflowRun) -> str:
    return reverse("admin:workflows_app_workflowrun_change", args=[run.pk])


def listed_run_ids(response) -> set[str]:
    return set(re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', response.content.decode()))


@pytest.fixture
def admin_client(db, client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


# --- Workflow editor -----------------------------------------------------------------------------


def _workflow_form(organization, steps: list[dict[str, str]]) -> dict[str, str]:
    data = {
        "organization": str(organization.pk),
        "name": "Outreach",
        "description": "",
        "active": "on",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, step in enumerate(steps):
        defaults = {"failure_strategy": "stop", "max_retries": "3", "retry_delay_minutes": "60", "name": ""}
        for key, value in {**defaults, **step}.items():
            data[f"steps-{index}-{key}"] = value
    return data


def test_a_step_config_that_does_not_fit_its_type_is_an_error_on_the_config_field(admin_client, organization):
    data = _workflow_form(organization, [{"position": "1", "action_type": "call", "config": '{"agent": "a-1"}'}])

    response = admin_client.post("/admin/workflows_app/workflow/add/", data)

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert "config" in errors[0] and "agent_id" in errors[0]["config"][0]
    assert not Workflow.objects.exists()


def test_a_webhook_steps_signing_secret_is_shown_once_when_the_step_is_made(admin_client, organization):
    data = _workflow_form(
        organization,
        [
            {"position": "1", "action_type": "update_lead", "config": '{"status": "contacted"}'},
            {"position": "2", "action_type": "webhook", "config": '{"url": "https://crm.example.com/hook"}'},
        ],
    )

    created = admin_client.post("/admin/workflows_app/workflow/add/", data)

    step = WorkflowStep.objects.get(action_type="webhook")
    secret = step.signing_secret
    assert secret and secret in created.content.decode()
    assert "no-store" in created["Cache-Control"]
    assert WorkflowStep.objects.get(action_type="update_lead").signing_secret == ""
    # Never again: not on the workflow's page, not on a later save.
    workflow = step.workflow
    page = admin_client.get(reverse("admin:workflows_app_workflow_change", args=[workflow.pk]))
    assert secret not in page.content.decode()
    resave = {**_workflow_form(organization, []), "steps-TOTAL_FORMS": "2", "steps-INITIAL_FORMS": "2"}
    for index, s in enumerate(workflow.steps.order_by("position")):
        resave.update(
            {
                f"steps-{index}-id": str(s.pk),
                f"steps-{index}-workflow": str(workflow.pk),
                f"steps-{index}-position": str(s.position),
                f"steps-{index}-name": "",
                f"steps-{index}-action_type": s.action_type,
                f"steps-{index}-config": json.dumps(s.config),
                f"steps-{index}-failure_strategy": "stop",
                f"steps-{index}-max_retries": "3",
                f"steps-{index}-retry_delay_minutes": "60",
            }
        )
    again = admin_client.post(reverse("admin:workflows_app_workflow_change", args=[workflow.pk]), resave)
    assert again.status_code == 302
    assert WorkflowStep.objects.get(pk=step.pk).signing_secret == secret


# --- Starting a run ------------------------------------------------------------------------------


def test_starting_a_run_from_the_admin_shows_the_pre_start_problems_and_stores_nothing(ops, organization):
    workflow = workflow_with_steps(organization, "sms")
    lead = LeadFactory(organization=organization, phone="12")

    response = ops.post(f"{RUNS}add/", {"lead": lead.pk, "workflow": workflow.pk})

    assert response.status_code == 200
    page = response.content.decode()
    assert "&#x27;12&#x27; is not" in page and "calls or texts" in page
    assert not WorkflowRun.objects.exists()


def test_starting_a_run_from_the_admin_opens_its_page(ops, organization):
    workflow = workflow_with_steps(organization, "sms")
    lead = LeadFactory(organization=organization)

    response = ops.post(f"{RUNS}add/", {"lead": lead.pk, "workflow": workflow.pk})

    run = WorkflowRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_url(run)
    assert run.started_by == "admin:ops.anna"
    again = ops.post(f"{RUNS}add/", {"lead": lead.pk, "workflow": workflow.pk}, follow=True)
    assert "Not started" in again.content.decode()
    assert WorkflowRun.objects.count() == 1


def test_a_viewer_of_runs_may_not_start_one(organization):
    viewer = login(make_user("runs.viewer", perms=("workflows_app.view_workflowrun",)))

    response = viewer.post(f"{RUNS}add/", {"lead": LeadFactory(organization=organization).pk, "workflow": 1})

    assert response.status_code == 403
    assert not WorkflowRun.objects.exists()


# --- Runs: list, page, acts ------------------------------------------------------------------------


def test_the_runs_list_filters_by_needs_review_status_step_status_and_workflow(ops, organization):
    workflow = workflow_with_steps(organization)
    review = WorkflowRunFactory(workflow=workflow, status=RunStatus.NEEDS_REVIEW, step_status=StepStatus.FAILED)
    retrying = WorkflowRunFactory(workflow=workflow, step_status=StepStatus.RETRYING)
    other = WorkflowRunFactory(workflow=workflow_with_steps(organization))

    assert listed_run_ids(ops.get(RUNS, {"needs_review": "yes"})) == {str(review.id)}
    assert listed_run_ids(ops.get(RUNS, {"step_status__exact": "retrying"})) == {str(retrying.id)}
    assert listed_run_ids(ops.get(RUNS, {"workflow__id__exact": other.workflow_id})) == {str(other.id)}
    assert listed_run_ids(ops.get(RUNS, {"status__exact": "active"})) == {str(retrying.id), str(other.id)}


def test_a_runs_page_shows_its_step_executions_and_the_acts_it_allows(ops, organization):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization, "call", "sms"),
        status=RunStatus.NEEDS_REVIEW,
        step_status=StepStatus.FAILED,
        failure_reason="Retell answered 503 three times",
    )
    StepExecutionFactory(run=run, action_type="call", outcome=StepOutcome.FAILED, error_code="ERR_CLIO_API_FAILED")

    page = ops.get(run_url(run)).content.decode()

    assert "Retell answered 503 three times" in page
    assert "ERR_CLIO_API_FAILED" in page
    for act in ("retry_run_step", "skip_run_step", "reset_run_to_step", "cancel_run"):
        assert f'id="act-{act}"' in page
    assert 'name="position"' in page


def test_retry_from_the_runs_page_confirms_then_runs_once_and_audits(ops, organization):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization), status=RunStatus.NEEDS_REVIEW, step_status=StepStatus.FAILED
    )

    confirmation = ops.post(run_act_url(run, "retry_run_step"))
    done = ops.post(run_act_url(run, "retry_run_step"), {"confirm": "yes", "note": "provider back"})

    assert confirmation.status_code == 200 and "Yes, retry 1 run" in confirmation.content.decode()
    assert done.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.step_status) == ("active", "pending")
    (entry,) = AuditEntry.objects.for_target(run)
    assert (entry.act, entry.actor_label, entry.via, entry.note) == (
        "retry_run_step",
        "ops.anna",
        "admin",
        "provider back",
    )


def test_reset_needs_a_step_chosen_and_then_moves_the_run_there(ops, organization):
    run = WorkflowRunFactory(
        workflow=workflow_with_steps(organization, "update_lead", "wait", "update_lead"),
        current_position=3,
        status=RunStatus.FAILED,
        step_status=StepStatus.FAILED,
    )

    missing = ops.post(run_act_url(run, "reset_run_to_step"), {"confirm": "yes"})
    done = ops.post(run_act_url(run, "reset_run_to_step"), {"confirm": "yes", "position": "2"})

    assert missing.status_code == 200 and "Choose the step" in missing.content.decode()
    assert done.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.current_position) == ("active", 2)
    assert [e.act for e in AuditEntry.objects.for_target(run)] == ["reset_run_to_step"]


def test_skip_without_a_note_changes_nothing(ops, organization):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization, "update_lead", "wait"))

    response = ops.post(run_act_url(run, "skip_run_step"), {"confirm": "yes", "note": " "})

    assert response.status_code == 200 and "A note is required" in response.content.decode()
    run.refresh_from_db()
    assert run.current_position == 1
    assert not AuditEntry.objects.exists()


def test_an_act_refused_by_the_runs_state_changes_nothing_and_says_why(ops, organization):
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization), step_status=StepStatus.EXECUTING)

    response = ops.post(run_act_url(run, "cancel_run"), {"confirm": "yes"}, follow=True)

    assert "executing right now" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.ACTIVE
    assert not AuditEntry.objects.exists()


def test_bulk_cancel_confirms_each_run_and_audits_each_once(ops, organization):
    workflow = workflow_with_steps(organization)
    runs = [WorkflowRunFactory(workflow=workflow) for _ in range(2)]
    done = WorkflowRunFactory(workflow=workflow, status=RunStatus.COMPLETED, step_status="completed")
    selected = [str(r.pk) for r in (*runs, done)]

    confirmation = ops.post(RUNS, {"action": "cancel_run", "_selected_action": selected})
    ops.post(RUNS, {"action": "cancel_run", "_selected_action": selected, "confirm": "yes"})

    assert "completed: nothing to cancel" in confirmation.content.decode()
    assert sorted(WorkflowRun.objects.values_list("status", flat=True)) == ["cancelled", "cancelled", "completed"]
    assert AuditEntry.objects.filter(act="cancel_run").count() == 2


def test_a_viewer_sees_runs_but_may_not_act_on_them(organization):
    viewer = login(make_user("runs.viewer", perms=("workflows_app.view_workflowrun",)))
    run = WorkflowRunFactory(workflow=workflow_with_steps(organization), status=RunStatus.FAILED, step_status="failed")

    page = viewer.get(run_url(run))
    refused = viewer.post(run_act_url(run, "retry_run_step"), {"confirm": "yes"})
    bulk = viewer.post(RUNS, {"action": "retry_run_step", "_selected_action": [str(run.pk)], "confirm": "yes"})

    assert page.status_code == 200 and 'id="act-retry_run_step"' not in page.content.decode()
    assert (refused.status_code, bulk.status_code) == (403, 403)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert not AuditEntry.objects.exists()


# --- Calls ---------------------------------------------------------------------------------------


def test_a_calls_page_shows_the_fallback_and_its_failed_actions_and_plans_their_retry(ops, organization):
    call = CallLogFactory(
        organization=organization,
        ai_analysis_failed=True,
        ai_analysis_error="analysis timed out after 10 s",
        disposition="Connected - Manual Review Needed",
        confidence=0.3,
    )
    ActionExecutionFactory(call=call, action_type="start_workflow", status="failed", success=False, error="no wf 99")
    ActionExecutionFactory(call=call, action_type="notify")

    page = ops.get(reverse("admin:workflows_app_calllog_change", args=[call.pk])).content.decode()
    confirmation = ops.post(reverse("admin:workflows_app_calllog_act", args=[call.pk, "retry_call_actions"]))

    assert "Fallback disposition: analysis failed" in page and "analysis timed out after 10 s" in page
    assert "no wf 99" in page and "1 failed action run again" in page
    assert "Retries Start workflow" in confirmation.content.decode()


def test_the_calls_list_filters_by_failed_actions_and_fallback(ops, organization):
    failing = CallLogFactory(organization=organization)
    ActionExecutionFactory(call=failing, status="failed", success=False)
    fallback = CallLogFactory(organization=organization, ai_analysis_failed=True)

    with_failed = ops.get(CALLS, {"failed_actions": "yes"}).content.decode()
    flagged = ops.get(CALLS, {"ai_analysis_failed__exact": "1"}).content.decode()

    assert failing.provider_call_id in with_failed and fallback.provider_call_id not in with_failed
    assert fallback.provider_call_id in flagged and failing.provider_call_id not in flagged


def test_retrying_a_calls_actions_needs_the_permission(organization):
    viewer = login(make_user("calls.viewer", perms=("workflows_app.view_calllog",)))
    call = CallLogFactory(organization=organization)
    ActionExecutionFactory(call=call, status="failed", success=False)

    response = viewer.post(reverse("admin:workflows_app_calllog_act", args=[call.pk, "retry_call_actions"]))

    assert response.status_code == 403


# --- Dashboard -----------------------------------------------------------------------------------


def test_the_dashboard_counts_runs_in_review_failed_runs_and_failed_actions_with_links(ops, organization):
    workflow = workflow_with_steps(organization)
    WorkflowRunFactory(workflow=workflow, status=RunStatus.NEEDS_REVIEW, step_status="failed")
    WorkflowRunFactory(workflow=workflow, status=RunStatus.FAILED, step_status="failed")
    old = WorkflowRunFactory(workflow=workflow, status=RunStatus.FAILED, step_status="failed")
    WorkflowRun.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=3))
    call = CallLogFactory(organization=organization)
    ActionExecutionFactory(call=call, status="failed", success=False)
    ActionExecutionFactory(call=call, status="failed", success=False)

    cards = {c.key: c for c in ops.get("/admin/").context["cards"]}

    assert cards["runs_needs_review"].count == 1
    assert cards["runs_failed"].count == 1
    assert cards["failed_actions"].count == 2
    assert cards["runs_needs_review"].url == f"{RUNS}?needs_review=yes"
    assert listed_run_ids(ops.get(cards["runs_failed"].url)) == {
        str(r.pk) for r in WorkflowRun.objects.filter(status="failed").exclude(pk=old.pk)
    }
