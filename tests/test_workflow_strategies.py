"""Failure strategies exactly as seed 004, the transient backoff before them, escalation to
review, and each step action, executed in this process through the execution service against
the fake providers (real HTTP servers)."""

import json
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ops_app.models import ErrorRecord
from tests.support.fake_http import Fault, Recorder
from tests.support.workflows import execute, lead_of, time_passes, workflow_of
from webhooks_app.breakers import breaker_reset
from workflows_app.models import CallLog, RunStatus, StepOutcome, StepStatus, WorkflowRun
from workflows_app.services.runs import run_start
from workflows_app.services.scheduling import retry_at
from workflows_app.services.strategies import business_hours_of

pytestmark = pytest.mark.django_db

CALL = {"action_type": "call", "config": {"agent_id": "agent_1", "from_number": "+14155550100"}}
SMS = {"action_type": "sms", "config": {"body": "Hi {name}, about {case}"}}
QUALIFY = {"action_type": "update_lead", "config": {"status": "qualified"}}


def start(organization, *steps, lead=None, **fields):
    workflow = workflow_of(organization, *steps, **fields)
    return run_start(workflow=workflow, lead=lead or lead_of(organization), started_by="test")


def always_open(organization):
    """Business hours around the clock, so an in-hours retry is due exactly its delay later."""
    organization.business_hours_start, organization.business_hours_end = time(0, 0), time(23, 59, 59)
    organization.business_days = list(range(7))
    organization.save()


def closed_now(organization):
    """Business hours that exclude the present moment (a one-minute window twelve hours away)."""
    local = timezone.now().astimezone(ZoneInfo(organization.timezone))
    opening = (local + timedelta(hours=12)).time().replace(second=0, microsecond=0)
    organization.business_hours_start = opening
    organization.business_hours_end = time(opening.hour, opening.minute, 59)
    organization.business_days = list(range(7))
    organization.save()


def outcomes(run):
    return list(run.executions.order_by("started_at", "attempt").values_list("outcome", "action", "error_code"))


def test_a_three_step_workflow_runs_each_step_and_completes(organization, providers):
    retell, twilio = providers
    lead = lead_of(organization, name="Ada", custom_fields={"case": "the lease"})
    run = start(organization, CALL, SMS, QUALIFY, lead=lead)

    assert [execute(run) for _ in range(3)] == [StepOutcome.SUCCEEDED] * 3

    assert (run.status, run.step_status, run.current_position) == (RunStatus.COMPLETED, StepStatus.COMPLETED, 3)
    assert run.finished_at is not None
    [call] = retell.calls()
    assert call["to_number"] == lead.phone and call["metadata"]["run_id"] == str(run.id)
    log = CallLog.objects.get(provider_call_id=call["call_id"])
    assert (log.workflow_run_id, log.lead_id, log.status) == (run.id, lead.id, "registered")
    [message] = twilio.messages()
    assert message["body"] == "Hi Ada, about the lease"
    lead.refresh_from_db()
    assert lead.status == "qualified"
    provider_ids = list(run.executions.order_by("position").values_list("provider_id", flat=True))
    assert provider_ids[:2] == [call["call_id"], message["sid"]]


def test_transient_failures_are_tried_three_times_with_one_key_then_the_strategy_applies(organization, providers):
    retell, _ = providers
    retell.fail_next(Fault(503), Fault(503), Fault(503))
    run = start(organization, CALL)

    assert [execute(run) for _ in range(3)] == [
        StepOutcome.RETRY_SCHEDULED,
        StepOutcome.RETRY_SCHEDULED,
        StepOutcome.FAILED,
    ]
    assert (run.status, run.step_status, run.failure_code) == (
        RunStatus.FAILED,
        StepStatus.FAILED,
        "ERR_PROVIDER_FAILED",
    )
    assert "503" in run.failure_reason
    assert len(set(retell.keys())) == 1 and len(retell.keys()) == 3  # one try, one key
    assert retell.creations == 0


def test_transient_retries_wait_longer_each_time(organization, providers):
    retell, _ = providers
    retell.fail_next(Fault(503), Fault(503))
    run = start(organization, CALL)
    waits = []
    for _ in range(2):
        execute(run)
        last = run.executions.order_by("-attempt").first()
        waits.append((run.next_action_at - last.finished_at).total_seconds())
    # base 0.2 s doubling, with up to 25% jitter
    assert 0.2 <= waits[0] <= 0.25 and 0.4 <= waits[1] <= 0.5


def test_skip_marks_the_step_skipped_and_moves_on(organization, providers):
    retell, twilio = providers
    retell.fail_next(Fault(400))  # rejected: permanent, no transient tries
    run = start(organization, {**CALL, "failure_strategy": "skip"}, SMS)

    assert execute(run) == StepOutcome.SKIPPED
    assert (run.status, run.step_status, run.current_position) == (RunStatus.ACTIVE, StepStatus.PENDING, 2)
    assert execute(run) == StepOutcome.SUCCEEDED
    assert run.status == RunStatus.COMPLETED
    assert outcomes(run) == [
        (StepOutcome.SKIPPED, "step_skipped_on_error", "ERR_DOWNSTREAM_REJECTED"),
        (StepOutcome.SUCCEEDED, "", ""),
    ]
    assert len(twilio.messages()) == 1


def test_skip_on_the_last_step_completes_the_run_with_the_step_skipped(organization, providers):
    providers[0].fail_next(Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "skip"})
    execute(run)
    assert (run.status, run.step_status) == (RunStatus.COMPLETED, StepStatus.SKIPPED)


def test_continue_marks_the_step_failed_and_moves_on(organization, providers):
    providers[0].fail_next(Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "continue"}, QUALIFY)

    assert execute(run) == StepOutcome.CONTINUED
    assert (run.status, run.current_position) == (RunStatus.ACTIVE, 2)
    execute(run)
    assert run.status == RunStatus.COMPLETED
    assert outcomes(run)[0] == (StepOutcome.CONTINUED, "continued_despite_error", "ERR_DOWNSTREAM_REJECTED")
    record = ErrorRecord.objects.get(workflow_run_id=str(run.id))
    assert (record.error_code, record.severity) == ("ERR_DOWNSTREAM_REJECTED", "warning")


def test_continue_on_the_last_step_completes_the_run_with_the_step_failed(organization, providers):
    providers[0].fail_next(Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "continue"})
    execute(run)
    assert (run.status, run.step_status) == (RunStatus.COMPLETED, StepStatus.FAILED)


def test_stop_fails_the_run_with_the_reason_and_an_error_record(organization, providers):
    providers[0].fail_next(Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "stop"}, QUALIFY)

    assert execute(run) == StepOutcome.FAILED
    assert (run.status, run.step_status, run.current_position) == (RunStatus.FAILED, StepStatus.FAILED, 1)
    assert run.failure_code == "ERR_DOWNSTREAM_REJECTED" and "400" in run.failure_reason
    assert run.next_action_at is None and run.finished_at is not None
    record = ErrorRecord.objects.get(workflow_run_id=str(run.id))
    assert (record.error_code, record.severity, record.lead_id) == (
        "ERR_DOWNSTREAM_REJECTED",
        "error",
        str(run.lead_id),
    )


def test_retry_schedules_the_step_by_business_hours_with_a_new_key_each_time(organization, providers):
    retell, _ = providers
    always_open(organization)
    retell.fail_next(Fault(400), Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "retry", "retry_delay_minutes": 60})

    assert execute(run) == StepOutcome.FAILED
    assert (run.status, run.step_status, run.retry_count) == (RunStatus.ACTIVE, StepStatus.RETRYING, 1)
    assert run.next_action_at == run.updated_at + timedelta(minutes=60)  # inside business hours: in an hour
    assert outcomes(run) == [(StepOutcome.FAILED, "scheduled_retry", "ERR_DOWNSTREAM_REJECTED")]
    assert execute(run, wait_until_due=False) is None  # not due yet: nothing happens

    time_passes(run)
    execute(run)
    assert run.retry_count == 2
    time_passes(run)
    assert execute(run) == StepOutcome.SUCCEEDED
    assert run.status == RunStatus.COMPLETED
    assert len(set(retell.keys())) == 3  # each retry of the strategy is a new try with its own key
    assert retell.creations == 1


def test_a_retry_failing_after_hours_waits_for_the_next_business_morning(organization, providers):
    closed_now(organization)
    providers[0].fail_next(Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "retry"})
    execute(run)
    local = run.next_action_at.astimezone(ZoneInfo(organization.timezone))
    assert local.time() == organization.business_hours_start
    assert timedelta(hours=11) < run.next_action_at - run.updated_at < timedelta(hours=13)


def test_a_step_failing_three_times_goes_to_review_with_an_error_record(organization, providers):
    providers[0].fail_next(Fault(400), Fault(400), Fault(400), Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "retry", "max_retries": 3})

    for _ in range(3):
        time_passes(run)
        execute(run)
    assert (run.status, run.step_status, run.retry_count) == (RunStatus.NEEDS_REVIEW, StepStatus.FAILED, 2)
    assert run.failure_code == "ERR_DOWNSTREAM_REJECTED" and run.next_action_at is None
    assert [a for _, a, _ in outcomes(run)] == ["scheduled_retry", "scheduled_retry", "escalated_to_review"]
    escalation = ErrorRecord.objects.get(workflow_run_id=str(run.id), action="escalated_to_review")
    assert (escalation.error_code, escalation.severity) == ("ERR_DOWNSTREAM_REJECTED", "error")


def test_retries_spent_before_the_third_failure_end_the_run_as_stop(organization, providers):
    providers[0].fail_next(Fault(400), Fault(400))
    run = start(organization, {**CALL, "failure_strategy": "retry", "max_retries": 1})

    execute(run)
    time_passes(run)
    execute(run)
    assert (run.status, run.retry_count) == (RunStatus.FAILED, 1)
    assert [a for _, a, _ in outcomes(run)] == ["scheduled_retry", "run_stopped"]


def test_a_rate_limited_retry_waits_for_the_reset(organization, providers):
    retell, _ = providers
    retell.fail_next(Fault(429, retry_after="7200"))
    run = start(organization, {**CALL, "failure_strategy": "retry"})
    # The transient tries come first; make them one so the strategy decides on the 429.
    WorkflowRun.objects.filter(id=run.id).update(transient_attempts=2)
    execute(run)
    failed_at = run.updated_at
    expected = retry_at(
        now=failed_at, hours=business_hours_of(organization), rate_limit_reset=failed_at + timedelta(seconds=7200)
    )
    assert run.next_action_at == expected
    assert run.next_action_at >= failed_at + timedelta(seconds=7200)
    assert run.failure_code == "ERR_RATE_LIMITED"


def test_a_lead_whose_phone_became_invalid_fails_the_call_permanently(organization, providers):
    lead = lead_of(organization)
    run = start(organization, CALL, lead=lead)
    lead.__class__.objects.filter(id=lead.id).update(phone="+1 555")
    assert execute(run) == StepOutcome.FAILED
    assert (run.status, run.failure_code) == (RunStatus.FAILED, "ERR_INVALID_PHONE")
    assert providers[0].requests == []


def test_an_email_step_sends_through_the_email_backend(organization, providers):
    lead = lead_of(organization, name="Grace", email="grace@example.com")
    run = start(
        organization, {"action_type": "email", "config": {"subject": "Hi {name}", "body": "Dear {name}"}}, lead=lead
    )
    assert execute(run) == StepOutcome.SUCCEEDED
    [sent] = mail.outbox
    assert (sent.subject, sent.body, sent.to) == ("Hi Grace", "Dear Grace", ["grace@example.com"])
    key = run.executions.get().idempotency_key
    assert sent.extra_headers["X-Idempotency-Key"] == key


def test_a_webhook_step_posts_a_standard_webhooks_signed_request(organization, providers):
    receiver = Recorder().start()
    try:
        workflow = workflow_of(organization, {"action_type": "webhook", "config": {"url": f"{receiver.url}/hook"}})
        run = run_start(workflow=workflow, lead=lead_of(organization), started_by="test")
        assert execute(run) == StepOutcome.SUCCEEDED
        [request] = receiver.requests
        secret = workflow.steps.get().signing_secret
        payload = Webhook(secret).verify(request["body"], request["headers"])
        assert payload["data"]["run_id"] == str(run.id)
        key = run.executions.get().idempotency_key
        assert request["headers"]["webhook-id"] == key == request["headers"]["idempotency-key"]
        assert json.loads(request["body"])["type"] == "workflow.step"
    finally:
        receiver.stop()


def test_a_start_workflow_step_starts_the_child_and_an_open_one_counts_as_done(organization, providers):
    child_workflow = workflow_of(organization, QUALIFY)
    lead = lead_of(organization)
    step = {"action_type": "start_workflow", "config": {"workflow_id": child_workflow.id}}
    run = start(organization, step, lead=lead)

    assert execute(run) == StepOutcome.SUCCEEDED
    child = WorkflowRun.objects.get(workflow=child_workflow, lead=lead)
    assert (child.parent_run_id, child.started_by, run.status) == (run.id, f"workflow:{run.id}", RunStatus.COMPLETED)
    assert run.executions.get().provider_id == str(child.id)

    again = start(organization, step, lead=lead)
    assert execute(again) == StepOutcome.SUCCEEDED  # the child is still open: done, no second one
    assert WorkflowRun.objects.filter(workflow=child_workflow, lead=lead).count() == 1


def test_a_start_workflow_step_for_a_missing_workflow_fails_permanently(organization, providers):
    run = start(organization, {"action_type": "start_workflow", "config": {"workflow_id": 999999}})
    assert execute(run) == StepOutcome.FAILED
    assert (run.status, run.failure_code) == (RunStatus.FAILED, "ERR_WORKFLOW_START_REFUSED")
    assert run.executions.count() == 1  # permanent: no transient tries


def test_a_wait_step_makes_the_next_step_due_later(organization, providers):
    run = start(organization, {"action_type": "wait", "config": {"minutes": 90}}, QUALIFY)
    before = timezone.now()
    assert execute(run) == StepOutcome.SUCCEEDED
    assert (run.status, run.current_position, run.step_status) == (RunStatus.ACTIVE, 2, StepStatus.PENDING)
    assert before + timedelta(minutes=90) <= run.next_action_at <= timezone.now() + timedelta(minutes=90)


def test_an_open_breaker_defers_the_step_without_using_a_try(organization, providers, settings):
    # Retell's breaker opens on the first 503 (fail_max 1); the next executions are held back by
    # it, so the provider is not asked and the step's three transient tries are not spent.
    settings.MENDHOOK_BREAKER_OVERRIDES = {"retell": {"fail_max": 1, "reset_seconds": 30}}
    retell, _ = providers
    retell.fail_next(Fault(503))
    run = start(organization, CALL)
    try:
        assert execute(run) == StepOutcome.RETRY_SCHEDULED
        for _ in range(4):  # more deferrals than the step has tries
            time_passes(run)
            assert execute(run) == StepOutcome.DEFERRED
        assert run.transient_attempts == 1 and run.status == RunStatus.ACTIVE
        assert run.failure_code == "ERR_CIRCUIT_OPEN"
        assert 20 < (run.next_action_at - timezone.now()).total_seconds() <= 30  # at the breaker's reset
        assert len(retell.keys()) == 1  # only the first try reached the provider
        breaker_reset("retell")  # as a person would, from the admin
        time_passes(run)
        assert execute(run) == StepOutcome.SUCCEEDED
        assert len(set(retell.keys())) == 1  # the same try, the same idempotency key
    finally:
        breaker_reset("retell")
