"""The wheel engine: which occurrences of which tasks fall in a period, who holds them, and their status.

Pure code. Periods are inclusive date ranges in the site's calendar; `now` is always passed in and must be
timezone-aware. An occurrence belongs to a period when its window (opening day to deadline) touches it.

The wheel is kept from a first day on (`tracking starts`: the organisation file's `unit.tracking_starts`, or the day
the database was first migrated). An occurrence due before that day that nobody recorded is `before_start`, never
overdue: a unit that starts using the bot is not told about a past nobody recorded.
"""

from __future__ import annotations

import calendar as _cal
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from hms.config import (
    Continuous,
    EveryNYears,
    HmsConfig,
    Quarterly,
    Task,
    Window,
    Yearly,
    parse_month_day,
)

Status = Literal["upcoming", "open", "done", "overdue", "before_start"]
Scope = Literal["unit", "building", "section", "floor"]
STATUSES: tuple[Status, ...] = ("upcoming", "open", "done", "overdue", "before_start")


@dataclass(frozen=True)
class Occurrence:
    """One instance of a task for one scope (the unit, a building, a section or a floor) in one cycle.

    `section` is the one section the occurrence belongs to (a floor's owner; None for the unit and a building),
    `sections` every section it concerns (a floor's owner and the sections sharing it, a building's sections), who
    see it; `building` the building of a building's or a floor's occurrence."""

    key: str
    task: str
    cycle: str
    scope: Scope
    section: str | None
    floor: str | None
    window_start: dt.date
    due: dt.date
    assignees: tuple[str, ...]
    deputy: str | None = None
    accountable: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    building: str | None = None
    sections: tuple[str, ...] = ()
    reporting_year: int | None = None  # the calendar year a report reports on (report tasks only)

    def concerns(self, section: str) -> bool:
        """Whether the occurrence is (also) the section's."""
        return section == self.section or section in self.sections

    @property
    def assignee(self) -> str | None:
        return self.assignees[0] if self.assignees else None

    def touches(self, start: dt.date, end: dt.date) -> bool:
        return self.window_start <= end and self.due >= start


@dataclass(frozen=True)
class Completion:
    """A stored record that an occurrence was done."""

    occurrence_key: str
    at: dt.datetime
    by: str
    registered_by: str | None = None  # who put it on record afterwards (work done before or outside the bot)


@dataclass(frozen=True)
class DueItem:
    """An occurrence with its status as of some instant."""

    occurrence: Occurrence
    status: Status
    completion: Completion | None = field(default=None)


def local_date(now: dt.datetime, config: HmsConfig) -> dt.date:
    """The site's calendar date at the instant `now` (which must be timezone-aware)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(config.tz).date()


def before_start(occ: Occurrence, starts: dt.date | None) -> bool:
    """Whether the occurrence was due before the wheel was kept (so nobody could have recorded it here)."""
    return starts is not None and occ.due < starts


def status_of(occ: Occurrence, today: dt.date, completion: Completion | None,
              starts: dt.date | None = None) -> Status:
    """done if completed; before_start if due before tracking started; overdue after the deadline day; open
    inside the window; upcoming before it."""
    if completion is not None:
        return "done"
    if before_start(occ, starts):
        return "before_start"
    if today > occ.due:
        return "overdue"
    if today >= occ.window_start:
        return "open"
    return "upcoming"


def occurrences(config: HmsConfig, start: dt.date, end: dt.date) -> list[Occurrence]:
    """Every occurrence of every task whose window touches [start, end], ordered by deadline then key."""
    if end < start:
        raise ValueError("the period ends before it starts")
    found = [
        occ
        for task in config.tasks
        for occ in _task_occurrences(config, task, start.year - 1, end.year + 1)
        if occ.touches(start, end)
    ]
    return sorted(found, key=lambda o: (o.due, o.window_start, o.task, o.key))


def due_items(
    config: HmsConfig,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    completions: Mapping[str, Completion],
    cache: OccurrenceCache | None = None,
    starts: dt.date | None = None,
) -> list[DueItem]:
    """Occurrences touching the period, each with its status as of `now` (`starts`: the day tracking started)."""
    today = local_date(now, config)
    found = cache.get(start, end) if cache is not None else occurrences(config, start, end)
    return [DueItem(o, status_of(o, today, done, starts), done) for o in found
            for done in (completions.get(o.key),)]


OCCURRENCE_MEMO = 256  # task-years indexed by find_occurrence per config (a year of a 2,000-floor unit is ~8,000)


class OccurrenceCache:
    """Occurrences per period for one config. They depend on nothing else, so they can be kept; bounded."""

    def __init__(self, config: HmsConfig, size: int = 64):
        self.config = config
        self.size = size
        self._periods: dict[tuple[dt.date, dt.date], tuple[Occurrence, ...]] = {}

    def get(self, start: dt.date, end: dt.date) -> tuple[Occurrence, ...]:
        key = (start, end)
        found = self._periods.get(key)
        if found is None:
            if len(self._periods) >= self.size:
                self._periods.pop(next(iter(self._periods)))
            found = self._periods[key] = tuple(occurrences(self.config, start, end))
        return found


def find_occurrence(config: HmsConfig, key: str) -> Occurrence | None:
    """Rebuild an occurrence from its key (task:cycle:scope), or None if the key does not name one."""
    parts = key.split(":")
    if len(parts) != 3:
        return None
    task = config.task(parts[0])
    year = parts[1][:4]
    if task is None or not year.isdigit():
        return None
    # every pressed card names its occurrence: index a task's year once instead of building it again per press
    memo_key = ("occurrences_by_key", task.key, int(year))
    index = config.memo.get(memo_key)
    if index is None:
        if len(config.memo) >= OCCURRENCE_MEMO:
            config.memo.clear()
        index = config.memo[memo_key] = {o.key: o for o in _task_occurrences(config, task, int(year), int(year))}
    found: Occurrence | None = index.get(key)
    return found


def task_occurrences(config: HmsConfig, task_key: str, first_year: int, last_year: int) -> list[Occurrence]:
    """Every occurrence of one task in cycles starting in the given years, for every scope, by deadline."""
    task = config.task(task_key)
    found = list(_task_occurrences(config, task, first_year, last_year)) if task else []
    return sorted(found, key=lambda o: (o.due, o.key))


# -- windows per recurrence kind ----------------------------------------------------------------------------


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, _cal.monthrange(year, month)[1])


def _md(year: int, value: str) -> dt.date:
    month, day = parse_month_day(value)
    return dt.date(year, month, day)


def _deadline_window(year: int, due: str, opens: str | None) -> tuple[dt.date, dt.date]:
    """A deadline in `year`; its window opens on `opens` (the year before if that day comes later in the
    calendar) or, by default, on the first day of the month before the deadline's month."""
    deadline = _md(year, due)
    if opens is None:
        first = deadline.replace(day=1)
        return (first - dt.timedelta(days=1)).replace(day=1), deadline
    start = _md(year, opens)
    if start >= deadline:
        start = _md(year - 1, opens)
    return start, deadline


def cycles(task: Task, first_year: int, last_year: int) -> Iterator[tuple[str, dt.date, dt.date]]:
    """(cycle label, window start, deadline) for each cycle of a task starting in the given years."""
    rec = task.recurrence
    for year in range(first_year, last_year + 1):
        if isinstance(rec, Yearly):
            yield (str(year), *_deadline_window(year, rec.due, rec.opens))
        elif isinstance(rec, EveryNYears):
            if (year - rec.anchor_year) % rec.interval == 0:
                yield (str(year), *_deadline_window(year, rec.due, rec.opens))
        elif isinstance(rec, Quarterly):
            for q in range(4):
                last = _month_end(year, 3 * q + rec.due_month)
                due = last if rec.due_day == "last" else last.replace(day=min(int(rec.due_day), last.day))
                yield (f"{year}-Q{q + 1}", dt.date(year, 3 * q + 1, 1), due)
        elif isinstance(rec, Window):
            start = _md(year, rec.start)
            end = _md(year, rec.end)
            if end < start:  # a window across the year end belongs to the year it starts in
                end = _md(year + 1, rec.end)
            yield (str(year), start, end)
        elif isinstance(rec, Continuous) and rec.review_every_months:
            n = rec.review_every_months
            for k in range(12 // n):
                yield (f"{year}-P{k + 1}", dt.date(year, k * n + 1, 1), _month_end(year, k * n + n))
        # events and continuous tasks without a review have no schedule


# -- scopes and people --------------------------------------------------------------------------------------


def resolve_role(config: HmsConfig, role: str, section: str | None, floor: str | None,
                 building: str | None = None, sections: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The people (emails) holding a role for a scope; the unit head first in group roles. Section roles resolve for
    every section of the scope (`sections`, else `section`): a floor two sections share has both leaders."""
    r = config.roles
    flr = config.floor(floor) if floor else None
    if role == "hmsb_adviser":
        return (r.hmsb_adviser,)
    if role == "unit_head":
        return (r.unit_head,)
    if role in ("management_group", "lamu"):
        members = r.management_group if role == "management_group" else r.lamu.members
        return tuple(sorted(dict.fromkeys(members), key=lambda e: e != r.unit_head))
    secs = [sec for key in (sections or ((section,) if section else ())) if (sec := config.section(key))]
    if role == "section_leader":
        return tuple(dict.fromkeys(sec.leader for sec in secs))
    if role == "safety_rep":
        return tuple(dict.fromkeys(sec.safety_rep for sec in secs if sec.safety_rep))
    if role == "floor_contact":
        return (flr.contact,) if flr and flr.contact else ()
    declared = config.declared_role(role)
    if declared is None:
        return ()
    place = {"unit": (None,), "building": (building,), "floor": (floor,),
             "section": tuple(sec.key for sec in secs)}[declared.scope]
    return tuple(dict.fromkeys(email for key, email in declared.held() if key in place))


def _scopes(config: HmsConfig, task: Task) -> Iterable[tuple[str, str | None, str | None, str | None,
                                                           tuple[str, ...]]]:
    """(scope key, section, floor, building, sections) for each place the task is done for."""
    if task.scope == "unit":
        yield ("unit", None, None, None, ())
    elif task.scope == "building":
        for b in config.buildings:
            yield (b.key, None, None, b.key, b.sections)
    elif task.scope == "section":
        for s in config.sections:
            yield (s.key, s.key, None, None, (s.key,))
    else:
        for b in config.buildings:
            for f in b.floors:
                yield (f.key, f.section, f.key, b.key, f.sections)


def _task_occurrences(config: HmsConfig, task: Task, first_year: int, last_year: int) -> Iterator[Occurrence]:
    for cycle, start, due in cycles(task, first_year, last_year):
        for scope_key, section, floor, building, sections in _scopes(config, task):
            flr = config.floor(floor) if floor else None

            def holders(role: str) -> tuple[str, ...]:
                return resolve_role(config, role, section, floor, building, sections)  # noqa: B023

            yield Occurrence(
                key=f"{task.key}:{cycle}:{scope_key}",
                task=task.key,
                cycle=cycle,
                scope=task.scope,
                section=section,
                floor=floor,
                window_start=start,
                due=due,
                assignees=holders(task.responsible),
                deputy=flr.deputy if flr else None,
                accountable=holders(task.accountable) if task.accountable else (),
                participants=tuple(dict.fromkeys(e for role in task.participants for e in holders(role))),
                building=building,
                sections=sections,
                reporting_year=task.reports_on(due) if task.does == "report" else None,
            )
