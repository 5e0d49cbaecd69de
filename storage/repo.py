"""Queries and writes. Every function takes the session explicitly and never commits on its own unless it says
so; times come in as arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from hms import wheel
from hms.config import HmsConfig
from storage import db, models as m, sessions


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


_IMPORT_LOCK = 0x484D535F4F5247  # "HMS_ORG": the PostgreSQL advisory lock that serialises organisation imports


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
    for declared in r.declared:  # the unit's own roles are on record too: who is responsible for what
        rows |= {(declared.key, scope or "", email) for scope, email in declared.held()}
    return {(role, scope, email.lower()) for role, scope, email in rows}


async def import_org(session: AsyncSession, config: HmsConfig, now: dt.datetime) -> ImportReport:
    """Bring the organisation tables in line with the config: update in place, never duplicate, never delete.

    People, sections, floors and role assignments that left the file are marked inactive and keep their rows,
    so past answers still name who gave them. Commits.

    Every replica imports at start, and several start at once: on PostgreSQL the import holds a transaction
    lock, so imports run one after the other (the later ones find the rows and change nothing) instead of
    racing to insert the same people. SQLite serves one process, whose writes are serialised anyway.
    """
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_IMPORT_LOCK)))  # type: ignore[call-overload]
    report = ImportReport()

    people = {p.email: p for p in (await session.exec(select(m.Person))).all()}
    wanted_people: dict[str, dict[str, Any]] = {}
    for p in config.people:
        values: dict[str, Any] = {"name": p.name, "title": p.title, "demo": p.demo}
        if p.entra_object_id:  # an id learned from Teams is kept when the file has none
            values["entra_object_id"] = p.entra_object_id
        wanted_people[p.email] = values
    _sync_rows(session, m.Person, "email", people, wanted_people, now, report, "person")

    sections = {s.key: s for s in (await session.exec(select(m.Section))).all()}
    _sync_rows(session, m.Section, "key", sections,
               {s.key: {"name_nb": s.name.nb, "name_en": s.name.en} for s in config.sections}, now, report, "section")

    floors = {f.key: f for f in (await session.exec(select(m.Floor))).all()}
    _sync_rows(session, m.Floor, "key", floors,
               {f.key: {"name_nb": f.name.nb, "name_en": f.name.en, "building_key": b.key, "section_key": f.section}
                for b in config.buildings for f in b.floors}, now, report, "floor")

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


def _sync_rows(session: AsyncSession, model: Any, key_field: str, rows: dict[str, Any],
               wanted: dict[str, dict[str, Any]], now: dt.datetime, report: ImportReport, label: str) -> None:
    """Create, update, reactivate and deactivate rows of one table so they match `wanted` (never delete)."""
    for key, values in wanted.items():
        row = rows.get(key)
        if row is None:
            session.add(model(**{key_field: key}, updated_at=now, **values))
            report.created.append(f"{label} {key}")
            continue
        if not row.active:
            row.active = True
            report.reactivated.append(f"{label} {key}")
        if any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            report.updated.append(f"{label} {key}")
        row.updated_at = now
    for key, row in rows.items():
        if key not in wanted and row.active:
            row.active = False
            row.updated_at = now
            report.deactivated.append(f"{label} {key}")


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT (for ON CONFLICT DO NOTHING)."""
    return db.dialect_insert(session.bind.dialect.name if session.bind is not None else "sqlite")


async def insert_absent(session: AsyncSession, model: type[SQLModel], unique: str, /, **values: Any) -> bool:
    """Insert a row unless one with the same value in its `unique` column exists (INSERT .. ON CONFLICT DO
    NOTHING, on SQLite and PostgreSQL alike; on PostgreSQL a concurrent insert of the same key is waited for).
    True when this call created it. Does not commit; read the row back with a query afterwards."""
    table = m.table(model)
    stmt = _insert(session)(table).values(**values).on_conflict_do_nothing(index_elements=[unique]).returning(
        table.c[unique])
    return (await session.exec(stmt)).first() is not None  # type: ignore[call-overload]


# -- occurrences and completions ----------------------------------------------------------------------------


async def ensure_occurrence(session: AsyncSession, occ: wheel.Occurrence, now: dt.datetime) -> m.Occurrence:
    """The stored row for an occurrence, created on first use (does not commit).

    Twenty people may press the first button of a fresh round at once: the row is inserted if absent and the
    winner read back, never a select-then-insert that loses the race with a unique violation.
    """
    stmt = select(m.Occurrence).where(m.Occurrence.key == occ.key)
    row = (await session.exec(stmt)).first()
    if row is None:
        await insert_absent(session, m.Occurrence, "key", key=occ.key, task_key=occ.task, cycle=occ.cycle,
                            section_key=occ.section, floor_key=occ.floor, building_key=occ.building,
                            window_start=occ.window_start,
                            due=occ.due, created_at=now)
        row = (await session.exec(stmt)).one()
    return row


async def record_completion(session: AsyncSession, occ: wheel.Occurrence, by: str, at: dt.datetime,
                            note: str | None = None, link: str | None = None) -> m.Occurrence:
    """Mark an occurrence done (append an event; the first completion wins). Commits."""
    row = await ensure_occurrence(session, occ, at)
    assert row.id is not None
    session.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=by.lower(), at=at,
                                  note=note, link=link))
    if row.completed_at is None:
        row.completed_at, row.completed_by = at, by.lower()
    await session.commit()
    return row


async def register_completion(session: AsyncSession, occ: wheel.Occurrence, done_at: dt.datetime, by: str,
                              registered_by: str, registered_at: dt.datetime, note: str | None = None
                              ) -> tuple[m.Occurrence, bool]:
    """Put work done before or outside the bot on record: a completion at `done_at` by `by`, marked as registered
    afterwards by `registered_by` at `registered_at`. Like every completion a compare-and-set: when someone
    completed the occurrence first, nothing changes and the stored row comes back with False. Commits."""
    row = await ensure_occurrence(session, occ, registered_at)
    created = await complete_once(session, row, by.lower(), done_at, registered_by=registered_by.lower())
    if created:
        session.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=by.lower(), at=done_at,
                                      note=note, registered_by=registered_by.lower(), registered_at=registered_at))
    await session.commit()
    stmt = select(m.Occurrence).where(m.Occurrence.key == occ.key).execution_options(populate_existing=True)
    return (await session.exec(stmt)).one(), created


# two columns: sqlmodel's exec turns a one-column select into bare values, the readers' rows() does not
_FIRST_MIGRATED = select(m.DatabaseInfo.id, m.DatabaseInfo.first_migrated_at).where(m.DatabaseInfo.id == 1)


async def first_migrated(session: AsyncSession) -> dt.datetime | None:
    """When the database was first migrated (None when nothing is on record: a database no program with a clock
    has prepared yet)."""
    found = await sessions.rows(session, _FIRST_MIGRATED, {})
    return found[0][1] if found else None


_COMPLETIONS = (
    select(m.Occurrence.key, m.Occurrence.completed_at, m.Occurrence.completed_by, m.Occurrence.registered_by)
    .where(col(m.Occurrence.completed_at).is_not(None), m.Occurrence.window_start <= sa.bindparam("end"),
           m.Occurrence.due >= sa.bindparam("start"))
)  # built once: every chat answer runs it


async def completions(session: AsyncSession, start: dt.date, end: dt.date) -> dict[str, wheel.Completion]:
    """Completions of stored occurrences whose window touches [start, end]."""
    found = await sessions.rows(session, _COMPLETIONS, {"start": start, "end": end})
    return {key: wheel.Completion(key, at, by or "", registered) for key, at, by, registered in found
            if at is not None}


async def person_by_email(session: AsyncSession, email: str) -> m.Person | None:
    return (await session.exec(select(m.Person).where(m.Person.email == email.lower()))).first()


async def occurrence_events(session: AsyncSession, keys: Iterable[str]) -> list[m.OccurrenceEvent]:
    stmt = (select(m.OccurrenceEvent).join(m.Occurrence)
            .where(col(m.Occurrence.key).in_(list(keys))).order_by(col(m.OccurrenceEvent.at)))
    return list((await session.exec(stmt)).all())


# -- inbound activities and conversation references -----------------------------------------------------------




CONVERSATION_FIELDS = ("conversation_type", "service_url", "tenant_id", "channel_id", "team_id", "teams_channel_id",
                       "bot_id", "user_teams_id", "user_aad_id", "person_email", "locale", "timezone")


async def upsert_conversation(session: AsyncSession, conversation_id: str, now: dt.datetime,
                              **fields: str | None) -> tuple[m.ConversationRef, bool]:
    """Store or refresh a conversation's coordinates; None values never overwrite what is known, and a row whose
    coordinates are unchanged is not written (`updated_at` says when they last changed).

    A conversation that makes someone reachable (a personal chat now linked to its person, a channel of a team,
    or one active again) releases the messages that waited for it: they are due at once (`release_waiting`).

    Returns the row and whether it is fresh (new, or active again after an uninstall). Commits.
    """
    unknown = set(fields) - set(CONVERSATION_FIELDS)
    if unknown:
        raise TypeError(f"unknown conversation fields: {sorted(unknown)}")
    stmt = select(m.ConversationRef).where(m.ConversationRef.conversation_id == conversation_id)
    row = (await session.exec(stmt)).first()
    fresh = row is not None and not row.active
    if row is None:
        # Teams sends installationUpdate and conversationUpdate at once: insert-if-absent, then read the winner
        fresh = await insert_absent(
            session, m.ConversationRef, "conversation_id", conversation_id=conversation_id,
            conversation_type=fields.get("conversation_type") or "personal",
            service_url=fields.get("service_url") or "", channel_id=fields.get("channel_id") or "msteams",
            active=True, created_at=now, updated_at=now)
        row = (await session.exec(stmt.execution_options(populate_existing=True))).one()
    changed = {k: v for k, v in fields.items() if v is not None and getattr(row, k) != v}
    # the bot can now reach someone it could not: a person's chat, or a channel of a team it was added to
    reachable = fresh or bool(changed.keys() & {"person_email", "teams_channel_id"})
    if changed or not row.active:
        for key, value in changed.items():
            setattr(row, key, value)
        row.active = True
        row.updated_at = now
    await session.commit()
    if reachable:
        # after the commit, so that a delivery deciding at this moment that nobody can be reached either sees this
        # conversation when it looks again (Delivery._no_conversation), or has recorded the wait this releases
        await release_waiting(session, now, emails=[row.person_email] if row.person_email else [],
                              channel=row.conversation_type == "channel" and bool(row.teams_channel_id))
    return row, fresh


async def deactivate_conversation(session: AsyncSession, conversation_id: str, now: dt.datetime) -> bool:
    """Mark a conversation unreachable (the bot was uninstalled or removed). Commits."""
    row = (await session.exec(select(m.ConversationRef).where(
        m.ConversationRef.conversation_id == conversation_id))).first()
    if row is None or not row.active:
        return False
    row.active, row.updated_at = False, now
    await session.commit()
    return True


async def personal_conversation(session: AsyncSession, email: str) -> m.ConversationRef | None:
    """The active 1:1 chat with a person, if the bot has one."""
    stmt = (select(m.ConversationRef).where(m.ConversationRef.person_email == email.lower(),
                                            m.ConversationRef.conversation_type == "personal",
                                            m.ConversationRef.active == True)  # noqa: E712
            .order_by(col(m.ConversationRef.updated_at).desc()))
    return (await session.exec(stmt)).first()


async def personal_conversations(session: AsyncSession, emails: set[str]) -> dict[str, m.ConversationRef]:
    """The active 1:1 chat of each person (the most recently refreshed when there are several), in one query."""
    if not emails:
        return {}
    stmt = (select(m.ConversationRef).where(col(m.ConversationRef.person_email).in_(sorted(emails)),
                                            m.ConversationRef.conversation_type == "personal",
                                            m.ConversationRef.active == True)  # noqa: E712
            .order_by(col(m.ConversationRef.updated_at)))
    return {r.person_email: r for r in (await session.exec(stmt)).all() if r.person_email}


async def person_by_teams_id(session: AsyncSession, teams_user_id: str) -> m.Person | None:
    return (await session.exec(select(m.Person).where(m.Person.teams_user_id == teams_user_id))).first()


async def remember_teams_user(session: AsyncSession, email: str, teams_user_id: str, aad_object_id: str | None,
                              now: dt.datetime) -> None:
    """Link a person to their Teams user id (and Entra object id when the file has none); writes only what is
    new. Commits."""
    person = await person_by_email(session, email)
    if person is not None and (person.teams_user_id != teams_user_id
                               or (aad_object_id and not person.entra_object_id)):
        person.teams_user_id = teams_user_id
        person.entra_object_id = person.entra_object_id or aad_object_id
        person.updated_at = now
    await session.commit()


async def remember_thread(session: AsyncSession, key: str, teams_channel_id: str, conversation_id: str,
                          activity_id: str | None, now: dt.datetime) -> m.ChannelThread:
    """Store the channel thread started for `key`, or, when another replica stored one first, return that one
    (its thread is the one every reply goes to). Commits."""
    await insert_absent(session, m.ChannelThread, "key", key=key, teams_channel_id=teams_channel_id,
                        conversation_id=conversation_id, activity_id=activity_id, created_at=now)
    thread = (await session.exec(select(m.ChannelThread).where(m.ChannelThread.key == key))).one()
    await session.commit()
    return thread


# -- the outbox -----------------------------------------------------------------------------------------------


async def enqueue(session: AsyncSession, rows: list[dict[str, object]], now: dt.datetime) -> int:
    """Insert outbox messages; a row whose dedupe_key exists already is skipped. Returns how many were new.
    Commits."""
    if not rows:
        return 0
    table = m.table(m.OutboxMessage)
    values = [{"status": "pending", "attempts": 0, "not_before": now, "created_at": now, **r} for r in rows]
    stmt = _insert(session)(table).values(values).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
        table.c.id)
    new = len((await session.exec(stmt)).all())  # type: ignore[call-overload]
    await session.commit()
    return new


_CLAIM_LOCK = 0x484D535F4F5554  # "HMS_OUT": the PostgreSQL advisory lock that serialises outbox claims


async def claim_outbox(session: AsyncSession, now: dt.datetime, limit: int, lease: dt.timedelta,
                       spacing: dt.timedelta = dt.timedelta(0)) -> list[m.OutboxMessage]:
    """Claim up to `limit` due messages until now + lease, under one fresh claim token. Commits.

    Safe with several replicas: on PostgreSQL claims are serialised by an advisory lock (a claim is a few short
    statements) and rows are locked with FOR UPDATE SKIP LOCKED; SQLite has a single writer. A person with a
    message under a live claim, or one sent within `spacing`, gets nothing from this claim: one claimant at a time
    sends to a person, and never sooner than `spacing` after the last message, whichever replica sent it.
    (Messages to the LAMU channel, a handful per completed round, are spaced by each sender's own limiter.)

    The rows come back detached: what happens to them afterwards is recorded only through `fenced_update`, so
    nothing can write to a row without checking that this claim still holds it."""
    if _dialect(session) == "postgresql":
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK)))  # type: ignore[call-overload]
    outbox = m.OutboxMessage
    busy = set((await session.exec(
        select(outbox.recipient_email).distinct()
        .where(col(outbox.recipient_email).is_not(None),
               (col(outbox.claimed_until) >= now) | (col(outbox.sent_at) > now - spacing)))).all())
    stmt = (select(outbox).where(*_claimable(now))
            .order_by(col(outbox.not_before), col(outbox.id)).limit(limit))
    if busy:
        stmt = stmt.where(col(outbox.recipient_email).is_(None) | col(outbox.recipient_email).not_in(sorted(busy)))
    if _dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.exec(stmt)).all())
    token = uuid.uuid4().hex
    for row in rows:
        row.claimed_until, row.claim_token = now + lease, token
    await session.commit()
    for row in rows:
        session.expunge(row)
    return rows


def _claimable(now: dt.datetime) -> tuple[Any, ...]:
    outbox = m.OutboxMessage
    return (col(outbox.status).in_(["pending", "retry"]), outbox.not_before <= now,
            col(outbox.claimed_until).is_(None) | (col(outbox.claimed_until) < now))


async def outbox_due(session: AsyncSession, now: dt.datetime) -> bool:
    """Whether any message is due and unclaimed (after an empty claim: held back only by the spacing)."""
    found = (await session.exec(select(m.OutboxMessage.id).where(*_claimable(now)).limit(1))).first()
    await session.commit()
    return found is not None


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else ""


async def fenced_update(session: AsyncSession, msg: m.OutboxMessage, **values: object) -> bool:
    """Write to a claimed outbox row only while `msg`'s claim still holds it (the row carries its token);
    False when the lease ran out and another sender claimed the row since. No commit."""
    result = await session.exec(  # type: ignore[call-overload]
        sa.update(m.OutboxMessage)
        .where(col(m.OutboxMessage.id) == msg.id, col(m.OutboxMessage.claim_token) == msg.claim_token)
        .values(**values).execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)


async def reserve_slot(engine: AsyncEngine, name: str, earliest: float, spacing: float, horizon: float) -> float:
    """Take the next slot of the shared schedule `name` (PostgreSQL): the later of the schedule's next slot and
    `earliest`, and move the schedule on to `spacing` after it. One statement in autocommit, so the row is locked
    only while it runs. Times are seconds since the epoch on the senders' clocks. A next slot more than `horizon`
    seconds beyond the database's own clock was left by a sender whose clock ran ahead: it is dropped rather than
    waited for."""
    table = m.table(m.DeliveryRate)
    ahead = table.c.next_at > sa.extract("epoch", sa.func.clock_timestamp()) + horizon
    start = sa.case((ahead, earliest), else_=sa.func.greatest(table.c.next_at, earliest))
    stmt = (db.dialect_insert("postgresql")(table).values(name=name, next_at=earliest + spacing)
            .on_conflict_do_update(index_elements=["name"], set_={"next_at": start + spacing})
            .returning(table.c.next_at))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return float((await conn.execute(stmt)).scalar_one()) - spacing


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = (await session.exec(select(m.OutboxMessage.status, sa.func.count()).group_by(
        m.OutboxMessage.status))).all()
    return {status: int(n) for status, n in rows}


async def outbox_depth(session: AsyncSession, now: dt.datetime) -> dict[str, int]:
    """The outbox's depth for operations, in one query: messages `pending` and to `retry`, and `dead`; of those
    to retry, `waiting` for a chat with their recipient, and of those pending or to retry, `claimed` (under a live
    claim). Sent messages are left out: they are the record, not a queue."""
    outbox = m.OutboxMessage
    live = sa.case((col(outbox.claimed_until) >= now, 1), else_=0)
    waiting = sa.case((col(outbox.last_error) == WAITING, 1), else_=0)
    rows = (await session.exec(select(  # type: ignore[call-overload]
        outbox.status, sa.func.count(), sa.func.sum(live), sa.func.sum(waiting))
        .where(col(outbox.status).in_(["pending", "retry", "dead"])).group_by(outbox.status))).all()
    await session.commit()
    depth = {"pending": 0, "retry": 0, "waiting": 0, "claimed": 0, "dead": 0}
    for status, n, claimed, waits in rows:
        depth[status] = int(n)
        if status != "dead":
            depth["claimed"] += int(claimed or 0)
        if status == "retry":
            depth["waiting"] = int(waits or 0)
    return depth


# -- rounds: answers, completion, findings, measures ----------------------------------------------------------


async def occurrence_row(session: AsyncSession, key: str) -> m.Occurrence | None:
    return (await session.exec(select(m.Occurrence).where(m.Occurrence.key == key))).first()


async def final_answers(session: AsyncSession, occurrence_id: int, *, submission_id: str | None = None
                        ) -> dict[str, m.ChecklistAnswer]:
    """The submitted answer per item of an occurrence (optionally of one submission only)."""
    stmt = select(m.ChecklistAnswer).where(m.ChecklistAnswer.occurrence_id == occurrence_id)
    if submission_id is not None:
        stmt = stmt.where(m.ChecklistAnswer.submission_id == submission_id)
    rows = (await session.exec(stmt.order_by(col(m.ChecklistAnswer.id)))).all()
    return {r.item_key: r for r in rows}


_DRAFT = (select(m.ChecklistDraft.item_key, m.ChecklistDraft.answer, m.ChecklistDraft.comment)
          .where(m.ChecklistDraft.occurrence_id == sa.bindparam("occurrence")))


async def draft(session: AsyncSession, occurrence_id: int) -> tuple[dict[str, str], dict[str, str]]:
    """What is saved so far of an open round: the answer per item, and the comments that are not empty (one row
    per item at most, however often it was saved)."""
    rows = await sessions.rows(session, _DRAFT, {"occurrence": occurrence_id})
    return {k: answer for k, answer, _ in rows}, {k: comment for k, _, comment in rows if comment}


async def save_draft(session: AsyncSession, occurrence_id: int, template_key: str, template_version: int,
                     answers: dict[str, tuple[str, str | None]], by: str, at: dt.datetime) -> None:
    """Overwrite the draft of the items given (answer and comment), one upsert for them all. Does not commit."""
    if not answers:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    await session.exec(_draft_upsert(dialect), params=[  # type: ignore[call-overload]
        {"occurrence_id": occurrence_id, "item_key": key, "template_key": template_key,
         "template_version": template_version, "answer": answer, "comment": comment, "saved_by": by, "saved_at": at}
        for key, (answer, comment) in answers.items()])


@functools.cache
def _draft_upsert(dialect: str) -> Any:
    """The draft upsert, built once per dialect and run with one parameter set per item (executemany), so it is
    compiled once: a multi-VALUES statement was compiled afresh on every page save (about 12 ms of CPU)."""
    stmt = db.dialect_insert(dialect)(m.table(m.ChecklistDraft))
    return stmt.on_conflict_do_update(
        index_elements=["occurrence_id", "item_key"],
        set_={name: stmt.excluded[name] for name in ("template_key", "template_version", "answer", "comment",
                                                     "saved_by", "saved_at")})


async def drop_draft(session: AsyncSession, occurrence_id: int) -> None:
    """Forget an occurrence's draft (it was submitted). Does not commit."""
    await session.exec(sa.delete(m.ChecklistDraft).where(  # type: ignore[call-overload]
        col(m.ChecklistDraft.occurrence_id) == occurrence_id))


async def complete_once(session: AsyncSession, row: m.Occurrence, by: str, at: dt.datetime,
                        registered_by: str | None = None) -> bool:
    """Mark an occurrence done unless someone else did first (an atomic compare-and-set; no commit)."""
    result = await session.exec(  # type: ignore[call-overload]
        sa.update(m.Occurrence).where(col(m.Occurrence.id) == row.id, col(m.Occurrence.completed_at).is_(None))
        .values(completed_at=at, completed_by=by, registered_by=registered_by))
    return bool(result.rowcount == 1)


MeasureContext = tuple[m.Measure, m.Finding | None, m.Occurrence | None]


def _measures_in_context() -> Any:
    """Measures with the finding and round they came from, when they came from a round's deviation."""
    return (select(m.Measure, m.Finding, m.Occurrence)
            .outerjoin(m.Finding, col(m.Measure.finding_id) == col(m.Finding.id))
            .outerjoin(m.Occurrence, col(m.Finding.occurrence_id) == col(m.Occurrence.id)))


async def measure_with_context(session: AsyncSession, measure_id: int) -> MeasureContext | None:
    row = (await session.exec(_measures_in_context().where(m.Measure.id == measure_id))).first()
    return (row[0], row[1], row[2]) if row else None


async def occurrence_measures(session: AsyncSession, occurrence_id: int) -> list[tuple[m.Measure, m.Finding]]:
    """The measures made from one occurrence's findings, in the order they were found."""
    stmt = (select(m.Measure, m.Finding).join(m.Finding, col(m.Measure.finding_id) == col(m.Finding.id))
            .where(m.Finding.occurrence_id == occurrence_id).order_by(col(m.Finding.id), col(m.Measure.id)))
    return [(a, b) for a, b in (await session.exec(stmt)).all()]


async def open_measures(session: AsyncSession) -> list[MeasureContext]:
    stmt = (_measures_in_context().where(m.Measure.status != "closed")
            .order_by(col(m.Measure.deadline), col(m.Measure.id)))
    return [(a, b, c) for a, b, c in (await session.exec(stmt)).all()]


_OPEN_MEASURE_ROWS = (
    sa.select(col(m.Measure.id), col(m.Measure.owner_email), col(m.Measure.created_by), col(m.Measure.deadline),
              col(m.Measure.created_at), sa.func.coalesce(col(m.Measure.description), col(m.Finding.description)),
              sa.func.coalesce(col(m.Measure.section_key), col(m.Occurrence.section_key)),
              col(m.Occurrence.floor_key), col(m.Occurrence.building_key))
    .outerjoin(m.Finding, col(m.Measure.finding_id) == col(m.Finding.id))
    .outerjoin(m.Occurrence, col(m.Finding.occurrence_id) == col(m.Occurrence.id))
    .where(col(m.Measure.status) != "closed").order_by(col(m.Measure.deadline), col(m.Measure.id))
)  # built once: the status card and "åpne tiltak" read it; plain rows, kept while nothing changes


async def open_measure_rows(session: AsyncSession) -> Sequence[Any]:
    """Open measures from every source as plain rows (id, owner_email, created_by, deadline, created_at,
    description, section_key, floor_key, building_key: the measure's own description and section, else its
    deviation's and round's), oldest deadline first: what the chat's answers show, without building ORM objects."""
    return await sessions.rows(session, _OPEN_MEASURE_ROWS, {})


async def all_measures(session: AsyncSession) -> list[MeasureContext]:
    """Every measure, open and closed, oldest first."""
    return [(a, b, c) for a, b, c in (await session.exec(_measures_in_context().order_by(col(m.Measure.id)))).all()]


async def measures_by_item(session: AsyncSession, occurrence_id: int) -> dict[str, m.Measure]:
    """The measure made from each deviation of a round, by checklist item."""
    stmt = (select(m.Finding.item_key, m.Measure).join(m.Measure, col(m.Measure.finding_id) == col(m.Finding.id))
            .where(m.Finding.occurrence_id == occurrence_id).order_by(col(m.Measure.id)))
    return {item: measure for item, measure in (await session.exec(stmt)).all()}


async def measure_evidence(session: AsyncSession, measure_id: int) -> list[m.MeasureEvidence]:
    stmt = (select(m.MeasureEvidence).where(m.MeasureEvidence.measure_id == measure_id)
            .order_by(col(m.MeasureEvidence.id)))
    return list((await session.exec(stmt)).all())


async def cancel_measure_messages(session: AsyncSession, measure_id: int, *, recipient: str | None = None) -> int:
    """Reminders and escalations of a measure not sent yet are cancelled (it was closed, its deadline moved or it
    changed hands: the next planning tick plans what is due now); `recipient`: only those to that person. The
    rows stay, so planning never sends a cancelled step again. No commit."""
    stmt = (sa.update(m.OutboxMessage)
            .where(col(m.OutboxMessage.dedupe_key).startswith(f"measure:{measure_id}@", autoescape=True),
                   col(m.OutboxMessage.status).in_(["pending", "retry"]))
            .values(status="cancelled", last_error="the measure changed before this was sent"))
    if recipient is not None:
        stmt = stmt.where(col(m.OutboxMessage.recipient_email) == recipient)
    result = await session.exec(stmt)  # type: ignore[call-overload]
    return int(result.rowcount or 0)


async def measure_created_by_card(session: AsyncSession, nonce: str) -> int | None:
    """The measure a "nytt tiltak" form already created (pressed twice, or by two clicks), if any."""
    stmt = select(m.MeasureEvent.measure_id).where(m.MeasureEvent.kind == "created",
                                                   m.MeasureEvent.new_value == f"card:{nonce}")
    return (await session.exec(stmt)).first()


async def measure_events(session: AsyncSession, measure_id: int) -> list[m.MeasureEvent]:
    stmt = select(m.MeasureEvent).where(m.MeasureEvent.measure_id == measure_id).order_by(col(m.MeasureEvent.id))
    return list((await session.exec(stmt)).all())


async def reacted_occurrences(session: AsyncSession, keys: list[str]) -> set[str]:
    """Occurrences someone has started (a draft or an answer exists)."""
    if not keys:
        return set()
    found: set[str] = set()
    for model in (m.ChecklistDraft, m.ChecklistAnswer):
        stmt = (select(m.Occurrence.key).join(model, col(model.occurrence_id) == col(m.Occurrence.id))
                .where(col(m.Occurrence.key).in_(keys)).distinct())
        found.update((await session.exec(stmt)).all())
    return found


async def away_people(session: AsyncSession) -> set[str]:
    return set((await session.exec(select(m.Person.email).where(m.Person.away == True))).all())  # noqa: E712


# -- meetings: the time agreed for a round with its participant -------------------------------------------------


async def latest_proposals(session: AsyncSession, keys: Iterable[str]) -> dict[str, m.MeetingProposal]:
    """The newest meeting proposal of each occurrence that has one (where its meeting stands), by occurrence key."""
    keys = list(keys)
    if not keys:
        return {}
    stmt = (select(m.MeetingProposal, m.Occurrence.key)
            .join(m.Occurrence, col(m.MeetingProposal.occurrence_id) == col(m.Occurrence.id))
            .where(col(m.Occurrence.key).in_(keys)).order_by(col(m.MeetingProposal.seq)))
    return {key: proposal for proposal, key in (await session.exec(stmt)).all()}


async def proposal_with_occurrence(session: AsyncSession, proposal_id: int
                                   ) -> tuple[m.MeetingProposal, m.Occurrence] | None:
    stmt = (select(m.MeetingProposal, m.Occurrence)
            .join(m.Occurrence, col(m.MeetingProposal.occurrence_id) == col(m.Occurrence.id))
            .where(m.MeetingProposal.id == proposal_id))
    row = (await session.exec(stmt)).first()
    return (row[0], row[1]) if row else None


async def add_proposal(session: AsyncSession, occurrence_id: int, seq: int, starts_at: dt.datetime, by: str,
                       to: str, at: dt.datetime) -> int | None:
    """Store proposal number `seq` of an occurrence; None when that number is taken (someone proposed at the same
    moment). No commit."""
    table = m.table(m.MeetingProposal)
    stmt = (_insert(session)(table).values(occurrence_id=occurrence_id, seq=seq, starts_at=starts_at, proposed_by=by,
                                           proposed_to=to, proposed_at=at)
            .on_conflict_do_nothing(index_elements=["occurrence_id", "seq"]).returning(table.c.id))
    found = (await session.exec(stmt)).first()  # type: ignore[call-overload]
    return int(found[0]) if found else None


async def answer_proposal(session: AsyncSession, proposal_id: int, answer: str, by: str, at: dt.datetime) -> bool:
    """Answer a proposal unless it was answered already (an atomic compare-and-set; no commit)."""
    result = await session.exec(  # type: ignore[call-overload]
        sa.update(m.MeetingProposal)
        .where(col(m.MeetingProposal.id) == proposal_id, col(m.MeetingProposal.answer).is_(None))
        .values(answer=answer, answered_by=by, answered_at=at).execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)


async def agreed_meetings(session: AsyncSession, after: dt.datetime, until: dt.datetime
                          ) -> list[tuple[m.MeetingProposal, m.Occurrence]]:
    """Meetings agreed (their newest proposal accepted) that start in (after, until], of rounds not yet done."""
    proposal = m.MeetingProposal
    newest = (select(col(proposal.occurrence_id).label("occurrence_id"), sa.func.max(proposal.seq).label("seq"))
              .group_by(col(proposal.occurrence_id)).subquery())
    stmt = (select(proposal, m.Occurrence)
            .join(newest, (col(proposal.occurrence_id) == newest.c.occurrence_id) & (col(proposal.seq) == newest.c.seq))
            .join(m.Occurrence, col(proposal.occurrence_id) == col(m.Occurrence.id))
            .where(proposal.answer == "accepted", col(proposal.starts_at) > after, col(proposal.starts_at) <= until,
                   col(m.Occurrence.completed_at).is_(None))
            .order_by(col(proposal.starts_at), col(proposal.id)))
    return [(p, o) for p, o in (await session.exec(stmt)).all()]


async def person_locale(session: AsyncSession, email: str) -> str | None:
    """The locale of a person's personal chat with the bot, when known."""
    stmt = select(m.ConversationRef.locale).where(
        m.ConversationRef.person_email == email.lower(), m.ConversationRef.conversation_type == "personal",
        m.ConversationRef.active == True, col(m.ConversationRef.locale).is_not(None))  # noqa: E712
    return (await session.exec(stmt)).first()


# -- export for inspectors ------------------------------------------------------------------------------------


async def records(session: AsyncSession, start: dt.date, end: dt.date) -> dict[str, list[dict[str, Any]]]:
    """Everything on record for occurrences due in [start, end]: rounds with their events, who took part and how
    their meeting was agreed (each proposal and its answer), final answers, findings, and measures with their status
    history. Plain dicts, times as ISO strings."""
    occurrences = list((await session.exec(select(m.Occurrence).where(
        m.Occurrence.due >= start, m.Occurrence.due <= end).order_by(col(m.Occurrence.due), col(m.Occurrence.key))
    )).all())
    ids = [o.id for o in occurrences]
    by_id = {o.id: o.key for o in occurrences}
    if not ids:
        ids = [-1]  # measures from other sources than rounds are still on record for the period
    events = (await session.exec(select(m.OccurrenceEvent).where(col(m.OccurrenceEvent.occurrence_id).in_(ids))
                                 .order_by(col(m.OccurrenceEvent.id)))).all()
    answers = (await session.exec(select(m.ChecklistAnswer).where(col(m.ChecklistAnswer.occurrence_id).in_(ids))
                                  .order_by(col(m.ChecklistAnswer.id)))).all()
    proposals = (await session.exec(select(m.MeetingProposal).where(col(m.MeetingProposal.occurrence_id).in_(ids))
                                    .order_by(col(m.MeetingProposal.occurrence_id), col(m.MeetingProposal.seq)))).all()
    findings = list((await session.exec(select(m.Finding).where(col(m.Finding.occurrence_id).in_(ids))
                                        .order_by(col(m.Finding.id)))).all())
    finding_ids = [f.id for f in findings]
    # measures of the period's rounds, and those from other sources whose deadline is in the period
    measures = list(await session.exec(select(m.Measure).where(
        col(m.Measure.finding_id).in_(finding_ids or [-1])
        | (col(m.Measure.finding_id).is_(None) & (m.Measure.deadline >= start) & (m.Measure.deadline <= end)))
        .order_by(col(m.Measure.id))))
    evidence = (await session.exec(select(m.MeasureEvidence).where(
        col(m.MeasureEvidence.measure_id).in_([x.id for x in measures])).order_by(col(m.MeasureEvidence.id)))).all() \
        if measures else []
    history = (await session.exec(select(m.MeasureEvent).where(
        col(m.MeasureEvent.measure_id).in_([x.id for x in measures])).order_by(col(m.MeasureEvent.id)))).all() \
        if measures else []

    def iso(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value

    return {
        "rounds": [{"occurrence": o.key, "task": o.task_key, "cycle": o.cycle, "section": o.section_key,
                    "building": o.building_key,
                    "floor": o.floor_key, "window_start": iso(o.window_start), "due": iso(o.due),
                    "completed_at": iso(o.completed_at), "completed_by": o.completed_by,
                    "registered_afterwards_by": o.registered_by,
                    "participants": [{"email": e.actor_email, "role": e.note} for e in events
                                     if e.occurrence_id == o.id and e.kind == "participant"],
                    "meeting": [{"starts_at": iso(p.starts_at), "proposed_by": p.proposed_by,
                                 "proposed_to": p.proposed_to, "proposed_at": iso(p.proposed_at), "answer": p.answer,
                                 "answered_by": p.answered_by, "answered_at": iso(p.answered_at)}
                                for p in proposals if p.occurrence_id == o.id],
                    "events": [{"kind": e.kind, "by": e.actor_email, "at": iso(e.at), "note": e.note, "link": e.link,
                                "registered_by": e.registered_by, "registered_at": iso(e.registered_at)}
                               for e in events if e.occurrence_id == o.id]} for o in occurrences],
        "answers": [{"occurrence": by_id[a.occurrence_id], "submission": a.submission_id, "template": a.template_key,
                     "template_version": a.template_version, "item": a.item_key, "answer": a.answer,
                     "comment": a.comment, "by": a.submitted_by, "at": iso(a.submitted_at)} for a in answers],
        "findings": [{"id": f.id, "occurrence": by_id[f.occurrence_id], "item": f.item_key,
                      "description": f.description, "by": f.created_by, "at": iso(f.created_at)} for f in findings],
        "measures": [{"id": x.id, "finding": x.finding_id, "source": x.source, "description": x.description,
                      "section": x.section_key, "cim_ref": x.cim_ref, "created_by": x.created_by,
                      "owner": x.owner_email, "deadline": iso(x.deadline),
                      "status": x.status, "external_ticket": x.external_ticket, "created_at": iso(x.created_at),
                      "history": [{"status": h.status, "kind": h.kind, "from": h.old_value, "to": h.new_value,
                                   "by": h.actor_email, "at": iso(h.at), "note": h.note}
                                  for h in history if h.measure_id == x.id],
                      "evidence": [{"kind": e.kind, "note": e.note, "url": e.url, "file": e.filename,
                                    "content_type": e.content_type, "size": e.size, "by": e.added_by,
                                    "at": iso(e.added_at)} for e in evidence if e.measure_id == x.id]}
                     for x in measures],
    }


WAITING = "no conversation with the recipient"  # the outbox's `last_error` while a message waits for a chat


async def release_waiting(session: AsyncSession, now: dt.datetime, *, emails: Iterable[str] = (),
                          channel: bool = False) -> int:
    """Messages that wait because the bot could not reach their recipient become due now: those to `emails`
    (their personal chat is known), and with `channel` those to the LAMU channel (the bot is in a team). They
    go out at the next delivery tick; releasing twice, or on two replicas at once, only makes them due twice,
    and a due message is still claimed, and sent, by one sender. Returns how many. Commits."""
    wanted = sorted({e.lower() for e in emails})
    who = []
    if wanted:
        who.append(col(m.OutboxMessage.recipient_email).in_(wanted))
    if channel:
        who.append(col(m.OutboxMessage.recipient_email).is_(None))
    if not who:
        return 0
    result = await session.exec(  # type: ignore[call-overload]
        sa.update(m.OutboxMessage).where(sa.or_(*who), col(m.OutboxMessage.status) == "retry",
                                         col(m.OutboxMessage.last_error) == WAITING,
                                         col(m.OutboxMessage.not_before) > now)
        .values(not_before=now).execution_options(synchronize_session=False))
    await session.commit()
    return int(result.rowcount or 0)


# -- the digest's week and the annual report's year ----------------------------------------------------------


async def completed_between(session: AsyncSession, start: dt.datetime, end: dt.datetime
                            ) -> list[tuple[str, str, dt.datetime]]:
    """(occurrence key, task key, completed at) of occurrences completed in [start, end)."""
    stmt = (select(m.Occurrence.key, m.Occurrence.task_key, m.Occurrence.completed_at)
            .where(col(m.Occurrence.completed_at) >= start, col(m.Occurrence.completed_at) < end))
    return [(k, t, at) for k, t, at in (await session.exec(stmt)).all() if at is not None]


async def findings_between(session: AsyncSession, start: dt.datetime, end: dt.datetime
                           ) -> list[tuple[m.Finding, m.Occurrence]]:
    """Deviations found in [start, end) with the round they were found on."""
    stmt = (select(m.Finding, m.Occurrence).join(m.Occurrence, col(m.Finding.occurrence_id) == col(m.Occurrence.id))
            .where(col(m.Finding.created_at) >= start, col(m.Finding.created_at) < end).order_by(col(m.Finding.id)))
    return [(f, o) for f, o in (await session.exec(stmt)).all()]


async def measures_closed_between(session: AsyncSession, start: dt.datetime, end: dt.datetime) -> list[int]:
    """The ids of measures closed in [start, end) (their `closed` event), each once."""
    stmt = (select(m.MeasureEvent.measure_id).where(m.MeasureEvent.kind == "closed",
                                                    col(m.MeasureEvent.at) >= start, col(m.MeasureEvent.at) < end))
    return sorted(set((await session.exec(stmt)).all()))


async def measure_closings(session: AsyncSession) -> dict[int, dt.datetime]:
    """When each closed measure was (last) closed."""
    stmt = select(m.MeasureEvent.measure_id, m.MeasureEvent.at).where(m.MeasureEvent.kind == "closed")
    out: dict[int, dt.datetime] = {}
    for measure_id, at in (await session.exec(stmt)).all():
        out[measure_id] = max(at, out.get(measure_id, at))
    return out


async def annual_report(session: AsyncSession, occurrence_id: int) -> m.AnnualReport | None:
    stmt = select(m.AnnualReport).where(m.AnnualReport.occurrence_id == occurrence_id)
    return (await session.exec(stmt)).first()


async def annual_reports(session: AsyncSession, year: int) -> list[m.AnnualReport]:
    """The annual reports submitted on a reporting year, in the order they came."""
    stmt = select(m.AnnualReport).where(m.AnnualReport.year == year).order_by(col(m.AnnualReport.id))
    return list((await session.exec(stmt)).all())


# -- files and feeds handed out by link ---------------------------------------------------------------------------


async def add_download(session: AsyncSession, token: str, filename: str, content_type: str, data: bytes, by: str,
                       now: dt.datetime, expires_at: dt.datetime) -> None:
    """Keep a file to be fetched by its token until `expires_at`. Commits."""
    session.add(m.Download(token=token, filename=filename, content_type=content_type, data=data, created_by=by,
                           created_at=now, expires_at=expires_at))
    await session.commit()


async def download(session: AsyncSession, token: str, now: dt.datetime) -> m.Download | None:
    """The file behind a token, unless it expired."""
    stmt = select(m.Download).where(m.Download.token == token, col(m.Download.expires_at) > now)
    return (await session.exec(stmt)).first()


async def delete_expired_downloads(session: AsyncSession, now: dt.datetime) -> int:
    """Expired files are deleted (their tokens no longer serve anything). Commits."""
    result = await session.exec(sa.delete(m.Download).where(col(m.Download.expires_at) <= now))  # type: ignore[call-overload]
    await session.commit()
    return int(result.rowcount or 0)


async def feed_token(session: AsyncSession, token: str) -> m.FeedToken | None:
    """A feed token that was not revoked."""
    stmt = select(m.FeedToken).where(m.FeedToken.token == token, col(m.FeedToken.revoked_at).is_(None))
    return (await session.exec(stmt)).first()


async def live_feed_token(session: AsyncSession, kind: str, subject: str | None) -> m.FeedToken | None:
    """The newest feed token of a person, a section or the unit that was not revoked."""
    stmt = (select(m.FeedToken).where(m.FeedToken.kind == kind, m.FeedToken.subject == subject,
                                      col(m.FeedToken.revoked_at).is_(None)).order_by(col(m.FeedToken.id).desc()))
    return (await session.exec(stmt)).first()


async def add_feed_token(session: AsyncSession, token: str, kind: str, subject: str | None, by: str,
                         now: dt.datetime) -> m.FeedToken:
    row = m.FeedToken(token=token, kind=kind, subject=subject, created_by=by, created_at=now)
    session.add(row)
    await session.commit()
    return row


async def revoke_feed_token(session: AsyncSession, token: str, now: dt.datetime) -> bool:
    """Revoke a token (False when no live token has it). Commits."""
    result = await session.exec(  # type: ignore[call-overload]
        sa.update(m.FeedToken).where(col(m.FeedToken.token) == token, col(m.FeedToken.revoked_at).is_(None))
        .values(revoked_at=now))
    await session.commit()
    return bool(result.rowcount == 1)
