"""Outbound notifications over the REST API: endpoints with a secret shown once, bad input named
in a 400, the acts audited like the admin's, and the per-endpoint health stats."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops_app.models import AuditEntry
from tests.factories import EndpointFactory
from webhooks_app.models import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint, OutboundMessage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]

NEW = {"url": "https://hooks.example.com/in", "event_types": ["booking.created"], "headers": {"X-Team": "ops"}}


def test_creating_an_endpoint_shows_its_secret_once(api):
    created = api.post("endpoints", NEW)

    assert created.status_code == 201, created.json()
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert body["retrySchedule"] == [0, 300, 900, 2700]
    assert body["headerNames"] == ["X-Team"]
    shown = api.get(f"endpoints/{body['id']}")
    assert shown.status_code == 200
    assert secret not in shown.content.decode() and "ops" not in shown.json()["headerNames"]
    assert shown.json()["secretHints"] == [f"whsec_\u2026{secret[-4:]}"]
    assert Endpoint.objects.get().signing_secrets_valid(now=timezone.now()) == [secret]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"event_types": ["booking.exploded"]}, "event_types", "unknown event type(s): booking.exploded"),
        ({"event_types": []}, "event_types", "This list may not be empty."),
        ({"url": "not a url"}, "url", "Enter a valid URL."),
        ({"retry_schedule": [0, -5]}, "retry_schedule", "each delay is a whole number of seconds"),
        ({"retry_schedule": "soon"}, "retry_schedule", "a non-empty list of delays"),
        ({"headers": {"Bad Name": "x"}}, "headers", "header names (RFC 9110 tokens)"),
        ({"max_per_second": 0}, "max_per_second", "greater than or equal to 1"),
    ],
)
def test_bad_endpoint_input_is_a_400_naming_the_field(api, change, field, words):
    response = api.post("endpoints", {**NEW, **change})

    assert response.status_code == 400
    [message] = response.json()["error"]["fields"][field]
    assert words in message
    assert Endpoint.objects.count() == 0


def test_rotating_keeps_the_old_secret_signing_for_the_grace_period(api):
    first = api.post("endpoints", NEW).json()
    rotated = api.post(f"endpoints/{first['id']}/rotate-secret")

    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert Endpoint.objects.get().signing_secrets_valid(now=timezone.now()) == [new, first["secret"]]
    later = timezone.now() + timedelta(hours=25)
    assert Endpoint.objects.get().signing_secrets_valid(now=later) == [new]


def test_disable_needs_a_note_and_enable_and_disable_are_audited(api, organization):
    endpoint = EndpointFactory(organization=organization)

    assert api.post(f"endpoints/{endpoint.id}/disable", {}).status_code == 400
    done = api.post(f"endpoints/{endpoint.id}/disable", {"note": "receiver migrating"})
    assert done.status_code == 200
    assert (done.json()["statusBefore"], done.json()["statusAfter"]) == ("enabled", "disabled")
    again = api.post(f"endpoints/{endpoint.id}/disable", {"note": "twice"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_disabled")
    assert api.post(f"endpoints/{endpoint.id}/enable").status_code == 200
    assert list(AuditEntry.objects.order_by("id").values_list("act", "note")) == [
        ("disable_endpoint", "receiver migrating"),
        ("enable_endpoint", ""),
    ]


def _failed(endpoint, minutes_ago: int) -> Delivery:
    message = OutboundMessage.objects.create(
        organization=endpoint.organization, event_type="booking.created", payload={"type": "booking.created"}
    )
    return Delivery.objects.create(
        message=message, endpoint=endpoint, organization=endpoint.organization, event_type="booking.created",
        status=DeliveryStatus.FAILED, created_at=timezone.now() - timedelta(minutes=minutes_ago),
    )  # fmt: skip


def test_recover_dry_run_counts_and_the_run_requeues_what_failed_since(api, organization):
    endpoint = EndpointFactory(organization=organization)
    _old, *recent = [_failed(endpoint, m) for m in (120, 30, 20)]
    since = (timezone.now() - timedelta(hours=1)).isoformat()

    dry = api.post(f"endpoints/{endpoint.id}/recover", {"since": since, "dry_run": True})
    assert dry.json() == {"dryRun": True, "failed": 2, "missed": 0, "total": 2}
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 3  # nothing changed

    run = api.post(f"endpoints/{endpoint.id}/recover", {"since": since})
    assert run.status_code == 202
    assert sorted(Delivery.objects.filter(status=DeliveryStatus.PENDING).values_list("id", flat=True)) == sorted(
        d.id for d in recent
    )
    assert AuditEntry.objects.get().note == f"(since {since})"
    nothing = api.post(f"endpoints/{endpoint.id}/recover", {"since": since})
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (409, "nothing_to_recover")


def test_a_message_shows_its_deliveries_and_attempts_and_retry_refuses_a_delivered_one(api, organization):
    endpoint = EndpointFactory(organization=organization)
    delivery = _failed(endpoint, 5)
    DeliveryAttempt.objects.create(
        delivery=delivery, endpoint=endpoint, event_type="booking.created", number=1, started_at=timezone.now(),
        succeeded=False, status_code=503, latency_ms=12, response_excerpt="down", error="receiver answered 503",
        error_code="ERR_RECEIVER_STATUS",
    )  # fmt: skip
    shown = api.get(f"messages/{delivery.message_id}").json()
    [row] = shown["deliveries"]
    assert row["attemptLog"][0]["statusCode"] == 503 and row["attemptLog"][0]["latencyMs"] == 12
    assert api.get("messages").json()["count"] == 1

    assert api.post(f"deliveries/{delivery.id}/retry").status_code == 200
    Delivery.objects.filter(id=delivery.id).update(status=DeliveryStatus.DELIVERED)
    refused = api.post(f"messages/{delivery.message_id}/retry")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "nothing_to_retry")


def test_stats_give_success_rate_attempts_latency_percentiles_and_error_patterns(api, organization):
    endpoint = EndpointFactory(organization=organization)
    now = timezone.now()
    latencies = [10, 20, 30, 40, 1000]
    for i, latency in enumerate(latencies):
        message = OutboundMessage.objects.create(organization=organization, event_type="booking.created", payload={})
        ok = i < 4
        delivery = Delivery.objects.create(
            message=message, endpoint=endpoint, organization=organization, event_type="booking.created",
            status=DeliveryStatus.DELIVERED if ok else DeliveryStatus.FAILED, attempts=1 if ok else 2,
        )  # fmt: skip
        DeliveryAttempt.objects.create(
            delivery=delivery, endpoint=endpoint, event_type="booking.created", number=1,
            started_at=now - timedelta(minutes=10 - i), succeeded=ok, status_code=200 if ok else 503,
            latency_ms=latency, error="" if ok else "receiver answered 503",
            error_code="" if ok else "ERR_RECEIVER_STATUS",
        )  # fmt: skip

    stats = api.get(f"endpoints/{endpoint.id}/stats", range="24h").json()
    [row] = stats["byEventType"]
    assert (row["eventType"], row["total"], row["delivered"], row["failed"]) == ("booking.created", 5, 4, 1)
    assert row["successRate"] == 0.8
    assert row["attemptsPerMessage"] == 1.2
    assert row["latencyP50Ms"] == 30.0
    assert row["latencyP99Ms"] == pytest.approx(40 + 0.96 * 960)
    assert row["errors"] == [
        {"statusCode": 503, "errorCode": "ERR_RECEIVER_STATUS", "count": 1,
         "lastSeen": row["lastFailureAt"], "example": "receiver answered 503"}
    ]  # fmt: skip
    assert row["lastSuccessAt"] < row["lastFailureAt"]
    assert stats["overall"]["total"] == 5
    assert api.get(f"endpoints/{endpoint.id}/stats", range="1y").status_code == 400
