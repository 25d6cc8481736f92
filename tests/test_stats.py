"""Delivery statistics against figures worked out by hand on a known data set."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_app.stats import CATEGORY_OF_STATUS, STATS_RANGES, delivery_stats, delivery_stats_cached, stats_window
from tests.factories import SourceFactory
from tests.support.api import api_for, other_org_source
from tests.support.events import make_event
from webhooks_app.models import EventStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]

NOW = datetime(2026, 1, 27, 6, 32, 10, tzinfo=UTC)
# range=24h at NOW: hourly buckets, the last one holding NOW -> [2026-01-26 07:00, 2026-01-27 07:00).
START = datetime(2026, 1, 26, 7, tzinfo=UTC)
END = datetime(2026, 1, 27, 7, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def t(hours: float) -> datetime:
    return START + timedelta(hours=hours)


@pytest.fixture
def known_events(organization):
    """Seven events in the window, three just outside it, one of another organization."""
    s1 = SourceFactory(organization=organization, slug="clio-main")
    s2 = SourceFactory(organization=organization, slug="vapi-calls")
    rows = [
        # (source, event_type, status, attempts, received_at)
        (s1, "call.started", EventStatus.SUCCEEDED, 1, START),  # exactly at the start: in, bucket 0
        (s1, "call.ended", EventStatus.DEAD_LETTER, 3, t(1) - TICK),  # last instant of bucket 0
        (s1, "call.ended", EventStatus.PARTIAL_FAILURE, 3, t(1)),  # a bucket's start: bucket 1
        (s2, "call.ended", EventStatus.MANUALLY_RESOLVED, 2, t(20.25)),  # bucket 20
        (s2, "call.started", EventStatus.FAILED, 1, t(20.5)),  # bucket 20
        (s1, "call.started", EventStatus.RETRY_SCHEDULED, 2, t(23.5)),  # bucket 23 (NOW's)
        (s2, "call.started", EventStatus.RECEIVED, 0, t(23.52)),  # bucket 23
        # Outside: just before the start, at the (exclusive) end, and a day earlier.
        (s1, "call.started", EventStatus.SUCCEEDED, 1, START - TICK),
        (s1, "call.started", EventStatus.FAILED, 1, END),
        (s2, "call.ended", EventStatus.SUCCEEDED, 1, START - timedelta(days=1)),
    ]
    for source, event_type, status, attempts, received_at in rows:
        make_event(source, event_type=event_type, status=status, attempts=attempts, received_at=received_at)
    make_event(other_org_source(), status=EventStatus.FAILED, attempts=1, received_at=t(2))
    return organization


def counts(c) -> tuple[int, int, int, int, int, int]:
    return (c.total, c.completed, c.failed, c.dead_letter, c.retry_pending, c.pending)


def test_every_status_counts_in_exactly_one_outcome():
    assert set(CATEGORY_OF_STATUS) == set(EventStatus.values)
    assert set(CATEGORY_OF_STATUS.values()) == {"completed", "failed", "dead_letter", "retry_pending", "pending"}
    # A failed event waiting for its automatic retry is never plain pending.
    assert CATEGORY_OF_STATUS[EventStatus.RETRY_SCHEDULED] == "retry_pending"


@pytest.mark.parametrize(
    ("time_range", "start", "end", "bucket_seconds", "buckets"),
    [
        ("1h", datetime(2026, 1, 27, 5, 35, tzinfo=UTC), datetime(2026, 1, 27, 6, 35, tzinfo=UTC), 300, 12),
        ("24h", START, END, 3600, 24),
        ("7d", datetime(2026, 1, 20, 12, tzinfo=UTC), datetime(2026, 1, 27, 12, tzinfo=UTC), 21600, 28),
        ("30d", datetime(2025, 12, 29, tzinfo=UTC), datetime(2026, 1, 28, tzinfo=UTC), 86400, 30),
    ],
)
def test_each_range_ends_with_the_bucket_holding_now_on_a_utc_grid(time_range, start, end, bucket_seconds, buckets):
    spec = STATS_RANGES[time_range]
    assert stats_window(spec, NOW) == (start, end)
    assert (spec.bucket.total_seconds(), spec.length / spec.bucket) == (bucket_seconds, buckets)


def test_a_moment_on_a_bucket_boundary_starts_the_next_window(db):
    # 07:00:00 exactly belongs to [07:00, 08:00), so the window now ends at 08:00.
    assert stats_window(STATS_RANGES["24h"], END) == (START + timedelta(hours=1), END + timedelta(hours=1))


def test_delivery_stats_match_the_hand_computed_figures(known_events):
    stats = delivery_stats(organization_id=known_events.id, time_range="24h", now=NOW)

    assert (stats.start, stats.end) == (START, END)
    assert counts(stats.summary) == (7, 2, 2, 1, 1, 1)
    assert stats.summary.success_rate == pytest.approx(2 / 7)  # completed / total
    assert stats.summary.failure_rate == pytest.approx(3 / 7)  # (failed + dead letter) / the same total
    # Finished events only: attempts 1 + 3 + 3 + 2 + 1 over 5 events.
    assert stats.summary.avg_attempts == pytest.approx(2.0)
    assert {k: counts(v) for k, v in stats.by_event_type.items()} == {
        "call.ended": (3, 1, 1, 1, 0, 0),
        "call.started": (4, 1, 1, 0, 1, 1),
    }
    assert {k: counts(v) for k, v in stats.by_source.items()} == {
        "clio-main": (4, 1, 1, 1, 1, 0),
        "vapi-calls": (3, 1, 1, 0, 0, 1),
    }


def test_buckets_cover_the_window_in_order_with_the_empty_ones(known_events):
    stats = delivery_stats(organization_id=known_events.id, time_range="24h", now=NOW)

    assert len(stats.buckets) == 24
    assert [b.start for b in stats.buckets] == [t(i) for i in range(24)]
    assert all(b.end - b.start == timedelta(hours=1) for b in stats.buckets)
    filled = {i: counts(b.counts) for i, b in enumerate(stats.buckets) if b.counts.total}
    assert filled == {
        0: (2, 1, 0, 1, 0, 0),
        1: (1, 0, 1, 0, 0, 0),
        20: (2, 1, 1, 0, 0, 0),
        23: (2, 0, 0, 0, 1, 1),
    }
    assert sum(b.counts.total for b in stats.buckets) == stats.summary.total


def test_the_date_trunc_fallback_bins_exactly_like_date_bin(known_events, monkeypatch):
    # SQLite (the embedded default) has no date_bin; the Trunc path must give the same answer.
    with CaptureQueriesContext(connection) as binned:
        with_bin = delivery_stats(organization_id=known_events.id, time_range="7d", now=NOW)
    monkeypatch.setattr(connection, "pg_version", 130000)  # before date_bin (PostgreSQL 14)
    with CaptureQueriesContext(connection) as truncated:
        with_trunc = delivery_stats(organization_id=known_events.id, time_range="7d", now=NOW)

    assert "DATE_BIN" in binned[0]["sql"] and "DATE_TRUNC" in truncated[0]["sql"]
    assert [counts(b.counts) for b in with_trunc.buckets] == [counts(b.counts) for b in with_bin.buckets]
    # The 7-day window [01-20 12:00, 01-27 12:00) holds all ten events of this organization.
    assert sum(b.counts.total for b in with_bin.buckets) == 10


def test_rates_are_null_without_events(organization):
    stats = delivery_stats(organization_id=organization.id, time_range="1h", now=NOW)

    assert counts(stats.summary) == (0, 0, 0, 0, 0, 0)
    assert (stats.summary.success_rate, stats.summary.failure_rate, stats.summary.avg_attempts) == (None, None, None)
    assert len(stats.buckets) == 12


def test_the_api_answers_in_the_webhook_metrics_shape(source):
    for status, attempts in [
        (EventStatus.SUCCEEDED, 1),
        (EventStatus.SUCCEEDED, 2),
        (EventStatus.DEAD_LETTER, 3),
        (EventStatus.RETRY_SCHEDULED, 2),
    ]:
        make_event(source, status=status, attempts=attempts, event_type="end-of-call-report")

    body = api_for(source.organization).get("delivery-stats", range="1h").json()

    assert body["timeRange"] == "1h"
    assert body["summary"] == {
        "total": 4,
        "completed": 2,
        "failed": 0,
        "deadLetter": 1,
        "retryPending": 1,
        "pending": 0,
        "successRate": "50.00%",
        "avgAttempts": "2.00",  # finished events only: the retry is still counting
    }
    assert body["byEventType"] == {
        "end-of-call-report": {
            "total": 4,
            "completed": 2,
            "failed": 0,
            "deadLetter": 1,
            "retryPending": 1,
            "pending": 0,
        }
    }
    assert list(body["bySource"]) == [source.slug]
    assert (len(body["buckets"]), body["bucketSeconds"]) == (12, 300)
    assert set(body["buckets"][0]) == {
        "start",
        "end",
        "total",
        "completed",
        "failed",
        "deadLetter",
        "retryPending",
        "pending",
    }


def test_an_empty_window_reports_null_rates_over_the_api(organization):
    summary = api_for(organization).get("delivery-stats").json()["summary"]

    assert (summary["total"], summary["successRate"], summary["avgAttempts"]) == (0, None, None)


def test_only_the_long_ranges_come_from_a_short_lived_cache(source):
    make_event(source, status=EventStatus.SUCCEEDED)
    first = {r: delivery_stats_cached(organization_id=source.organization_id, time_range=r) for r in ("24h", "7d")}
    make_event(source, status=EventStatus.SUCCEEDED)
    again = {r: delivery_stats_cached(organization_id=source.organization_id, time_range=r) for r in ("24h", "7d")}

    assert (first["24h"].summary.total, again["24h"].summary.total) == (1, 2)  # always fresh
    # Up to 30 s old, and it says so: the same figures with the same generated_at.
    assert (again["7d"].summary.total, again["7d"].generated_at) == (1, first["7d"].generated_at)
