"""/metrics: Prometheus text with current figures, for a scraper's token or staff only."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.queues import Queue
from ops_app.metrics import figures_forget
from tests.support.api import api_for
from tests.support.events import make_event
from webhooks_app.models import EventStatus, WebhookEvent

TOKEN = "scrape-token-for-tests-0123456789"


@pytest.fixture(autouse=True)
def fresh_figures(settings) -> Iterator[None]:
    settings.MENDHOOK_METRICS_TOKEN = TOKEN
    figures_forget()
    yield
    figures_forget()


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_it_refuses_anonymous_callers_a_wrong_token_and_organization_api_keys(client: Client, organization) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, api_for(organization).headers):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "not_authenticated"


def test_it_reports_events_by_status_queue_depths_and_the_oldest_wait(client: Client, source, broker) -> None:
    waiting = make_event(source, status=EventStatus.QUEUED)
    WebhookEvent.objects.filter(id=waiting.id).update(updated_at=timezone.now() - timedelta(seconds=90))
    make_event(source, status=EventStatus.DEAD_LETTER)
    make_event(source, status=EventStatus.DEAD_LETTER)

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content)
    assert found[("mendhook_events", (("status", "dead_letter"),))] == 2
    assert found[("mendhook_events", (("status", "queued"),))] == 1
    assert found[("mendhook_events", (("status", "succeeded"),))] == 0
    assert found[("mendhook_queue_depth", (("queue", "webhooks"),))] == 0
    assert {labels for name, labels in found if name == "mendhook_queue_depth"} == {
        (("queue", q),) for q in (queue.value for queue in Queue)
    }
    assert 90 <= found[("mendhook_queue_oldest_age_seconds", (("queue", "webhooks"),))] < 150
    assert found[("mendhook_queue_oldest_age_seconds", (("queue", "workflows"),))] == 0


def test_a_staff_member_who_may_view_events_may_read_it(ops: Client, viewer: Client, db) -> None:
    assert ops.get("/metrics").status_code == 200
    assert viewer.get("/metrics").status_code == 200
