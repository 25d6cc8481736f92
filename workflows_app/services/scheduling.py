"""Smart retry scheduling (seed 004): when a failed step runs again, from the organization's
business hours in its own timezone (the lead's timezone is not used for this).

- failed inside business hours -> `delay` later (the step's retry_delay_minutes, 60 by default:
  the seed's "retry in 1 hour");
- failed outside them -> the next business morning at business_hours_start;
- rate limited -> no sooner than the reset time the provider gave (Retry-After).

Decision: a retry never lands outside business hours. An in-hours retry whose hour would end
after closing (16:30 + 1 h with hours until 17:00), or a rate-limit reset that falls in the
night, moves to the next business morning instead: the steps reach people by phone and text.

Pure functions with an explicit `now`, so tests check fixed times.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    start: time
    end: time
    days: frozenset[int]  # weekdays, Monday = 0

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone())
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, moment: datetime) -> datetime:
        """The first business_hours_start at or after `moment`."""
        local = moment.astimezone(self.zone())
        day: date = local.date()
        for _ in range(8):
            if day.weekday() in self.days:
                opening = datetime.combine(day, self.start, tzinfo=self.zone())
                if opening >= local:
                    return opening
            day += timedelta(days=1)
        raise ValueError("business hours without any business day")


def retry_at(
    *,
    now: datetime,
    hours: BusinessHours,
    delay: timedelta = timedelta(hours=1),
    rate_limit_reset: datetime | None = None,
) -> datetime:
    """When a step that failed at `now` runs again."""
    if rate_limit_reset is not None and rate_limit_reset > now:
        candidate = rate_limit_reset
    elif hours.is_open(now):
        candidate = now + delay
    else:
        return hours.next_opening(now)
    if hours.is_open(candidate):
        return candidate
    return hours.next_opening(candidate)
