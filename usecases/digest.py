"""The adviser's weekly digest: where the year stands, what is overdue (newest first), what is due in the next
14 days, open and overdue measures, and undelivered messages; planned once per ISO week."""

from __future__ import annotations

import datetime as dt

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.digest import DigestView, digest_card
from hms import periods, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, format_period
from hms.workdays import WorkCalendar
from storage import repo
from usecases.due import due_items, scope_name, tracking_starts
from usecases.outbox import outbox_row, person_target

DUE_SOON_DAYS = 14


async def weekly_digest(s: AsyncSession, config: HmsConfig, now: dt.datetime, cal: WorkCalendar,
                        existing: set[str]) -> list[dict[str, object]]:
    """The adviser's weekly digest, on the first working day of each ISO week at the policy's send time."""
    today = wheel.local_date(now, config)
    week = today.isocalendar()
    adviser = config.roles.hmsb_adviser
    key = f"digest|{week.year}-W{week.week:02d}|{adviser}"
    monday = dt.date.fromisocalendar(week.year, week.week, 1)
    hour, minute = (int(x) for x in config.reminders.send_at.split(":"))
    first = cal.next_working_day(monday)
    if key in existing or first.isocalendar().week != week.week or now < cal.at(first, dt.time(hour, minute)):
        return []
    locale = config.unit.locale
    # One set of deadlines for the header and every list: the last twelve months and the rest of the year (and
    # the next 14 days across the new year). The header used to count this calendar year only while the overdue
    # list ran back a year: on a fresh database the digest of 4 January 2027 said 0 overdue over a list of 48.
    counted = periods.Period(today - dt.timedelta(days=365),
                             max(periods.year_of(today).end, today + dt.timedelta(days=DUE_SOON_DAYS)))
    touching = await due_items(s, config, counted, now)
    starts = await tracking_starts(s, config)
    items = [i for i in touching if counted.contains(i.occurrence.due) and i.status != "before_start"]
    before_start = sum(counted.contains(i.occurrence.due) and i.status == "before_start" for i in touching)
    counts = tuple(sum(i.status == st for i in items) for st in ("done", "open", "overdue", "upcoming"))

    def line(item: wheel.DueItem) -> str:
        occ = item.occurrence
        task = config.task(occ.task)
        who = ", ".join(p.name for e in occ.assignees[:2] if (p := config.person(e)))
        return (f"{task.title.get(locale) if task else occ.task} – {scope_name(config, occ, locale)} "
                f"({format_date(occ.due, locale)}, {who or '–'})")

    overdue = tuple(line(i) for i in sorted(items, key=lambda i: i.occurrence.due, reverse=True)
                    if i.status == "overdue")  # newest first: what just slipped is the news
    soon = tuple(line(i) for i in items if i.status in ("open", "upcoming")
                 and today <= i.occurrence.due <= today + dt.timedelta(days=DUE_SOON_DAYS))
    measures = await repo.open_measures(s)
    counts_out = await repo.outbox_counts(s)
    view = DigestView(f"{week.week}", counts, overdue, soon, len(measures),  # type: ignore[arg-type]
                      sum(m_.deadline < today for m_, _, _ in measures), counts_out.get("dead", 0),
                      period=format_period(counted.start, counted.end, locale), before_start=before_start,
                      starts=format_date(starts, locale) if starts else "")
    return [outbox_row(key, "digest", person_target(adviser), digest_card(view, locale))]
