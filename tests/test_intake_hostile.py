"""Hostile but validly signed bodies, long ids and odd paths: every answer is a decision in JSON
(stored, or a 4xx naming the problem), never a 500, and a rejection stores nothing."""

import json

import pytest
from django.db import connection

from ops_app.models import ErrorRecord
from tests.support.signing import hmac_headers, standard_headers, standard_headers_for_bytes
from webhooks_app.json_bodies import MAX_DEPTH
from webhooks_app.models import SigningScheme, WebhookEvent

pytestmark = pytest.mark.django_db


def post_signed(client, source, body: bytes, **headers):
    signed = {**standard_headers(source.signing_secrets[0], body), **headers}
    return client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=signed)


def assert_rejected(response, status, code, words):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert words in error["message"]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_it_rejects_nan_and_infinity_as_invalid_json(source, client, constant):
    body = f'{{"type": "matter.stage_changed", "score": {constant}}}'.encode()
    assert_rejected(post_signed(client, source, body), 400, "invalid_json", constant)


def test_it_rejects_a_number_beyond_a_double_as_invalid_json(source, client):
    body = b'{"type": "matter.stage_changed", "score": 1e400}'
    assert_rejected(post_signed(client, source, body), 400, "invalid_json", "1e400")


def test_it_rejects_an_integer_longer_than_the_digit_limit_as_invalid_json(source, client):
    body = b'{"type": "matter.stage_changed", "n": ' + b"7" * 5000 + b"}"
    assert_rejected(post_signed(client, source, body), 400, "invalid_json", "4300 digits")


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5000])
def test_it_rejects_nesting_past_the_limit_with_422_naming_it(source, client, levels):
    body = b'{"a": ' * levels + b"1" + b"}" * levels
    assert_rejected(post_signed(client, source, body), 422, "too_deep", f"deeper than {MAX_DEPTH}")


def test_it_stores_nesting_at_the_limit(source, client):
    body = b'{"a": ' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert post_signed(client, source, body).status_code == 202


@pytest.mark.parametrize(
    ("escaped", "stored"),
    [
        ("\\u0000", "\ufffd"),  # NUL: PostgreSQL text and jsonb refuse it
        ("\\ud800", "\ufffd"),  # a high surrogate with no low one
        ("\\udc00x", "\ufffdx"),  # a low surrogate alone
        ("\\ud83d\\ude00", "\U0001f600"),  # a proper pair is one code point: kept as is
    ],
)
def test_it_stores_strings_jsonb_cannot_hold_with_the_raw_body_kept(source, client, escaped, stored):
    body = f'{{"type": "matter.stage_changed", "note": "a{escaped}b", "k{escaped}": 1}}'.encode()

    response = post_signed(client, source, body)

    assert response.status_code == 202, response.content
    event = WebhookEvent.objects.get()
    assert event.payload["note"] == f"a{stored}b"
    assert event.payload[f"k{stored}"] == 1
    assert bytes(event.raw_body) == body  # what was signed, byte for byte
    assert json.loads(bytes(event.raw_body))["note"] == json.loads(body)["note"]


def test_it_keeps_the_raw_body_of_an_ordinary_event(source, client):
    body = b'{"type":"matter.stage_changed",  "amount": 1.50}'
    assert post_signed(client, source, body).status_code == 202
    assert bytes(WebhookEvent.objects.get().raw_body) == body


def test_it_rejects_a_correctly_signed_body_that_is_not_utf8_with_400(source, client):
    body = '{"type": "matter.stage_changed", "name": "Müller"}'.encode("latin-1")
    headers = standard_headers_for_bytes(source.signing_secrets[0], body)
    response = client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers)
    assert_rejected(response, 400, "invalid_encoding", "not UTF-8")


def test_it_keeps_two_long_webhook_ids_sharing_a_prefix_apart(source, client):
    prefix = "msg_" + "x" * 300
    body = b'{"type": "matter.stage_changed"}'
    first = post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id=prefix + "1"))
    second = post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id=prefix + "2"))
    again = post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id=prefix + "2"))

    assert [first.status_code, second.status_code, again.status_code] == [202, 202, 200]
    assert again.json()["id"] == second.json()["id"]
    keys = sorted(WebhookEvent.objects.values_list("idempotency_key", flat=True))
    assert len(keys) == 2
    assert all(key.startswith("wh:sha256:") and len(key) == 74 for key in keys)


def test_it_keeps_a_short_webhook_id_verbatim_so_existing_keys_still_dedupe(source, client):
    body = b'{"type": "matter.stage_changed"}'
    post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id="msg_" + "y" * 236))
    assert WebhookEvent.objects.get().idempotency_key == "wh:msg_" + "y" * 236


def test_a_short_id_cannot_pose_as_the_hash_of_a_long_one(source, client):
    long_id = "msg_" + "z" * 300
    body = b'{"type": "matter.stage_changed"}'
    post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id=long_id))
    hashed_key = WebhookEvent.objects.get().idempotency_key
    posing = hashed_key.removeprefix("wh:")  # "sha256:<hex of the long id>"

    response = post_signed(client, source, body, **standard_headers(source.signing_secrets[0], body, msg_id=posing))

    assert response.status_code == 202
    assert WebhookEvent.objects.count() == 2


def test_it_keeps_two_long_provider_ids_sharing_a_prefix_apart(source, client):
    source.signing_scheme = SigningScheme.HMAC_SHA256
    source.signing_secrets = ["plain-secret"]
    source.save()
    statuses = []
    for suffix in ("1", "2", "2"):
        body = json.dumps({"id": "evt_" + "p" * 300 + suffix, "type": "matter.stage_changed"}).encode()
        headers = hmac_headers("plain-secret", body)
        response = client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers)
        statuses.append(response.status_code)
    assert statuses == [202, 202, 200]
    assert WebhookEvent.objects.filter(idempotency_key__startswith="id:sha256:").count() == 2


def test_it_cuts_an_overlong_event_type_to_its_column_and_keeps_it_whole_in_the_payload(source, client):
    event_type = "t" * 150
    body = json.dumps({"type": event_type}).encode()
    assert post_signed(client, source, body).status_code == 202
    event = WebhookEvent.objects.get()
    assert event.event_type == "t" * 100
    assert event.payload["type"] == event_type


@pytest.mark.django_db(transaction=True)
def test_a_body_the_database_refuses_gets_422_and_an_error_record_not_a_500(source, client):
    # A column narrower than what the intake cuts to: the insert raises DataError, the case no
    # check before it foresaw.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE webhooks_app_webhookevent ALTER COLUMN entity_id TYPE varchar(4)")
    try:
        body = json.dumps({"type": "matter.stage_changed", "data": {"matter_id": 123456789}}).encode()
        response = post_signed(client, source, body)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE webhooks_app_webhookevent ALTER COLUMN entity_id TYPE varchar(200)")

    assert_rejected(response, 422, "unstorable_payload", "value too long")
    record = ErrorRecord.objects.get(function="webhooks_app.services.intake.event_receive")
    assert record.error_code == "ERR_VALIDATION"
    assert record.organization_id == source.organization_id


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/",
        "/webhooks",
        "/webhooks/has%20space/",
        "/webhooks/dot.ted/",
        "/webhooks/%C3%BCnicode/",
        "/webhooks/nul%00byte/",
        "/webhooks/new%0Aline/",
        "/webhooks/slug/extra/",
        "/webhooks/slug/extra",
    ],
)
def test_every_other_path_under_webhooks_answers_404_json(source, client, path):
    response = client.post(path, data=b"{}", content_type="application/json")
    assert_rejected(response, 404, "not_found", "/webhooks/<source-slug>/")


def test_it_accepts_the_slashless_path_without_a_redirect(source, client):
    body = b'{"type": "matter.stage_changed"}'
    signed = standard_headers(source.signing_secrets[0], body)
    response = client.post(f"/webhooks/{source.slug}", data=body, content_type="application/json", headers=signed)
    assert response.status_code == 202, response.content
    assert str(WebhookEvent.objects.get().id) == response.json()["id"]
