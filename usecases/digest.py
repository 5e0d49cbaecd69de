"""The adviser's weekly digest: where the year stands per section, what is overdue (grouped by section, newest
first), the open measures (oldest first), what changed since last week, and what is due in the next 14 days;
planned once per ISO week. `digest_data` is the content as numbers and lists, shared by the card and
`hms-bot digest --preview` (the terminal prints the same content; `--json` gives it as data)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.digest import DigestView, MeasureLine, OverdueGroup, SectionBar, changes_line, digest_card, measures_head
from hms import i18n, periods, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, format_period, t, tn
from hms.workdays import WorkCalendar
from storage import repo
from usecases.database import opened
from usecases.due import due_items, scope_name, tracking_starts
from usecases.feeds import link_token
from usecases.outbox import outbox_row, person_target

DUE_SOON_DAYS = 14
CHANGES_DAYS = 7
STATUSES = ("done", "open", "overdue", "upcoming")


@dataclass(frozen=True)
class DigestItem:
    occurrence: str
    task: str
    title: str
    place: str
    section: str | None  # the section it is counted under (None: the unit's own tasks)
    due: dt.date
    status: str
    who: str


@dataclass(frozen=True)
class DigestMeasure:
    id: int
    description: str
    owner: str
    owner_email: str
    section: str | None
    deadline: dt.date
    created_at: dt.datetime
    overdue: bool


@dataclass(frozen=True)
class Digest:
    """What the digest says, as data: every count is the length of a list here."""

    week: str
    period: periods.Period
    starts: dt.date | None
    before_start: int
    items: tuple[DigestItem, ...]  # every deadline counted
    sections: tuple[tuple[str | None, str, dict[str, int]], ...]  # (key, name, counts per status)
    measures: tuple[DigestMeasure, ...]  # open, oldest first
    rounds_done: tuple[str, ...]  # occurrence keys of rounds completed in the last seven days
    new_deviations: int
    measures_closed: tuple[int, ...]
    due_soon: tuple[DigestItem, ...]
    undelivered: int

    def counts(self) -> dict[str, int]:
        return {s: sum(i.status == s for i in self.items) for s in STATUSES}

    def overdue(self) -> list[DigestItem]:
        """The overdue deadlines, by section (in the sections' order), newest first within each."""
        order = {key: n for n, (key, _, _) in enumerate(self.sections)}
        found = [i for i in self.items if i.status == "overdue"]
        return sorted(found, key=lambda i: (order.get(i.section, len(order)), -i.due.toordinal(), i.occurrence))

    def to_json(self) -> dict[str, Any]:
        """Stable field names, ISO dates."""
        def item(i: DigestItem) -> dict[str, Any]:
            return {**asdict(i), "due": i.due.isoformat()}
        return {
            "week": self.week, "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "tracking_starts": self.starts.isoformat() if self.starts else None, "before_start": self.before_start,
            "counts": self.counts(),
            "sections": [{"section": k, "name": n, **c} for k, n, c in self.sections],
            "overdue": [item(i) for i in self.overdue()],
            "measures": {"open": len(self.measures), "overdue": sum(x.overdue for x in self.measures),
                         "items": [{**asdict(x), "deadline": x.deadline.isoformat(),
                                    "created_at": x.created_at.isoformat()} for x in self.measures]},
            "changes": {"days": CHANGES_DAYS, "rounds_done": len(self.rounds_done),
                        "new_deviations": self.new_deviations, "measures_closed": len(self.measures_closed)},
            "due_soon": [item(i) for i in self.due_soon],
            "undelivered": self.undelivered,
        }


async def digest_data(s: AsyncSession, config: HmsConfig, now: dt.datetime, locale: str | None = None) -> Digest:
    """The digest's content at `now`: the deadlines of the last twelve months and the rest of the year (and the next
    14 days across the new year), one set for the header, the chart and every list."""
    locale = locale or config.unit.locale
    lang = i18n.lang(locale)
    today = wheel.local_date(now, config)
    week = today.isocalendar()
    counted = periods.Period(today - dt.timedelta(days=365),
                             max(periods.year_of(today).end, today + dt.timedelta(days=DUE_SOON_DAYS)))
    touching = await due_items(s, config, counted, now)
    starts = await tracking_starts(s, config)
    inside = [i for i in touching if counted.contains(i.occurrence.due)]
    before_start = sum(i.status == "before_start" for i in inside)
    items = tuple(_item(config, i, locale) for i in inside if i.status != "before_start")

    sections: list[tuple[str | None, str, dict[str, int]]] = []
    for key, name in [*((sec.key, sec.name.get(lang)) for sec in config.sections),
                      (None, config.unit.name.get(lang))]:
        mine = [i for i in items if i.section == key]
        if mine:
            sections.append((key, name, {st: sum(i.status == st for i in mine) for st in STATUSES}))

    measures = []
    for m_id, owner_email, _, deadline, created_at, description, section_key, *_ in await repo.open_measure_rows(s):
        owner = config.person(owner_email)
        measures.append(DigestMeasure(m_id, description or "–", owner.name if owner else owner_email, owner_email,
                                      section_key, deadline, created_at, deadline < today))
    measures.sort(key=lambda x: (x.created_at, x.id))

    since = now - dt.timedelta(days=CHANGES_DAYS)
    rounds = {t_.key for t_ in config.tasks_of_kind("checklist_round", "safety_round")}
    done = tuple(sorted(k for k, task, _ in await repo.completed_between(s, since, now) if task in rounds))
    deviations = len(await repo.findings_between(s, since, now))
    closed = tuple(await repo.measures_closed_between(s, since, now))
    soon = tuple(i for i in items if i.status in ("open", "upcoming")
                 and today <= i.due <= today + dt.timedelta(days=DUE_SOON_DAYS))
    undelivered = (await repo.outbox_counts(s)).get("dead", 0)
    return Digest(f"{week.week}", counted, starts, before_start, items, tuple(sections), tuple(measures), done,
                  deviations, closed, tuple(sorted(soon, key=lambda i: (i.due, i.occurrence))), undelivered)


def _item(config: HmsConfig, item: wheel.DueItem, locale: str) -> DigestItem:
    occ = item.occurrence
    task = config.task(occ.task)
    who = ", ".join(p.name for e in occ.assignees[:2] if (p := config.person(e)))
    section = occ.section or (occ.sections[0] if len(occ.sections) == 1 else None)
    return DigestItem(occ.key, occ.task, task.title.get(i18n.lang(locale)) if task else occ.task,
                      scope_name(config, occ, locale), section, occ.due, item.status, who or "–")


def digest_view(config: HmsConfig, digest: Digest, locale: str) -> DigestView:
    """The card's view of the digest's content."""
    lang = i18n.lang(locale)
    names = {key: name for key, name, _ in digest.sections}

    def line(i: DigestItem) -> str:
        return f"{i.title} – {i.place} ({format_date(i.due, locale)}, {i.who})"

    groups: list[OverdueGroup] = []
    for item in digest.overdue():
        name = names.get(item.section) or config.unit.name.get(lang)
        if groups and groups[-1].name == name:
            groups[-1] = OverdueGroup(name, (*groups[-1].lines, line(item)))
        else:
            groups.append(OverdueGroup(name, (line(item),)))
    counts = digest.counts()
    return DigestView(
        digest.week, (counts["done"], counts["open"], counts["overdue"], counts["upcoming"]),
        tuple(SectionBar(name, c["done"], c["open"], c["overdue"], c["upcoming"]) for _, name, c in digest.sections),
        tuple(groups),
        tuple(MeasureLine(t(locale, "measures.numbered", id=x.id, description=x.description[:80]), x.owner,
                          format_date(x.deadline, locale), x.overdue) for x in digest.measures),
        sum(x.overdue for x in digest.measures),
        (len(digest.rounds_done), digest.new_deviations, len(digest.measures_closed)),
        tuple(line(i) for i in digest.due_soon), digest.undelivered,
        period=format_period(digest.period.start, digest.period.end, locale), before_start=digest.before_start,
        starts=format_date(digest.starts, locale) if digest.starts else "")


def digest_text(config: HmsConfig, digest: Digest, locale: str) -> str:
    """The digest for a terminal: the same content as the card, as plain lines."""
    view = digest_view(config, digest, locale)
    done, open_, overdue, upcoming = view.counts
    out = [t(locale, "digest.title", week=view.week),
           t(locale, "digest.counts", period=view.period,
             counts=t(locale, "status.counts", done=done, open=open_, overdue=overdue, upcoming=upcoming))]
    if view.before_start:
        out.append(t(locale, "digest.before_start", count=view.before_start, day=view.starts))
    if view.undelivered:
        out.append(tn(locale, "digest.undelivered", view.undelivered))
    out += ["", t(locale, "digest.chart_title")]
    width = max((len(b.name) for b in view.sections), default=0)
    out += [f"  {b.name.ljust(width)}  " + t(locale, "status.counts", done=b.done, open=b.open, overdue=b.overdue,
                                             upcoming=b.upcoming) for b in view.sections]
    out += ["", t(locale, "digest.changes"), "  " + changes_line(view, locale)]
    out += ["", t(locale, "digest.overdue_count", count=overdue)]
    for group in view.overdue:
        out.append(f"  {group.name} ({len(group.lines)})")
        out += [f"    - {x}" for x in group.lines]
    out += ["", measures_head(view, locale)]
    out += ["  - " + t(locale, "digest.measure_overdue" if x.overdue else "digest.measure", text=x.text,
                       owner=x.owner, deadline=x.deadline) for x in view.measures]
    out += ["", t(locale, "digest.due_soon")] + [f"  - {x}" for x in view.due_soon]
    return "\n".join(out)


async def weekly_digest(s: AsyncSession, config: HmsConfig, now: dt.datetime, cal: WorkCalendar,
                        existing: set[str], *, public_url: str | None = None, dry_run: bool = False,
                        ) -> list[dict[str, object]]:
    """The adviser's weekly digest, on the first working day of each ISO week at the policy's send time. Where the
    bot is reached at `public_url`, the card links to the unit's wheel as a picture (`/wheel/<token>.svg`, on the
    unit feed's token, made for the adviser the first time; a dry run only uses one that exists)."""
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
    digest = await digest_data(s, config, now, locale)
    view = digest_view(config, digest, locale)
    if public_url:
        token = await _unit_token(s, config, adviser, now, create=not dry_run)
        if token is not None:
            view = replace(view, wheel_url=f"{public_url.rstrip('/')}/wheel/{token}.svg")
    return [outbox_row(key, "digest", person_target(adviser), digest_card(view, locale))]


async def _unit_token(s: AsyncSession, config: HmsConfig, adviser: str, now: dt.datetime, *, create: bool
                      ) -> str | None:
    """The unit feed's live token (the calendar's and the wheel's), made for the adviser if `create`."""
    if create:
        return await link_token(s, config, "unit", None, adviser, now)
    found = await repo.live_feed_token(s, "unit", None)
    return found.token if found is not None else None


async def preview(url: str, config: HmsConfig, now: dt.datetime, locale: str) -> Digest:
    """The digest as it would be sent at `now` (`hms-bot digest --preview`); reads only."""
    async with opened(url) as s:
        return await digest_data(s, config, now, locale)
