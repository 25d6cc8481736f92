"""Smart retry scheduling at fixed times, in two timezones (seed 004: inside business hours ->
in an hour; outside -> the next business morning; rate limited -> after the reset)."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows_app.services.scheduling import BusinessHours, retry_at

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))


def hours(zone: ZoneInfo, start: time = time(9), end: time = time(17)) -> BusinessHours:
    return BusinessHours(timezone=str(zone), start=start, end=end, days=WEEKDAYS)


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


# 2025-03-05 is a Wednesday, 2025-03-07 a Friday.
@pytest.mark.parametrize(
    ("zone", "failed_at", "expected"),
    [
        (NEW_YORK, at(NEW_YORK, 2025, 3, 5, 10, 0), at(NEW_YORK, 2025, 3, 5, 11, 0)),
        (BERLIN, at(BERLIN, 2025, 3, 5, 14, 20), at(BERLIN, 2025, 3, 5, 15, 20)),
    ],
)
def test_a_failure_inside_business_hours_is_retried_in_an_hour(zone, failed_at, expected):
    assert retry_at(now=failed_at, hours=hours(zone)) == expected


@pytest.mark.parametrize(
    ("zone", "failed_at", "expected"),
    [
        (NEW_YORK, at(NEW_YORK, 2025, 3, 5, 18, 30), at(NEW_YORK, 2025, 3, 6, 9, 0)),
        (BERLIN, at(BERLIN, 2025, 3, 5, 23, 59), at(BERLIN, 2025, 3, 6, 9, 0)),
        # Before opening: the same morning.
        (BERLIN, at(BERLIN, 2025, 3, 5, 7, 15), at(BERLIN, 2025, 3, 5, 9, 0)),
    ],
)
def test_a_failure_after_hours_is_retried_the_next_business_morning(zone, failed_at, expected):
    assert retry_at(now=failed_at, hours=hours(zone)) == expected


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN])
def test_a_failure_on_friday_evening_is_retried_on_monday_at_nine(zone):
    assert retry_at(now=at(zone, 2025, 3, 7, 18, 0), hours=hours(zone)) == at(zone, 2025, 3, 10, 9, 0)


def test_an_hour_that_would_end_after_closing_moves_to_the_next_morning():
    assert retry_at(now=at(BERLIN, 2025, 3, 5, 16, 30), hours=hours(BERLIN)) == at(BERLIN, 2025, 3, 6, 9, 0)


def test_the_same_instant_is_inside_hours_in_new_york_and_after_hours_in_berlin():
    failed_at = datetime(2025, 3, 5, 20, 0, tzinfo=UTC)  # 15:00 in New York, 21:00 in Berlin
    assert retry_at(now=failed_at, hours=hours(NEW_YORK)) == datetime(2025, 3, 5, 21, 0, tzinfo=UTC)
    assert retry_at(now=failed_at, hours=hours(BERLIN)) == datetime(2025, 3, 6, 8, 0, tzinfo=UTC)


def test_the_next_morning_is_nine_local_time_across_a_daylight_saving_change():
    # New York moves to EDT on Sunday 2025-03-09: Monday 9:00 is 13:00 UTC, not 14:00.
    failed_at = at(NEW_YORK, 2025, 3, 7, 17, 30)
    assert retry_at(now=failed_at, hours=hours(NEW_YORK)) == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)


def test_a_rate_limited_failure_waits_for_the_reset_rather_than_an_hour():
    failed_at = at(NEW_YORK, 2025, 3, 5, 10, 0)
    reset = failed_at + timedelta(minutes=7)
    assert retry_at(now=failed_at, hours=hours(NEW_YORK), rate_limit_reset=reset) == reset


def test_a_rate_limit_reset_later_than_an_hour_is_still_waited_for():
    failed_at = at(BERLIN, 2025, 3, 5, 10, 0)
    reset = failed_at + timedelta(hours=3)
    assert retry_at(now=failed_at, hours=hours(BERLIN), rate_limit_reset=reset) == at(BERLIN, 2025, 3, 5, 13, 0)


def test_a_rate_limit_reset_in_the_night_waits_for_the_next_business_morning():
    failed_at = at(BERLIN, 2025, 3, 7, 16, 50)  # Friday
    reset = failed_at + timedelta(minutes=30)
    assert retry_at(now=failed_at, hours=hours(BERLIN), rate_limit_reset=reset) == at(BERLIN, 2025, 3, 10, 9, 0)


def test_the_step_delay_replaces_the_default_hour():
    failed_at = at(NEW_YORK, 2025, 3, 5, 10, 0)
    assert retry_at(now=failed_at, hours=hours(NEW_YORK), delay=timedelta(minutes=15)) == at(
        NEW_YORK, 2025, 3, 5, 10, 15
    )


def test_weekend_business_days_are_honoured():
    every_day = BusinessHours(timezone="Europe/Berlin", start=time(8), end=time(20), days=frozenset(range(7)))
    assert retry_at(now=at(BERLIN, 2025, 3, 8, 21, 0), hours=every_day) == at(BERLIN, 2025, 3, 9, 8, 0)
