"""The ops dashboard on the admin home: what needs a human now, each count a link to exactly
those events, and the seed's two monitoring queries drawn without any network access."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from ops_app import selectors
from ops_app.dashboard import daily_chart, nice_ceiling
from ops_app.errors import record_error
from ops_app.models import ErrorRecord
from tests.factories import EndpointFactory
from tests.support.admin import listed_ids, login, make_user
from tests.support.api import api_for
from tests.support.events import event_with_ledger, make_event
from webhooks_app.errors import FailureKind
from webhooks_app.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EventAction,
    EventStatus,
    OutboundMessage,
    WebhookEvent,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def history(source):
    """Two weeks of events: what each count and chart should and should not include."""
    events = {
        "partial_recent": event_with_ledger(source, received_at=days_ago(1)),
        "partial_waiting": event_with_ledger(source, status=EventStatus.RETRY_SCHEDULED, received_at=days_ago(2)),
        "partial_two_codes": event_with_ledger(
            source, failed=(2, 6), code="ERR_CLIO_API_FAILED", kind=FailureKind.TRANSIENT, received_at=days_ago(3)
        ),
        "partial_old": event_with_ledger(source, received_at=days_ago(9)),
        # A partial failure a person resolved: its failed item stays in the ledger.
        "resolved": event_with_ledger(source, status=EventStatus.MANUALLY_RESOLVED, received_at=days_ago(1)),
        "dead_old": make_event(source, status=EventStatus.DEAD_LETTER, received_at=days_ago(20)),
        # Every attempt timed out: dead letter by status, though its action stays partial_failure
        # (the seed contract); counted once, as a dead letter.
        "dead_with_items": event_with_ledger(
            source,
            failed=(1, 2, 3),
            code="ERR_TIMEOUT",
            kind=FailureKind.TRANSIENT,
            status=EventStatus.DEAD_LETTER,
            received_at=days_ago(4),
        ),
        "failed_validation": make_event(
            source, status=EventStatus.FAILED, last_error_code="ERR_VALIDATION", received_at=days_ago(2)
        ),
        "succeeded": event_with_ledger(source, failed=(), status=EventStatus.SUCCEEDED, received_at=days_ago(1)),
    }
    WebhookEvent.objects.filter(pk=events["resolved"].pk).update(action=EventAction.MANUALLY_RESOLVED, success=True)
    return events


def test_attention_counts_count_each_event_once_by_its_status(history):
    record_error(function="t", message="critical one", severity="critical")
    record_error(function="t", message="just a warning", severity="warning")

    counts = selectors.attention_counts(now=timezone.now())

    # Partial failures of any age (the 9-day-old one too); the dead letter whose action is
    # partial_failure counts as a dead letter only; the waiting retry in its own count.
    assert (counts.partial_failures, counts.failed, counts.dead_letters, counts.retry_scheduled) == (3, 1, 2, 1)
    assert (counts.critical_errors, counts.unresolved_errors) == (1, 2)
    assert counts.needs_human == 6


def test_daily_partial_failures_cover_thirty_days_and_tell_open_from_resolved(history):

    days = selectors.daily_partial_failures(now=timezone.now())

    assert len(days) == 30 and days[-1].day == timezone.now().date()
    assert days == sorted(days, key=lambda d: d.day)
    yesterday = {d.day: d for d in days}[days_ago(1).date()]
    assert (yesterday.open, yesterday.resolved, yesterday.failed_tasks) == (1, 1, 2)
    # By status: the 9-day-old one too; not the waiting retry, not the dead letters.
    assert sum(d.open for d in days) == 3
    assert sum(d.total for d in days) == 4


def test_top_error_codes_count_failed_items_of_the_last_seven_days(history):
    codes = selectors.top_error_codes(now=timezone.now())

    # Items of unsettled failures only: not the resolved event's, not the 9-day-old one's.
    assert [(c.code, c.failed_items, c.events) for c in codes] == [
        ("ERR_TIMEOUT", 3, 1),
        ("ERR_ASSIGNEE_NO_CSC", 2, 2),
        ("ERR_CLIO_API_FAILED", 2, 1),
    ]
    assert codes[1].label == "No CSC for the location"


def test_unresolved_error_groups_come_most_severe_first():
    record_error(function="a", message="w", severity="warning")
    record_error(function="b", message="c", severity="critical")
    record_error(function="c", message="e", severity="error")

    assert [r.severity for r in selectors.error_groups_unresolved()] == ["critical", "error", "warning"]


def card(page: str, key: str) -> tuple[int, str]:
    match = re.search(rf'href="([^"]+)" id="card-{key}">\s*<span class="mh-card-count">(\d+)</span>', page)
    assert match, f"no {key} card"
    return int(match.group(2)), unescape(match.group(1))


CARDS = {
    "partial_failures": ("partial_recent", "partial_two_codes", "partial_old"),
    "failed": ("failed_validation",),
    "dead_letters": ("dead_old", "dead_with_items"),
    "retry_scheduled": ("partial_waiting",),
}


def test_each_count_on_the_admin_home_links_to_a_list_of_exactly_those_events(ops, history):
    page = ops.get("/admin/").content.decode()

    seen: list[str] = []
    for key, names in CARDS.items():
        count, url = card(page, key)
        listed = listed_ids(ops.get(url))
        assert count == len(listed) == len(names), key
        assert listed == {str(history[name].pk) for name in names}, key
        seen += listed
    assert len(seen) == len(set(seen))  # no event in two cards


def test_the_cards_the_events_list_and_the_rest_api_give_the_same_numbers(ops, history):
    page = ops.get("/admin/").content.decode()
    cards = {key: card(page, key)[0] for key in CARDS}
    listed = {
        status: len(listed_ids(ops.get(f"/admin/webhooks_app/webhookevent/?status__exact={status}")))
        for status in EventStatus.values
    }
    summary = api_for(history["succeeded"].organization).get("delivery-stats", range="30d").json()["summary"]

    assert cards == {
        "partial_failures": listed["partial_failure"],
        "failed": listed["failed"],
        "dead_letters": listed["dead_letter"],
        "retry_scheduled": listed["retry_scheduled"],
    }
    # Every event of the scenario was received within 30 days: the REST figures are the same
    # counts, in the seed's fields, and they add up to the total.
    assert summary["failed"] == cards["partial_failures"] + cards["failed"] == 4
    assert summary["deadLetter"] == cards["dead_letters"] == 2
    assert summary["retryPending"] == cards["retry_scheduled"] == 1
    assert summary["completed"] == listed["succeeded"] + listed["manually_resolved"] == 2
    parts = ("completed", "failed", "deadLetter", "retryPending", "pending")
    assert sum(summary[k] for k in parts) == summary["total"] == sum(listed.values()) == len(history)
    # The list's status-group filter is the same partition.
    by_group = {
        group: len(listed_ids(ops.get(f"/admin/webhooks_app/webhookevent/?group={group}")))
        for group in ("waiting", "in_flight", "retry_pending", "needs_human", "done")
    }
    assert by_group["needs_human"] == summary["failed"] + summary["deadLetter"]
    assert by_group["retry_pending"] == summary["retryPending"]
    assert by_group["done"] == summary["completed"]
    assert by_group["waiting"] + by_group["in_flight"] == summary["pending"]


def test_the_critical_errors_count_links_to_the_unresolved_critical_groups(ops):
    record_error(function="t", message="critical one", severity="critical")
    record_error(function="t", message="critical two", severity="critical")
    record_error(function="t", message="a warning", severity="warning")
    resolved = ErrorRecord.objects.get(message="critical two")
    ErrorRecord.objects.filter(pk=resolved.pk).update(resolved=True)

    count, url = card(ops.get("/admin/").content.decode(), "critical_errors")
    listing = ops.get(url).content.decode()

    assert count == 1
    assert "critical one" in listing and "critical two" not in listing and "a warning" not in listing


def test_the_charts_are_drawn_on_the_server_and_link_to_the_events_behind_them(ops, history):
    page = ops.get("/admin/").content.decode()

    assert '<svg class="mh-svg"' in page and page.count('class="mh-bar-open"') == 3
    assert "Most common failure codes" in page and "ERR_ASSIGNEE_NO_CSC" in page
    # No script, stylesheet or image from anywhere but this server.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    code_links = [unescape(u) for u in re.findall(r'href="([^"]+)" class="mh-hbar"', page)]
    assert listed_ids(ops.get(code_links[0])) == {str(history["dead_with_items"].pk)}  # ERR_TIMEOUT
    code_link = code_links[1]  # ERR_ASSIGNEE_NO_CSC
    assert listed_ids(ops.get(code_link)) == {str(history["partial_recent"].pk), str(history["partial_waiting"].pk)}
    bar_link = unescape(re.findall(r'<a href="([^"]+)">\s*<title>', page)[-2])  # yesterday
    assert listed_ids(ops.get(bar_link)) == {str(history["partial_recent"].pk)}


def test_staff_who_may_not_see_events_get_no_event_counts(db, history):
    client = login(make_user("errors.only", perms=("ops_app.view_errorrecord",)))

    page = client.get("/admin/").content.decode()

    assert 'id="card-critical_errors"' in page
    assert 'id="card-partial_failures"' not in page and 'class="mh-svg"' not in page


def test_an_empty_week_says_all_clear(ops):
    page = ops.get("/admin/").content.decode()

    # Four event cards, critical errors, and the three workflow cards (review, failed runs, actions).
    assert page.count("all clear") == 8
    assert "No failed items in the last 7 days." in page


def test_the_chart_axis_ends_on_a_round_number_above_the_busiest_day():
    assert [nice_ceiling(v) for v in (0, 3, 5, 7, 10, 11, 36, 101, 4500)] == [4, 4, 6, 8, 10, 20, 40, 200, 6000]
    days = selectors.daily_partial_failures(now=timezone.now())
    chart = daily_chart(days)
    assert len(chart.bars) == 30 and chart.total == 0
    assert all(bar.open_height == 0 for bar in chart.bars)


def failed_attempt(endpoint, *, at, status_code, error):
    message = OutboundMessage.objects.create(
        organization=endpoint.organization, event_type="booking.created", payload={"id": 1}
    )
    delivery = Delivery.objects.create(
        message=message,
        endpoint=endpoint,
        organization=endpoint.organization,
        event_type="booking.created",
        status=DeliveryStatus.RETRY_SCHEDULED,
        attempts=1,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        endpoint=endpoint,
        event_type="booking.created",
        number=1,
        started_at=at,
        succeeded=False,
        status_code=status_code,
        latency_ms=12,
        error=error,
    )


def failing_endpoints_card(page: str) -> str:
    match = re.search(r'<div class="mh-chart mh-endpoints" id="endpoints-failing">(.*?)</div>', page, re.S)
    assert match, "no failing endpoints card"
    return match.group(1)


def test_a_failing_endpoint_shows_on_the_dashboard_with_its_last_error_and_a_healthy_one_does_not(ops, organization):
    failing = EndpointFactory(organization=organization, url="http://receiver.test/failing", failing_since=days_ago(2))
    failed_attempt(failing, at=days_ago(2), status_code=500, error="first: boom")
    failed_attempt(failing, at=days_ago(0.1), status_code=503, error="latest: down for maintenance")
    healthy = EndpointFactory(organization=organization, url="http://receiver.test/healthy")
    # A healthy endpoint's old failure (failing_since cleared by a later success) is not news.
    failed_attempt(healthy, at=days_ago(3), status_code=500, error="long ago")

    card_html = unescape(failing_endpoints_card(ops.get("/admin/").content.decode()))

    assert "http://receiver.test/failing" in card_html and "http://receiver.test/healthy" not in card_html
    assert "HTTP 503 · latest: down for maintenance" in card_html and "first: boom" not in card_html
    assert f'href="/admin/webhooks_app/endpoint/{failing.pk}/change/"' in card_html
    assert f"{failing.failing_since:%b} {failing.failing_since.day}," in card_html


def test_with_no_endpoint_failing_the_card_says_so(ops, organization):
    EndpointFactory(organization=organization, url="http://receiver.test/healthy")

    card_html = failing_endpoints_card(ops.get("/admin/").content.decode())

    assert "Every endpoint is answering." in card_html and "receiver.test" not in card_html
