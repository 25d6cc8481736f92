"""Disposition actions after a call, through the real intake and a real worker: each action runs
on its own and is tracked (seed scenario 4), none runs twice, failed ones retry alone."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import (
    ActionExecutionFactory,
    CallLogFactory,
    DispositionActionFactory,
    DispositionFactory,
    EventItemFactory,
    WebhookEventFactory,
)
from tests.support.calls import accepted, deliver, lead_create, retell_source, workflow_create
from tests.support.fake_http import Fault
from tests.support.signing import retell_payload
from tests.support.waiting import settle, wait_for
from webhooks_app.models import EventAction, EventStatus, ItemStatus, WebhookEvent
from workflows_app.models import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    DispositionActionType,
    LeadStatus,
    RunStatus,
    WorkflowRun,
)
from workflows_app.services.dispositions import CallActRefused, call_retry_failed_actions, call_route
from workflows_app.services.runs import run_start

T = DispositionActionType


@pytest.fixture
def retell(organization):
    return retell_source(organization)


@pytest.fixture
def interested(organization, fake_ai):
    fake_ai.answer_with("Interested")
    return DispositionFactory(organization=organization, name="Interested")


def action(disposition, position, action_type, **config):
    return DispositionActionFactory(disposition=disposition, position=position, action_type=action_type, config=config)


def executions(call):
    return {e.action_type: e for e in ActionExecution.objects.filter(call=call)}


def notifications(alert_receiver):
    return [json.loads(b)["text"] for b in alert_receiver.bodies("/slack")]


@pytest.mark.integration
def test_seed_scenario_4_an_invalid_workflow_id_fails_and_is_tracked_while_the_other_actions_run(
    worker, client, retell, interested, fake_twilio, alert_receiver
):
    lead = lead_create(retell.organization)
    action(interested, 1, T.START_WORKFLOW, workflow_id=999999)
    action(interested, 2, T.SEND_SMS, body="Hi {name}, here is the pricing.")
    action(interested, 3, T.SCHEDULE_CALLBACK, delay_minutes=60)
    action(interested, 4, T.NOTIFY, message="Hot lead")

    event = settle(accepted(deliver(client, retell, retell_payload("call_s4"))))

    call = CallLog.objects.get()
    ran = executions(call)
    assert (event.status, event.success, event.action) == (
        EventStatus.PARTIAL_FAILURE,
        False,
        EventAction.PARTIAL_FAILURE,
    )
    assert (event.tasks_created, event.tasks_failed) == (3, 1)
    assert event.failure_details == [
        {
            "task_title": "Start workflow (Interested)",
            "task_number": 1,
            "error": "workflow 999999 does not exist in this organization",
            "error_code": "ERR_VALIDATION",
        }
    ]
    failed = ran[T.START_WORKFLOW]
    assert (failed.status, failed.success, failed.error_code, failed.attempts) == (
        ActionExecutionStatus.FAILED,
        False,
        "ERR_VALIDATION",
        1,
    )
    assert failed.executed_at is not None and failed.execution_time_ms is not None
    assert {t: e.status for t, e in ran.items() if t != T.START_WORKFLOW} == {
        T.SEND_SMS: ActionExecutionStatus.SUCCEEDED,
        T.SCHEDULE_CALLBACK: ActionExecutionStatus.SUCCEEDED,
        T.NOTIFY: ActionExecutionStatus.SUCCEEDED,
    }
    assert all(e.lead_id == lead.id and e.success for t, e in ran.items() if t != T.START_WORKFLOW)
    assert [(m["to"], m["body"]) for m in fake_twilio.messages()] == [
        ("+14155552671", "Hi Dana Lee, here is the pricing.")
    ]
    assert fake_twilio.requests[0]["headers"]["idempotency-key"] == ran[T.SEND_SMS].idempotency_key
    lead.refresh_from_db()
    assert (lead.status, lead.callback_at) == (LeadStatus.CALLBACK, call.ended_at + timedelta(minutes=60))
    assert notifications(alert_receiver) == [f"Hot lead (call {call.id}, Dana Lee, disposition 'Interested')"]
    assert not WorkflowRun.objects.exists()


@pytest.mark.integration
def test_the_fallback_disposition_runs_its_own_actions_when_the_model_fails(worker, client, retell, fake_ai):
    lead = lead_create(retell.organization)
    manual = DispositionFactory(organization=retell.organization, name="Connected - Manual Review Needed")
    action(manual, 1, T.UPDATE_LEAD_STATUS, status="qualified")
    fake_ai.fail_next(Fault(500))

    event = settle(accepted(deliver(client, retell, retell_payload("call_f1"))))

    lead.refresh_from_db()
    assert event.status == EventStatus.SUCCEEDED and event.action == EventAction.CREATED_TASKS
    assert CallLog.objects.get().ai_analysis_failed is True
    assert lead.status == LeadStatus.QUALIFIED


@pytest.mark.integration
def test_start_workflow_starts_a_run_and_an_open_run_counts_as_done(worker, client, retell, interested):
    lead = lead_create(retell.organization)
    nurture = workflow_create(retell.organization)
    action(interested, 1, T.START_WORKFLOW, workflow_id=nurture.id)

    settle(accepted(deliver(client, retell, retell_payload("call_w1"))))
    second = settle(accepted(deliver(client, retell, retell_payload("call_w2"))))

    run = WorkflowRun.objects.get()
    first_exec, second_exec = ActionExecution.objects.order_by("id")
    assert (run.workflow, run.lead, run.status) == (nurture, lead, RunStatus.ACTIVE)
    assert first_exec.result == f"run {run.id} started"
    assert (second.status, second_exec.status, second_exec.result) == (
        EventStatus.SUCCEEDED,
        ActionExecutionStatus.SUCCEEDED,
        f"run {run.id} already open",
    )


@pytest.mark.integration
def test_stop_workflow_cancels_the_leads_open_runs(worker, client, retell, interested):
    lead = lead_create(retell.organization)
    other_lead = lead_create(retell.organization, name="Other", phone="+14155550199")
    nurture, drip = workflow_create(retell.organization), workflow_create(retell.organization, name="Drip")
    mine = [run_start(workflow=w, lead=lead, started_by="test") for w in (nurture, drip)]
    theirs = run_start(workflow=nurture, lead=other_lead, started_by="test")
    action(interested, 1, T.STOP_WORKFLOW, workflow_id="all")

    event = settle(accepted(deliver(client, retell, retell_payload("call_x1"))))

    assert event.status == EventStatus.SUCCEEDED
    assert [WorkflowRun.objects.get(id=r.id).status for r in mine] == [RunStatus.CANCELLED] * 2
    assert WorkflowRun.objects.get(id=theirs.id).status == RunStatus.ACTIVE
    assert ActionExecution.objects.get().result == "cancelled 2 run(s)"


@pytest.mark.integration
def test_a_redelivered_or_later_call_webhook_never_runs_an_action_twice(
    worker, client, retell, interested, fake_twilio, fake_ai
):
    lead_create(retell.organization)
    action(interested, 1, T.SEND_SMS, body="Thanks for your time")
    action(interested, 2, T.UPDATE_LEAD_STATUS, status="contacted")

    first = settle(accepted(deliver(client, retell, retell_payload("call_r1"))))
    duplicate = deliver(client, retell, retell_payload("call_r1"))
    analyzed = settle(accepted(deliver(client, retell, retell_payload("call_r1", event="call_analyzed"))))

    assert (first.status, first.tasks_created) == (EventStatus.SUCCEEDED, 2)
    assert (duplicate.status_code, duplicate.json()["id"]) == (200, str(first.id))
    assert (analyzed.status, analyzed.action, analyzed.items.count()) == (EventStatus.SUCCEEDED, EventAction.IGNORED, 0)
    assert len(fake_twilio.requests) == 1
    assert [e.attempts for e in ActionExecution.objects.all()] == [1, 1]
    assert len(fake_ai.completions()) == 1


@pytest.mark.integration
def test_a_transient_action_failure_is_retried_by_the_event_without_rerunning_the_others(
    worker, client, retell, interested, fake_twilio, alert_receiver
):
    lead_create(retell.organization)
    action(interested, 1, T.NOTIFY, message="Call done")
    action(interested, 2, T.SEND_SMS, body="Thanks")
    fake_twilio.fail_next(Fault(503))

    event_id = accepted(deliver(client, retell, retell_payload("call_t1")))
    event = settle(event_id, statuses={EventStatus.SUCCEEDED, EventStatus.PARTIAL_FAILURE, EventStatus.DEAD_LETTER})

    ran = executions(CallLog.objects.get())
    assert (event.status, event.attempts) == (EventStatus.SUCCEEDED, 2)
    assert (ran[T.SEND_SMS].attempts, ran[T.SEND_SMS].status) == (2, ActionExecutionStatus.SUCCEEDED)
    assert ran[T.NOTIFY].attempts == 1
    assert len(notifications(alert_receiver)) == 1
    assert len(fake_twilio.requests) == 2 and len(fake_twilio.messages()) == 1


@pytest.mark.integration
def test_retrying_a_calls_failed_actions_runs_only_those(
    worker, client, retell, interested, fake_twilio, alert_receiver
):
    lead_create(retell.organization)
    action(interested, 1, T.NOTIFY, message="Call done")
    action(interested, 2, T.SEND_SMS, body="Thanks")
    fake_twilio.fail_next(Fault(400))  # refused: permanent, waits for a person

    event = settle(accepted(deliver(client, retell, retell_payload("call_y1"))))
    call = CallLog.objects.get()
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert executions(call)[T.SEND_SMS].error_code == "ERR_DOWNSTREAM_REJECTED"

    change = call_retry_failed_actions(call_id=call.id)

    assert (change.event_id, change.status_before) == (event.id, EventStatus.PARTIAL_FAILURE)
    event = settle(event.id, statuses={EventStatus.SUCCEEDED, EventStatus.PARTIAL_FAILURE})
    ran = executions(call)
    assert event.status == EventStatus.SUCCEEDED
    assert (ran[T.SEND_SMS].status, ran[T.SEND_SMS].attempts, ran[T.SEND_SMS].error) == (
        ActionExecutionStatus.SUCCEEDED,
        2,
        "",
    )
    assert ran[T.NOTIFY].attempts == 1 and len(notifications(alert_receiver)) == 1
    assert list(event.items.values_list("status", flat=True)) == [ItemStatus.SUCCEEDED] * 2
    with pytest.raises(CallActRefused, match="no failed actions"):
        call_retry_failed_actions(call_id=call.id)


@pytest.mark.integration
def test_an_action_without_a_lead_fails_alone(worker, client, retell, interested, alert_receiver):
    # Nobody has the called number: the lead actions cannot run, the notification still does.
    action(interested, 1, T.UPDATE_LEAD_STATUS, status="contacted")
    action(interested, 2, T.NOTIFY, message="Unknown caller")

    event = settle(accepted(deliver(client, retell, retell_payload("call_n1"))))

    ran = executions(CallLog.objects.get())
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert (ran[T.UPDATE_LEAD_STATUS].status, ran[T.UPDATE_LEAD_STATUS].error) == (
        ActionExecutionStatus.FAILED,
        "the call has no lead to act on",
    )
    assert ran[T.NOTIFY].status == ActionExecutionStatus.SUCCEEDED
    wait_for(lambda: notifications(alert_receiver), message="the notification")


def test_an_action_config_that_does_not_fit_its_type_is_refused_naming_the_field(db, organization):
    disposition = DispositionFactory(organization=organization)
    bad = DispositionActionFactory.build(
        disposition=disposition, action_type=T.SCHEDULE_CALLBACK, config={"delay_minutes": "soon"}
    )

    with pytest.raises(ValidationError) as refused:
        bad.full_clean()

    assert "schedule_callback config.delay_minutes: 'soon' is not of type 'integer'" in str(refused.value)


def test_retrying_a_call_with_nothing_failed_is_refused(db, organization):
    call = CallLog.objects.create(organization=organization, provider="retell", provider_call_id="c-none")

    with pytest.raises(CallActRefused):
        call_retry_failed_actions(call_id=call.id)
    assert not WebhookEvent.objects.exists()


def test_an_action_that_ran_before_its_worker_was_lost_is_marked_done_not_run_again(
    db, organization, settings, fake_twilio
):
    # The SMS went out and its execution committed, then the worker died before the item did.
    settings.TWILIO_BASE_URL, settings.TWILIO_ACCOUNT_SID = fake_twilio.url, fake_twilio.account_sid
    settings.TWILIO_AUTH_TOKEN = fake_twilio.auth_token
    settings.TWILIO_FROM_NUMBER = "+14155550100"
    fake_twilio.reset()
    source = retell_source(organization)
    lead = lead_create(organization)
    disposition = DispositionFactory(organization=organization, name="Interested")
    sms = action(disposition, 1, T.SEND_SMS, body="Thanks")
    update = action(disposition, 2, T.UPDATE_LEAD_STATUS, status="qualified")
    call = CallLogFactory(organization=organization, lead=lead, disposition="Interested", routed_at=timezone.now())
    event = WebhookEventFactory(source=source, event_type="call_ended")
    for number, (act, done) in enumerate([(sms, True), (update, False)], start=1):
        key = f"{call.id}:{act.id}"
        ActionExecutionFactory(
            call=call,
            action=act,
            idempotency_key=key,
            status=ActionExecutionStatus.SUCCEEDED if done else ActionExecutionStatus.PENDING,
            success=True if done else None,
            attempts=1 if done else 0,
            result="sms SM1" if done else "",
        )
        EventItemFactory(event=event, number=number, idempotency_key=key, status=ItemStatus.PENDING)

    items = call_route(call=call, event=event)

    assert [(i.status, i.downstream_id) for i in items] == [
        (ItemStatus.SUCCEEDED, "sms SM1"),
        (ItemStatus.SUCCEEDED, "lead status qualified"),
    ]
    assert fake_twilio.requests == []
    assert ActionExecution.objects.get(action=sms).attempts == 1
    lead.refresh_from_db()
    assert lead.status == LeadStatus.QUALIFIED
