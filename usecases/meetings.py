"""The safety round with the safety representative: the section leader proposes a day and a time, the
representative gets an invitation in her personal chat and accepts it or proposes another time, and so on until one
of them accepts; each step is on record (`storage.models.MeetingProposal`). A reminder goes to both the working day
before the agreed time, and the round's report names both of them.

A round has a meeting when its task takes the safety representative as a participant (`participants:
[safety_rep]` in the organisation file) and its section has one. Card verbs: meeting.open (the leader's card with
the meeting as it stands), meeting.propose (the leader), meeting.accept and meeting.counter (whoever the newest
proposal is for). A proposed time must be ahead of now, on a working day, and no later than the round's deadline
(for a round past its deadline: within `LATE_DAYS`). A press on a proposal that is no longer the newest, one
answered already, one meant for someone else, or on a round already done, changes nothing and says why; two presses
at the same moment cannot both move the meeting on (answers are a compare-and-set, and proposals are numbered).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction, nonce_for
from cards.common import message
from cards.meeting import ProposalView, ScheduleView, TimeInputs, proposal_card, schedule_card
from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, format_moment, t, weekday
from hms.workdays import WorkCalendar
from storage import models as m, repo
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.naming import Names
from usecases.outbox import outbox_row, person_target
from usecases.registration import ResultCard
from usecases.routing import Router

LeaderStep = Callable[[CardPress, wheel.Occurrence, str, "MeetingState"], Awaitable[ActionResult]]
AnswerStep = Callable[[CardPress, wheel.Occurrence, m.Occurrence, m.MeetingProposal], Awaitable[ActionResult]]

LATE_DAYS = 30  # a round past its deadline can still be agreed within this many days
INPUT_MAX = 40  # longer than any date or time a client sends


@dataclass(frozen=True)
class MeetingState:
    """Where an occurrence's meeting stands (its newest proposal, if any) on a given day."""

    latest: m.MeetingProposal | None
    today: dt.date

    @property
    def agreed(self) -> bool:
        return self.latest is not None and self.latest.answer == "accepted"


@dataclass(frozen=True)
class PlannedReminder:
    """A reminder of an agreed meeting the planner should send: its outbox key, recipient and message."""

    key: str
    recipient: str
    occurrence: wheel.Occurrence
    activity: dict[str, Any]


class Meetings:
    """The meeting cards, the meeting.* verbs, the reminders, and the lines the round's report gets."""

    def __init__(self, config: HmsConfig, secret: bytes, result_card: ResultCard):
        self.config = config
        self.secret = secret
        self.names = Names(config)
        self.cal = WorkCalendar(config.tz)
        self.result_card = result_card
        self.router: Router[CardHandler] = Router("meetings")
        self.router.register("meeting.open", self._on_leader_round(self._open))
        self.router.register("meeting.propose", self._on_leader_round(self._propose))
        self.router.register("meeting.accept", self._on_answerable(self._accept))
        self.router.register("meeting.counter", self._on_answerable(self._counter))

    # -- who ------------------------------------------------------------------------------------------------------

    def representative(self, occ: wheel.Occurrence) -> str | None:
        """The safety representative a round is agreed with, or None when the round has no meeting."""
        task = self.config.task(occ.task)
        section = self.config.section(occ.section) if occ.section else None
        if task is None or "safety_rep" not in task.participants or section is None or not section.safety_rep \
                or not occ.assignees:
            return None
        return section.safety_rep

    def _pair(self, occ: wheel.Occurrence, p: m.MeetingProposal) -> tuple[str, str]:
        """(the leader, the representative) of a proposal, whichever of them proposed it."""
        rep = self.representative(occ)
        return (p.proposed_to, p.proposed_by) if p.proposed_by == rep else (p.proposed_by, p.proposed_to)

    # -- reading ----------------------------------------------------------------------------------------------

    async def states(self, s: AsyncSession, occurrences: list[wheel.Occurrence], today: dt.date
                     ) -> dict[str, MeetingState]:
        """The meeting of each occurrence that has one (one query for them all)."""
        keys = [o.key for o in occurrences if self.representative(o)]
        latest = await repo.latest_proposals(s, keys)
        return {key: MeetingState(latest.get(key), today) for key in keys}

    def _when(self, p: m.MeetingProposal, locale: str) -> str:
        return format_moment(p.starts_at.astimezone(self.config.tz), locale)

    def status_line(self, occ: wheel.Occurrence, latest: m.MeetingProposal | None, locale: str) -> str:
        """"No time is agreed yet", "Proposed by X: T – waiting for Y", or "Agreed: T, with X and Y"."""
        if latest is None:
            return t(locale, "meeting.status_none")
        if latest.answer == "accepted":
            leader, rep = self._pair(occ, latest)
            return t(locale, "meeting.status_agreed", when=self._when(latest, locale),
                     leader=self.names.person(leader), rep=self.names.person(rep))
        return t(locale, "meeting.status_waiting", by=self.names.person(latest.proposed_by),
                 when=self._when(latest, locale), to=self.names.person(latest.proposed_to))

    def report_lines(self, occ: wheel.Occurrence, events: list[m.OccurrenceEvent],
                     latest: m.MeetingProposal | None, locale: str, *, confirmation: bool = True) -> list[str]:
        """What the report of a done round says about its meeting: who did it (the leader and the representative
        named when it was submitted), the agreed time, and (with `confirmation`) whether the representative has
        confirmed it yet."""
        rep = next((e.actor_email for e in events if e.kind == "participant" and e.note == "safety_rep"), None) \
            or self.representative(occ)
        if rep is None or not occ.assignees:
            return []
        lines = [t(locale, "meeting.report", leader=self.names.person(occ.assignees[0]),
                   rep=self.names.person(rep))]
        if latest is not None and latest.answer == "accepted":
            lines.append(t(locale, "meeting.report_time", when=self._when(latest, locale)))
        if confirmation and not any(e.kind == "confirmed" and e.actor_email == rep for e in events):
            lines.append(t(locale, "meeting.waiting_confirm", rep=self.names.person(rep)))
        return lines

    # -- cards ------------------------------------------------------------------------------------------------

    def latest_day(self, occ: wheel.Occurrence, today: dt.date) -> dt.date:
        """The last day a meeting may be agreed for: the deadline, or for a round past it, LATE_DAYS from today."""
        return occ.due if today <= occ.due else today + dt.timedelta(days=LATE_DAYS)

    def _inputs(self, occ: wheel.Occurrence, today: dt.date, values: dict[str, str] | None = None) -> TimeInputs:
        values = values or {}
        return TimeInputs(today.isoformat(), self.latest_day(occ, today).isoformat(),
                          values.get("date", "")[:INPUT_MAX] or None, values.get("time", "")[:INPUT_MAX] or None)

    def open_data(self, occ: wheel.Occurrence, nonce: str) -> dict[str, Any] | None:
        """The signed data of the "open the checklist" button (round.open), when the round has a checklist."""
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        if checklist is None:
            return None
        return CardAction("round.open", occ.key, nonce, checklist.key, checklist.version).pack(self.secret)

    def schedule_data(self, occ: wheel.Occurrence, nonce: str) -> dict[str, Any] | None:
        """The signed data of the checklist's "agree on a time" button (meeting.open), when the round has a meeting."""
        return CardAction("meeting.open", occ.key, nonce).pack(self.secret) if self.representative(occ) else None

    def schedule_card(self, occ: wheel.Occurrence, state: MeetingState, locale: str, *, nonce: str,
                      notice: str | None = None, error: str | None = None,
                      values: dict[str, str] | None = None) -> dict[str, Any]:
        """The section leader's card: the meeting as it stands, a day and time to propose, the checklist."""
        rep = self.representative(occ)
        task = self.names.task(occ, locale)
        where = self.names.scope(occ, locale)
        view = ScheduleView(
            title=t(locale, "meeting.title", task=task), where=where,
            due_line=t(locale, "round.due_line", due=format_date(occ.due, locale)),
            intro=t(locale, "meeting.intro", task=self.names.task_in_sentence(occ, locale), where=where,
                    rep=self.names.person(rep)),
            status=self.status_line(occ, state.latest, locale), agreed=state.agreed,
            inputs=self._inputs(occ, state.today, values), notice=notice, error=error)
        return schedule_card(view, locale, CardAction("meeting.propose", occ.key, nonce).pack(self.secret),
                             self.open_data(occ, nonce))

    def prompt_activity(self, occ: wheel.Occurrence, state: MeetingState, line: str, locale: str, *,
                        nonce: str) -> dict[str, Any]:
        """A prompt or reminder of a round whose time is not agreed yet: the leader's card, with `line` on top."""
        return message(self.schedule_card(occ, state, locale, nonce=nonce, notice=line), line)

    def proposal_card(self, occ: wheel.Occurrence, p: m.MeetingProposal, locale: str, today: dt.date, *,
                      notice: str | None = None, error: str | None = None, answered_line: str | None = None,
                      values: dict[str, str] | None = None) -> dict[str, Any]:
        """A proposal for the person it is for: fillable while it waits for them, else read-only."""
        to_rep = p.proposed_to == self._pair(occ, p)[1]
        task = self.names.task(occ, locale)
        where = self.names.scope(occ, locale)
        body = self._proposal_line(occ, p, locale)
        role = t(locale, "meeting.invite_role" if to_rep else "meeting.counter_role",
                 due=format_date(occ.due, locale))
        view = ProposalView(t(locale, "meeting.invite_title", task=task, where=where), where, (body, role),
                            self._inputs(occ, today, values), notice, error, answered_line)
        if answered_line or p.answer is not None:
            return proposal_card(view, locale, None, None,
                                 self.open_data(occ, nonce_for(occ.key, "meeting")) if not to_rep else None)
        nonce = nonce_for("meeting", str(p.id))
        return proposal_card(view, locale, CardAction("meeting.accept", str(p.id), nonce).pack(self.secret),
                             CardAction("meeting.counter", str(p.id), nonce).pack(self.secret))

    def _proposal_line(self, occ: wheel.Occurrence, p: m.MeetingProposal, locale: str) -> str:
        """"NN invites you to the safety round of S: T" (to the representative), or "NN proposes another time"."""
        key = "meeting.invite_body" if p.proposed_to == self._pair(occ, p)[1] else "meeting.counter_body"
        return t(locale, key, by=self.names.person(p.proposed_by), task=self.names.task_in_sentence(occ, locale),
                 where=self.names.scope(occ, locale), when=self._when(p, locale))

    def _accepted_activity(self, occ: wheel.Occurrence, p: m.MeetingProposal, to: str, locale: str
                           ) -> dict[str, Any]:
        """What the proposer is told when their proposal is accepted (the leader can open the checklist from it)."""
        task = self.names.task(occ, locale)
        where = self.names.scope(occ, locale)
        line = t(locale, "meeting.accepted_body", by=self.names.person(p.proposed_to), when=self._when(p, locale),
                 task=self.names.task_in_sentence(occ, locale), where=where)
        agreed = self.status_line(occ, p, locale)
        leader, _ = self._pair(occ, p)
        view = ProposalView(t(locale, "meeting.accepted_title", task=task), where, (line,),
                            self._inputs(occ, wheel.local_date(p.starts_at, self.config)), answered_line=agreed)
        open_data = self.open_data(occ, nonce_for(occ.key, "meeting")) if to == leader else None
        return message(proposal_card(view, locale, None, None, open_data), line)

    def _reminder_activity(self, occ: wheel.Occurrence, p: m.MeetingProposal, to: str, locale: str
                           ) -> dict[str, Any]:
        leader, rep = self._pair(occ, p)
        task = self.names.task(occ, locale)
        where = self.names.scope(occ, locale)
        named = self.names.task_in_sentence(occ, locale)
        line = t(locale, "meeting.reminder", task=named, Task=i18n.capitalised(named), where=where,
                 when=self._when(p, locale),
                 leader=self.names.person(leader), rep=self.names.person(rep))
        view = ProposalView(t(locale, "meeting.reminder_title", task=task, where=where), where, (line,),
                            self._inputs(occ, wheel.local_date(p.starts_at, self.config)))
        open_data = self.open_data(occ, nonce_for(occ.key, "meeting")) if to == leader else None
        return message(proposal_card(view, locale, None, None, open_data), line)

    # -- the planner's part: a reminder to both the working day before ----------------------------------------

    async def due_reminders(self, s: AsyncSession, now: dt.datetime, locales: dict[str, str]
                            ) -> list[PlannedReminder]:
        """Reminders of agreed meetings due at `now`: at the send time of the working day before the meeting, to
        the leader and the representative, unless the meeting was agreed after that moment (they just agreed).
        Keyed by the accepted proposal, so a meeting moved to another time is reminded again."""
        out = []
        for p, occ_row in await repo.agreed_meetings(s, now, now + dt.timedelta(days=14)):
            occ = wheel.find_occurrence(self.config, occ_row.key)
            task = self.config.task(occ_row.task_key)
            if occ is None or task is None or p.answered_at is None:
                continue
            hour, minute = (int(x) for x in self.config.policy(task).send_at.split(":"))
            day = self.cal.add_working_days(p.starts_at.astimezone(self.config.tz).date(), -1)
            remind_at = self.cal.at(day, dt.time(hour, minute))
            if not remind_at <= now or p.answered_at >= remind_at:
                continue
            for to in (p.proposed_by, p.proposed_to):
                locale = locales.get(to) or self.config.unit.locale
                out.append(PlannedReminder(f"meeting:{p.id}|reminder|{to}", to, occ,
                                           self._reminder_activity(occ, p, to, locale)))
        return out

    # -- actions ------------------------------------------------------------------------------------------------

    async def _leader_round(self, press: CardPress) -> ActionResult | tuple[wheel.Occurrence, str, MeetingState]:
        """The round a leader's press is for, its representative and its meeting, or the card saying why not."""
        occ = wheel.find_occurrence(self.config, press.action.ref)
        if occ is None:
            return refusal(press.locale, "card.unknown", "unknown")
        if press.email not in occ.assignees:
            return refusal(press.locale, "meeting.not_leader", "not_allowed", task=self.names.task_in_sentence(
                occ, press.locale), who=", ".join(self.names.person(e) for e in occ.assignees))
        rep = self.representative(occ)
        if rep is None:
            return refusal(press.locale, "meeting.no_rep", "no_rep", where=self.names.scope(occ, press.locale))
        row = await repo.occurrence_row(press.session, occ.key)
        if row is not None and row.completed_at is not None:
            return await self._round_done(press, occ, row)
        latest = (await repo.latest_proposals(press.session, [occ.key])).get(occ.key)
        return occ, rep, MeetingState(latest, wheel.local_date(press.now, self.config))

    async def _round_done(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence) -> ActionResult:
        done = self.names.done_by(row, press.email, press.locale, "card.completed_by")
        return ActionResult(await self.result_card(press.session, occ, row, press.locale, done), "completed")

    def _on_leader_round(self, step: LeaderStep) -> CardHandler:
        """A handler that runs `step` on a round the sender leads and whose time can still be agreed."""
        async def handler(press: CardPress) -> ActionResult:
            found = await self._leader_round(press)
            return found if isinstance(found, ActionResult) else await step(press, *found)
        return handler

    def _on_answerable(self, step: AnswerStep) -> CardHandler:
        """A handler that runs `step` on the newest proposal, waiting for the sender's answer."""
        async def handler(press: CardPress) -> ActionResult:
            found = await self._answerable(press)
            return found if isinstance(found, ActionResult) else await step(press, *found)
        return handler

    async def _open(self, press: CardPress, occ: wheel.Occurrence, rep: str, state: MeetingState) -> ActionResult:
        """The leader's card with the meeting as it stands (from the checklist's button)."""
        return ActionResult(self.schedule_card(occ, state, press.locale, nonce=press.action.nonce), "meeting")

    async def _propose(self, press: CardPress, occ: wheel.Occurrence, rep: str, state: MeetingState
                       ) -> ActionResult:
        """The leader proposes a time: the representative gets an invitation (any proposal still waiting is
        replaced, or, when it was the representative's, answered by this one)."""
        s, locale = press.session, press.locale

        def card(outcome: str, now_state: MeetingState, **kwargs: Any) -> ActionResult:
            return ActionResult(self.schedule_card(occ, now_state, locale, nonce=press.action.nonce, **kwargs),
                                outcome)

        starts = self._parse(press, occ)
        if isinstance(starts, str):
            return card("invalid", state, error=starts, values=press.values)
        latest = state.latest
        if latest is not None and latest.starts_at == starts and (
                latest.answer == "accepted" or (latest.answer is None and latest.proposed_by == press.email)):
            key = "meeting.already_agreed" if latest.answer == "accepted" else "meeting.already_sent"
            return card("duplicate", state, notice=t(locale, key, when=self._when(latest, locale),
                                                     to=self.names.person(latest.proposed_to)))
        row = await repo.ensure_occurrence(s, occ, press.now)
        proposal = await self._follow(press, m.pk(row), latest, rep, starts)
        if proposal is None:
            return card("conflict", await self._state_now(press, occ), notice=t(locale, "meeting.conflict"))
        await self._send(s, occ, proposal, press.now)
        return card("proposed", MeetingState(proposal, state.today),
                    notice=t(locale, "meeting.sent", to=self.names.person(rep)))

    async def _answerable(self, press: CardPress
                          ) -> ActionResult | tuple[wheel.Occurrence, m.Occurrence, m.MeetingProposal]:
        """The proposal a press answers, if it is the newest, still waiting, and for the sender; else the card
        saying how things stand."""
        proposal_id = press.action.ref_id()
        found = await repo.proposal_with_occurrence(press.session, proposal_id) if proposal_id else None
        occ = wheel.find_occurrence(self.config, found[1].key) if found else None
        if found is None or occ is None or self.representative(occ) is None:
            return refusal(press.locale, "card.unknown", "unknown")
        p, row = found
        if press.email != p.proposed_to:
            return refusal(press.locale, "meeting.not_yours", "not_allowed", who=self.names.person(p.proposed_to))
        if row.completed_at is not None:
            return await self._round_done(press, occ, row)
        if p.answer is None:
            return occ, row, p
        today = wheel.local_date(press.now, self.config)
        state = await self._state_now(press, occ)
        latest = state.latest
        if latest is not None and latest.answer is None and latest.proposed_to == press.email:
            # answered by a newer proposal meant for this person: that one is the card to answer now
            return ActionResult(self.proposal_card(occ, latest, press.locale, today,
                                                   notice=t(press.locale, "meeting.replaced")), "stale")
        duplicate = p.answered_by == press.email
        return ActionResult(self.proposal_card(
            occ, p, press.locale, today,
            notice=t(press.locale, "meeting.already_answered" if duplicate else "meeting.replaced"),
            answered_line=self.status_line(occ, latest, press.locale)), "duplicate" if duplicate else "stale")

    async def _accept(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence,
                      p: m.MeetingProposal) -> ActionResult:
        """The proposal's recipient accepts it: the time is agreed, and the proposer is told."""
        s, locale = press.session, press.locale
        if not await repo.answer_proposal(s, m.pk(p), "accepted", press.email, press.now):
            return await self._conflict(press)
        p = _answered(p, "accepted", press)
        to = p.proposed_by
        activity = self._accepted_activity(occ, p, to, await self._locale(s, to))
        await repo.enqueue(s, [outbox_row(f"meeting:{p.id}|accepted|{to}", "meeting", person_target(to),
                                          activity)], press.now)  # commits the answer with its message
        line = t(locale, "meeting.you_accepted", when=self._when(p, locale), other=self.names.person(to))
        return ActionResult(self.proposal_card(occ, p, locale, wheel.local_date(press.now, self.config),
                                               answered_line=line), "accepted")

    async def _counter(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence,
                       p: m.MeetingProposal) -> ActionResult:
        """The proposal's recipient proposes another time: the proposer gets it to accept or counter."""
        s, locale = press.session, press.locale
        today = wheel.local_date(press.now, self.config)
        starts = self._parse(press, occ)
        if isinstance(starts, str):
            return ActionResult(self.proposal_card(occ, p, locale, today, error=starts, values=press.values),
                                "invalid")
        proposal = await self._follow(press, m.pk(row), p, p.proposed_by, starts)
        if proposal is None:
            return await self._conflict(press)
        await self._send(s, occ, proposal, press.now)
        p = _answered(p, "countered", press)
        line = t(locale, "meeting.you_countered", when=self._when(proposal, locale),
                 other=self.names.person(p.proposed_by))
        return ActionResult(self.proposal_card(occ, p, locale, today, answered_line=line), "countered")

    # -- what a press stores and sends ----------------------------------------------------------------------------

    def _parse(self, press: CardPress, occ: wheel.Occurrence) -> dt.datetime | str:
        """The proposed start (Oslo time) from the card's date and time, or the refusal to show."""
        locale = press.locale
        try:
            day = dt.date.fromisoformat(press.values.get("date", "").strip()[:INPUT_MAX])
            clock = dt.time.fromisoformat(press.values.get("time", "").strip()[:INPUT_MAX])
        except ValueError:
            return t(locale, "meeting.bad_input")
        starts = self.cal.at(day, clock.replace(second=0, microsecond=0, tzinfo=None))
        if starts <= press.now:
            return t(locale, "meeting.past", when=format_moment(starts, locale))
        latest = self.latest_day(occ, wheel.local_date(press.now, self.config))
        if day > latest:  # before asking the calendar about it: a day in the year 9999 is refused here
            return t(locale, "meeting.too_late", day=format_date(day, locale), latest=format_date(latest, locale),
                     due=format_date(occ.due, locale))
        if not self.cal.is_working_day(day):
            why = self.cal.holiday_name(day) or weekday(day, locale)
            return t(locale, "meeting.not_working_day", day=format_date(day, locale), why=why)
        return starts

    async def _follow(self, press: CardPress, occurrence_id: int, latest: m.MeetingProposal | None, to: str,
                      starts: dt.datetime) -> m.MeetingProposal | None:
        """Store a new proposal after `latest` (answering it, when it still waits: replaced by its own proposer,
        countered by the other). None, with nothing stored, when someone else moved the meeting on meanwhile."""
        s = press.session
        if latest is not None and latest.answer is None:
            answer = "replaced" if latest.proposed_by == press.email else "countered"
            if not await repo.answer_proposal(s, m.pk(latest), answer, press.email, press.now):
                await s.rollback()
                return None
        seq = latest.seq + 1 if latest is not None else 1
        new_id = await repo.add_proposal(s, occurrence_id, seq, starts, press.email, to, press.now)
        if new_id is None:
            await s.rollback()
            return None
        return m.MeetingProposal(id=new_id, occurrence_id=occurrence_id, seq=seq, starts_at=starts,
                                 proposed_by=press.email, proposed_to=to, proposed_at=press.now)

    async def _send(self, s: AsyncSession, occ: wheel.Occurrence, p: m.MeetingProposal, now: dt.datetime) -> None:
        """Queue the proposal for the person it is for, and commit it with its message."""
        locale = await self._locale(s, p.proposed_to)
        card = self.proposal_card(occ, p, locale, wheel.local_date(now, self.config))
        await repo.enqueue(s, [outbox_row(f"meeting:{p.id}|proposal|{p.proposed_to}", "invitation",
                                          person_target(p.proposed_to),
                                          message(card, self._proposal_line(occ, p, locale)))], now)

    async def _conflict(self, press: CardPress) -> ActionResult:
        """Another press answered the same proposal first (a double tap, or the other side at the same moment):
        nothing of this one is stored, and the card says how things stand now."""
        await press.session.rollback()
        found = await self._answerable(press)
        if isinstance(found, ActionResult):
            return found
        return refusal(press.locale, "meeting.conflict", "conflict")

    async def _state_now(self, press: CardPress, occ: wheel.Occurrence) -> MeetingState:
        latest = (await repo.latest_proposals(press.session, [occ.key])).get(occ.key)
        return MeetingState(latest, wheel.local_date(press.now, self.config))

    async def _locale(self, s: AsyncSession, email: str) -> str:
        return await repo.person_locale(s, email) or self.config.unit.locale


def _answered(p: m.MeetingProposal, answer: str, press: CardPress) -> m.MeetingProposal:
    """A detached copy of a proposal as answered by `press` (what was just stored by compare-and-set)."""
    return m.MeetingProposal(**{**p.model_dump(), "answer": answer, "answered_by": press.email,
                                "answered_at": press.now})
