"""Norwegian working days: weekends and public holidays (Easter, Whitsun and the fixed days), for reminder timing.

Pure apart from the `holidays` package's tables. Optional: treat the common July holiday weeks (ISO weeks 28-30,
"fellesferien") as non-working, so reminders wait until people are back.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays

JULY_HOLIDAY_WEEKS = frozenset({28, 29, 30})


class WorkCalendar:
    """Working days for a Norwegian site."""

    def __init__(self, tz: ZoneInfo | str = "Europe/Oslo", *, skip_july_holiday: bool = False):
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.skip_july_holiday = skip_july_holiday
        self._holidays = holidays.country_holidays("NO", language="no")

    def holiday_name(self, day: dt.date) -> str | None:
        """The public holiday on `day`, or None (plain Sundays are not named)."""
        name = self._holidays.get(day)
        return None if name in (None, "Søndag") else str(name)

    def is_working_day(self, day: dt.date) -> bool:
        if day.weekday() >= 5 or self.holiday_name(day) is not None:
            return False
        return not (self.skip_july_holiday and day.month in (7, 8) and day.isocalendar().week in
                    JULY_HOLIDAY_WEEKS)

    def next_working_day(self, day: dt.date, *, include: bool = True) -> dt.date:
        """The first working day on or after `day` (strictly after when include is False)."""
        d = day if include else day + dt.timedelta(days=1)
        while not self.is_working_day(d):
            d += dt.timedelta(days=1)
        return d

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """Move n working days from `day` (negative n moves back); n=0 gives `day` itself."""
        step = dt.timedelta(days=1 if n >= 0 else -1)
        d, left = day, abs(n)
        while left:
            d += step
            if self.is_working_day(d):
                left -= 1
        return d

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]: 0 when end is not after start."""
        count, d = 0, start
        while d < end:
            d += dt.timedelta(days=1)
            count += self.is_working_day(d)
        return count

    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        """The aware instant of a local wall-clock time on `day` (DST-correct)."""
        return dt.datetime.combine(day, time, tzinfo=self.tz)
