"""Norwegian working days: weekends, fixed and moving public holidays, the July weeks, DST-correct times."""

from __future__ import annotations

import datetime as dt

from hms.workdays import WorkCalendar

D = dt.date
cal = WorkCalendar("Europe/Oslo")


def test_moving_holidays_2027() -> None:
    # Easter Sunday 2027 is 28 March; Whitsun 16 May; Ascension 6 May.
    for day in (D(2027, 3, 25), D(2027, 3, 26), D(2027, 3, 29), D(2027, 5, 6), D(2027, 5, 17)):
        assert not cal.is_working_day(day), day
    assert cal.holiday_name(D(2027, 3, 25)) == "Skjærtorsdag"
    assert cal.is_working_day(D(2027, 3, 24)) and cal.is_working_day(D(2027, 3, 30))


def test_fixed_holidays_and_weekends() -> None:
    for day in (D(2027, 1, 1), D(2027, 5, 1), D(2027, 12, 24 + 1), D(2027, 12, 27 - 1)):
        assert not cal.is_working_day(day)
    assert not cal.is_working_day(D(2027, 1, 2))  # Saturday
    assert cal.holiday_name(D(2027, 1, 3)) is None  # a plain Sunday is not a named holiday
    assert cal.is_working_day(D(2027, 12, 24))  # Christmas Eve is a working day by law (Friday)


def test_add_working_days_across_easter() -> None:
    assert cal.add_working_days(D(2027, 3, 24), 1) == D(2027, 3, 30)
    assert cal.add_working_days(D(2027, 3, 30), -1) == D(2027, 3, 24)
    assert cal.add_working_days(D(2027, 3, 24), 0) == D(2027, 3, 24)
    assert cal.working_days_between(D(2027, 3, 24), D(2027, 3, 30)) == 1
    assert cal.next_working_day(D(2027, 3, 25)) == D(2027, 3, 30)
    assert cal.next_working_day(D(2027, 3, 24), include=False) == D(2027, 3, 30)


def test_different_easter_each_year() -> None:
    assert not cal.is_working_day(D(2026, 4, 6))  # 2. påskedag 2026
    assert cal.is_working_day(D(2027, 4, 5))  # not a holiday in 2027
    assert not cal.is_working_day(D(2028, 4, 17))  # 2. påskedag 2028


def test_july_holiday_weeks_optional() -> None:
    summer = WorkCalendar("Europe/Oslo", skip_july_holiday=True)
    assert cal.is_working_day(D(2027, 7, 14))
    assert not summer.is_working_day(D(2027, 7, 14))  # ISO week 28
    assert summer.is_working_day(D(2027, 8, 2))  # week 31
    assert summer.next_working_day(D(2027, 7, 12)) == D(2027, 8, 2)


def test_nine_o_clock_over_dst() -> None:
    # 09:00 local is 08:00 UTC in winter, 07:00 UTC in summer; the instants around the change are right.
    assert cal.at(D(2027, 3, 26), dt.time(9)).astimezone(dt.UTC).hour == 8
    assert cal.at(D(2027, 3, 29), dt.time(9)).astimezone(dt.UTC).hour == 7
    assert cal.at(D(2027, 11, 1), dt.time(9)).astimezone(dt.UTC).hour == 8
    before = cal.at(D(2027, 3, 27), dt.time(9))
    after = cal.at(D(2027, 3, 28), dt.time(9))
    # Same-zone subtraction in Python is wall-clock time; elapsed time needs UTC.
    assert after.astimezone(dt.UTC) - before.astimezone(dt.UTC) == dt.timedelta(hours=23)
