"""Rounds in the chat: the checklist and task cards people get, what happens when they press a button, and the
findings and measures that deviations become.

Card verbs this room handles: round.open, round.page, round.submit, round.confirm, task.done, task.register from
`usecases.registration`, and the meeting.* verbs of `usecases.meetings` (the time the safety round is agreed with the
safety representative; the measure verbs are in `usecases.measures`); round.ticket records EA's ticket number for a
building fault on the round's own card, and task.done tells the roles a task names under `notify_when_done`. A press
on an occurrence is checked
before anything is stored: the sender may act on it, the template version it was made from, and whether the round
is already done (by this card or by someone else). Final answers are append-only; what is saved before is the
round's draft, one row per item overwritten by each page save (see `storage.models`), so a press costs the same on
the thousandth save as on the first. Completion is a compare-and-set, so two people submitting at once cannot both
complete a round. Work that may be slow (the LAMU summary, the adviser's copy, the measure owner's card) goes to the
outbox and is delivered after the invoke response.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction, nonce_for
from cards.checklist import (
    BuildingFault,
    ChecklistItemView,
    ChecklistView,
    SubmittedView,
    checklist_card,
    submitted_card,
)
from cards.common import message, text
from cards.notices import NoticeView, notice
from cards.task_done import TaskView, task_card
from hms import i18n, wheel
from hms.config import Checklist, HmsConfig
from hms.i18n import format_date, t
from storage import models as m, repo
from usecases.annual_reports import AnnualReports
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.measures import Measures
from usecases.meetings import Meetings, MeetingState
from usecases.naming import Names
from usecases.outbox import outbox_row, person_target
from usecases.registration import Registration
from usecases.routing import Router

log = logging.getLogger("hms.rounds")

FINDING_TEXT_MAX = 600
LINK_MAX = 2000  # the column's length (storage/models.py OccurrenceEvent.link)

OccurrenceStep = Callable[[CardPress, wheel.Occurrence, m.Occurrence], Awaitable[ActionResult]]


@dataclass(frozen=True)
class Draft:
    """A checklist press with what is stored so far: the checklist, this page's inputs, and the merge of both."""

    checklist: Checklist
    item_keys: list[str]
    values: dict[str, str]
    comments: dict[str, str]
    merged_values: dict[str, str]
    merged_comments: dict[str, str]
    view: ChecklistView


ChecklistStep = Callable[[CardPress, wheel.Occurrence, m.Occurrence, Draft], Awaitable[ActionResult]]


class Rounds:
    """Cards for rounds and tasks, and the card verbs that fill them in, confirm them and mark them done."""

    def __init__(self, config: HmsConfig, secret: bytes, measures: Measures | None = None):
        self.config = config
        self.secret = secret
        self.names = Names(config)
        self.measures = measures or Measures(config, secret)
        self.router: Router[CardHandler] = Router("rounds")
        self.router.register("round.confirm", self._confirm)
        self.router.register("task.done", self._on_occurrence(self._task_done))
        self.router.register("round.open", self._on_occurrence(self._on_checklist(self._open)))
        self.router.register("round.page", self._on_occurrence(self._on_checklist(self._page)))
        self.router.register("round.submit", self._on_occurrence(self._on_checklist(self._submit)))
        self.router.register("round.allok", self._on_occurrence(self._on_checklist(self._all_ok)))
        self.router.register("round.ticket", self._ticket)
        self.registration = Registration(config, secret, self.result_card)
        self.router.include(self.registration.router)  # task.register
        self.meetings = Meetings(config, secret, self.result_card)
        self.router.include(self.meetings.router)  # meeting.*
        self.reports = AnnualReports(config, secret, self.may_act)
        self.router.include(self.reports.router)  # report.submit

    def may_act(self, occ: wheel.Occurrence, email: str) -> bool:
        """The assignee, the deputy, the accountable, the leader of a section it concerns and the HMSB adviser may
        act on a round."""
        leaders = {sec.leader for key in (occ.section, *occ.sections) if key and (sec := self.config.section(key))}
        return (email in occ.assignees or email == occ.deputy or email in occ.accountable
                or email == self.config.roles.hmsb_adviser or email in leaders)

    # -- cards ------------------------------------------------------------------------------------------------

    def occurrence_card(self, occ: wheel.Occurrence, locale: str, *, nonce: str, notice_text: str | None = None,
                        page: int = 1, values: dict[str, str] | None = None, comments: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None) -> dict[str, Any]:
        """The fillable card for an occurrence: the checklist form, or the mark-as-done card."""
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        due_line = t(locale, "round.due_line", due=format_date(occ.due, locale))
        where = self.names.scope(occ, locale)
        if checklist is None:
            done = CardAction("task.done", occ.key, nonce).pack(self.secret)
            return task_card(TaskView(self.names.task(occ, locale), where, due_line, notice_text), locale, done)
        view = self._checklist_view(occ, checklist, locale, page, values or {}, comments or {}, errors or {},
                                    notice_text)
        base = CardAction("round.page", occ.key, nonce, checklist.key, checklist.version)

        def data(verb: str, target_page: int) -> dict[str, Any]:
            return base.with_verb(verb).with_page(target_page).pack(self.secret)

        return checklist_card(view, locale, data, self.meetings.schedule_data(occ, nonce))

    def _checklist_view(self, occ: wheel.Occurrence, checklist: Checklist, locale: str, page: int,
                        values: dict[str, str], comments: dict[str, str], errors: dict[str, str],
                        notice_text: str | None) -> ChecklistView:
        lang = i18n.lang(locale)
        items = tuple(ChecklistItemView(i.key, i.text.get(lang), i.help.get(lang) if i.help else None)
                      for i in checklist.items)
        due_line = t(locale, "round.due_line", due=format_date(occ.due, locale))
        if occ.participants:
            due_line += " · " + t(locale, "checklist.participants",
                                  names=", ".join(self.names.person(e) for e in occ.participants))
        view = ChecklistView(
            title=self.names.task(occ, locale), where=self.names.scope(occ, locale),
            due_line=due_line, items=items,
            answers=tuple((a.key, a.label.get(lang)) for a in checklist.answers),
            deviation_answers=frozenset(a.key for a in checklist.answers if a.is_deviation),
            page=1, values=values, comments=comments, errors=errors, notice=notice_text)
        return ChecklistView(**{**view.__dict__, "page": max(1, min(page, view.pages))})

    def prompt_activity(self, occ: wheel.Occurrence, step: str, kind: str, locale: str,
                        meeting: MeetingState | None = None) -> dict[str, Any]:
        """The message a prompt, reminder, overdue notice or deputy prompt carries: the fillable card. A round to be
        done with the safety representative (`meeting`: where agreeing on its time stands) brings the leader's
        card to agree on a time until one is agreed, then the checklist with the agreed time."""
        line = self.prompt_line(occ, kind, locale)
        nonce = nonce_for(occ.key, step)
        if meeting is not None and self.meetings.representative(occ):
            if not meeting.agreed:
                return self.meetings.prompt_activity(occ, meeting, line, locale, nonce=nonce)
            line += " " + self.meetings.status_line(occ, meeting.latest, locale)
        card = self.occurrence_card(occ, locale, nonce=nonce, notice_text=line)
        return message(card, line)

    def prompt_line(self, occ: wheel.Occurrence, kind: str, locale: str) -> str:
        """The line a prompt, reminder, overdue notice or deputy prompt opens with."""
        texts = {"prompt": "prompt.prompt", "reminder": "prompt.reminder", "overdue": "prompt.overdue",
                 "deputy": "prompt.deputy"}
        return t(locale, texts[kind], **self._sentence_values(occ, locale), due=format_date(occ.due, locale))

    def escalation_activity(self, occ: wheel.Occurrence, locale: str) -> dict[str, Any]:
        """The notice a section leader or the adviser gets when a round is overdue."""
        line = t(locale, "prompt.escalation", **self._sentence_values(occ, locale), due=format_date(occ.due, locale),
                 who=", ".join(self.names.person(e) for e in occ.assignees))
        return message(notice(NoticeView(self.names.task(occ, locale), (line,), "Attention")), line)

    def _sentence_values(self, occ: wheel.Occurrence, locale: str) -> dict[str, str]:
        """The task and place as a sentence names them: `task` "brannvernrunden" (`Task` to start a sentence),
        `place` "i 1. etasje, Historisk museum" (bokmål), `where` "Historical Museum, 1st floor" (the card's header)."""
        task = self.names.task_in_sentence(occ, locale)
        return {"task": task, "Task": i18n.capitalised(task), "place": self.names.place(occ, locale),
                "where": self.names.scope(occ, locale)}

    async def result_card(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, locale: str,
                          notice_text: str | None = None, *, viewer: str | None = None,
                          notice_color: str | None = None) -> dict[str, Any]:
        """The read-only card of a done occurrence: who, when, deviations, every answer. With the `viewer` who
        gets it in the chat, its building faults offer the Si fra link and a field for EA's ticket number, where
        the viewer may record it."""
        assert row.id is not None
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        who = self.names.person(row.completed_by)
        when = self.names.when(row.completed_at, locale) if row.completed_at else "–"
        events = await repo.occurrence_events(s, [occ.key])
        if checklist is None or row.registered_by:  # work registered afterwards has no answers to show
            completed = next((e for e in events if e.kind == "completed"), None)
            note = completed.note if completed else None
            line = (self._registered_line(row, completed, locale) if row.registered_by and completed
                    else t(locale, "task.done", who=who, when=when)) + (f" {note}" if note else "")
            return task_card(TaskView(self.names.task(occ, locale), self.names.scope(occ, locale),
                                      t(locale, "round.due_line", due=format_date(occ.due, locale)), notice_text,
                                      done_line=line), locale, None)
        answers = await repo.final_answers(s, row.id)
        measures = await repo.measures_by_item(s, row.id)  # what became of each deviation
        lang = i18n.lang(locale)
        labels = {a.key: (a.label.get(lang), a.is_deviation) for a in checklist.answers}
        rows = []
        for item in checklist.items:
            answer = answers.get(item.key)
            if answer is None:
                continue
            label, deviation = labels.get(answer.answer, (answer.answer, False))
            comment = answer.comment or ""
            if item.key in measures:
                comment = f"{comment}\n\n{self._measure_line(measures[item.key], locale)}".strip()
            rows.append((item.text.get(lang), label, comment, deviation))
        count = sum(r[3] for r in rows)
        headline = (i18n.tn(locale, "checklist.headline", count, who=who, when=when) if count else
                    t(locale, "checklist.headline_none", who=who, when=when))
        if self.meetings.representative(occ):
            latest = (await repo.latest_proposals(s, [occ.key])).get(occ.key)
            for line in self.meetings.report_lines(occ, events, latest, locale):
                headline += "\n\n" + line
        confirmed = [e for e in events if e.kind == "confirmed"]
        for event in confirmed:
            headline += "\n\n" + t(locale, "confirm.done", who=self.names.person(event.actor_email),
                                    when=self.names.when(event.at, locale))
        faults = await self._building_faults(s, occ, row, checklist, locale, viewer)
        si_fra = self.config.links.get("si_fra")
        return submitted_card(SubmittedView(self.names.task(occ, locale), self.names.scope(occ, locale),
                                            headline, tuple(rows), notice_text, faults,
                                            si_fra.url if si_fra and any(f.data for f in faults) else None,
                                            notice_color), locale)

    async def _building_faults(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence,
                               checklist: Checklist, locale: str, viewer: str | None) -> tuple[BuildingFault, ...]:
        """The round's deviations on items about the building (`building: true` in the checklist), each with EA's
        ticket number, and a button to record it for a viewer who may."""
        building = {i.key for i in checklist.items if i.building}
        if not building:
            return ()
        faults = []
        for measure, finding in await repo.occurrence_measures(s, m.pk(row)):
            if finding.item_key not in building:
                continue
            data = None
            if viewer and measure.status != "closed" and self.may_record_ticket(occ, measure, finding, viewer):
                data = CardAction("round.ticket", str(measure.id), nonce_for(occ.key, "ticket")).pack(self.secret)
            faults.append(BuildingFault(self.names.item(occ.task, finding.item_key, locale), measure.external_ticket,
                                        f"ticket:{measure.id}", data))
        return tuple(faults)

    def may_record_ticket(self, occ: wheel.Occurrence, measure: m.Measure, finding: m.Finding, email: str) -> bool:
        """Who may record EA's ticket number for a building fault: whoever reported it or may act on the round (the
        floor contact, the deputy, the section leader, the adviser), and the measure's owner."""
        return email in (finding.created_by, measure.owner_email) or self.may_act(occ, email)

    def _measure_line(self, measure: m.Measure, locale: str) -> str:
        """"Tiltak nr. 12 opprettet – ansvarlig NN, frist D" ("Tiltak nr. 12 lukket" once it is): the number is what
        the reader acts on ("bevis tiltak 12", "hms-bot measure show 12")."""
        if measure.status == "closed":
            return t(locale, "round.measure_closed_line", id=measure.id, owner=self.names.person(measure.owner_email))
        return t(locale, "round.measure_line", id=measure.id, owner=self.names.person(measure.owner_email),
                 deadline=format_date(measure.deadline, locale))

    def _registered_line(self, row: m.Occurrence, completed: m.OccurrenceEvent, locale: str) -> str:
        """"Done by NN on D · registered afterwards by the adviser W" (without "by NN" when nobody was named)."""
        values = {"day": self.names.done_when(row, locale), "registrar": self.names.person(completed.registered_by),
                  "when": self.names.when(completed.registered_at, locale) if completed.registered_at else "–"}
        if completed.actor_email != completed.registered_by:
            return t(locale, "task.registered_by", who=self.names.person(completed.actor_email), **values)
        return t(locale, "task.registered", **values)

    # -- actions: what every press on an occurrence goes through -----------------------------------------------

    def _on_occurrence(self, step: OccurrenceStep) -> CardHandler:
        """A handler that first finds the occurrence, checks the sender may act on it, stores it on first touch,
        and answers "already done" (by this card or by someone else) instead of running `step`."""
        async def handler(press: CardPress) -> ActionResult:
            occ = wheel.find_occurrence(self.config, press.action.ref)
            if occ is None:
                return refusal(press.locale, "card.unknown", "unknown")
            if not self.may_act(occ, press.email):
                who = ", ".join(self.names.person(e) for e in occ.assignees)
                return refusal(press.locale, "card.not_allowed", "not_allowed", who=who)
            row = await repo.ensure_occurrence(press.session, occ, press.now)
            if row.completed_at is not None:
                return await self._already_done(press.session, occ, row, press.action, press.locale, press.email)
            return await step(press, occ, row)
        return handler

    def _on_checklist(self, step: ChecklistStep) -> OccurrenceStep:
        """A step on a checklist: this page's inputs merged over the stored drafts; a card made from an older
        checklist version saves what it can and comes back as the new version instead of running `step`."""
        async def handler(press: CardPress, occ: wheel.Occurrence, row: m.Occurrence) -> ActionResult:
            assert row.id is not None
            task = self.config.task(occ.task)
            checklist = self.config.checklist(task.checklist) if task and task.checklist else None
            if checklist is None:
                return refusal(press.locale, "card.unknown", "unknown")
            item_keys = [i.key for i in checklist.items]
            given = press.values
            # an item left unanswered on a phone's compact choice comes as "": nothing new for it
            values = {k[2:]: v for k, v in given.items() if k.startswith("a:") and k[2:] in item_keys and v}
            comments = {k[2:]: v.strip()[:FINDING_TEXT_MAX] for k, v in given.items()
                        if k.startswith("c:") and k[2:] in item_keys and v.strip()}
            saved_values, saved_comments = await repo.draft(press.session, row.id)
            merged_values = saved_values | values
            merged_comments = saved_comments | comments
            action = press.action
            if action.tpl != checklist.key or action.tplv != checklist.version:
                await self._save_draft(press, row, checklist, values, comments)
                card = self.occurrence_card(occ, press.locale, nonce=action.nonce,
                                            notice_text=t(press.locale, "card.template_changed"),
                                            values=merged_values, comments=merged_comments)
                return ActionResult(card, "template_changed")
            view = self._checklist_view(occ, checklist, press.locale, action.page, {}, {}, {}, None)
            draft = Draft(checklist, item_keys, values, comments, merged_values, merged_comments, view)
            return await step(press, occ, row, draft)
        return handler

    async def _already_done(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, action: CardAction,
                            locale: str, viewer: str | None = None) -> ActionResult:
        assert row.id is not None and row.completed_at is not None
        mine = await repo.final_answers(s, row.id, submission_id=action.nonce)
        text_ = (t(locale, "card.already_submitted") if mine else
                 self.names.done_by(row, viewer, locale, "card.completed_by"))
        card = await self.result_card(s, occ, row, locale, notice_text=text_, viewer=viewer)
        return ActionResult(card, "duplicate" if mine else "completed_by_other")

    # -- actions: the verbs -----------------------------------------------------------------------------------

    async def _confirm(self, press: CardPress) -> ActionResult:
        """A participant (the safety representative on a safety round) confirms they took part; once."""
        s, email, locale = press.session, press.email, press.locale
        occ = wheel.find_occurrence(self.config, press.action.ref)
        if occ is None:
            return refusal(locale, "card.unknown", "unknown")
        if email not in occ.participants:
            return refusal(locale, "confirm.not_participant", "not_allowed")
        row = await repo.occurrence_row(s, occ.key)
        if row is None or row.completed_at is None:
            return refusal(locale, "confirm.not_submitted", "not_submitted")
        events = await repo.occurrence_events(s, [occ.key])
        done = [e for e in events if e.kind == "confirmed" and e.actor_email == email]
        if not done:
            s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="confirmed", actor_email=email, at=press.now))
            await s.commit()
        card = await self.result_card(s, occ, row, locale)
        return ActionResult(card, "already_confirmed" if done else "confirmed")

    async def _open(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence, draft: Draft) -> ActionResult:
        """Open the checklist with what is saved so far."""
        card = self.occurrence_card(occ, press.locale, nonce=press.action.nonce, values=draft.merged_values,
                                    comments=draft.merged_comments)
        return ActionResult(card, "opened")

    async def _page(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence, draft: Draft) -> ActionResult:
        """Save this page as a draft and move to another page (checking this page's answers when moving forward)."""
        await self._save_draft(press, row, draft.checklist, draft.values, draft.comments)
        # the page being left is the one whose inputs came in; check those only when moving forward
        leaving = [k for k in draft.item_keys if f"a:{k}" in press.values]
        # only what was answered is checked on the way (a deviation needs its comment): an item left open is answered
        # later, or by "Alt annet OK", so a phone reaches page 2 in one tap; submitting checks every item
        errors = {k: e for k, e in self._validate(draft.checklist, leaving, draft.merged_values, draft.merged_comments,
                                                  press.locale).items() if draft.merged_values.get(k)}
        forward = not leaving or press.action.page > _page_of(draft.view, leaving[0])
        if errors and forward:
            page = _page_of(draft.view, next(iter(errors)))
            card = self.occurrence_card(occ, press.locale, nonce=press.action.nonce, page=page,
                                        values=draft.merged_values, comments=draft.merged_comments, errors=errors)
            return ActionResult(card, "invalid")
        card = self.occurrence_card(occ, press.locale, nonce=press.action.nonce, page=press.action.page,
                                    values=draft.merged_values, comments=draft.merged_comments)
        return ActionResult(card, "page")

    async def _submit(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence,
                      draft: Draft) -> ActionResult:
        """Complete the round once: every item answered, deviations commented; findings and measures follow."""
        s, email, now, locale = press.session, press.email, press.now, press.locale
        checklist, item_keys = draft.checklist, draft.item_keys
        errors = self._validate(checklist, item_keys, draft.merged_values, draft.merged_comments, locale)
        if errors:
            await self._save_draft(press, row, checklist, draft.values, draft.comments)
            page = _page_of(draft.view, next(k for k in item_keys if k in errors))
            card = self.occurrence_card(occ, locale, nonce=press.action.nonce, page=page, values=draft.merged_values,
                                        comments=draft.merged_comments, errors=errors)
            return ActionResult(card, "invalid")
        if not await repo.complete_once(s, row, email, now):
            await s.rollback()
            row = await repo.occurrence_row(s, occ.key) or row
            return await self._already_done(s, occ, row, press.action, locale, email)
        for key in item_keys:
            s.add(m.ChecklistAnswer(occurrence_id=m.pk(row), submission_id=press.action.nonce,
                                    template_key=checklist.key, template_version=checklist.version, item_key=key,
                                    answer=draft.merged_values[key], comment=draft.merged_comments.get(key),
                                    submitted_by=email, submitted_at=now))
        await repo.drop_draft(s, m.pk(row))  # the answers are on record now; nothing is left to resume
        s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=email, at=now,
                                note=f"checklist {checklist.key} v{checklist.version}"))
        task = self.config.task(occ.task)
        for role in task.participants if task else ():  # who took part, named on the record with their role
            for participant in wheel.resolve_role(self.config, role, occ.section, occ.floor):
                s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="participant", actor_email=participant,
                                        at=now, note=role))
        deviations = [k for k in item_keys if next(a for a in checklist.answers
                                                   if a.key == draft.merged_values[k]).is_deviation]
        measures = await self._findings(s, occ, row, deviations, draft.merged_comments, email, now)
        await s.commit()
        row = await repo.occurrence_row(s, occ.key) or row
        await self._after_submit(s, occ, row, measures, now)
        card = await self.result_card(s, occ, row, locale, viewer=email)
        log.info("round submitted", extra={"occurrence": occ.key, "deviations": len(deviations)})
        return ActionResult(card, "submitted")

    async def _all_ok(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence,
                      draft: Draft) -> ActionResult:
        """"Alt annet OK": every item of the round not answered yet (on this page or a saved one) is answered OK, and
        the round is submitted as "Lever runden" does, with the same checks (a deviation still needs its comment)."""
        ok = next((a.key for a in draft.checklist.answers if not a.is_deviation and not a.comment_required), None)
        filled = {k: ok for k in draft.item_keys if ok and not draft.merged_values.get(k)}
        return await self._submit(press, occ, row, Draft(
            draft.checklist, draft.item_keys, draft.values | filled, draft.comments,
            draft.merged_values | filled, draft.merged_comments, draft.view))

    async def _task_done(self, press: CardPress, occ: wheel.Occurrence, row: m.Occurrence) -> ActionResult:
        """Mark a task without a checklist done, with an optional note and https link."""
        s, email, now, locale = press.session, press.email, press.now, press.locale
        note = press.values.get("note", "").strip()[:1000] or None
        link = press.values.get("link", "").strip() or None
        if link and (not link.startswith("https://") or len(link) > LINK_MAX):
            error = (t(locale, "task.link_invalid") if not link.startswith("https://") else
                     t(locale, "task.link_too_long", max=LINK_MAX))
            view = TaskView(self.names.task(occ, locale), self.names.scope(occ, locale),
                            t(locale, "round.due_line", due=format_date(occ.due, locale)), error=error)
            return ActionResult(task_card(view, locale, CardAction("task.done", occ.key, nonce_for(
                occ.key, "task")).pack(self.secret)), "invalid")
        if not await repo.complete_once(s, row, email, now):
            await s.rollback()
            row = await repo.occurrence_row(s, occ.key) or row
            return await self._already_done(s, occ, row, CardAction("task.done", occ.key, ""), locale, email)
        s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=email, at=now, note=note,
                                link=link))
        await s.commit()
        row = await repo.occurrence_row(s, occ.key) or row
        await self._tell_done(s, occ, row, link, now)
        return ActionResult(await self.result_card(s, occ, row, locale), "done")

    async def _ticket(self, press: CardPress) -> ActionResult:
        """EA's ticket number for a building fault, recorded on the round's card by the floor contact who found it
        (or anyone who may act on the round): kept on the measure as the measure card keeps it, with who and when."""
        measure_id = press.action.ref_id()
        found = await repo.measure_with_context(press.session, measure_id) if measure_id is not None else None
        measure, finding, row = found if found else (None, None, None)
        occ = wheel.find_occurrence(self.config, row.key) if row is not None else None
        if measure is None or finding is None or row is None or occ is None:
            return refusal(press.locale, "card.unknown", "unknown")
        if not self.may_record_ticket(occ, measure, finding, press.email):
            return refusal(press.locale, "building.not_allowed", "not_allowed")
        if measure.status == "closed":
            notice_text, outcome = t(press.locale, "building.closed"), "already_closed"
        else:
            ticket = await self.measures.keep_ticket(press.session, measure, press.email, press.now,
                                                     press.values.get(f"ticket:{measure.id}", ""))
            await press.session.commit()
            notice_text, outcome = ((t(press.locale, "measure.ticket_saved", ticket=ticket), "ticket") if ticket
                                    else (t(press.locale, "building.ticket_missing"), "invalid"))
        card = await self.result_card(press.session, occ, row, press.locale, notice_text, viewer=press.email,
                                      notice_color="Attention" if outcome == "invalid" else None)
        return ActionResult(card, outcome)

    # -- what a press stores and queues ------------------------------------------------------------------------

    def _validate(self, checklist: Checklist, keys: list[str], values: dict[str, str], comments: dict[str, str],
                  locale: str) -> dict[str, str]:
        allowed = {a.key: a for a in checklist.answers}
        errors: dict[str, str] = {}
        for key in keys:
            answer = values.get(key)
            if not answer:
                errors[key] = t(locale, "checklist.missing")
            elif answer not in allowed:
                errors[key] = t(locale, "checklist.unknown_answer")
            elif allowed[answer].comment_required and not comments.get(key, "").strip():
                errors[key] = t(locale, "checklist.comment_required")
        return errors

    async def _save_draft(self, press: CardPress, row: m.Occurrence, checklist: Checklist,
                          values: dict[str, str], comments: dict[str, str]) -> None:
        allowed = {a.key for a in checklist.answers}
        await repo.save_draft(press.session, m.pk(row), checklist.key, checklist.version,
                              {k: (a, comments.get(k)) for k, a in values.items() if a in allowed}, press.email,
                              press.now)
        await press.session.commit()

    async def _findings(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, deviations: list[str],
                        comments: dict[str, str], email: str, now: dt.datetime) -> list[tuple[m.Measure, m.Finding]]:
        """Every deviation becomes a finding and a measure owned by the section leader (a building's: the one
        accountable for it, else the adviser) (flushes)."""
        assert row.id is not None
        section = self.config.section(occ.section) if occ.section else None
        owner = (section.leader if section else occ.accountable[0] if occ.accountable
                 else self.config.roles.hmsb_adviser)
        deadline = wheel.local_date(now, self.config) + dt.timedelta(days=self.config.measures.deadline_days)
        out = []
        for key in deviations:
            finding = m.Finding(occurrence_id=m.pk(row), item_key=key, description=comments.get(key, ""),
                                created_by=email, created_at=now)
            s.add(finding)
            await s.flush()
            measure = m.Measure(finding_id=m.pk(finding), source="round", description=finding.description,
                                section_key=occ.section, created_by=email, owner_email=owner, deadline=deadline,
                                status="open", created_at=now)
            s.add(measure)
            await s.flush()
            s.add(m.MeasureEvent(measure_id=m.pk(measure), status="open", actor_email=email, at=now, kind="created",
                                 note="created from a deviation"))
            out.append((measure, finding))
        return out

    async def _after_submit(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence,
                            measures: list[tuple[m.Measure, m.Finding]], now: dt.datetime) -> None:
        """Queue the slow work: the adviser's copy, the LAMU summary, each measure owner's card."""
        locale = self.config.unit.locale
        adviser = self.config.roles.hmsb_adviser
        doc = await self.result_card(s, occ, row, locale)
        title = t(locale, "summary.doc", task=self.names.task(occ, locale), where=self.names.scope(occ, locale))
        record = {**doc, "body": [*doc["body"], *(text(line, subtle=True) for line in
                                                     self._record_lines(occ, measures, locale))]}
        rows: list[dict[str, object]] = [outbox_row(f"{occ.key}|documentation|{adviser}", "documentation",
                                                    person_target(adviser), message(record, title))]
        report: list[str] = []
        if self.meetings.representative(occ):
            events = await repo.occurrence_events(s, [occ.key])
            latest = (await repo.latest_proposals(s, [occ.key])).get(occ.key)
            report = self.meetings.report_lines(occ, events, latest, locale, confirmation=False)
        rows.append(outbox_row(f"{occ.key}|lamu-summary", "lamu_summary",
                               self._lamu_target(occ), self._summary(occ, row, measures, locale, report)))
        for participant in occ.participants:
            rows.append(outbox_row(f"{occ.key}|confirm|{participant}", "confirm", person_target(participant),
                                   self._confirm_activity(occ, row, doc, locale)))
        for measure, finding in measures:
            activity = self.measures.measure_activity(measure, finding, row, locale, t(locale, "measure.new"))
            rows.append(outbox_row(f"measure:{measure.id}|created|{measure.owner_email}", "measure",
                                   person_target(measure.owner_email), activity))
        await repo.enqueue(s, rows, now)

    async def _tell_done(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, link: str | None,
                         now: dt.datetime) -> None:
        """Tell the roles the task names under `notify_when_done` (the HMSB adviser, for a section's annual report)
        that it was marked done: the place, who and when, on the done card. Not the one who marked it."""
        task = self.config.task(occ.task)
        if task is None or not task.notify_when_done:
            return
        locale = self.config.unit.locale
        line = t(locale, "done_notice.line", where=self.names.scope(occ, locale), task=self.names.task(occ, locale),
                 who=self.names.person(row.completed_by), when=self.names.done_when(row, locale))
        card = await self.result_card(s, occ, row, locale,
                                      line + ("\n\n" + t(locale, "done_notice.link", link=link) if link else ""))
        told = dict.fromkeys(e for role in task.notify_when_done
                             for e in wheel.resolve_role(self.config, role, occ.section, occ.floor))
        await repo.enqueue(s, [outbox_row(f"{occ.key}|done|{to}", "done_notice", person_target(to), message(card, line))
                               for to in told if to != row.completed_by], now)

    def _confirm_activity(self, occ: wheel.Occurrence, row: m.Occurrence, doc: dict[str, Any],
                          locale: str) -> dict[str, Any]:
        ask = t(locale, "confirm.ask", who=self.names.person(row.completed_by), **self._sentence_values(occ, locale))
        data = CardAction("round.confirm", occ.key, nonce_for(occ.key, "confirm")).pack(self.secret)
        card = {**doc, "body": [*doc["body"], text(ask, color="Accent")],
                "actions": [{"type": "Action.Execute", "title": t(locale, "confirm.button"), "verb": "round.confirm",
                             "data": data, "fallback": {"type": "Action.Submit", "title": t(locale, "confirm.button"),
                                                        "data": data}}]}
        return message(card, ask)

    def _lamu_target(self, occ: wheel.Occurrence) -> dict[str, Any]:
        locale = self.config.unit.locale
        thread = f"{occ.task}:{occ.cycle}"
        return {"kind": "lamu", "thread": thread, "thread_title": t(
            locale, "summary.thread", task=self.names.task(occ, locale), cycle=i18n.format_cycle(occ.cycle, locale))}

    def _record_lines(self, occ: wheel.Occurrence, measures: list[tuple[m.Measure, m.Finding]],
                      locale: str) -> list[str]:
        """Where the adviser finds the round's record and its measures: the bot has no web view, so the command
        that exports the round (every round due that day) and the measures' numbers, which "hms-bot measure show N"
        and the chat's "åpne tiltak" know."""
        lines = [t(locale, "summary.record", due=occ.due.isoformat(), day=format_date(occ.due, locale))]
        ids = [measure.id for measure, _ in measures]
        if ids:
            lines.append(i18n.tn(locale, "summary.measures", len(ids), ids=", ".join(str(i) for i in ids),
                                 first=ids[0]))
        return lines

    def _summary(self, occ: wheel.Occurrence, row: m.Occurrence, measures: list[tuple[m.Measure, m.Finding]],
                 locale: str, report: list[str]) -> dict[str, Any]:
        """The LAMU channel's reply for a round: who and when, and each deviation briefly (the item and the place,
        never the comment: the channel is wide), with its measure's number, owner and deadline."""
        who = self.names.person(row.completed_by)
        when = self.names.when(row.completed_at, locale) if row.completed_at else "–"
        responsible = occ.accountable[0] if occ.accountable else (occ.assignees[0] if occ.assignees else None)
        where = self.names.scope(occ, locale)
        lines = [i18n.tn(locale, "summary.body", len(measures), who=who, when=when)]
        lines += [t(locale, "summary.deviation", item=self.names.item(occ.task, finding.item_key, locale),
                    where=where, id=measure.id, owner=self.names.person(measure.owner_email),
                    deadline=format_date(measure.deadline, locale)) for measure, finding in measures]
        lines += report
        if responsible:
            lines.append(t(locale, "summary.responsible", who=f"<at>{self.names.person(responsible)}</at>"))
        title = t(locale, "summary.title", task=self.names.task(occ, locale),
                  cycle=i18n.format_cycle(occ.cycle, locale), where=where)
        activity = message(notice(NoticeView(title, tuple(lines))), title)
        if responsible:
            activity["mention"] = {"email": responsible, "name": self.names.person(responsible)}
        return activity


def _page_of(view: ChecklistView, item_key: str) -> int:
    for page in range(1, view.pages + 1):
        if any(i.key == item_key for i in view.page_items(page)):
            return page
    return 1
