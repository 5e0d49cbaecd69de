"""Use cases that join the pure wheel with storage: shared by the chat bot and the `hms-bot` command."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.periods import Period
from storage import db, repo


class DatabaseNotReady(Exception):
    """The database is not at the newest migration (run `hms-bot db upgrade`)."""


def prepare_database(url: str) -> None:
    """Make an embedded SQLite database ready by migrating it; PostgreSQL must be migrated explicitly."""
    if url.startswith("sqlite"):
        db.upgrade(url)
        return
    engine = db.create_sync_engine(url)
    try:
        with engine.connect() as conn:
            current = db.current_revision_sync(conn)
    finally:
        engine.dispose()
    if current != db.head_revision():
        raise DatabaseNotReady(f"the database is at {current or 'no version'}, the code needs "
                               f"{db.head_revision()}: run `hms-bot db upgrade`")


def scope_name(config: HmsConfig, occ: wheel.Occurrence, locale: str | None) -> str:
    """The floor, section or unit an occurrence is for, in the user's language."""
    if occ.floor:
        floor = config.floor(occ.floor)
        return floor.name.get(i18n.lang(locale)) if floor else occ.floor
    if occ.section:
        section = config.section(occ.section)
        return section.name.get(i18n.lang(locale)) if section else occ.section
    return config.unit.name.get(i18n.lang(locale))


def filter_items(config: HmsConfig, items: list[wheel.DueItem], *, section: str | None = None,
                 person: str | None = None) -> list[wheel.DueItem]:
    """Keep items of one section and/or held by one person (as assignee)."""
    out = items
    if section:
        out = [i for i in out if i.occurrence.section == section]
    if person:
        email = person.lower()
        out = [i for i in out if email in i.occurrence.assignees]
    return out


async def due_items(session: Any, config: HmsConfig, period: Period, now: dt.datetime,
                    cache: wheel.OccurrenceCache | None = None) -> list[wheel.DueItem]:
    """Every occurrence touching the period with its status from stored completions."""
    done = await repo.completions(session, period.start, period.end)
    return wheel.due_items(config, period.start, period.end, now, done, cache)


async def due_from_database(url: str, config: HmsConfig, period: Period, now: dt.datetime, *,
                            section: str | None = None, person: str | None = None) -> list[wheel.DueItem]:
    """What the `due` command lists: opens the database, reads completions, closes it."""
    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            items = await due_items(session, config, period, now)
    finally:
        await engine.dispose()
    return filter_items(config, items, section=section, person=person)


async def import_org(url: str, config: HmsConfig, now: dt.datetime) -> repo.ImportReport:
    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            return await repo.import_org(session, config, now)
    finally:
        await engine.dispose()


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
        "section": occ.section,
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
    }


async def ask(url: str, config: HmsConfig, questions: list[str], email: str, now: dt.datetime,
              locale: str, card_key: bytes) -> list[Any]:
    """Answer questions as `email` would get them in the chat (same understanding, same cards)."""
    from bot.answers import Answerer, answer_locale
    from bot.rounds import Rounds

    prepare_database(url)
    engine = db.create_engine(url)
    answerer = Answerer(config, Rounds(config, card_key))
    try:
        async with db.session_factory(engine)() as session:
            return [await answerer.answer(session, q, email, now, answer_locale(q, locale)) for q in questions]
    finally:
        await engine.dispose()


async def outbox_listing(url: str, status: str, limit: int) -> list[dict[str, Any]]:
    """Outbox messages in one state, newest first (what the adviser checks for undelivered prompts)."""
    from sqlmodel import col, select

    from storage import models as m

    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            rows = (await session.exec(select(m.OutboxMessage).where(m.OutboxMessage.status == status)
                                       .order_by(col(m.OutboxMessage.id).desc()).limit(limit))).all()
    finally:
        await engine.dispose()
    return [{"key": r.dedupe_key, "kind": r.kind, "recipient": r.recipient_email, "status": r.status,
             "attempts": r.attempts, "last_error": r.last_error, "created_at": r.created_at.isoformat(),
             "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]


async def set_away(url: str, config: HmsConfig, email: str, away: bool, now: dt.datetime) -> None:
    """Mark a person away (prompts go to their deputy) or back."""
    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            person = await repo.person_by_email(session, email)
            if person is None:
                await repo.import_org(session, config, now)
                person = await repo.person_by_email(session, email)
            assert person is not None
            person.away, person.updated_at = away, now
            await session.commit()
    finally:
        await engine.dispose()


async def export_records(url: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """What an inspector asks for: every round, answer, finding and measure (with who and when) in a period."""
    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            data = await repo.records(session, start, end)
    finally:
        await engine.dispose()
    return {"period": {"start": start.isoformat(), "end": end.isoformat()}, **data}
