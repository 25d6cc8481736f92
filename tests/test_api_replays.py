"""Replays: a dry run counts, a real one retries in rate-bounded batches, can be polled and
cancelled, and goes through the same audited retry as a person's."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.publishing import publish
from ops_app.models import AuditEntry, Replay, ReplayStatus
from ops_app.replays import REPLAY_STALLED_SECONDS, replay_run_batch, replays_stalled
from tests.factories import ReplayFactory, SourceFactory
from tests.support.events import make_event, with_items
from tests.support.signing import matter_payload
from tests.support.waiting import wait_for
from webhooks_app.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_batches(settings):
    settings.MENDHOOK_REPLAY_BATCH_SIZE = 2
    settings.MENDHOOK_REPLAY_EVENTS_PER_SECOND = 4.0


def run_to_the_end(replay_id) -> list[float | None]:
    delays = [replay_run_batch(replay_id=replay_id)]
    while delays[-1] is not None:
        delays.append(replay_run_batch(replay_id=replay_id))
    return delays


def test_a_dry_run_counts_events_and_items_and_changes_nothing(source, api):
    with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded", "failed", "failed")
    with_items(make_event(source, status=EventStatus.DEAD_LETTER), "pending")
    make_event(source, status=EventStatus.FAILED)  # no items: re-run whole, counts as an event
    with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded")  # nothing left to retry
    make_event(source, status=EventStatus.SUCCEEDED)

    response = api.post("replays", {"dry_run": True})

    assert response.status_code == 200
    body = response.json()
    assert (body["dryRun"], body["matched"], body["matchedItems"]) == (True, 3, 3)
    assert body["filter"]["status"] == ["partial_failure", "failed", "dead_letter"]
    assert not Replay.objects.exists()
    assert not AuditEntry.objects.exists()


def test_the_filter_narrows_by_status_error_code_source_and_time(source, api):
    now = timezone.now()
    other = SourceFactory(organization=source.organization)
    make_event(source, status=EventStatus.FAILED, last_error_code="ERR_TIMEOUT", received_at=now - timedelta(hours=2))
    make_event(source, status=EventStatus.FAILED, last_error_code="ERR_TIMEOUT", received_at=now - timedelta(hours=5))
    make_event(source, status=EventStatus.DEAD_LETTER, last_error_code="ERR_TIMEOUT", received_at=now)
    make_event(other, status=EventStatus.FAILED, last_error_code="ERR_TIMEOUT", received_at=now - timedelta(hours=2))
    make_event(source, status=EventStatus.FAILED, last_error_code="ERR_VALIDATION", received_at=now)

    def matched(**flt) -> int:
        return api.post("replays", {"dry_run": True, "filter": flt}).json()["matched"]

    assert matched() == 5
    assert matched(status=["failed"], error_code="ERR_TIMEOUT") == 3
    assert matched(error_code="ERR_TIMEOUT", source=source.slug) == 3
    window = {"received_after": (now - timedelta(hours=3)).isoformat(), "received_before": now.isoformat()}
    assert matched(error_code="ERR_TIMEOUT", source=source.slug, **window) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"status": ["succeeded"]}}, "filter.status.0"),
        ({"filter": {"status": []}}, "filter.status"),
        ({"filter": {"source": "nope"}}, "filter.source"),
        ({"filter": {"received_after": "2026-01-02T00:00:00Z", "received_before": "2026-01-01T00:00:00Z"}},
         "filter.received_before"),
        ({"filter": {"received_after": "yesterday"}}, "filter.received_after"),
        ({"dry_run": "perhaps"}, "dry_run"),
    ],
)  # fmt: skip
def test_a_bad_filter_is_a_400_naming_the_field(api, body, field):
    response = api.post("replays", body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Replay.objects.exists()


def test_a_replay_retries_in_rate_bounded_batches_and_reports_progress(source, api, small_batches):
    events = [with_items(make_event(source, status=EventStatus.DEAD_LETTER), "failed") for _ in range(5)]
    make_event(source, status=EventStatus.SUCCEEDED)

    created = api.post("replays", {})
    assert created.status_code == 202
    replay_id = created.json()["id"]
    assert created["Location"] == f"/api/v1/replays/{replay_id}"
    assert (created.json()["status"], created.json()["matched"], created.json()["matchedItems"]) == ("pending", 5, 5)

    first_delay = replay_run_batch(replay_id=replay_id)
    progress = api.get(f"replays/{replay_id}").json()
    assert (progress["status"], progress["done"], progress["failed"]) == ("running", 2, 0)
    # 2 events per batch at 4 events/s: the next batch starts half a second after this one did.
    assert first_delay is not None and 0 < first_delay <= 0.5

    assert run_to_the_end(replay_id)[-1] is None
    final = api.get(f"replays/{replay_id}").json()
    assert (final["status"], final["done"], final["failed"]) == ("completed", 5, 0)
    assert final["finishedAt"]
    assert WebhookEvent.objects.filter(id__in=[e.id for e in events], status=EventStatus.QUEUED).count() == 5
    # Each event went through the audited retry, naming the key and the replay.
    actions = AuditEntry.objects.filter(target_id__in=[str(e.id) for e in events])
    assert actions.count() == 5
    assert {a.note for a in actions} == {f"replay {replay_id}"}
    assert all(a.actor_label.startswith("api-key:mhk_") and a.via == "api" for a in actions)


def test_a_cancelled_replay_stops_before_its_next_batch(source, api, small_batches):
    for _ in range(5):
        make_event(source, status=EventStatus.FAILED)
    replay_id = api.post("replays", {}).json()["id"]
    replay_run_batch(replay_id=replay_id)

    cancelled = api.post(f"replays/{replay_id}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert replay_run_batch(replay_id=replay_id) is None
    replay = Replay.objects.get(id=replay_id)
    assert (replay.status, replay.done) == (ReplayStatus.CANCELLED, 2)
    assert WebhookEvent.objects.filter(status=EventStatus.FAILED).count() == 3


def test_cancelling_a_finished_replay_is_a_409(source, api):
    make_event(source, status=EventStatus.FAILED)
    replay_id = api.post("replays", {}).json()["id"]
    run_to_the_end(replay_id)

    response = api.post(f"replays/{replay_id}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "replay_finished"


def test_a_replay_leaves_out_events_received_after_it_was_asked_for(source, api):
    before = make_event(source, status=EventStatus.FAILED, received_at=timezone.now() - timedelta(minutes=1))
    replay_id = api.post("replays", {}).json()["id"]
    after = make_event(source, status=EventStatus.FAILED, received_at=timezone.now() + timedelta(seconds=1))

    run_to_the_end(replay_id)

    before.refresh_from_db()
    after.refresh_from_db()
    assert (before.status, after.status) == (EventStatus.QUEUED, EventStatus.FAILED)


def test_an_event_resolved_after_the_request_is_left_alone(source, api, small_batches):
    event = make_event(source, status=EventStatus.FAILED)
    replay_id = api.post("replays", {}).json()["id"]
    # Someone resolves it between the request and the batch: it no longer matches the filter.
    api.post(f"events/{event.id}/resolve", {"note": "fixed by hand"})

    run_to_the_end(replay_id)

    replay = Replay.objects.get(id=replay_id)
    assert (replay.status, replay.matched_events, replay.done) == (ReplayStatus.COMPLETED, 1, 0)
    event.refresh_from_db()
    assert event.status == EventStatus.MANUALLY_RESOLVED


@pytest.mark.integration
def test_a_replay_runs_on_the_real_worker_and_the_events_get_processed(worker, source, api):
    events = [
        make_event(source, status=EventStatus.DEAD_LETTER, payload=matter_payload(location="miami")) for _ in range(3)
    ]

    replay_id = api.post("replays", {"filter": {"status": ["dead_letter"]}}).json()["id"]

    def finished():
        body = api.get(f"replays/{replay_id}").json()
        return body if body["status"] == "completed" else None

    body = wait_for(finished, timeout=30, message="the replay to complete")
    assert (body["matched"], body["done"], body["failed"]) == (3, 3, 0)
    wait_for(
        lambda: WebhookEvent.objects.filter(id__in=[e.id for e in events], status=EventStatus.SUCCEEDED).count() == 3,
        timeout=30,
        message="the replayed events to succeed",
    )


def test_a_replay_that_just_moved_or_has_finished_is_not_stalled(source, api, small_batches):
    for _ in range(3):
        make_event(source, status=EventStatus.FAILED)
    replay_id = api.post("replays", {"dry_run": False}).json()["id"]
    assert replay_run_batch(replay_id=replay_id) is not None  # first batch done; next message "lost"
    later = timezone.now() + timedelta(seconds=REPLAY_STALLED_SECONDS + 1)

    assert replays_stalled() == []  # it just moved: not stalled
    assert [str(r) for r in replays_stalled(now=later)] == [replay_id]

    assert run_to_the_end(replay_id)[-1] is None
    assert replays_stalled(now=later) == []  # completed replays are never resumed


@pytest.mark.integration
def test_beat_resumes_a_replay_whose_next_batch_message_was_lost(worker, source):
    events = [make_event(source, status=EventStatus.FAILED) for _ in range(3)]
    # A running replay, one batch done, whose next-batch message the broker lost: no message
    # exists for it, and its row has not moved for longer than the stall threshold.
    replay = ReplayFactory(
        organization=source.organization,
        statuses=["failed"],
        status=ReplayStatus.RUNNING,
        matched_events=3,
        batch_size=2,
        events_per_second=4.0,
    )
    Replay.objects.filter(id=replay.id).update(
        updated_at=timezone.now() - timedelta(seconds=REPLAY_STALLED_SECONDS + 5)
    )

    # What beat does on its schedule: publish the job, which a real worker runs.
    publish("ops_app.tasks.resume_stalled_replays")

    finished = wait_for(
        lambda: Replay.objects.filter(id=replay.id, status=ReplayStatus.COMPLETED).first(),
        timeout=60,
        message="the stalled replay to be resumed and completed",
    )
    assert (finished.done, finished.failed) == (3, 0)
    assert AuditEntry.objects.filter(target_id__in=[str(e.id) for e in events], note=f"replay {replay.id}").count() == 3
