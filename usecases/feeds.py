"""The wheel in people's calendars: an iCalendar feed per person, per section and for the whole unit, behind an
unguessable, revocable token (`GET /calendar/<token>.ics`; the same token serves the wheel's picture).

Each occurrence is an all-day event on its deadline (with an alarm a week before) and, when it has a window, a
multi-day event over the window, marked free. UIDs are built from the occurrence, so a calendar that fetches the
feed again updates its events instead of adding new ones; the status (done by whom and when, open, overdue) is in
the description. The feed spans last year to next year."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import t
from hms.periods import Period
from storage import models as m, repo
from usecases.due import due_items, filter_items, scope_name
from usecases.inspection import plan_status

KINDS = ("person", "section", "unit")
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def new_token() -> str:
    """An unguessable token (256 bits), safe in a URL, never starting with "-" (`hms-bot calendar revoke TOKEN`
    would read such a token as an option: one token in 64 did)."""
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


class FeedError(Exception):
    """A feed that cannot be made: an unknown person or section (the message says which)."""


@dataclass(frozen=True)
class Feed:
    """What a token shows: one person's, one section's or the whole unit's wheel."""

    kind: str
    subject: str | None

    def items(self, config: HmsConfig, items: list[wheel.DueItem]) -> list[wheel.DueItem]:
        if self.kind == "person":
            return filter_items(config, items, person=self.subject)
        if self.kind == "section":
            return filter_items(config, items, section=self.subject)
        return items

    def name(self, config: HmsConfig, locale: str) -> str:
        """The calendar's name, as Outlook shows it."""
        return t(locale, f"feed.name.{self.kind}", name=self.label(config, locale))

    def label(self, config: HmsConfig, locale: str) -> str:
        """Whose wheel it is: the person's or the section's name, or the unit's."""
        lang = i18n.lang(locale)
        if self.kind == "person" and self.subject:
            person = config.person(self.subject)
            label = person.name if person else self.subject
        elif self.kind == "section" and self.subject:
            section = config.section(self.subject)
            label = section.name.get(lang) if section else self.subject
        else:
            label = config.unit.name.get(lang)
        return label


def check_feed(config: HmsConfig, kind: str, subject: str | None) -> Feed:
    """A feed of a person or a section the organisation file knows, or of the unit."""
    if kind not in KINDS:
        raise FeedError(f"a feed is for a person, a section or the unit, not {kind!r}")
    if kind == "person" and (subject is None or config.person(subject) is None):
        raise FeedError(f"no person {subject!r} in the organisation file")
    if kind == "section" and (subject is None or config.section(subject) is None):
        raise FeedError(f"no section {subject!r} (sections: {', '.join(s.key for s in config.sections)})")
    return Feed(kind, subject.lower() if kind == "person" and subject else (subject if kind == "section" else None))


async def link_token(s: Any, config: HmsConfig, kind: str, subject: str | None, by: str, now: dt.datetime) -> str:
    """The live token of a feed, made the first time it is asked for."""
    feed = check_feed(config, kind, subject)
    found = await repo.live_feed_token(s, feed.kind, feed.subject)
    if found is not None:
        return found.token
    return (await repo.add_feed_token(s, new_token(), feed.kind, feed.subject, by.lower(), now)).token


async def feed_of(s: Any, token: str) -> Feed | None:
    """The feed a token shows, unless it was revoked or never existed."""
    if not TOKEN.fullmatch(token):
        return None
    row: m.FeedToken | None = await repo.feed_token(s, token)
    return Feed(row.kind, row.subject) if row else None


def feed_period(today: dt.date) -> Period:
    return Period(dt.date(today.year - 1, 1, 1), dt.date(today.year + 1, 12, 31))


async def feed_items(s: Any, config: HmsConfig, feed: Feed, period: Period, now: dt.datetime) -> list[wheel.DueItem]:
    return feed.items(config, await due_items(s, config, period, now))


def status_text(config: HmsConfig, item: wheel.DueItem, locale: str) -> str:
    """'utført av Fatima Ali 10. mars 2027', 'utført for sent ...', 'åpen', 'ikke utført (fristen er passert)'."""
    status = t(locale, f"pack.plan.{plan_status(item, config.tz)}")
    if item.completion is None:
        return status
    person = config.person(item.completion.by)
    when = i18n.format_date(item.completion.at.astimezone(config.tz).date(), locale)
    return f"{status}: {t(locale, 'feed.done', who=person.name if person else item.completion.by, when=when)}"


def calendar(config: HmsConfig, feed: Feed, items: list[wheel.DueItem], now: dt.datetime, locale: str) -> bytes:
    """The feed as iCalendar (RFC 5545) text."""
    from icalendar import Alarm, Calendar

    lang = i18n.lang(locale)
    cal = Calendar()
    name = feed.name(config, locale)
    cal.add("prodid", "-//HMS-hjulet//årshjul//NB")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("name", name)
    cal.add("x-wr-calname", name)  # the name Outlook and Google show
    cal.add("x-wr-timezone", config.unit.timezone)
    cal.add("refresh-interval", dt.timedelta(hours=12), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT12H")
    stamp = now.astimezone(dt.UTC)
    domain = f"{config.unit.key}.hms-hjulet"
    for item in items:
        occ = item.occurrence
        task = config.task(occ.task)
        title = task.title.get(lang) if task else occ.task
        scope = scope_name(config, occ, locale)
        people = ", ".join(p.name if (p := config.person(e)) else e for e in occ.assignees)
        lines = [t(locale, "feed.status", status=status_text(config, item, locale)),
                 t(locale, "feed.responsible", names=people or "–")]
        if task and task.description:
            lines.append(task.description.get(lang))
        description = "\n".join(lines)
        deadline = _event(f"{occ.key}@{domain}", stamp, t(locale, "feed.deadline", task=title, scope=scope),
                          occ.due, occ.due, description)
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", t(locale, "feed.alarm", task=title, scope=scope))
        alarm.add("trigger", dt.timedelta(days=-7))
        deadline.add_component(alarm)
        cal.add_component(deadline)
        if occ.window_start < occ.due:
            cal.add_component(_event(f"{occ.key}:window@{domain}", stamp, t(locale, "feed.window", task=title,
                                                                            scope=scope),
                                     occ.window_start, occ.due, description))
    return bytes(cal.to_ical())


def _event(uid: str, stamp: dt.datetime, summary: str, first: dt.date, last: dt.date, description: str) -> Any:
    """An all-day event from `first` to `last` (both included), shown as free time."""
    from icalendar import Event

    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("summary", summary)
    event.add("dtstart", first)
    event.add("dtend", last + dt.timedelta(days=1))
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    event.add("categories", ["HMS"])
    return event


async def serve_calendar(s: Any, config: HmsConfig, token: str, now: dt.datetime) -> bytes | None:
    """The calendar behind a token (None: revoked or unknown), in the unit's language."""
    feed = await feed_of(s, token)
    if feed is None:
        return None
    today = now.astimezone(config.tz).date()
    items = await feed_items(s, config, feed, feed_period(today), now)
    return calendar(config, feed, items, now, config.unit.locale)


async def revoke(s: Any, token: str, now: dt.datetime) -> bool:
    """Revoke a feed's token: its calendar and picture links stop working at once."""
    return await repo.revoke_feed_token(s, token, now)
