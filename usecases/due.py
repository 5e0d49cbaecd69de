"""What is due: the wheel's occurrences in a period with their status from stored completions, filtered and
named for people (shared by the chat's answers, the digest and `hms-bot due`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.periods import Period
from storage import repo, sessions
from usecases.database import opened


def scope_name(config: HmsConfig, occ: wheel.Occurrence, locale: str | None) -> str:
    """The floor, building, section or unit an occurrence is for, in the user's language."""
    if occ.floor:
        floor = config.floor(occ.floor)
        return floor.name.get(i18n.lang(locale)) if floor else occ.floor
    if occ.scope == "building" and occ.building:
        building = config.building(occ.building)
        return building.name.get(i18n.lang(locale)) if building else occ.building
    if occ.section:
        section = config.section(occ.section)
        return section.name.get(i18n.lang(locale)) if section else occ.section
    return config.unit.name.get(i18n.lang(locale))


def filter_items(config: HmsConfig, items: list[wheel.DueItem], *, section: str | None = None,
                 person: str | None = None) -> list[wheel.DueItem]:
    """Keep items of one section (also floors and buildings it shares) and/or held by one person (as assignee)."""
    out = items
    if section:
        out = [i for i in out if i.occurrence.concerns(section)]
    if person:
        email = person.lower()
        out = [i for i in out if email in i.occurrence.assignees]
    return out


async def tracking_starts(session: Any, config: HmsConfig) -> dt.date | None:
    """The first day the wheel is kept: the organisation file's `unit.tracking_starts`, else the day (in the unit's
    time zone) the database was first migrated; None when neither is known (then every day counts)."""
    if config.unit.tracking_starts is not None:
        return config.unit.tracking_starts
    first = await repo.first_migrated(session)
    return first.astimezone(config.tz).date() if first else None


async def due_items(session: Any, config: HmsConfig, period: Period, now: dt.datetime,
                    cache: wheel.OccurrenceCache | None = None) -> list[wheel.DueItem]:
    """Every occurrence touching the period with its status from stored completions; what was due before tracking
    started and is not on record is `before_start`."""
    async def make() -> tuple[wheel.DueItem, ...]:
        done = await repo.completions(session, period.start, period.end)
        starts = await tracking_starts(session, config)
        return tuple(wheel.due_items(config, period.start, period.end, now, done, cache, starts))

    # statuses change with the day and the records only: kept until either moves (`sessions.kept`)
    key = ("due_items", id(config), period.start, period.end, wheel.local_date(now, config))
    return list(await sessions.kept(session, key, make))


def by_deadline(items: list[wheel.DueItem], period: Period) -> tuple[list[wheel.DueItem], list[wheel.DueItem]]:
    """Split what touches a period the way people mean "due in a period": the deadlines in it, and the work whose
    window is open in it but whose deadline comes later (not done yet), kept apart."""
    due = [i for i in items if period.start <= i.occurrence.due <= period.end]
    later = [i for i in items if i.occurrence.due > period.end and i.occurrence.window_start <= period.end
             and i.status != "done"]
    return due, later


async def due_from_database(url: str, config: HmsConfig, period: Period, now: dt.datetime, *,
                            section: str | None = None, person: str | None = None
                            ) -> tuple[list[wheel.DueItem], list[wheel.DueItem]]:
    """What the `due` command lists: the deadlines in the period, and apart the windows open in it with a later
    deadline. Opens the database, reads completions, closes it."""
    async with opened(url) as session:
        items = await due_items(session, config, period, now)
    due, later = by_deadline(filter_items(config, items, section=section, person=person), period)
    return due, later


def due_item_json(config: HmsConfig, item: wheel.DueItem, locale: str | None = "nb") -> dict[str, Any]:
    """The JSON form of one due item (stable field names, ISO dates)."""
    occ = item.occurrence
    task = config.task(occ.task)
    assert task is not None
    return {
        "occurrence": occ.key,
        "task": occ.task,
        "title": task.title.get(i18n.lang(locale)),
        "cycle": occ.cycle,
        "scope": occ.scope,
        "kind": task.does,
        "section": occ.section,
        "sections": list(occ.sections),
        "building": occ.building,
        "floor": occ.floor,
        "assignee": occ.assignee,
        "assignees": list(occ.assignees),
        "deputy": occ.deputy,
        "due": occ.due.isoformat(),
        "window_start": occ.window_start.isoformat(),
        "window_end": occ.due.isoformat(),
        "status": item.status,
        "completed_at": item.completion.at.isoformat() if item.completion else None,
        "completed_by": item.completion.by if item.completion else None,
        "registered_afterwards_by": item.completion.registered_by if item.completion else None,
        "reporting_year": occ.reporting_year,
    }
