"""The demo's fake voice, SMS and analysis providers, called by the real connectors: the
request and response shapes match, a repeated Idempotency-Key gets the first answer, and the
lead's phone scripts the faults."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from tests.factories import LeadFactory, WorkflowStepFactory
from tests.support.worker import clean_redis
from webhooks_app.errors import FailureKind, ProcessingError
from workflows_app.connectors.analysis import AnalysisFailed, analysis_request
from workflows_app.connectors.base import StepContext
from workflows_app.connectors.retell import call_create
from workflows_app.connectors.twilio import sms_post
from workflows_app.models import ActionType

pytestmark = pytest.mark.urls("localdev.sandbox_providers")

DISPOSITIONS = ["Interested", "Not Interested", "Callback Requested", "Voicemail", "Wrong Number"]


@pytest.fixture
def sandbox(live_server: Any, settings: Any) -> Iterator[None]:
    settings.RETELL_BASE_URL = f"{live_server.url}/retell"
    settings.RETELL_API_KEY = "key_test"
    settings.TWILIO_BASE_URL = f"{live_server.url}/twilio"
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = "+14155550101"
    settings.ANALYSIS_BASE_URL = f"{live_server.url}/analysis/v1"
    yield
    clean_redis()  # the sandbox's made-ids and fail counters


def call_context(phone: str, key: str) -> StepContext:
    step = WorkflowStepFactory(action_type=ActionType.CALL)
    lead = LeadFactory(organization=step.workflow.organization, phone=phone)
    return StepContext(
        run_id=uuid.uuid4(),
        organization_id=lead.organization_id,
        workflow_id=step.workflow_id,
        lead=lead,
        step=step,
        idempotency_key=key,
        now=datetime.now(UTC),
    )


def test_the_retell_connector_places_a_call_and_a_repeated_key_gets_the_same_call(
    transactional_db: None, sandbox: None
) -> None:
    key = f"wf:{uuid.uuid4()}:2:1"
    first = call_create(call_context("+14155552671", key))
    again = call_create(call_context("+14155552671", key))
    other = call_create(call_context("+14155552671", f"{key}-next"))

    assert first.provider_id.startswith("call_")
    assert again.provider_id == first.provider_id
    assert other.provider_id not in ("", first.provider_id)


def test_the_twilio_connector_sends_a_text_and_a_repeated_key_gets_the_same_sid(
    transactional_db: None, sandbox: None
) -> None:
    key = f"act:{uuid.uuid4()}"
    sid = sms_post(to="+14155552671", body="Hi Ada", idempotency_key=key)

    assert sid.startswith("SM")
    assert sms_post(to="+14155552671", body="Hi Ada", idempotency_key=key) == sid
    assert sms_post(to="+14155552671", body="Hi Ada", idempotency_key=f"{key}-2") != sid


def test_a_phone_ending_in_7_finds_both_providers_down_and_in_9_only_the_voice_provider(
    transactional_db: None, sandbox: None
) -> None:
    failures: dict[str, FailureKind] = {}
    for label, send in {
        "sms 7": lambda: sms_post(to="+14155552677", body="Hi", idempotency_key=str(uuid.uuid4())),
        "call 7": lambda: call_create(call_context("+14155552677", str(uuid.uuid4()))),
        "call 9": lambda: call_create(call_context("+14155552679", str(uuid.uuid4()))),
    }.items():
        with pytest.raises(ProcessingError) as caught:
            send()
        failures[label] = caught.value.kind
        assert "503" in caught.value.message

    assert failures == {
        "sms 7": FailureKind.TRANSIENT,
        "call 7": FailureKind.TRANSIENT,
        "call 9": FailureKind.TRANSIENT,
    }
    assert sms_post(to="+14155552679", body="Hi", idempotency_key=str(uuid.uuid4())).startswith("SM")


def post_json(client: Client, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    response = client.post(
        path, data=json.dumps(body), content_type="application/json", headers={"Idempotency-Key": key}
    )
    return response.status_code, response.json()


def test_a_phone_ending_in_3_fails_twice_per_key_then_works(db: None) -> None:
    client = Client()
    key = f"flaky-{uuid.uuid4().hex}"  # the fail-twice counter lives in Redis for an hour
    body = {"from_number": "+14155550100", "to_number": "+14155552673", "override_agent_id": "agent_demo"}

    codes = [post_json(client, "/retell/v2/create-phone-call", body, key)[0] for _ in range(3)]
    sms = [
        client.post(
            f"/twilio/2010-04-01/Accounts/AC{'0' * 32}/Messages.json",
            data={"To": "+14155552673", "From": "+14155550101", "Body": "Hi"},
            headers={"Idempotency-Key": f"{key}-sms"},
        ).status_code
        for _ in range(3)
    ]

    assert codes == [500, 500, 201]
    assert sms == [500, 500, 201]
    clean_redis()


def test_requests_without_a_number_get_a_400_naming_it(db: None) -> None:
    client = Client()

    status, body = post_json(client, "/retell/v2/create-phone-call", {"from_number": "+14155550100"}, "k")
    sms = client.post(f"/twilio/2010-04-01/Accounts/AC{'0' * 32}/Messages.json", data={"Body": "Hi"})

    assert (status, body) == (400, {"error_message": "to_number is required"})
    assert sms.status_code == 400
    assert "'To' phone number" in sms.json()["message"]


def test_the_analysis_reads_the_transcript_not_the_prompt_that_lists_every_disposition(
    transactional_db: None, sandbox: None
) -> None:
    def disposition(transcript: str) -> str:
        return analysis_request(transcript=transcript, duration_seconds=40, dispositions=DISPOSITIONS).disposition

    assert disposition("User: Sorry, you have the wrong number.") == "Wrong Number"
    assert disposition("User: I'm driving, call me back tomorrow.") == "Callback Requested"
    assert disposition("User: Not interested, thanks.") == "Not Interested"
    assert disposition("User: Yes, I'm interested.") == "Interested"


def test_a_garbled_transcript_gets_an_answer_that_is_not_json(transactional_db: None, sandbox: None) -> None:
    with pytest.raises(AnalysisFailed, match="not JSON"):
        analysis_request(transcript="User: [garbled] ... [garbled]", duration_seconds=48, dispositions=DISPOSITIONS)
