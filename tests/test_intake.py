"""The intake endpoint: what it accepts, what it rejects, and that rejection stores nothing."""

import json
import time

import pytest

from tests.support.signing import encode, hmac_headers, matter_payload, standard_headers
from webhooks_app.models import EventStatus, SigningScheme, WebhookEvent
from webhooks_app.services.publisher import publisher_drain

pytestmark = pytest.mark.django_db


def test_it_accepts_a_signed_event_with_202(source, post_webhook):
    response = post_webhook(source, matter_payload())

    assert response.status_code == 202
    body = response.json()
    event = WebhookEvent.objects.get()
    assert body == {"id": str(event.id), "status": EventStatus.QUEUED, "duplicate": False}
    assert event.event_type == "matter.stage_changed"
    assert event.entity_id == "1001"
    assert event.headers["webhook-id"].startswith("msg_")


def test_it_answers_200_with_the_existing_event_for_a_redelivery(source, post_webhook):
    payload = matter_payload()
    body = encode(payload)
    headers = standard_headers(source.signing_secrets[0], body, msg_id="msg_same")
    first = post_webhook(source, payload, headers=headers)
    second = post_webhook(source, payload, headers=standard_headers(source.signing_secrets[0], body, msg_id="msg_same"))

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"]
    assert WebhookEvent.objects.count() == 1


def test_it_dedupes_by_provider_event_id_without_webhook_id(source, client):
    source.signing_scheme = SigningScheme.HMAC_SHA256
    source.signing_secrets = ["plain-secret"]
    source.save()
    body = encode(matter_payload())
    for expected in (202, 200):
        response = client.post(
            f"/webhooks/{source.slug}/",
            data=body,
            content_type="application/json",
            headers=hmac_headers("plain-secret", body),
        )
        assert response.status_code == expected
    assert WebhookEvent.objects.get().idempotency_key.startswith("id:evt_")


def test_it_dedupes_by_body_hash_when_there_is_no_id(source, client):
    source.signing_scheme = SigningScheme.HMAC_SHA256
    source.signing_secrets = ["plain-secret"]
    source.save()
    body = json.dumps({"type": "matter.stage_changed", "data": {"matter_id": 5}}).encode()
    headers = hmac_headers("plain-secret", body)
    statuses = [
        client.post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers
        ).status_code
        for _ in range(2)
    ]
    assert statuses == [202, 200]
    assert WebhookEvent.objects.get().idempotency_key.startswith("sha256:")


def test_it_verifies_with_any_of_the_rotating_secrets(source, post_webhook):
    old = source.signing_secrets[0]
    source.signing_secrets = ["whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", old]
    source.save()

    assert post_webhook(source, matter_payload()).status_code == 202


def test_it_accepts_the_hmac_scheme_with_sha256_prefix(source, client):
    source.signing_scheme = SigningScheme.HMAC_SHA256
    source.signing_secrets = ["plain-secret"]
    source.signature_header = "X-Hub-Signature-256"
    source.save()
    body = encode(matter_payload())
    signature = "sha256=" + hmac_headers("plain-secret", body)["X-Signature"]
    response = client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": signature},
    )
    assert response.status_code == 202


def _assert_rejected(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert WebhookEvent.objects.count() == 0


def test_it_rejects_a_bad_signature_with_401(source, post_webhook):
    body = encode(matter_payload())
    headers = standard_headers(source.signing_secrets[0], body)
    headers["webhook-signature"] = "v1,bm90LXRoZS1zaWduYXR1cmU="
    _assert_rejected(post_webhook(source, matter_payload(), headers=headers), 401, "invalid_signature")


def test_it_rejects_a_malformed_signature_header_with_401(source, post_webhook):
    body = encode(matter_payload())
    headers = standard_headers(source.signing_secrets[0], body)
    headers["webhook-signature"] = "garbage-without-comma"
    _assert_rejected(post_webhook(source, matter_payload(), headers=headers), 401, "invalid_signature")


def test_it_rejects_a_missing_signature_with_401(source, post_webhook):
    _assert_rejected(post_webhook(source, matter_payload(), headers={}), 401, "invalid_signature")


def test_it_rejects_a_stale_timestamp_with_401(source, post_webhook):
    payload = matter_payload()
    headers = standard_headers(source.signing_secrets[0], encode(payload), timestamp=time.time() - 3600)
    _assert_rejected(post_webhook(source, payload, headers=headers), 401, "invalid_signature")


def test_it_applies_a_stricter_source_tolerance(source, post_webhook):
    source.timestamp_tolerance_seconds = 30
    source.save()
    payload = matter_payload()
    headers = standard_headers(source.signing_secrets[0], encode(payload), timestamp=time.time() - 120)
    _assert_rejected(post_webhook(source, payload, headers=headers), 401, "invalid_signature")


def test_it_rejects_an_unknown_source_with_404(source, client):
    response = client.post("/webhooks/nope/", data=b"{}", content_type="application/json")
    _assert_rejected(response, 404, "unknown_source")


def test_it_rejects_a_disabled_source_with_404(source, post_webhook):
    source.enabled = False
    source.save()
    _assert_rejected(post_webhook(source, matter_payload()), 404, "unknown_source")


def test_it_rejects_malformed_json_with_400(source, client):
    body = b'{"type": "matter.stage_changed", '
    headers = standard_headers(source.signing_secrets[0], body)
    response = client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers)
    _assert_rejected(response, 400, "invalid_json")


def test_it_rejects_a_json_array_with_400(source, client):
    body = b"[1, 2]"
    headers = standard_headers(source.signing_secrets[0], body)
    response = client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers)
    _assert_rejected(response, 400, "invalid_json")


def test_it_rejects_an_oversized_body_with_413(source, post_webhook):
    source.max_payload_bytes = 200
    source.save()
    _assert_rejected(post_webhook(source, matter_payload(notes="x" * 500)), 413, "payload_too_large")


def test_it_rejects_a_wrong_content_type_with_415(source, post_webhook):
    _assert_rejected(post_webhook(source, matter_payload(), content_type="text/plain"), 415, "unsupported_media_type")


def test_it_rejects_get_with_a_json_405(source, client):
    response = client.get(f"/webhooks/{source.slug}/")
    _assert_rejected(response, 405, "method_not_allowed")


def test_a_new_event_is_published_on_commit_and_marked_queued(
    source, post_webhook, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(source, matter_payload())
    assert publisher_drain()  # the answer did not wait for the broker: the publisher thread sends it

    event = WebhookEvent.objects.get(id=response.json()["id"])
    assert event.status == EventStatus.QUEUED
    assert broker() == 1


def test_disabling_a_source_takes_effect_at_once_in_this_process(source, post_webhook):
    assert post_webhook(source, matter_payload()).status_code == 202  # the source is now cached

    source.enabled = False
    source.save()

    _assert_rejected_after_one_event(post_webhook(source, matter_payload()), 404, "unknown_source")


def test_other_processes_see_a_source_change_within_the_cache_ttl(source, post_webhook, settings):
    from webhooks_app.models import Source

    settings.MENDHOOK_SOURCE_CACHE_SECONDS = 0  # as if the cached copy had expired
    assert post_webhook(source, matter_payload()).status_code == 202
    Source.objects.filter(id=source.id).update(enabled=False)  # no signal: another process did it

    _assert_rejected_after_one_event(post_webhook(source, matter_payload()), 404, "unknown_source")


def _assert_rejected_after_one_event(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert WebhookEvent.objects.count() == 1
