"""Downstream faults and dead workers, end to end through real workers: a 429's Retry-After on
one item, and work orphaned by a worker killed mid-attempt."""

import pytest

from tests.conftest import settle
from tests.factories import SourceFactory
from tests.support.fake_http import FakeClio, Fault
from tests.support.signing import matter_payload
from webhooks_app.models import ConnectorKind, EventStatus, Organization, Source
from webhooks_app.models.events import AttemptOutcome

pytestmark = [pytest.mark.integration]


@pytest.fixture
def impatient_clio_source(organization: Organization, fake_clio: FakeClio) -> Source:
    """Backoff far shorter than any Retry-After below, so honouring it is visible."""
    return SourceFactory(
        organization=organization,
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.2,
        backoff_factor=1.0,
    )


def send(post_webhook, source, **payload_kw) -> str:
    response = post_webhook(source, matter_payload(**payload_kw))
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_it_waits_for_an_items_retry_after_before_the_next_attempt(
    worker, impatient_clio_source, post_webhook, fake_clio
):
    fake_clio.fail_key(":3", Fault(429, retry_after="4"))

    event = settle(
        send(post_webhook, impatient_clio_source, location="miami"), statuses={EventStatus.SUCCEEDED}, timeout=45
    )

    first, second = fake_clio.request_times(":3")
    # The backoff alone would ask again after 0.2-0.25 s; the downstream asked for 4.
    assert second - first >= 4.0
    outcomes = list(event.attempt_log.order_by("number").values_list("outcome", "error_code"))
    assert outcomes == [(AttemptOutcome.RETRY_SCHEDULED, "ERR_RATE_LIMITED"), (AttemptOutcome.SUCCEEDED, "")]
    assert fake_clio.creations == 10
    assert event.items.get(number=3).retry_after is None  # cleared once the item succeeded
