"""Following a measure: the card its owner gets (what was found, where, by when, the Si fra link, a field for
EA's ticket number), and closing it with a note on what was done. Every status change is kept with who and when.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cards.actions import CardAction, nonce_for
from cards.common import message
from cards.measure import MeasureView, measure_card
from hms import wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from storage import models as m, repo
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.naming import Names
from usecases.routing import Router

NOTE_MAX = 1000
TICKET_MAX = 100

MeasureStep = Callable[[CardPress, m.Measure, m.Finding, m.Occurrence], Awaitable[ActionResult]]


class Measures:
    """Measure cards, and the measure.* card verbs."""

    def __init__(self, config: HmsConfig, secret: bytes):
        self.config = config
        self.secret = secret
        self.names = Names(config)
        self.router: Router[CardHandler] = Router("measures")
        self.router.register("measure.close", self._on_open_measure(self._close))
        self.router.register("measure.ticket", self._on_open_measure(self._ticket))

    def measure_activity(self, measure: m.Measure, finding: m.Finding, occ_row: m.Occurrence, locale: str,
                         notice_text: str | None = None) -> dict[str, Any]:
        """The message that brings a measure's card to its owner (new, reminded, overdue or escalated)."""
        card = self.measure_card(measure, finding, occ_row, locale, notice_text=notice_text)
        return message(card, notice_text or t(locale, "measure.new"))

    def measure_card(self, measure: m.Measure, finding: m.Finding, occ_row: m.Occurrence, locale: str, *,
                     notice_text: str | None = None, error: str | None = None,
                     closed_line: str | None = None) -> dict[str, Any]:
        """The measure's card: fillable while open, read-only with `closed_line` once closed."""
        occ = wheel.find_occurrence(self.config, occ_row.key)
        where = (f"{self.names.scope(occ, locale)} · {self.names.task(occ, locale)} {occ.cycle}"
                 if occ else occ_row.key)
        item_text = self.names.item(occ_row.task_key, finding.item_key, locale)
        si_fra = self.config.links["si_fra"].url if "si_fra" in self.config.links else None
        view = MeasureView(t(locale, "measure.title", item=item_text), where,
                           t(locale, "measure.finding", description=finding.description),
                           t(locale, "measure.owner", owner=self.names.person(measure.owner_email),
                             deadline=format_date(measure.deadline, locale)),
                           measure.external_ticket, si_fra, notice_text, error, closed_line)
        if closed_line:
            return measure_card(view, locale, None, None)
        nonce = nonce_for("measure", str(measure.id))
        return measure_card(view, locale, CardAction("measure.close", str(measure.id), nonce).pack(self.secret),
                            CardAction("measure.ticket", str(measure.id), nonce).pack(self.secret))

    # -- actions ------------------------------------------------------------------------------------------------

    async def _open_measure(self, press: CardPress) -> ActionResult | tuple[m.Measure, m.Finding, m.Occurrence]:
        """The measure a press is for, or the card saying why it cannot be acted on."""
        measure_id = press.action.ref_id()
        found = await repo.measure_with_context(press.session, measure_id) if measure_id is not None else None
        if found is None:
            return refusal(press.locale, "card.unknown", "unknown")
        measure, finding, occ_row = found
        section = self.config.section(occ_row.section_key) if occ_row.section_key else None
        allowed = {measure.owner_email, self.config.roles.hmsb_adviser} | ({section.leader} if section else set())
        if press.email not in allowed:
            return refusal(press.locale, "card.not_allowed", "not_allowed",
                           who=self.names.person(measure.owner_email))
        if measure.status == "closed":
            events = [e for e in await repo.measure_events(press.session, measure.id or 0) if e.status == "closed"]
            last = events[-1] if events else None
            closed = t(press.locale, "measure.closed", who=self.names.person(last.actor_email if last else None),
                       when=self.names.when(last.at, press.locale) if last else "–", note=last.note if last else "")
            return ActionResult(self.measure_card(measure, finding, occ_row, press.locale, closed_line=closed),
                                "already_closed")
        return measure, finding, occ_row

    def _on_open_measure(self, step: MeasureStep) -> CardHandler:
        """A handler that runs `step` on an open measure the sender may act on, and otherwise says why not."""
        async def handler(press: CardPress) -> ActionResult:
            found = await self._open_measure(press)
            if isinstance(found, ActionResult):
                return found
            return await step(press, *found)
        return handler

    async def _ticket(self, press: CardPress, measure: m.Measure, finding: m.Finding,
                      occ_row: m.Occurrence) -> ActionResult:
        """Keep EA's ticket number on an open measure."""
        ticket = await self.keep_ticket(press, measure, press.values.get("ticket", ""))
        if not ticket:
            return ActionResult(self.measure_card(measure, finding, occ_row, press.locale,
                                                  error=t(press.locale, "measure.ticket")), "invalid")
        return ActionResult(self.measure_card(measure, finding, occ_row, press.locale,
                                              notice_text=t(press.locale, "measure.ticket_saved", ticket=ticket)),
                            "ticket")

    async def keep_ticket(self, press: CardPress, measure: m.Measure, given: str) -> str | None:
        """Keep EA's ticket number on an open measure, with who and when (the measure card's field, and the floor
        contact's on the round's card); None when nothing was given. The same number again records nothing new."""
        ticket = given.strip()[:TICKET_MAX]
        if not ticket:
            return None
        if measure.external_ticket != ticket:  # the same press again (a Teams retry) records nothing new
            measure.external_ticket = ticket
            await self._record(press, measure, measure.status, f"ticket {ticket}")
        return ticket

    async def _close(self, press: CardPress, measure: m.Measure, finding: m.Finding,
                     occ_row: m.Occurrence) -> ActionResult:
        """Close an open measure with a note on what was done."""
        note = press.values.get("note", "").strip()[:NOTE_MAX]
        if not note:
            return ActionResult(self.measure_card(measure, finding, occ_row, press.locale,
                                                  error=t(press.locale, "measure.note_required")), "invalid")
        measure.status = "closed"
        await self._record(press, measure, "closed", note)
        closed = t(press.locale, "measure.closed", who=self.names.person(press.email),
                   when=self.names.when(press.now, press.locale), note=note)
        return ActionResult(self.measure_card(measure, finding, occ_row, press.locale, closed_line=closed), "closed")

    async def _record(self, press: CardPress, measure: m.Measure, status: str, note: str) -> None:
        """Keep the change with who and when, and commit it."""
        press.session.add(m.MeasureEvent(measure_id=m.pk(measure), status=status, actor_email=press.email,
                                         at=press.now, note=note))
        await press.session.commit()
