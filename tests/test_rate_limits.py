"""Rate limits: intake per source and globally, counted in Redis by every web process (429 with
Retry-After and nothing stored); outbound per connector, where work over the limit waits for the
next window without using up attempts."""

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import SourceFactory
from tests.support.fake_http import FakeClio
from tests.support.processes import free_port, start_gunicorn
from tests.support.signing import encode, matter_payload, standard_headers
from tests.support.waiting import settle
from tests.support.worker import worker_env
from webhooks_app.errors import ErrorCode
from webhooks_app.models import ConnectorKind, EventStatus, Organization, Source, WebhookEvent
from webhooks_app.models.events import AttemptOutcome
from webhooks_app.rate_limits import KEY_PREFIX
from webhooks_app.services.processing import event_process


def signed(source: Source, n: int) -> tuple[bytes, dict[str, str]]:
    body = encode({**matter_payload(location="miami"), "id": f"evt-{uuid.uuid4()}-{n}"})
    return body, {**standard_headers(source.signing_secrets[0], body), "Content-Type": "application/json"}


@pytest.fixture
def global_counter(settings: Any) -> Iterator[None]:
    """The global cap's counter is one key for every source: start this test without it."""
    client = redis.Redis.from_url(settings.REDIS_URL)

    def forget() -> None:
        for key in client.scan_iter(match=f"{KEY_PREFIX}*intake:global*"):
            client.delete(key)

    forget()
    yield
    forget()


# --- Intake -------------------------------------------------------------------------------------


def test_over_a_sources_limit_it_answers_429_with_retry_after_and_stores_nothing(db, source, post_webhook):
    source.rate_limit = "3/minute"
    source.save()
    answers = [post_webhook(source, {**matter_payload(), "id": f"evt-{n}"}) for n in range(5)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    refused = answers[3]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "3/minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert WebhookEvent.objects.filter(source=source).count() == 3


def test_each_source_has_its_own_budget(db, organization, post_webhook):
    busy = SourceFactory(organization=organization, rate_limit="2/minute")
    quiet = SourceFactory(organization=organization, rate_limit="2/minute")
    for n in range(3):
        post_webhook(busy, {**matter_payload(), "id": f"evt-{n}"})

    assert post_webhook(quiet, {**matter_payload(), "id": "evt-q"}).status_code == 202


def test_a_source_without_its_own_limit_gets_the_default(db, source, post_webhook, settings):
    settings.MENDHOOK_INTAKE_RATE_LIMIT_DEFAULT = "2/minute"
    codes = [post_webhook(source, {**matter_payload(), "id": f"evt-{n}"}).status_code for n in range(3)]
    assert codes == [202, 202, 429]


def test_the_global_cap_holds_across_sources(db, organization, post_webhook, settings, global_counter):
    settings.MENDHOOK_INTAKE_RATE_LIMIT_GLOBAL = "3/minute"
    sources = [SourceFactory(organization=organization) for _ in range(4)]

    answers = [post_webhook(s, {**matter_payload(), "id": f"evt-{n}"}) for n, s in enumerate(sources)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert "platform's intake limit" in answers[3].json()["error"]["message"]
    assert WebhookEvent.objects.filter(source=sources[3]).count() == 0


def test_forged_requests_do_not_use_up_a_senders_budget(db, source, post_webhook):
    source.rate_limit = "2/minute"
    source.save()
    for _ in range(5):
        forged = post_webhook(source, matter_payload(), headers={"webhook-id": "x", "webhook-timestamp": "1"})
        assert forged.status_code == 401

    codes = [post_webhook(source, {**matter_payload(), "id": f"evt-{n}"}).status_code for n in range(2)]
    assert codes == [202, 202]


def test_without_redis_intake_goes_on_and_warns(db, source, post_webhook, settings, caplog):
    settings.MENDHOOK_GUARDS_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    source.rate_limit = "1/minute"
    source.save()

    codes = [post_webhook(source, {**matter_payload(), "id": f"evt-{n}"}).status_code for n in range(3)]

    assert codes == [202, 202, 202]
    warnings = [r for r in caplog.records if "rate limits not enforced" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request


@pytest.mark.parametrize("value", ["fast", "100/fortnight", "0/second", "-1/minute"])
def test_a_limit_that_does_not_parse_is_refused_with_an_example(db, source, value):
    source.rate_limit = value
    with pytest.raises(ValidationError) as refused:
        source.full_clean()
    assert "100/second" in str(refused.value)


def test_the_limit_is_shared_by_two_gunicorn_workers(transactional_db, organization):
    """8 requests at once against 5/minute, served by two worker processes: exactly 3 refused."""
    source = SourceFactory(organization=organization, rate_limit="5/minute")
    server, url = start_gunicorn({**worker_env(), "GUNICORN_THREADS": "1"}, workers=2)
    try:
        requests = [signed(source, n) for n in range(8)]
        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(lambda r: client.post(f"{url}/webhooks/{source.slug}/", content=r[0], headers=r[1]), requests)
            )
    finally:
        server.stop()

    assert sorted(a.status_code for a in answers) == [202] * 5 + [429] * 3
    for refused in (a for a in answers if a.status_code == 429):
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert json.loads(refused.content)["error"]["code"] == "rate_limited"
    assert WebhookEvent.objects.filter(source=source).count() == 5


# --- Outbound -----------------------------------------------------------------------------------


@pytest.fixture
def limited_source(organization: Organization, fake_clio: FakeClio) -> Source:
    return SourceFactory(
        organization=organization,
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.2,
        backoff_factor=1.0,
        max_attempts=1,
    )


def test_work_over_the_outbound_limit_waits_for_the_next_window_without_using_attempts(db, limited_source, fake_clio):
    fake_clio.reset()
    limited_source.connector_rate_limit = "3/minute"
    limited_source.save()
    event = WebhookEvent.objects.create(
        organization=limited_source.organization,
        source=limited_source,
        idempotency_key=uuid.uuid4().hex,
        event_type="matter.stage_changed",
        payload=matter_payload(location="miami"),
        max_attempts=1,
        status=EventStatus.QUEUED,
    )

    assert event_process(event_id=event.id, task_id="t1", worker="test") == EventStatus.RETRY_SCHEDULED

    event.refresh_from_db()
    assert fake_clio.creations == 3 and len(fake_clio.requests) == 3  # nothing over the limit was sent
    assert (event.round_attempts, event.last_error_code) == (0, ErrorCode.RATE_LIMITED_LOCAL)
    # At the window's reset (a minute from its first call), not after the 0.2 s backoff.
    assert event.next_retry_at >= timezone.now() + timedelta(seconds=50)
    codes = list(event.items.order_by("number").values_list("error_code", flat=True))
    assert codes == [""] * 3 + [ErrorCode.RATE_LIMITED_LOCAL] * 7


def test_the_outbound_default_comes_from_settings_by_pattern(db, limited_source, fake_clio, settings):
    fake_clio.reset()
    settings.MENDHOOK_OUTBOUND_RATE_LIMITS = {"clio:*": "2/minute"}
    event = WebhookEvent.objects.create(
        organization=limited_source.organization,
        source=limited_source,
        idempotency_key=uuid.uuid4().hex,
        event_type="matter.stage_changed",
        payload=matter_payload(location="miami"),
        status=EventStatus.QUEUED,
    )

    event_process(event_id=event.id, task_id="t1", worker="test")

    assert fake_clio.creations == 2


@pytest.mark.integration
def test_the_worker_sends_an_events_items_window_by_window_and_succeeds_on_one_attempt(
    worker, limited_source, post_webhook, fake_clio
):
    limited_source.connector_rate_limit = "4/second"
    limited_source.save()

    response = post_webhook(limited_source, matter_payload(location="miami"))
    event = settle(response.json()["id"], statuses={EventStatus.SUCCEEDED}, timeout=30)

    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", "error_code"))
    assert outcomes[-1] == (AttemptOutcome.SUCCEEDED, "")
    assert set(outcomes[:-1]) == {(AttemptOutcome.RETRY_SCHEDULED, ErrorCode.RATE_LIMITED_LOCAL)}
    assert len(outcomes) >= 3  # 10 items at 4 a window
    assert fake_clio.creations == 10 and len(fake_clio.requests) == 10
    times = sorted(r["at"] for r in fake_clio.requests)
    assert times[4] - times[0] >= 0.9  # the fifth call waited for the next window
    assert event.round_attempts == 1  # max_attempts is 1: held back never counted


# --- The admin ----------------------------------------------------------------------------------


def source_form(source: Source, **changes: Any) -> dict[str, Any]:
    return {
        "organization": source.organization_id,
        "slug": source.slug,
        "kind": "clio",
        "enabled": "on",
        "max_payload_bytes": 1048576,
        "rate_limit": "",
        "signing_scheme": "standard_webhooks",
        "signature_header": "X-Signature",
        "timestamp_tolerance_seconds": 300,
        "max_attempts": 3,
        "backoff_base_seconds": 2.0,
        "backoff_factor": 2.0,
        "connector": "clio_http",
        "connector_base_url": "https://clio.example/api",
        "connector_rate_limit": "",
        "new_connector_token": "",
        **changes,
    }


def test_limits_are_edited_on_the_source_page_and_a_bad_one_is_refused(admin_client, source):
    url = f"/admin/webhooks_app/source/{source.pk}/change/"

    refused = admin_client.post(url, source_form(source, rate_limit="lots"))
    assert refused.status_code == 200 and "is not a rate limit" in refused.content.decode()
    source.refresh_from_db()
    assert source.rate_limit == ""

    saved = admin_client.post(url, source_form(source, rate_limit="50/second", connector_rate_limit="10 per minute"))
    assert saved.status_code == 302
    source.refresh_from_db()
    assert (source.rate_limit, source.connector_rate_limit) == ("50/second", "10 per minute")
