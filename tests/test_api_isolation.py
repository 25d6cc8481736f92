"""Tenant isolation: for every endpoint, organization A's key never sees, counts or changes
organization B's data, and B's objects are 'not found' to it, never 'forbidden'."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops_app.models import AuditEntry, Replay
from ops_app.replays import replay_run_batch
from tests.test_api_auth import api_for, other_org_source
from tests.test_api_events import with_items
from tests.test_beat_jobs import make_event
from webhooks_app.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(source):
    """A has one event of each kind; B has more of each, so any leak changes A's figures."""
    now = timezone.now()
    b_source = other_org_source()
    a = {
        "failed": make_event(source, status=EventStatus.FAILED, completed_at=now, attempts=1),
        "dead": make_event(source, status=EventStatus.DEAD_LETTER, completed_at=now, attempts=3),
        "retry": make_event(source, status=EventStatus.RETRY_SCHEDULED, next_retry_at=now + timedelta(minutes=5)),
        "done": make_event(source, status=EventStatus.SUCCEEDED, completed_at=now, attempts=1),
    }
    b = {}
    for kind, status in [("failed", "failed"), ("dead", "dead_letter"), ("retry", "retry_scheduled")]:
        b[kind] = make_event(b_source, status=status, completed_at=now, attempts=2, last_error_code="ERR_TIMEOUT")
        for _ in range(2):
            make_event(b_source, status=status, completed_at=now, attempts=2)
    with_items(b["failed"], "succeeded", "failed")
    b_api = api_for(b_source.organization)
    b["replay"] = b_api.post("replays", {}).json()["id"]
    return api_for(source.organization), a, b, b_source


def test_queue_health_counts_only_the_keys_organization(two_orgs):
    api, *_ = two_orgs

    body = api.get("queue-health").json()

    metrics = body["metrics"]
    assert (metrics["completed"], metrics["failed"], metrics["deadLetter"], metrics["delayed"]) == (1, 1, 1, 1)
    webhooks = next(q for q in body["queues"] if q["name"] == "webhooks")
    assert (webhooks["failed"], webhooks["deadLetter"], webhooks["scheduledRetries"]) == (1, 1, 1)


def test_delivery_stats_count_only_the_keys_organization(two_orgs, source):
    api, *_ = two_orgs

    body = api.get("delivery-stats", range="1h").json()

    assert body["summary"]["total"] == 4
    assert list(body["bySource"]) == [source.slug]


@pytest.mark.parametrize("path", ["failures", "dead-letters"])
def test_lists_show_only_the_keys_organization(two_orgs, path):
    api, a, _, b_source = two_orgs
    key = "failures" if path == "failures" else "deadLetters"

    listed = {e["id"] for e in api.get(path, limit=100).json()[key]}
    by_b_source = api.get(path, source=b_source.slug).json()[key]

    expected = (
        {str(a["failed"].id), str(a["dead"].id), str(a["retry"].id)} if path == "failures" else {str(a["dead"].id)}
    )
    assert listed == expected
    assert by_b_source == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "events/{event}"),
        ("post", "events/{event}/retry"),
        ("post", "events/{event}/resolve"),
        ("get", "replays/{replay}"),
        ("post", "replays/{replay}/cancel"),
    ],
)
def test_another_organizations_object_is_not_found_and_left_unchanged(two_orgs, method, path):
    api, _, b, _ = two_orgs
    url = path.format(event=b["failed"].id, replay=b["replay"])

    response = api.get(url) if method == "get" else api.post(url, {"note": "mine now"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    b["failed"].refresh_from_db()
    assert b["failed"].status == EventStatus.FAILED
    assert not AuditEntry.objects.exists()
    assert Replay.objects.get(id=b["replay"]).status == "pending"


def test_replays_match_and_retry_only_the_keys_organization(two_orgs):
    api, a, b, _ = two_orgs

    preview = api.post("replays", {"dry_run": True, "filter": {"status": ["failed", "dead_letter"]}}).json()
    assert preview["matched"] == 2
    replay_id = api.post("replays", {"filter": {"status": ["failed", "dead_letter"]}}).json()["id"]
    while replay_run_batch(replay_id=replay_id) is not None:
        pass

    assert Replay.objects.get(id=replay_id).done == 2
    b_ids = [e.id for e in b.values() if isinstance(e, WebhookEvent)]
    assert not WebhookEvent.objects.filter(id__in=b_ids, status=EventStatus.QUEUED).exists()
    assert set(AuditEntry.objects.values_list("target_id", flat=True)) == {str(a["failed"].id), str(a["dead"].id)}


def test_a_replay_cannot_name_another_organizations_source(two_orgs):
    api, _, _, b_source = two_orgs

    response = api.post("replays", {"dry_run": True, "filter": {"source": b_source.slug}})

    assert response.status_code == 400
    # The same words as for a source that does not exist: nothing to learn about B.
    assert response.json()["error"]["fields"] == {"filter.source": ["Unknown source."]}
