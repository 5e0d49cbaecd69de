"""Measures from every source, followed to the end.

A measure comes from a round's deviation (`usecases.rounds`), or is created in the chat ("nytt tiltak" opens a
form) or on the command line (`hms-bot measure add`) from a vernerunde, a fire round, ARK, ROS, an internal audit or
inspection, LAMU, an incident (by its CIM reference only: CIM is the system of record, the bot never copies an
incident's content) or another source, with a description, an owner from the organisation file, a deadline and a
section.

Its owner, its section's leader and the HMSB adviser can reassign it and move its deadline (each with a reason),
add evidence (a note, a link, or a photo or PDF sent to the bot in the personal chat, stored with the measure up to
`EVIDENCE_MAX_MB`), record EA's ticket number, and close it with a note on what was done; anyone else is told who
can. Every change is a `MeasureEvent` (who, when, what, from what to what, why). Closing tells the floor contact who
reported the deviation, and cancels the reminders not sent yet; a new deadline or owner cancels those the change
made wrong, and the planning tick (`usecases.planning`) plans the chain again: reminders to the owner, then the
section leader, the adviser and the unit head, each once, until the measure is closed.

The same operations serve the card verbs (measure.create, measure.close, measure.ticket, measure.reassign,
measure.deadline, measure.evidence) and the command line; they raise `Refused` with a text key when they cannot
be done, and store nothing then.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction, nonce_for
from cards.common import message
from cards.measure import MeasureActions, MeasureView, NewMeasureView, measure_card, new_measure_card
from cards.notices import NoticeView, notice, notice_card
from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from storage import models as m, repo
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.database import opened
from usecases.naming import Names
from usecases.outbox import outbox_row, person_target
from usecases.ports import DeliveryError, Download, FileTooLarge
from usecases.routing import Router

SOURCES = ("vernerunde", "brannvernrunde", "ark", "ros", "audit", "lamu", "incident", "other")
"""Where a measure created by hand comes from; a measure made from a round's deviation has source "round"."""
NOTE_MAX = 1000
TICKET_MAX = 100
REASON_MAX = 500
DESCRIPTION_MAX = 1000
LINK_MAX = 2000  # the column's length (storage/models.py MeasureEvidence.url)
MAX_AHEAD_DAYS = 731  # a deadline at most two years ahead
CIM_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,39}")  # a case number, never a description
EVIDENCE_MAX_MB = 5
EVIDENCE_MAX_BYTES = EVIDENCE_MAX_MB * 1024 * 1024
FILE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
              "webp": "image/webp", "heic": "image/heic", "heif": "image/heic", "pdf": "application/pdf"}
TEAMS_FILE = "application/vnd.microsoft.teams.file.download.info"
_MEASURE_NO = re.compile(r"(?<![\d.])(\d{1,9})(?![\d.])")

Context = tuple[m.Measure, m.Finding | None, m.Occurrence | None]
MeasureStep = Callable[[CardPress, Context], Awaitable[ActionResult]]


class Refused(Exception):
    """Why a change to a measure cannot be made: a text key and its values (already names, not keys)."""

    def __init__(self, key: str, **values: object):
        super().__init__(key)
        self.key = key
        self.values = values

    def text(self, locale: str | None) -> str:
        return t(locale, self.key, **self.values)


@dataclass(frozen=True)
class NewMeasure:
    """A measure to create, checked (`Measures.check_new`)."""

    source: str
    description: str
    owner: str
    deadline: dt.date
    section: str
    cim_ref: str | None = None


@dataclass(frozen=True)
class EvidenceFile:
    """A file sent to the bot in the chat, before it is fetched."""

    name: str
    url: str
    content_type: str | None  # known from its extension, or None for an inline photo (read from its bytes)


def sniff(data: bytes) -> str | None:
    """The content type of a photo or PDF, from its first bytes (what the bot stores), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "image/heic"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def evidence_files(activity: dict[str, Any]) -> list[EvidenceFile]:
    """The files in a chat message: a file Teams uploaded for the bot, or a photo pasted into the message."""
    out: list[EvidenceFile] = []
    for item in activity.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("contentType") or "")
        found = item.get("content")
        content: dict[str, Any] = found if isinstance(found, dict) else {}
        name = str(item.get("name") or "")[:200]
        if kind == TEAMS_FILE and isinstance(content.get("downloadUrl"), str):
            ext = str(content.get("fileType") or name.rpartition(".")[2]).lower()
            out.append(EvidenceFile(name or f"file.{ext}", content["downloadUrl"], FILE_TYPES.get(ext, f".{ext}")))
        elif kind.startswith("image/") and isinstance(item.get("contentUrl"), str):
            out.append(EvidenceFile(name or "photo", item["contentUrl"], None))
    return out


class Measures:
    """Measures from every source: their cards, the measure.* card verbs, and the operations behind them."""

    def __init__(self, config: HmsConfig, secret: bytes):
        self.config = config
        self.secret = secret
        self.names = Names(config)
        self.router: Router[CardHandler] = Router("measures")
        self.router.register("measure.create", self._create_pressed)
        self.router.register("measure.close", self._on_measure(self._close_pressed))
        self.router.register("measure.ticket", self._on_measure(self._ticket_pressed))
        self.router.register("measure.reassign", self._on_measure(self._reassign_pressed))
        self.router.register("measure.deadline", self._on_measure(self._deadline_pressed))
        self.router.register("measure.evidence", self._on_measure(self._evidence_pressed))

    # -- who, and names ------------------------------------------------------------------------------------------

    def section_of(self, ctx: Context) -> str | None:
        measure, _, occ_row = ctx
        return measure.section_key or (occ_row.section_key if occ_row else None)

    def may_manage(self, ctx: Context, email: str) -> bool:
        """The owner, the leader of the measure's section and the HMSB adviser may change and close it."""
        section = self.config.section(self.section_of(ctx) or "")
        return email.lower() in ({ctx[0].owner_email, self.config.roles.hmsb_adviser}
                                 | ({section.leader} if section else set()))

    def description(self, ctx: Context) -> str:
        measure, finding, _ = ctx
        return measure.description or (finding.description if finding else "") or "–"

    def source_name(self, measure: m.Measure, locale: str) -> str:
        return t(locale, f"measure.source.{measure.source}")

    def _people(self) -> tuple[tuple[str, str], ...]:
        return tuple((p.email, p.name) for p in sorted(self.config.people, key=lambda p: p.name))

    # -- cards ---------------------------------------------------------------------------------------------------

    def measure_activity(self, measure: m.Measure, finding: m.Finding | None, occ_row: m.Occurrence | None,
                         locale: str, notice_text: str | None = None) -> dict[str, Any]:
        """The message that brings a measure's card to its owner (new, reminded, overdue or escalated)."""
        card = self.measure_card((measure, finding, occ_row), locale, notice_text=notice_text)
        return message(card, notice_text or t(locale, "measure.new"))

    def measure_card(self, ctx: Context, locale: str, *, notice_text: str | None = None, error: str | None = None,
                     closed_line: str | None = None, events: list[m.MeasureEvent] | None = None,
                     evidence: list[m.MeasureEvidence] | None = None) -> dict[str, Any]:
        """The measure's card: fillable while open, read-only with `closed_line` once closed. With `events` and
        `evidence` (read when a card is pressed) it shows the evidence and the changes of owner and deadline."""
        measure, finding, occ_row = ctx
        lang = i18n.lang(locale)
        occ = wheel.find_occurrence(self.config, occ_row.key) if occ_row else None
        section = self.config.section(self.section_of(ctx) or "")
        if finding is not None and occ_row is not None:
            title = t(locale, "measure.title", item=self.names.item(occ_row.task_key, finding.item_key, locale))
            where = (f"{self.names.scope(occ, locale)} · {self.names.task(occ, locale)} {occ.cycle}"
                     if occ else occ_row.key)
            what = t(locale, "measure.finding", description=finding.description)
        else:
            text_ = self.description(ctx)
            title = t(locale, "measure.title", item=text_ if len(text_) <= 80 else text_[:79] + "…")
            where = section.name.get(lang) if section else self.config.unit.name.get(lang)
            what = text_
        lines = [t(locale, "measure.number_source", id=measure.id, source=self.source_name(measure, locale))]
        if measure.cim_ref:
            lines.append(t(locale, "measure.cim_line", ref=measure.cim_ref))
        if evidence:
            lines.append(t(locale, "measure.evidence_line", items="; ".join(
                self._evidence_text(e) for e in evidence)))
        for event in (events or [])[-3:]:
            if event.kind in ("reassigned", "deadline"):
                lines.append(self._history_line(event, locale))
        si_fra = self.config.links["si_fra"].url if "si_fra" in self.config.links and finding else None
        view = MeasureView(title, where, what,
                           t(locale, "measure.owner", owner=self.names.person(measure.owner_email),
                             deadline=format_date(measure.deadline, locale)),
                           measure.external_ticket, si_fra, notice_text, error, closed_line, tuple(lines),
                           self._people(), t(locale, "measure.evidence_hint", id=measure.id))
        if closed_line:
            return measure_card(view, locale)
        nonce = nonce_for("measure", str(measure.id))

        def data(verb: str) -> dict[str, Any]:
            return CardAction(verb, str(measure.id), nonce).pack(self.secret)

        return measure_card(view, locale, MeasureActions(
            close=data("measure.close"), ticket=data("measure.ticket") if finding else None,
            reassign=data("measure.reassign"), deadline=data("measure.deadline"), evidence=data("measure.evidence")))

    def _evidence_text(self, e: m.MeasureEvidence) -> str:
        if e.kind == "file":
            return f"{e.filename} ({max(1, (e.size or 0) // 1024)} kB)"
        if e.kind == "link":
            return e.url or ""
        return (e.note or "")[:120]

    def _history_line(self, event: m.MeasureEvent, locale: str) -> str:
        def value(v: str | None) -> str:
            if event.kind == "deadline" and v:
                try:
                    return format_date(dt.date.fromisoformat(v), locale)
                except ValueError:
                    return v
            return self.names.person(v)
        return t(locale, f"measure.history_{event.kind}", when=self.names.when(event.at, locale),
                 who=self.names.person(event.actor_email), old=value(event.old_value), new=value(event.new_value),
                 reason=event.note or "")

    def new_measure_activity(self, email: str, now: dt.datetime, locale: str, *, values: dict[str, str] | None = None,
                             error: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """The "nytt tiltak" form, empty or with what was filled in and what is wrong."""
        lang = i18n.lang(locale)
        nonce = nonce or secrets.token_hex(8)  # each form its own: a second press of the same form creates nothing
        view = NewMeasureView(tuple((s, t(locale, f"measure.source.{s}").capitalize()) for s in SOURCES),
                              self._people(), tuple((s.key, s.name.get(lang)) for s in self.config.sections),
                              dict(values or {}), error)
        data = CardAction("measure.create", "new", nonce).pack(self.secret)
        return message(new_measure_card(view, locale, data), t(locale, "new_measure.title"))

    # -- the operations (chat and command line) ------------------------------------------------------------------

    def check_new(self, values: dict[str, str], today: dt.date) -> NewMeasure:
        """A measure to create from a form's or the command line's values; raises Refused."""
        source = values.get("source", "").strip()
        if source not in SOURCES:
            raise Refused("new_measure.source_unknown")
        description = values.get("description", "").strip()[:DESCRIPTION_MAX]
        if not description:
            raise Refused("new_measure.description_required")
        owner = values.get("owner", "").strip().lower()
        if self.config.person(owner) is None:
            raise Refused("measure.owner_unknown", who=owner or "–")
        deadline = self._deadline(values.get("deadline", ""), today)
        section = values.get("section", "").strip()
        if self.config.section(section) is None:
            raise Refused("new_measure.section_unknown")
        cim = values.get("cim", "").strip() or None
        if source == "incident" and (cim is None or not CIM_REF.fullmatch(cim)):
            raise Refused("new_measure.cim_required")
        return NewMeasure(source, description, owner, deadline, section, cim if source == "incident" else None)

    @staticmethod
    def _deadline(value: str, today: dt.date) -> dt.date:
        try:
            day = dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise Refused("measure.deadline_invalid") from None
        if not today <= day <= today + dt.timedelta(days=MAX_AHEAD_DAYS):
            raise Refused("measure.deadline_invalid")
        return day

    async def create(self, s: AsyncSession, new: NewMeasure, by: str, now: dt.datetime, *,
                     card: str | None = None) -> m.Measure:
        """Store a new measure and send its card to the owner (when someone else created it). Commits."""
        measure = m.Measure(source=new.source, description=new.description, section_key=new.section,
                            cim_ref=new.cim_ref, created_by=by, owner_email=new.owner, deadline=new.deadline,
                            status="open", created_at=now)
        s.add(measure)
        await s.flush()
        s.add(m.MeasureEvent(measure_id=m.pk(measure), status="open", actor_email=by, at=now, kind="created",
                             new_value=f"card:{card}" if card else None, note=f"source {new.source}"))
        if new.owner != by:
            locale = self.config.unit.locale
            text_ = t(locale, "measure.created_for_you", who=self.names.person(by))
            await repo.enqueue(s, [outbox_row(f"measure:{measure.id}|created|{new.owner}", "measure",
                                              person_target(new.owner),
                                              self.measure_activity(measure, None, None, locale, text_))], now)
        await s.commit()
        return measure

    def _check(self, ctx: Context, by: str) -> None:
        if ctx[0].status == "closed":
            raise Refused("measure.already_closed")
        if not self.may_manage(ctx, by):
            raise Refused("measure.not_allowed", owner=self.names.person(ctx[0].owner_email))

    @staticmethod
    def _reason(reason: str | None) -> str:
        text_ = (reason or "").strip()[:REASON_MAX]
        if not text_:
            raise Refused("measure.reason_required")
        return text_

    async def reassign(self, s: AsyncSession, ctx: Context, by: str, now: dt.datetime, owner: str,
                       reason: str | None) -> None:
        """Give the measure to another person from the organisation file, with a reason. Commits."""
        self._check(ctx, by)
        measure = ctx[0]
        owner = owner.strip().lower()
        if self.config.person(owner) is None:
            raise Refused("measure.owner_unknown", who=owner or "–")
        if owner == measure.owner_email:
            raise Refused("measure.same_owner", who=self.names.person(owner))
        why = self._reason(reason)
        old = measure.owner_email
        await repo.cancel_measure_messages(s, m.pk(measure), recipient=old)
        measure.owner_email = owner
        event = await self._record(s, measure, by, now, "reassigned", why, old, owner)
        locale = self.config.unit.locale
        text_ = t(locale, "measure.assigned", who=self.names.person(by))
        await repo.enqueue(s, [outbox_row(f"measure:{measure.id}|assigned|{owner}|{event.id}", "measure",
                                          person_target(owner), self.measure_activity(*ctx, locale, text_))], now)
        await s.commit()

    async def move_deadline(self, s: AsyncSession, ctx: Context, by: str, now: dt.datetime, deadline: str,
                            reason: str | None) -> None:
        """Move the deadline, with a reason; reminders are planned again for the new one. Commits."""
        self._check(ctx, by)
        measure = ctx[0]
        day = self._deadline(deadline, wheel.local_date(now, self.config))
        if day == measure.deadline:
            raise Refused("measure.same_deadline", deadline=format_date(day, self.config.unit.locale))
        why = self._reason(reason)
        old = measure.deadline
        await repo.cancel_measure_messages(s, m.pk(measure))
        measure.deadline = day
        await self._record(s, measure, by, now, "deadline", why, old.isoformat(), day.isoformat())
        await s.commit()

    async def add_evidence(self, s: AsyncSession, ctx: Context, by: str, now: dt.datetime, *,
                           note: str | None = None, link: str | None = None,
                           file: tuple[str, str, bytes] | None = None) -> None:
        """Keep evidence with the measure: a note, a link, or a file (name, content type, bytes). Commits."""
        self._check(ctx, by)
        measure_id = m.pk(ctx[0])
        note = (note or "").strip()[:NOTE_MAX] or None
        link = (link or "").strip() or None
        if link and (not link.startswith("https://") or len(link) > LINK_MAX):
            raise Refused("measure.link_invalid")
        rows = []
        if file is not None:
            name, content_type, data = file
            rows.append(m.MeasureEvidence(measure_id=measure_id, kind="file", filename=name[:200],
                                          content_type=content_type, size=len(data), data=data, added_by=by,
                                          added_at=now))
        if link:
            rows.append(m.MeasureEvidence(measure_id=measure_id, kind="link", url=link, note=note, added_by=by,
                                          added_at=now))
        elif note:
            rows.append(m.MeasureEvidence(measure_id=measure_id, kind="note", note=note, added_by=by, added_at=now))
        if not rows:
            raise Refused("measure.evidence_empty")
        for row in rows:
            s.add(row)
            await self._record(s, ctx[0], by, now, "evidence", row.note if row.kind == "note" else None, None,
                               row.filename or row.url or row.kind)
        await s.commit()

    async def set_ticket(self, s: AsyncSession, ctx: Context, by: str, now: dt.datetime, ticket: str) -> bool:
        """Keep EA's ticket number; False when it is that already (a Teams retry records nothing new). Commits."""
        self._check(ctx, by)
        before = ctx[0].external_ticket
        if await self.keep_ticket(s, ctx[0], by, now, ticket) is None:
            raise Refused("measure.ticket")
        await s.commit()
        return ctx[0].external_ticket != before

    async def keep_ticket(self, s: AsyncSession, measure: m.Measure, by: str, now: dt.datetime,
                          given: str) -> str | None:
        """Keep EA's ticket number on a measure with who and when: the measure card's field, and the floor
        contact's on the round's card (the caller has checked who may). None when nothing was given; the same
        number again records nothing new. No commit."""
        ticket = given.strip()[:TICKET_MAX]
        if not ticket:
            return None
        if measure.external_ticket != ticket:
            old = measure.external_ticket
            measure.external_ticket = ticket
            await self._record(s, measure, by, now, "ticket", f"ticket {ticket}", old, ticket)
        return ticket

    async def close(self, s: AsyncSession, ctx: Context, by: str, now: dt.datetime, note: str | None) -> None:
        """Close the measure with a note on what was done; the reminders not sent are cancelled, and whoever
        reported the deviation is told. Commits."""
        self._check(ctx, by)
        text_ = (note or "").strip()[:NOTE_MAX]
        if not text_:
            raise Refused("measure.note_required")
        measure, finding, _ = ctx
        await repo.cancel_measure_messages(s, m.pk(measure))
        measure.status = "closed"
        await self._record(s, measure, by, now, "closed", text_, None, None)
        reporter = finding.created_by if finding else None
        if reporter and reporter != by:
            locale = self.config.unit.locale
            line = t(locale, "measure.reporter_closed", who=self.names.person(by), when=self.names.when(now, locale),
                     note=text_)
            card = notice(NoticeView(t(locale, "measure.reporter_title"), (self.description(ctx), line), "Good"))
            await repo.enqueue(s, [outbox_row(f"measure:{measure.id}|closed|{reporter}", "measure_closed",
                                              person_target(reporter), message(card, line))], now)
        await s.commit()

    async def _record(self, s: AsyncSession, measure: m.Measure, by: str, now: dt.datetime, kind: str,
                      note: str | None, old: str | None, new: str | None) -> m.MeasureEvent:
        """Keep the change with who, when, what and why (flushes)."""
        event = m.MeasureEvent(measure_id=m.pk(measure), status=measure.status, actor_email=by, at=now, note=note,
                               kind=kind, old_value=old, new_value=new[:320] if new else None)
        s.add(event)
        await s.flush()
        return event

    def closed_line(self, events: list[m.MeasureEvent], locale: str) -> str:
        last = next((e for e in reversed(events) if e.status == "closed"), None)
        return t(locale, "measure.closed", who=self.names.person(last.actor_email if last else None),
                 when=self.names.when(last.at, locale) if last else "–", note=last.note if last else "")

    # -- the card verbs ------------------------------------------------------------------------------------------

    async def _create_pressed(self, press: CardPress) -> ActionResult:
        """The "nytt tiltak" form was sent: create the measure once, or show the form again with what is wrong."""
        s, locale = press.session, press.locale
        values = {k: press.values.get(k, "") for k in ("source", "description", "owner", "deadline", "section",
                                                        "cim")}
        earlier = await repo.measure_created_by_card(s, press.action.nonce)
        if earlier is not None:
            ctx = await repo.measure_with_context(s, earlier)
            if ctx is not None:
                return ActionResult(self.measure_card(ctx, locale, notice_text=t(
                    locale, "new_measure.already", id=earlier)), "duplicate")
        try:
            new = self.check_new(values, wheel.local_date(press.now, self.config))
        except Refused as exc:
            form = self.new_measure_activity(press.email, press.now, locale, values=values,
                                             error=f"{exc.text(locale)} {t(locale, 'new_measure.fix')}",
                                             nonce=press.action.nonce)
            return ActionResult(form["attachments"][0]["content"], "invalid")
        measure = await self.create(s, new, press.email, press.now, card=press.action.nonce)
        created = t(locale, "measure.created", id=measure.id, owner=self.names.person(measure.owner_email),
                    deadline=format_date(measure.deadline, locale))
        return ActionResult(self.measure_card((measure, None, None), locale, notice_text=created), "created")

    async def _found(self, press: CardPress) -> ActionResult | Context:
        """The measure a press is for, or the card saying why it cannot be acted on."""
        measure_id = press.action.ref_id()
        found = await repo.measure_with_context(press.session, measure_id) if measure_id is not None else None
        if found is None:
            return refusal(press.locale, "card.unknown", "unknown")
        if not self.may_manage(found, press.email):
            return refusal(press.locale, "measure.not_allowed", "not_allowed",
                           owner=self.names.person(found[0].owner_email))
        if found[0].status == "closed":
            events = await repo.measure_events(press.session, m.pk(found[0]))
            return ActionResult(self.measure_card(found, press.locale, closed_line=self.closed_line(
                events, press.locale)), "already_closed")
        return found

    def _on_measure(self, step: MeasureStep) -> CardHandler:
        """A handler that runs `step` on an open measure the sender may act on, and otherwise says why not; a step
        that is refused gets the card again with the reason, and nothing is stored."""
        async def handler(press: CardPress) -> ActionResult:
            found = await self._found(press)
            if isinstance(found, ActionResult):
                return found
            measure_id = m.pk(found[0])
            try:
                return await step(press, found)
            except Refused as exc:
                await press.session.rollback()
                found = await repo.measure_with_context(press.session, measure_id) or found
                return ActionResult(await self.full_card(press.session, found, press.locale,
                                                         error=exc.text(press.locale)), "invalid")
        return handler

    async def full_card(self, s: AsyncSession, ctx: Context, locale: str, *, notice_text: str | None = None,
                        error: str | None = None) -> dict[str, Any]:
        """The card with its history and evidence read from the record."""
        events = await repo.measure_events(s, m.pk(ctx[0]))
        closed = self.closed_line(events, locale) if ctx[0].status == "closed" else None
        return self.measure_card(ctx, locale, notice_text=notice_text, error=error, closed_line=closed,
                                 events=events, evidence=await repo.measure_evidence(s, m.pk(ctx[0])))

    async def _ticket_pressed(self, press: CardPress, ctx: Context) -> ActionResult:
        ticket = press.values.get("ticket", "")
        await self.set_ticket(press.session, ctx, press.email, press.now, ticket)
        return ActionResult(await self.full_card(press.session, ctx, press.locale, notice_text=t(
            press.locale, "measure.ticket_saved", ticket=ctx[0].external_ticket)), "ticket")

    async def _reassign_pressed(self, press: CardPress, ctx: Context) -> ActionResult:
        await self.reassign(press.session, ctx, press.email, press.now, press.values.get("owner", ""),
                            press.values.get("reason"))
        return ActionResult(await self.full_card(press.session, ctx, press.locale, notice_text=t(
            press.locale, "measure.reassigned", owner=self.names.person(ctx[0].owner_email))), "reassigned")

    async def _deadline_pressed(self, press: CardPress, ctx: Context) -> ActionResult:
        await self.move_deadline(press.session, ctx, press.email, press.now, press.values.get("deadline", ""),
                                 press.values.get("reason"))
        return ActionResult(await self.full_card(press.session, ctx, press.locale, notice_text=t(
            press.locale, "measure.deadline_moved", deadline=format_date(ctx[0].deadline, press.locale))),
            "deadline")

    async def _evidence_pressed(self, press: CardPress, ctx: Context) -> ActionResult:
        await self.add_evidence(press.session, ctx, press.email, press.now, note=press.values.get("note"),
                                link=press.values.get("link"))
        return ActionResult(await self.full_card(press.session, ctx, press.locale, notice_text=t(
            press.locale, "measure.evidence_saved")), "evidence")

    async def _close_pressed(self, press: CardPress, ctx: Context) -> ActionResult:
        await self.close(press.session, ctx, press.email, press.now, press.values.get("note"))
        events = await repo.measure_events(press.session, m.pk(ctx[0]))
        return ActionResult(self.measure_card(ctx, press.locale, closed_line=self.closed_line(events, press.locale)),
                            "closed")

    # -- a file sent in the chat ---------------------------------------------------------------------------------

    async def evidence_from_chat(self, s: AsyncSession, email: str, text_value: str, files: list[EvidenceFile],
                                 now: dt.datetime, locale: str, download: Download) -> dict[str, Any]:
        """A photo or PDF sent to the bot: stored as evidence with the measure the words name ("bevis tiltak 12"),
        or the one open measure the sender follows up; otherwise the answer says what to do. Nothing is stored
        from a file that is too large, of another type, or could not be fetched."""
        mine = [ctx for ctx in await repo.open_measures(s) if self.may_manage(ctx, email)]
        number = _MEASURE_NO.search(text_value)
        if number:
            found = await repo.measure_with_context(s, int(number.group(1)))
            if found is None:
                return notice_card(t(locale, "measure.no_such", id=number.group(1)))
            ctx: Context = found
        elif len(mine) == 1:
            ctx = mine[0]
        elif not mine:
            return notice_card(t(locale, "evidence.none"))
        else:
            return notice_card(t(locale, "evidence.which", list=", ".join(
                f"nr. {c[0].id} ({self.description(c)[:40]})" for c in mine[:10])))
        stored = []
        try:
            self._check(ctx, email)
            for file in files:
                if file.content_type is not None and file.content_type not in FILE_TYPES.values():
                    raise Refused("evidence.wrong_type", type=file.content_type)
                try:
                    data = await download(file.url, EVIDENCE_MAX_BYTES)
                except FileTooLarge:
                    raise Refused("evidence.too_large", name=file.name, max=EVIDENCE_MAX_MB) from None
                except (DeliveryError, OSError, TimeoutError):
                    raise Refused("evidence.failed") from None
                kind = sniff(data)
                if kind is None or (file.content_type and kind != file.content_type):
                    raise Refused("evidence.wrong_type", type=file.content_type or file.name)
                stored.append((file.name, kind, data))
            for item in stored:
                await self.add_evidence(s, ctx, email, now, file=item)
        except Refused as exc:
            await s.rollback()
            return notice_card(exc.text(locale))
        line = t(locale, "evidence.saved", name=", ".join(name for name, _, _ in stored), id=ctx[0].id)
        return message(await self.full_card(s, ctx, locale, notice_text=line), line)


# -- the command line ---------------------------------------------------------------------------------------------


async def add_measure(url: str, config: HmsConfig, values: dict[str, str], by: str, now: dt.datetime,
                      card_key: bytes) -> m.Measure:
    """`hms-bot measure add` (the owner's card is signed with the bot's `card_key`). Raises Refused."""
    measures = Measures(config, card_key)
    new = measures.check_new(values, wheel.local_date(now, config))
    async with opened(url, now=now) as s:
        return await measures.create(s, new, by.lower(), now)


async def measure_listing(url: str, config: HmsConfig, *, everything: bool = False) -> list[dict[str, Any]]:
    """`hms-bot measure list`: the open measures (every measure with `everything`)."""
    async with opened(url) as s:
        found = await (repo.all_measures(s) if everything else repo.open_measures(s))
        return [measure_json(Measures(config, b""), ctx) for ctx in found]


async def measure_record(url: str, config: HmsConfig, measure_id: int) -> dict[str, Any]:
    """`hms-bot measure show`: the measure, its history and its evidence (without the files' bytes)."""
    measures = Measures(config, b"")
    async with opened(url) as s:
        ctx = await repo.measure_with_context(s, measure_id)
        if ctx is None:
            raise Refused("measure.no_such", id=measure_id)
        events = await repo.measure_events(s, measure_id)
        evidence = await repo.measure_evidence(s, measure_id)
    return {**measure_json(measures, ctx),
            "history": [{"at": e.at.astimezone(config.tz).isoformat(), "by": e.actor_email, "kind": e.kind or e.status,
                         "status": e.status, "from": e.old_value, "to": e.new_value, "note": e.note} for e in events],
            "evidence": [{"at": e.added_at.astimezone(config.tz).isoformat(), "by": e.added_by, "kind": e.kind,
                          "note": e.note, "url": e.url, "file": e.filename, "content_type": e.content_type,
                          "size": e.size} for e in evidence]}


def measure_json(measures: Measures, ctx: Context) -> dict[str, Any]:
    measure, finding, occ_row = ctx
    return {"id": measure.id, "source": measure.source, "description": measures.description(ctx),
            "section": measures.section_of(ctx), "owner": measure.owner_email, "deadline": measure.deadline.isoformat(),
            "status": measure.status, "cim_ref": measure.cim_ref, "ticket": measure.external_ticket,
            "created_by": measure.created_by or (finding.created_by if finding else None),
            "occurrence": occ_row.key if occ_row else None}


async def change_measure(url: str, config: HmsConfig, card_key: bytes, measure_id: int, action: str, by: str,
                         now: dt.datetime, **values: str | None) -> dict[str, Any]:
    """`hms-bot measure reassign|deadline|close|evidence` as `by` (a new owner's card is signed with the bot's
    `card_key`). Raises Refused."""
    measures = Measures(config, card_key)
    by = by.lower()
    async with opened(url, now=now) as s:
        ctx = await repo.measure_with_context(s, measure_id)
        if ctx is None:
            raise Refused("measure.no_such", id=measure_id)
        if action == "reassign":
            await measures.reassign(s, ctx, by, now, values.get("owner") or "", values.get("reason"))
        elif action == "deadline":
            await measures.move_deadline(s, ctx, by, now, values.get("deadline") or "", values.get("reason"))
        elif action == "close":
            await measures.close(s, ctx, by, now, values.get("note"))
        elif action == "evidence":
            await measures.add_evidence(s, ctx, by, now, note=values.get("note"), link=values.get("link"),
                                        file=_file(values.get("file")))
        else:
            raise ValueError(action)
    return await measure_record(url, config, measure_id)


def _file(path: str | None) -> tuple[str, str, bytes] | None:
    """A file given on the command line as evidence (same limits and types as in the chat). Raises Refused."""
    if not path:
        return None
    from pathlib import Path

    file = Path(path)
    if file.stat().st_size > EVIDENCE_MAX_BYTES:
        raise Refused("evidence.too_large", name=file.name, max=EVIDENCE_MAX_MB)
    data = file.read_bytes()
    kind = sniff(data)
    if kind is None:
        raise Refused("evidence.wrong_type", type=file.suffix or file.name)
    return file.name, kind, data

