"""Failures, dead letters, one event, and the acts on it over the API."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_app.models import AuditEntry
from tests.factories import ProcessingAttemptFactory, SourceFactory
from tests.support.events import make_event, with_items
from webhooks_app.models import EventStatus

pytestmark = pytest.mark.django_db


# --- Failures and dead letters ------------------------------------------------------------------


def test_failures_are_listed_newest_first_and_a_cursor_pages_without_gaps_or_repeats(source, api):
    now = timezone.now()
    same_moment = now - timedelta(minutes=3)
    events = [
        make_event(source, status=EventStatus.FAILED, received_at=now - timedelta(minutes=1)),
        make_event(source, status=EventStatus.DEAD_LETTER, received_at=now - timedelta(minutes=2)),
        # Two events received at the same instant: the id breaks the tie.
        make_event(source, status=EventStatus.PARTIAL_FAILURE, received_at=same_moment),
        make_event(source, status=EventStatus.RETRY_SCHEDULED, received_at=same_moment),
        make_event(source, status=EventStatus.FAILED, received_at=now - timedelta(minutes=4)),
    ]
    make_event(source, status=EventStatus.SUCCEEDED)  # not a failure
    expected = [str(e.id) for e in sorted(events, key=lambda e: (e.received_at, e.id), reverse=True)]

    bodies, url = [], "/api/v1/failures?limit=2"
    while url:
        bodies.append(api.client.get(url, headers=api.headers).json())
        url = bodies[-1]["next"]

    assert [[f["id"] for f in b["failures"]] for b in bodies] == [expected[0:2], expected[2:4], expected[4:5]]
    assert [b["count"] for b in bodies] == [2, 2, 1]
    # And back: the last page's previous link leads to the middle page.
    previous = api.client.get(bodies[-1]["previous"], headers=api.headers).json()
    assert [f["id"] for f in previous["failures"]] == expected[2:4]
    assert bodies[0]["previous"] is None


def test_a_failure_carries_the_seed_fields(source, api):
    event = make_event(
        source,
        status=EventStatus.DEAD_LETTER,
        attempts=3,
        max_attempts=3,
        last_error="Database connection timeout",
        last_error_code="ERR_TIMEOUT",
        last_attempt_at=timezone.now(),
    )
    for number in (1, 2, 3):
        ProcessingAttemptFactory(
            event=event, number=number, task_id=f"task-{number}", worker="w:1", started_at=timezone.now(), outcome=""
        )

    (failure,) = api.get("failures").json()["failures"]

    assert failure["id"] == str(event.id)
    assert failure["jobId"] == "task-3"  # the last attempt's Celery task
    assert (failure["eventType"], failure["status"], failure["source"]) == (
        "matter.stage_changed",
        "dead_letter",
        source.slug,
    )
    assert (failure["attempts"], failure["maxAttempts"]) == (3, 3)
    assert (failure["errorMessage"], failure["errorCode"]) == ("Database connection timeout", "ERR_TIMEOUT")
    assert failure["createdAt"] and failure["lastAttemptAt"]


def test_failures_filter_by_status_error_code_and_source(source, api):
    other_source = SourceFactory(organization=source.organization)
    timeout = make_event(source, status=EventStatus.FAILED, last_error_code="ERR_TIMEOUT")
    dead = make_event(source, status=EventStatus.DEAD_LETTER, last_error_code="ERR_CONNECTION")
    elsewhere = make_event(other_source, status=EventStatus.FAILED, last_error_code="ERR_TIMEOUT")

    def ids(**params):
        return {f["id"] for f in api.get("failures", **params).json()["failures"]}

    assert ids(status="dead_letter") == {str(dead.id)}
    assert ids(error_code="ERR_TIMEOUT") == {str(timeout.id), str(elsewhere.id)}
    assert ids(source=other_source.slug) == {str(elsewhere.id)}
    assert ids(source="no-such-source") == set()


def test_dead_letters_come_with_their_payload_and_failure_details(source, api):
    details = [{"task_title": "Call client", "task_number": 2, "error": "boom", "error_code": "ERR_TIMEOUT"}]
    dead = make_event(source, status=EventStatus.DEAD_LETTER, failure_details=details)
    make_event(source, status=EventStatus.FAILED)

    body = api.get("dead-letters").json()

    (entry,) = body["deadLetters"]
    assert entry["id"] == str(dead.id)
    assert entry["payload"] == dead.payload
    assert entry["failureDetails"] == details


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("failures", {"limit": 0}, "limit"),
        ("failures", {"limit": 101}, "limit"),
        ("failures", {"limit": "ten"}, "limit"),
        ("failures", {"status": "succeeded"}, "status"),
        ("failures", {"cursor": "garbage"}, "cursor"),
        ("failures", {"cursor": "cD1ub3QtYS1kYXRl"}, "cursor"),  # base64 of "p=not-a-date"
        ("dead-letters", {"limit": 1000}, "limit"),
        ("delivery-stats", {"range": "2h"}, "range"),
    ],
)
def test_a_bad_parameter_is_a_400_in_the_one_error_shape(api, path, params, field):
    response = api.get(path, **params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


# --- One event ----------------------------------------------------------------------------------


def test_an_event_comes_with_its_items_attempts_and_audit_trail(source, api, broker):
    event = with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded", "failed")
    ProcessingAttemptFactory(
        event=event, number=1, task_id="t-1", worker="w:1", started_at=timezone.now(), outcome="partial_failure"
    )
    api.post(f"events/{event.id}/resolve", {"note": "created task 2 by hand"})

    body = api.get(f"events/{event.id}").json()

    assert body["id"] == str(event.id)
    assert [(i["number"], i["status"]) for i in body["items"]] == [(1, "succeeded"), (2, "failed")]
    assert [(a["number"], a["taskId"], a["outcome"]) for a in body["attemptLog"]] == [(1, "t-1", "partial_failure")]
    assert [(a["kind"], a["note"]) for a in body["operatorActions"]] == [("resolve", "created task 2 by hand")]
    assert body["status"] == "manually_resolved"


@pytest.mark.parametrize("event_id", ["not-a-uuid", str(uuid.uuid4()), "123"])
@pytest.mark.parametrize("suffix", ["", "/retry", "/resolve"])
def test_a_malformed_or_unknown_event_id_is_a_json_404(api, event_id, suffix):
    path = f"events/{event_id}{suffix}"
    response = api.post(path, {"note": "n"}) if suffix else api.get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_api_url_is_a_json_404(api):
    response = api.get("no-such-endpoint")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_retry_requeues_an_event_and_is_audited_under_the_key_prefix(
    source, api, broker, django_capture_on_commit_callbacks
):
    event = with_items(make_event(source, status=EventStatus.PARTIAL_FAILURE), "succeeded", "failed")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"events/{event.id}/retry", {"note": "assignee rule added"})

    assert response.status_code == 202
    body = response.json()
    assert (body["success"], body["event"]["status"]) == (True, "queued")
    action = AuditEntry.objects.for_target(event).get()
    key_prefix = source.organization.api_keys.get().prefix
    assert (action.act, action.actor_label, action.via, action.note) == (
        "retry_failed_items",
        f"api-key:{key_prefix}",
        "api",
        "assignee rule added",
    )
    assert body["action"]["actor"] == f"api-key:{key_prefix}"
    assert broker() == 1  # published once, after commit
    # Only the failed item will run again; the one that succeeded stays as it was.
    assert list(event.items.order_by("number").values_list("status", flat=True)) == ["succeeded", "failed"]


@pytest.mark.parametrize(
    ("status", "items"),
    [(EventStatus.SUCCEEDED, ()), (EventStatus.PROCESSING, ()), (EventStatus.PARTIAL_FAILURE, ("succeeded",))],
)
def test_retry_answers_409_when_there_is_nothing_to_retry(source, api, status, items):
    event = with_items(make_event(source, status=status), *items)

    response = api.post(f"events/{event.id}/retry")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_retry"
    event.refresh_from_db()
    assert event.status == status
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}])
def test_resolve_without_a_note_is_a_400_and_changes_nothing(source, api, body):
    event = make_event(source, status=EventStatus.FAILED)

    response = api.post(f"events/{event.id}/resolve", body)

    assert response.status_code == 400
    assert "note" in response.json()["error"]["fields"]
    event.refresh_from_db()
    assert event.status == EventStatus.FAILED
    assert not AuditEntry.objects.exists()


def test_resolve_marks_the_event_resolved_and_audits_the_note(source, api):
    event = make_event(source, status=EventStatus.DEAD_LETTER)

    response = api.post(f"events/{event.id}/resolve", {"note": "sent by hand"})

    assert response.status_code == 200
    event.refresh_from_db()
    assert (event.status, event.success) == (EventStatus.MANUALLY_RESOLVED, True)
    action = AuditEntry.objects.for_target(event).get()
    assert (action.act, action.note, action.via, action.status_before) == (
        "mark_resolved",
        "sent by hand",
        "api",
        "dead_letter",
    )


def test_resolve_answers_409_for_an_event_that_needs_nothing(source, api):
    event = make_event(source, status=EventStatus.SUCCEEDED)

    response = api.post(f"events/{event.id}/resolve", {"note": "n"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_resolvable"
