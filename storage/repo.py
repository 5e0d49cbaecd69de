"""Queries and writes. Every function takes the session explicitly and never commits on its own unless it says
so; times come in as arguments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from hms import wheel
from hms.config import HmsConfig
from storage import models as m


@dataclass
class ImportReport:
    """What an organisation import changed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.deactivated)} deactivated, {len(self.reactivated)} reactivated")


def _role_rows(config: HmsConfig) -> set[tuple[str, str, str]]:
    r = config.roles
    rows = {("hmsb_adviser", "", r.hmsb_adviser), ("unit_head", "", r.unit_head)}
    rows |= {("management_group", "", e) for e in r.management_group}
    rows |= {("lamu", "", e) for e in r.lamu.members}
    for s in config.sections:
        rows.add(("section_leader", s.key, s.leader))
        if s.safety_rep:
            rows.add(("safety_rep", s.key, s.safety_rep))
    for f in config.floors():
        if f.contact:
            rows.add(("floor_contact", f.key, f.contact))
        if f.deputy:
            rows.add(("floor_deputy", f.key, f.deputy))
    return {(role, scope, email.lower()) for role, scope, email in rows}


async def import_org(session: AsyncSession, config: HmsConfig, now: dt.datetime) -> ImportReport:
    """Bring the organisation tables in line with the config: update in place, never duplicate, never delete.

    People, sections, floors and role assignments that left the file are marked inactive and keep their rows,
    so past answers still name who gave them. Commits.
    """
    report = ImportReport()

    people = {p.email: p for p in (await session.exec(select(m.Person))).all()}
    wanted = {p.email: p for p in config.people}
    for email, src in wanted.items():
        row = people.get(email)
        values = {"name": src.name, "entra_object_id": src.entra_object_id, "title": src.title, "demo": src.demo}
        if row is None:
            session.add(m.Person(email=email, updated_at=now, **values))
            report.created.append(f"person {email}")
            continue
        if not row.active:
            row.active = True
            report.reactivated.append(f"person {email}")
        if any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            report.updated.append(f"person {email}")
        row.updated_at = now
    for email, row in people.items():
        if email not in wanted and row.active:
            row.active = False
            row.updated_at = now
            report.deactivated.append(f"person {email}")

    sections = {s.key: s for s in (await session.exec(select(m.Section))).all()}
    for src in config.sections:
        values = {"name_nb": src.name.nb, "name_en": src.name.en}
        _upsert_keyed(session, m.Section, sections.get(src.key), src.key, values, now, report, "section")
    _deactivate_missing(sections, {s.key for s in config.sections}, now, report, "section")

    floors = {f.key: f for f in (await session.exec(select(m.Floor))).all()}
    for b in config.buildings:
        for src in b.floors:
            values = {"name_nb": src.name.nb, "name_en": src.name.en, "building_key": b.key,
                      "section_key": src.section}
            _upsert_keyed(session, m.Floor, floors.get(src.key), src.key, values, now, report, "floor")
    _deactivate_missing(floors, {f.key for f in config.floors()}, now, report, "floor")

    assignments = {(a.role, a.scope_key, a.person_email): a
                   for a in (await session.exec(select(m.RoleAssignment))).all()}
    wanted_roles = _role_rows(config)
    for key in wanted_roles:
        row = assignments.get(key)
        if row is None:
            session.add(m.RoleAssignment(role=key[0], scope_key=key[1], person_email=key[2], since=now))
            report.created.append(f"role {key[0]} {key[1]} {key[2]}".replace("  ", " "))
        elif not row.active:
            row.active, row.since, row.until = True, now, None
            report.reactivated.append(f"role {key[0]} {key[1]} {key[2]}".replace("  ", " "))
    for key, row in assignments.items():
        if key not in wanted_roles and row.active:
            row.active, row.until = False, now
            report.deactivated.append(f"role {key[0]} {key[1]} {key[2]}".replace("  ", " "))

    await session.commit()
    return report


def _upsert_keyed(session: AsyncSession, model: type[m.Section] | type[m.Floor], row: m.Section | m.Floor | None,
                  key: str, values: dict[str, str], now: dt.datetime, report: ImportReport, label: str) -> None:
    if row is None:
        session.add(model(key=key, updated_at=now, **values))
        report.created.append(f"{label} {key}")
        return
    if not row.active:
        row.active = True
        report.reactivated.append(f"{label} {key}")
    if any(getattr(row, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(row, k, v)
        report.updated.append(f"{label} {key}")
    row.updated_at = now


def _deactivate_missing(rows: dict[str, m.Section] | dict[str, m.Floor], keep: set[str], now: dt.datetime,
                        report: ImportReport, label: str) -> None:
    for key, row in rows.items():
        if key not in keep and row.active:
            row.active = False
            row.updated_at = now
            report.deactivated.append(f"{label} {key}")


# -- occurrences and completions ----------------------------------------------------------------------------


async def ensure_occurrence(session: AsyncSession, occ: wheel.Occurrence, now: dt.datetime) -> m.Occurrence:
    """The stored row for an occurrence, created on first use (flushes, does not commit)."""
    row = (await session.exec(select(m.Occurrence).where(m.Occurrence.key == occ.key))).first()
    if row is None:
        row = m.Occurrence(key=occ.key, task_key=occ.task, cycle=occ.cycle, section_key=occ.section,
                           floor_key=occ.floor, window_start=occ.window_start, due=occ.due, created_at=now)
        session.add(row)
        await session.flush()
    return row


async def record_completion(session: AsyncSession, occ: wheel.Occurrence, by: str, at: dt.datetime,
                            note: str | None = None, link: str | None = None) -> m.Occurrence:
    """Mark an occurrence done (append an event; the first completion wins). Commits."""
    row = await ensure_occurrence(session, occ, at)
    assert row.id is not None
    session.add(m.OccurrenceEvent(occurrence_id=row.id, kind="completed", actor_email=by.lower(), at=at,
                                  note=note, link=link))
    if row.completed_at is None:
        row.completed_at, row.completed_by = at, by.lower()
    await session.commit()
    return row


async def completions(session: AsyncSession, start: dt.date, end: dt.date) -> dict[str, wheel.Completion]:
    """Completions of stored occurrences whose window touches [start, end]."""
    rows = await session.exec(
        select(m.Occurrence).where(
            col(m.Occurrence.completed_at).is_not(None),
            m.Occurrence.window_start <= end,
            m.Occurrence.due >= start,
        )
    )
    return {
        r.key: wheel.Completion(r.key, r.completed_at, r.completed_by or "")
        for r in rows.all()
        if r.completed_at is not None
    }


async def active_people(session: AsyncSession) -> list[m.Person]:
    return list((await session.exec(select(m.Person).where(m.Person.active == True))).all())  # noqa: E712


async def person_by_email(session: AsyncSession, email: str) -> m.Person | None:
    return (await session.exec(select(m.Person).where(m.Person.email == email.lower()))).first()


async def occurrence_events(session: AsyncSession, keys: Iterable[str]) -> list[m.OccurrenceEvent]:
    stmt = (select(m.OccurrenceEvent).join(m.Occurrence)
            .where(col(m.Occurrence.key).in_(list(keys))).order_by(col(m.OccurrenceEvent.at)))
    return list((await session.exec(stmt)).all())
