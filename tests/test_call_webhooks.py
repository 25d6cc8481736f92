"""Call-ended webhooks from Retell and Vapi through the real intake and a real worker: signatures,
one CallLog per call whatever the order, and the analysis with its fallback (seed scenario 3)."""

import time

import pytest

from tests.factories import DispositionFactory, SourceFactory
from tests.support.calls import RETELL_API_KEY, VAPI_SECRET, accepted, deliver, lead_create, retell_source, vapi_source
from tests.support.fake_http import Fault
from tests.support.signing import encode, hmac_headers, retell_headers, retell_payload, vapi_payload
from tests.support.waiting import settle
from webhooks_app.models import EventAction, EventStatus, SigningScheme, SourceKind, WebhookEvent
from workflows_app.models import CallLog, CallProvider, CallStatus

# --- Signatures and identity at the intake (no worker) ----------------------------------------


@pytest.fixture
def retell(organization):
    return retell_source(organization)


@pytest.fixture
def vapi(organization):
    return vapi_source(organization)


def test_it_accepts_a_retell_webhook_signed_with_the_api_key(client, retell):
    response = deliver(client, retell, retell_payload("call_a1"))

    event = WebhookEvent.objects.get(id=accepted(response))
    assert (event.event_type, event.entity_id, event.idempotency_key) == (
        "call_ended",
        "call_a1",
        "ev:call_ended:call_a1",
    )


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "missing x-retell-signature header"),
        ({"x-retell-signature": "sha256=abc"}, "not of the form v=<unix ms>,d=<hex digest>"),
        ("other key", "no signature matches"),
        ("ten minutes old", "outside the allowed tolerance"),
    ],
)
def test_it_refuses_a_retell_webhook_not_signed_with_the_api_key(client, retell, headers, problem):
    payload = retell_payload("call_a2")
    body = encode(payload)
    if headers == "other key":
        headers = retell_headers("key_someone_else", body)
    elif headers == "ten minutes old":
        headers = retell_headers(RETELL_API_KEY, body, timestamp_ms=int((time.time() - 600) * 1000))

    response = deliver(client, retell, payload, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert problem in response.json()["error"]["message"]
    assert not WebhookEvent.objects.exists()


def test_a_retell_signature_covers_the_body_as_sent(client, retell):
    body = encode(retell_payload("call_a3"))
    headers = retell_headers(RETELL_API_KEY, body)

    response = client.post(
        f"/webhooks/{retell.slug}/",
        data=body.replace(b"call_a3", b"call_zz"),
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 401


def test_a_redelivered_retell_event_is_a_duplicate_but_the_next_event_of_the_call_is_not(client, retell):
    first = accepted(deliver(client, retell, retell_payload("call_a4")))

    again = deliver(client, retell, retell_payload("call_a4"))
    analyzed = deliver(client, retell, retell_payload("call_a4", event="call_analyzed"))

    assert (again.status_code, again.json()["id"], again.json()["duplicate"]) == (200, first, True)
    assert analyzed.status_code == 202
    assert WebhookEvent.objects.filter(source=retell).count() == 2


def test_it_accepts_a_vapi_report_carrying_the_server_secret(client, vapi):
    response = deliver(client, vapi, vapi_payload("vapi-call-1"))

    event = WebhookEvent.objects.get(id=accepted(response))
    assert (event.event_type, event.idempotency_key) == ("end-of-call-report", "ev:end-of-call-report:vapi-call-1")


@pytest.mark.parametrize(
    ("headers", "problem"),
    [({}, "missing x-vapi-secret header"), ({"x-vapi-secret": "guess"}, "does not match the source's secret")],
)
def test_it_refuses_a_vapi_report_without_the_server_secret(client, vapi, headers, problem):
    response = deliver(client, vapi, vapi_payload("vapi-call-2"), headers=headers)

    assert response.status_code == 401
    assert problem in response.json()["error"]["message"]


def test_it_accepts_a_vapi_report_signed_with_the_hmac_credential(client, organization):
    # Vapi's HMAC credential: SHA256 over the body, hex, in x-vapi-signature.
    source = SourceFactory(
        organization=organization,
        kind=SourceKind.VAPI,
        signing_scheme=SigningScheme.HMAC_SHA256,
        signature_header="x-vapi-signature",
        signing_secrets=[VAPI_SECRET],
    )
    payload = vapi_payload("vapi-call-3")
    body = encode(payload)

    good = deliver(client, source, payload, headers=hmac_headers(VAPI_SECRET, body, header="x-vapi-signature"))
    bad = deliver(client, source, payload, headers=hmac_headers("other", body, header="x-vapi-signature"))

    assert (good.status_code, bad.status_code) == (202, 401)


# --- Through the worker -------------------------------------------------------------------------


@pytest.fixture
def dispositions(organization):
    return [DispositionFactory(organization=organization, name=n) for n in ("Interested", "Not Interested")]


@pytest.mark.integration
def test_it_tracks_a_retell_call_with_the_models_disposition(worker, client, retell, dispositions, fake_ai):
    lead = lead_create(retell.organization)
    fake_ai.answer_with("Interested", confidence=0.82)

    event = settle(accepted(deliver(client, retell, retell_payload("call_b1"))))

    call = CallLog.objects.get()
    assert event.status == EventStatus.SUCCEEDED
    assert event.action == EventAction.IGNORED  # the disposition has no actions
    assert (call.provider, call.provider_call_id, call.status, call.lead) == (
        CallProvider.RETELL,
        "call_b1",
        CallStatus.ENDED,
        lead,
    )
    assert (call.duration_seconds, call.end_reason, call.direction) == (95.0, "user_hangup", "outbound")
    assert call.transcript.startswith("Agent: Hi, is this Dana?")
    assert (call.disposition, call.confidence, call.ai_analysis_failed, call.ai_analysis_error) == (
        "Interested",
        0.82,
        False,
        "",
    )
    assert call.ai_analysis["key_points"] == ["interested", "wants pricing"]
    asked = fake_ai.completions()[0]
    assert asked["messages"][1]["content"] == call.transcript
    assert '["Interested", "Not Interested"]' in asked["messages"][0]["content"]


@pytest.mark.integration
def test_seed_scenario_3_an_ai_timeout_gives_the_fallback_disposition_and_the_call_is_tracked(
    worker, client, retell, dispositions, fake_ai
):
    fake_ai.answer_with("Interested")
    fake_ai.fail_next(Fault(delay=2.5))  # the worker's analysis timeout is 1 s

    event = settle(accepted(deliver(client, retell, retell_payload("call_c1"))))

    call = CallLog.objects.get(provider_call_id="call_c1")
    assert event.status == EventStatus.SUCCEEDED
    assert (call.status, call.duration_seconds) == (CallStatus.ENDED, 95.0)
    assert (call.disposition, call.confidence, call.ai_analysis_failed) == (
        "Connected - Manual Review Needed",
        0.3,
        True,
    )
    assert "timed out" in call.ai_analysis_error
    assert call.ai_analysis == {
        "disposition": "Connected - Manual Review Needed",
        "confidence": 0.3,
        "reasoning": "AI analysis failed, auto-classified by duration",
        "key_points": ["AI analysis unavailable"],
        "sentiment": "neutral",
        "ai_analysis_failed": True,
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "raw", "error"),
    [
        (Fault(500), None, "failed: 500"),
        (None, "Sure! The caller sounded Interested.", "not JSON"),
        (None, '{"disposition": "Maybe later", "confidence": 0.9, "reasoning": "", "key_points": [], '
         '"sentiment": "neutral"}', "disposition"),
    ],
    ids=["server-error", "malformed-json", "unknown-disposition"],
)  # fmt: skip
def test_a_failing_model_gives_a_short_vapi_call_the_no_answer_fallback(
    worker, client, vapi, dispositions, fake_ai, fault, raw, error
):
    fake_ai.answer_with("Interested")
    fake_ai.raw = raw
    if fault is not None:
        fake_ai.fail_next(fault)

    event = settle(accepted(deliver(client, vapi, vapi_payload("vapi-c2"))))

    call = CallLog.objects.get(provider=CallProvider.VAPI, provider_call_id="vapi-c2")
    assert event.status == EventStatus.SUCCEEDED
    assert (call.duration_seconds, call.end_reason, call.to_number) == (12.0, "customer-ended-call", "+14155552671")
    assert (call.disposition, call.confidence, call.ai_analysis_failed) == ("No Answer", 0.3, True)
    assert error in call.ai_analysis_error


@pytest.mark.integration
def test_call_analyzed_before_call_ended_makes_one_call_analysed_once_and_never_moved_back(
    worker, client, retell, dispositions, fake_ai
):
    fake_ai.answer_with("Not Interested")
    analyzed = settle(accepted(deliver(client, retell, retell_payload("call_d1", event="call_analyzed"))))
    ended = settle(
        accepted(deliver(client, retell, retell_payload("call_d1", transcript="", recording_url="", duration_ms=None)))
    )

    call = CallLog.objects.get()
    assert (analyzed.status, ended.status) == (EventStatus.SUCCEEDED, EventStatus.SUCCEEDED)
    assert call.status == CallStatus.ANALYZED
    assert call.transcript.startswith("Agent: Hi") and call.recording_url and call.duration_seconds == 95.0
    assert call.last_event_id == ended.id
    assert call.disposition == "Not Interested"
    assert len(fake_ai.completions()) == 1


@pytest.mark.integration
def test_a_call_placed_with_a_lead_id_belongs_to_that_lead_not_to_the_phone_match(
    worker, client, retell, dispositions, fake_ai
):
    by_phone = lead_create(retell.organization, name="Phone Match")
    named = lead_create(retell.organization, name="Named", phone="+14155559999")
    fake_ai.answer_with("Interested")

    settle(accepted(deliver(client, retell, retell_payload("call_e1", metadata={"lead_id": str(named.id)}))))

    assert CallLog.objects.get().lead == named != by_phone


@pytest.mark.integration
def test_a_retell_event_without_a_call_id_fails_naming_it_and_records_no_call(worker, client, retell):
    event = settle(accepted(deliver(client, retell, {"event": "call_ended", "call": {"call_status": "ended"}})))

    assert (event.status, event.last_error_code) == (EventStatus.FAILED, "ERR_VALIDATION")
    assert event.last_error == "Retell payload has no call.call_id"
    assert not CallLog.objects.exists()


def test_vapi_messages_sent_many_times_per_call_are_not_collapsed_into_one(client, vapi):
    first = {"message": {"type": "status-update", "status": "in-progress", "call": {"id": "vapi-call-4"}}}
    later = {"message": {"type": "status-update", "status": "ended", "call": {"id": "vapi-call-4"}}}

    responses = [deliver(client, vapi, first), deliver(client, vapi, later)]

    assert [r.status_code for r in responses] == [202, 202]
    assert all(k.startswith("sha256:") for k in WebhookEvent.objects.values_list("idempotency_key", flat=True))
