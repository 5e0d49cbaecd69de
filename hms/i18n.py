"""Texts in Norwegian bokmål and English, keyed by message id, and dates written the way each language does.

`t(locale, key, **values)`: any locale starting with "en" gets English, everything else bokmål (the default).
"""

from __future__ import annotations

import datetime as dt

MONTHS_NB = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober",
             "november", "desember")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")

CATALOG: dict[str, dict[str, str]] = {
    "nb": {
        "status.upcoming": "kommer",
        "status.open": "åpen",
        "status.done": "utført",
        "status.overdue": "forfalt",
        "scope.unit": "hele enheten",
        "due.header": "Frister {period}",
        "due.none": "Ingen oppgaver i perioden.",
        "due.window": "{start} – {end}",
        "due.deadline": "frist {date}",
        "due.done_by": "utført {date} av {who}",
        "period.range": "{start} – {end}",
    },
    "en": {
        "status.upcoming": "upcoming",
        "status.open": "open",
        "status.done": "done",
        "status.overdue": "overdue",
        "scope.unit": "whole unit",
        "due.header": "Deadlines {period}",
        "due.none": "Nothing falls in this period.",
        "due.window": "{start} – {end}",
        "due.deadline": "due {date}",
        "due.done_by": "done {date} by {who}",
        "period.range": "{start} – {end}",
    },
}


def lang(locale: str | None) -> str:
    """The catalog language for a Teams or user locale ('en-US' -> 'en', 'nb-NO', None, 'nn' -> 'nb')."""
    return "en" if (locale or "").lower().startswith("en") else "nb"


def t(locale: str | None, key: str, **values: object) -> str:
    """The text for `key` in the locale's language, falling back to bokmål, then to the key itself."""
    text = CATALOG[lang(locale)].get(key) or CATALOG["nb"].get(key) or key
    return text.format(**values) if values else text


def format_date(day: dt.date, locale: str | None, *, year: bool = True) -> str:
    """'1. juli 2027' in bokmål, '1 July 2027' in English; without the year when `year` is False."""
    if lang(locale) == "en":
        s = f"{day.day} {MONTHS_EN[day.month - 1]}"
    else:
        s = f"{day.day}. {MONTHS_NB[day.month - 1]}"
    return f"{s} {day.year}" if year else s


def format_datetime(moment: dt.datetime, locale: str | None, *, year: bool = False) -> str:
    """'3. mars 09:12' (local wall-clock time of an aware datetime, as given)."""
    return f"{format_date(moment.date(), locale, year=year)} {moment:%H:%M}"


def format_period(start: dt.date, end: dt.date, locale: str | None) -> str:
    """A period as people say it: 'november 2026', '1. – 7. mars 2027', '1. januar – 31. desember 2027'."""
    import calendar

    if start.day == 1 and start.year == end.year and start.month == end.month and \
            end.day == calendar.monthrange(end.year, end.month)[1]:
        name = (MONTHS_EN if lang(locale) == "en" else MONTHS_NB)[start.month - 1]
        return f"{name} {start.year}"
    return t(locale, "period.range", start=format_date(start, locale, year=start.year != end.year),
             end=format_date(end, locale))
