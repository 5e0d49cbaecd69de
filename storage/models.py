"""The database tables: the organisation, rounds and answers, findings and measures, conversation references,
the delivery outbox and its shared send schedule, and the record of handled activities.

Answers, occurrence events and measure status changes are append-only rows with who and when: history is never
updated in place. A round's draft is not history: it only lets someone resume a checklist (the phone lost the card
in the basement). So it is one row per item of an open round, overwritten by every page save and deleted when the
round is submitted (`ChecklistDraft`), rather than more answer rows: kept as a pile, every page save and round
start read all of it (9 ms with 5 drafts stored, 168 ms with 1,004) and it never stopped growing, while the record
needs only the final answers, who gave them and when. Conversation coordinates are plain columns. Every timestamp
is stored as UTC and read back timezone-aware, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class AwareDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp that refuses naive datetimes, stores UTC and always returns an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: every stored time must be timezone-aware")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(AwareDateTime(), nullable=nullable, index=index))


# -- the organisation (imported from the config; rows are deactivated, never deleted) ----------------------


class Person(SQLModel, table=True):
    __tablename__ = "person"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    name: str = Field(max_length=200)
    entra_object_id: str | None = Field(default=None, max_length=64, index=True)
    teams_user_id: str | None = Field(default=None, max_length=200, index=True)
    title: str | None = Field(default=None, max_length=200)
    demo: bool = False
    active: bool = True
    away: bool = False
    updated_at: dt.datetime = _ts()


class Section(SQLModel, table=True):
    __tablename__ = "section"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    name_nb: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    active: bool = True
    updated_at: dt.datetime = _ts()


class Floor(SQLModel, table=True):
    __tablename__ = "floor"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    building_key: str = Field(max_length=64)
    section_key: str = Field(max_length=64)
    name_nb: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    active: bool = True
    updated_at: dt.datetime = _ts()


class RoleAssignment(SQLModel, table=True):
    """Who holds which role for which scope; an ended assignment keeps its row with `active` false."""

    __tablename__ = "role_assignment"
    __table_args__ = (sa.UniqueConstraint("role", "scope_key", "person_email", name="uq_role_assignment"),)
    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=40)
    scope_key: str = Field(default="", max_length=64)
    person_email: str = Field(max_length=320, index=True)
    active: bool = True
    since: dt.datetime = _ts()
    until: dt.datetime | None = _ts(nullable=True)


# -- rounds, answers, findings, measures -------------------------------------------------------------------


class Occurrence(SQLModel, table=True):
    """A stored occurrence of a wheel task (created when something happens to it)."""

    __tablename__ = "occurrence"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    task_key: str = Field(max_length=64, index=True)
    cycle: str = Field(max_length=20)
    section_key: str | None = Field(default=None, max_length=64)
    floor_key: str | None = Field(default=None, max_length=64)
    building_key: str | None = Field(default=None, max_length=64)  # a building's occurrence, or a floor's building
    window_start: dt.date
    due: dt.date = Field(index=True)
    completed_at: dt.datetime | None = _ts(nullable=True)
    completed_by: str | None = Field(default=None, max_length=320)
    # set when the completion was registered afterwards (work done before or outside the bot), mirroring its event
    registered_by: str | None = Field(default=None, max_length=320)
    created_at: dt.datetime = _ts()


class OccurrenceEvent(SQLModel, table=True):
    """Append-only: what happened to an occurrence (completed, confirmed, ...), by whom, when.

    A `participant` event names someone who took part in a round when it was submitted (the safety representative
    on a safety round; `note` holds the role): the report names them from it, and their own `confirmed` event
    follows when they confirm it.

    A completion registered afterwards (work done before or outside the bot) is a `completed` event at the day the
    work was done (noon, local time: only the day is known), by who did it (the registrar when not given), with
    `registered_by` and `registered_at` saying who put it on record and when."""

    __tablename__ = "occurrence_event"
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    kind: str = Field(max_length=40)
    actor_email: str = Field(max_length=320)
    at: dt.datetime = _ts()
    note: str | None = Field(default=None, sa_type=sa.Text)
    link: str | None = Field(default=None, max_length=2000)
    registered_by: str | None = Field(default=None, max_length=320)
    registered_at: dt.datetime | None = _ts(nullable=True)


class ChecklistAnswer(SQLModel, table=True):
    """Append-only: one final answer to one checklist item in one submission (drafts are `ChecklistDraft`)."""

    __tablename__ = "checklist_answer"
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    submission_id: str = Field(max_length=64, index=True)
    template_key: str = Field(max_length=64)
    template_version: int
    item_key: str = Field(max_length=64)
    answer: str = Field(max_length=40)
    comment: str | None = Field(default=None, sa_type=sa.Text)
    submitted_by: str = Field(max_length=320)
    submitted_at: dt.datetime = _ts()


class ChecklistDraft(SQLModel, table=True):
    """What is saved so far of an open round's checklist: the newest answer per item, whoever gave it (the floor
    contact and the deputy fill in the same round). Overwritten in place, deleted on submission."""

    __tablename__ = "checklist_draft"
    occurrence_id: int = Field(foreign_key="occurrence.id", primary_key=True)
    item_key: str = Field(max_length=64, primary_key=True)
    template_key: str = Field(max_length=64)
    template_version: int
    answer: str = Field(max_length=40)
    comment: str | None = Field(default=None, sa_type=sa.Text)
    saved_by: str = Field(max_length=320)
    saved_at: dt.datetime = _ts()


class Finding(SQLModel, table=True):
    """A deviation found on a round; describes a condition, never a person."""

    __tablename__ = "finding"
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    item_key: str = Field(max_length=64)
    description: str = Field(sa_type=sa.Text)
    created_by: str = Field(max_length=320)
    created_at: dt.datetime = _ts()


class Measure(SQLModel, table=True):
    """A corrective action with an owner and a deadline, from any source: a round's deviation (`finding_id` set,
    source "round"), or one created in the chat or on the command line from a vernerunde, a fire round, ARK, ROS,
    an internal audit or inspection, LAMU, an incident (by its CIM reference only: CIM is the system of record, the
    bot never copies incident content), or another source. Its current status is the latest MeasureEvent, mirrored
    here; so are its owner and deadline (each change is a MeasureEvent with who, when, what and why)."""

    __tablename__ = "measure"
    id: int | None = Field(default=None, primary_key=True)
    finding_id: int | None = Field(default=None, foreign_key="finding.id", index=True)
    source: str = Field(default="round", max_length=20)
    description: str | None = Field(default=None, sa_type=sa.Text)
    section_key: str | None = Field(default=None, max_length=64)
    cim_ref: str | None = Field(default=None, max_length=40)
    created_by: str | None = Field(default=None, max_length=320)
    owner_email: str = Field(max_length=320, index=True)
    deadline: dt.date
    status: str = Field(default="open", max_length=20, index=True)
    external_ticket: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = _ts()


class MeasureEvent(SQLModel, table=True):
    """Append-only history of a measure: its status after the change, and what changed (`kind`: created, ticket,
    reassigned, deadline, evidence, closed), from what to what, by whom, when, and why (`note`)."""

    __tablename__ = "measure_event"
    id: int | None = Field(default=None, primary_key=True)
    measure_id: int = Field(foreign_key="measure.id", index=True)
    status: str = Field(max_length=20)
    actor_email: str = Field(max_length=320)
    at: dt.datetime = _ts()
    note: str | None = Field(default=None, sa_type=sa.Text)
    kind: str | None = Field(default=None, max_length=20)
    old_value: str | None = Field(default=None, max_length=320)
    new_value: str | None = Field(default=None, max_length=320)


class MeasureEvidence(SQLModel, table=True):
    """Append-only: evidence that a measure was carried out: a note, a link, or a file (a photo sent to the bot in
    the personal chat), stored with the measure (size-limited: `usecases.measures.EVIDENCE_MAX_BYTES`)."""

    __tablename__ = "measure_evidence"
    id: int | None = Field(default=None, primary_key=True)
    measure_id: int = Field(foreign_key="measure.id", index=True)
    kind: str = Field(max_length=10)  # note, link, file
    note: str | None = Field(default=None, sa_type=sa.Text)
    url: str | None = Field(default=None, max_length=2000)
    filename: str | None = Field(default=None, max_length=200)
    content_type: str | None = Field(default=None, max_length=100)
    size: int | None = None
    data: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    added_by: str = Field(max_length=320)
    added_at: dt.datetime = _ts()


class MeetingProposal(SQLModel, table=True):
    """A time proposed for a round with its participant (the safety round with the section's safety representative):
    who proposed it to whom, when, and its answer, set once: `accepted`, `countered` (the answerer proposed another
    time: the next row), or `replaced` (its proposer sent a newer one). The meeting stands at the newest proposal of
    an occurrence (the highest `seq`; unique, so two proposals made at once cannot both follow the same one) and is
    agreed once that one is accepted. Times are the meeting's start, aware, stored as UTC."""

    __tablename__ = "meeting_proposal"
    __table_args__ = (sa.UniqueConstraint("occurrence_id", "seq", name="uq_meeting_proposal_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    seq: int
    starts_at: dt.datetime = _ts()
    proposed_by: str = Field(max_length=320)
    proposed_to: str = Field(max_length=320)
    proposed_at: dt.datetime = _ts()
    answer: str | None = Field(default=None, max_length=20)
    answered_by: str | None = Field(default=None, max_length=320)
    answered_at: dt.datetime | None = _ts(nullable=True)


class AnnualReport(SQLModel, table=True):
    """A section's HMS annual report as its leader submitted it: one per report occurrence (section and cycle). The
    parts are the texts the leader sent (prefilled from the records and edited), `figures` the numbers the draft was
    prefilled with (JSON), so what was reported and what the records said then are both kept."""

    __tablename__ = "annual_report"
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", unique=True)
    year: int = Field(index=True)  # the calendar year it reports on
    section_key: str = Field(max_length=64)
    parts: str = Field(sa_type=sa.Text)  # JSON: part key -> text
    figures: str = Field(sa_type=sa.Text)  # JSON: the prefilled numbers
    submitted_by: str = Field(max_length=320)
    submitted_at: dt.datetime = _ts()
    submission_id: str = Field(max_length=64)


# -- Teams -------------------------------------------------------------------------------------------------


class ConversationRef(SQLModel, table=True):
    """Where the bot can reach someone or some channel: Teams conversation coordinates as plain columns."""

    __tablename__ = "conversation_ref"
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(max_length=400, unique=True)
    conversation_type: str = Field(max_length=20)
    service_url: str = Field(max_length=400)
    tenant_id: str | None = Field(default=None, max_length=64)
    channel_id: str = Field(default="msteams", max_length=40)
    team_id: str | None = Field(default=None, max_length=400, index=True)
    teams_channel_id: str | None = Field(default=None, max_length=400)
    bot_id: str | None = Field(default=None, max_length=200)
    user_teams_id: str | None = Field(default=None, max_length=200, index=True)
    user_aad_id: str | None = Field(default=None, max_length=64)
    person_email: str | None = Field(default=None, max_length=320, index=True)
    locale: str | None = Field(default=None, max_length=20)
    timezone: str | None = Field(default=None, max_length=64)
    active: bool = True
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class OutboxMessage(SQLModel, table=True):
    """A message to send, written before it is sent; `dedupe_key` makes planning idempotent."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=300, unique=True)
    conversation_ref_id: int | None = Field(default=None, foreign_key="conversation_ref.id", index=True)
    recipient_email: str | None = Field(default=None, max_length=320)
    kind: str = Field(max_length=40)
    payload: str = Field(sa_type=sa.Text)
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    not_before: dt.datetime = _ts(index=True)
    # indexed, with sent_at, for the claim's look-up of recipients busy right now (a live claim, a message sent
    # within the last second): both ranges are a handful of rows however large the outbox grows
    claimed_until: dt.datetime | None = _ts(nullable=True, index=True)
    # The fence: a fresh token per claim. A sender records an outcome only while its token is still on the row,
    # so a sender whose lease ran out and whose row another sender took cannot mark it.
    claim_token: str | None = Field(default=None, max_length=32)
    activity_id: str | None = Field(default=None, max_length=200)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: dt.datetime = _ts()
    sent_at: dt.datetime | None = _ts(nullable=True, index=True)


class DeliveryRate(SQLModel, table=True):
    """The tenant-wide schedule of proactive messages that every replica shares on PostgreSQL: when the next one
    may start. Each send takes the slot and moves it on by one spacing (`usecases.delivery.SharedSlots`)."""

    __tablename__ = "delivery_rate"
    name: str = Field(max_length=40, primary_key=True)
    # seconds since the epoch on the replicas' clocks (NTP keeps them within milliseconds of each other); not a
    # datetime, since it is only ever compared with, and moved by, the sender's own time.time()
    next_at: float = Field(sa_type=sa.Float(precision=53))


class ProcessedActivity(SQLModel, table=True):
    """Inbound activities claimed by a turn, so a Teams retry of the same turn is handled once: in progress while
    `completed_at` is empty (a claim that lapses after a lease), handled once it is set (storage/ledger.py)."""

    __tablename__ = "processed_activity"
    activity_key: str = Field(max_length=500, primary_key=True)
    received_at: dt.datetime = _ts(index=True)
    completed_at: dt.datetime | None = _ts(nullable=True)


class ChannelThread(SQLModel, table=True):
    """A thread the bot started in a channel (e.g. one per quarter for fire rounds), to reply into."""

    __tablename__ = "channel_thread"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    teams_channel_id: str = Field(max_length=400)
    conversation_id: str = Field(max_length=500)
    activity_id: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = _ts()


class DatabaseInfo(SQLModel, table=True):
    """Facts about the database itself, one row (id 1). `first_migrated_at`: when it was first made ready for the
    bot (its first `hms-bot db upgrade`, or the first start on SQLite), on the clock of the program that did it.
    Without `unit.tracking_starts` in the organisation file, its day is the first day the wheel is kept; it is
    read from the database, so every replica counts from the same day."""

    __tablename__ = "database_info"
    id: int = Field(default=1, primary_key=True)
    first_migrated_at: dt.datetime = _ts()


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a model (for INSERT .. ON CONFLICT and bulk statements)."""
    found = model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass
    assert isinstance(found, sa.Table)
    return found


def pk(row: Any) -> int:
    """The id of a stored row (flushed or loaded); rows not yet flushed have none."""
    assert row.id is not None, f"{type(row).__name__} has no id yet: flush it first"
    return int(row.id)


# -- what the bot hands out by link (issue 13) ------------------------------------------------------------------


class Download(SQLModel, table=True):
    """A file made for someone (the inspection pack asked for in the chat), served once its unguessable token is
    presented (`GET /files/<token>`) until it expires; expired rows are deleted by the daily prune."""

    __tablename__ = "download"
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=100)
    data: bytes = Field(sa_type=sa.LargeBinary)
    created_by: str = Field(max_length=320)
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = _ts(index=True)


class FeedToken(SQLModel, table=True):
    """An unguessable token for a calendar feed and the wheel's picture (`/calendar/<token>.ics`,
    `/wheel/<token>.svg`) of one person, one section or the whole unit (`kind`, `subject`); revoked, never deleted."""

    __tablename__ = "feed_token"
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=10)  # person, section, unit
    subject: str | None = Field(default=None, max_length=320)  # the person's e-mail or the section's key
    created_by: str = Field(max_length=320)
    created_at: dt.datetime = _ts()
    revoked_at: dt.datetime | None = _ts(nullable=True)
