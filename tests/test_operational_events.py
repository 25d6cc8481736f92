"""mendhook's own operational events reach customers' endpoints like any subscribed change:
a workflow run that fails, a call whose disposition is set. Each is written with the move that
causes it, once."""

import pytest

from tests.factories import CallLogFactory, DispositionFactory, EndpointFactory
from tests.support.fake_http import Fault
from tests.support.workflows import execute, lead_of, workflow_of
from webhooks_app.models import OutboundMessage, WebhookEvent
from workflows_app.models import RunStatus
from workflows_app.services.calls import call_analyse
from workflows_app.services.runs import run_start

pytestmark = pytest.mark.django_db

CALL = {"action_type": "call", "config": {"agent_id": "agent_1", "from_number": "+14155550100"}}


def test_a_failed_run_notifies_endpoints_subscribed_to_workflow_run_failed_once(organization, providers):
    EndpointFactory(organization=organization, event_types=["workflow_run.failed"])
    EndpointFactory(organization=organization, event_types=["booking.created"])  # not subscribed
    retell, _ = providers
    retell.fail_next(Fault(400))  # refused: permanent, the stop strategy fails the run
    run = run_start(workflow=workflow_of(organization, CALL), lead=lead_of(organization), started_by="test")

    execute(run)

    assert run.status == RunStatus.FAILED
    [message] = OutboundMessage.objects.all()
    assert message.event_type == "workflow_run.failed"
    assert (
        message.payload["data"]["run_id"] == str(run.id)
        and message.payload["data"]["error_code"] == "ERR_DOWNSTREAM_REJECTED"
    )
    assert message.deliveries.count() == 1


def test_a_run_that_completes_notifies_nobody(organization, providers):
    EndpointFactory(organization=organization, event_types=["workflow_run.failed"])
    run = run_start(workflow=workflow_of(organization, CALL), lead=lead_of(organization), started_by="test")

    execute(run)

    assert run.status == RunStatus.COMPLETED
    assert not OutboundMessage.objects.exists()


def test_a_calls_disposition_is_announced_once_even_if_analysed_twice(organization, source):
    EndpointFactory(organization=organization, event_types=["call.disposition_set"])
    DispositionFactory(organization=organization, name="No Answer")
    call = CallLogFactory(organization=organization, transcript="", duration_seconds=12)
    event = WebhookEvent.objects.create(
        organization=organization, source=source, idempotency_key="k", event_type="call_ended", payload={}
    )

    call_analyse(call=call, event=event)
    call.refresh_from_db()
    call.analyzed_at = None  # a second analysis racing the first finds the row analysed
    call_analyse(call=call, event=event)

    [message] = OutboundMessage.objects.all()
    assert message.event_type == "call.disposition_set"
    assert (
        message.payload["data"]["disposition"] == "No Answer" and message.payload["data"]["ai_analysis_failed"] is True
    )
