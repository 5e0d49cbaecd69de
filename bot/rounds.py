"""Rounds in the chat: the checklist and task cards people get, what happens when they press a button, and the
findings and measures that deviations become.

Every submitted card is checked before anything is stored: a signed payload (tampered cards are refused), a
known sender who may act on it, the template version it was made from, and whether the round is already done
(by this card or by someone else). Answers are append-only; completion is a compare-and-set, so two people
submitting at once cannot both complete a round. Work that may be slow (the LAMU summary, the adviser's copy,
the measure owner's card) goes to the outbox and is delivered after the invoke response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.usecases import scope_name
from cards.actions import BadAction, CardAction, inputs, unpack
from cards.checklist import ChecklistItemView, ChecklistView, SubmittedView, checklist_card, submitted_card
from cards.common import message, text
from cards.measure import MeasureView, measure_card
from cards.notices import NoticeView, notice
from cards.task_done import TaskView, task_card
from hms import i18n, wheel
from hms.config import Checklist, HmsConfig
from hms.i18n import format_date, format_datetime, t
from storage import models as m, repo

log = logging.getLogger("hms.rounds")

FINDING_TEXT_MAX = 600


@dataclass(frozen=True)
class ActionResult:
    """The card that replaces the one the user pressed, and a short outcome for the log."""

    card: dict[str, Any]
    outcome: str


def nonce_for(*parts: str) -> str:
    """A stable card id derived from what the card is for (so a re-planned card keeps its id)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class Rounds:
    """Cards for rounds, tasks and measures, and the handling of their actions."""

    def __init__(self, config: HmsConfig, secret: bytes):
        self.config = config
        self.secret = secret

    # -- names ------------------------------------------------------------------------------------------------

    def _name(self, email: str | None) -> str:
        person = self.config.person(email) if email else None
        return person.name if person else (email or "–")

    def _when(self, moment: dt.datetime, locale: str) -> str:
        return format_datetime(moment.astimezone(self.config.tz), locale)

    def _task_title(self, occ: wheel.Occurrence, locale: str) -> str:
        task = self.config.task(occ.task)
        return task.title.get(i18n.lang(locale)) if task else occ.task

    def may_act(self, occ: wheel.Occurrence, email: str) -> bool:
        """The assignee, the deputy, the accountable/section leader and the HMSB adviser may act on a round."""
        section = self.config.section(occ.section) if occ.section else None
        return (email in occ.assignees or email == occ.deputy or email in occ.accountable
                or email == self.config.roles.hmsb_adviser or bool(section and section.leader == email))

    # -- cards ------------------------------------------------------------------------------------------------

    def occurrence_card(self, occ: wheel.Occurrence, locale: str, *, nonce: str, notice_text: str | None = None,
                        page: int = 1, values: dict[str, str] | None = None, comments: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None) -> dict[str, Any]:
        """The fillable card for an occurrence: the checklist form, or the mark-as-done card."""
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        due_line = t(locale, "round.due_line", due=format_date(occ.due, locale))
        where = scope_name(self.config, occ, locale)
        if checklist is None:
            done = CardAction("task.done", occ.key, nonce).pack(self.secret)
            return task_card(TaskView(self._task_title(occ, locale), where, due_line, notice_text), locale, done)
        view = self._checklist_view(occ, checklist, locale, page, values or {}, comments or {}, errors or {},
                                    notice_text)
        base = CardAction("round.page", occ.key, nonce, checklist.key, checklist.version)

        def data(verb: str, target_page: int) -> dict[str, Any]:
            return base.with_verb(verb).with_page(target_page).pack(self.secret)

        return checklist_card(view, locale, data)

    def _checklist_view(self, occ: wheel.Occurrence, checklist: Checklist, locale: str, page: int,
                        values: dict[str, str], comments: dict[str, str], errors: dict[str, str],
                        notice_text: str | None) -> ChecklistView:
        lang = i18n.lang(locale)
        items = tuple(ChecklistItemView(i.key, i.text.get(lang)) for i in checklist.items)
        due_line = t(locale, "round.due_line", due=format_date(occ.due, locale))
        if occ.participants:
            due_line += " · " + t(locale, "checklist.participants",
                                  names=", ".join(self._name(e) for e in occ.participants))
        view = ChecklistView(
            title=self._task_title(occ, locale), where=scope_name(self.config, occ, locale),
            due_line=due_line, items=items,
            answers=tuple((a.key, a.label.get(lang)) for a in checklist.answers),
            deviation_answers=frozenset(a.key for a in checklist.answers if a.is_deviation),
            page=1, values=values, comments=comments, errors=errors, notice=notice_text)
        return ChecklistView(**{**view.__dict__, "page": max(1, min(page, view.pages))})

    def prompt_activity(self, occ: wheel.Occurrence, step: str, kind: str, locale: str) -> dict[str, Any]:
        """The message a prompt, reminder, overdue notice or deputy prompt carries: the fillable card."""
        texts = {"prompt": "prompt.prompt", "reminder": "prompt.reminder", "overdue": "prompt.overdue",
                 "deputy": "prompt.deputy"}
        line = t(locale, texts[kind], task=self._task_title(occ, locale), where=scope_name(self.config, occ, locale),
                 due=format_date(occ.due, locale))
        card = self.occurrence_card(occ, locale, nonce=nonce_for(occ.key, step), notice_text=line)
        return message(card, line)

    def escalation_activity(self, occ: wheel.Occurrence, locale: str) -> dict[str, Any]:
        line = t(locale, "prompt.escalation", task=self._task_title(occ, locale),
                 where=scope_name(self.config, occ, locale), due=format_date(occ.due, locale),
                 who=", ".join(self._name(e) for e in occ.assignees))
        return message(notice(NoticeView(self._task_title(occ, locale), (line,), "Attention")), line)

    def measure_activity(self, measure: m.Measure, finding: m.Finding, occ_row: m.Occurrence, locale: str,
                         notice_text: str | None = None) -> dict[str, Any]:
        card = self.measure_card(measure, finding, occ_row, locale, notice_text=notice_text)
        return message(card, notice_text or t(locale, "measure.new"))

    def measure_card(self, measure: m.Measure, finding: m.Finding, occ_row: m.Occurrence, locale: str, *,
                     notice_text: str | None = None, error: str | None = None,
                     closed_line: str | None = None) -> dict[str, Any]:
        occ = wheel.find_occurrence(self.config, occ_row.key)
        where = (f"{scope_name(self.config, occ, locale)} · {self._task_title(occ, locale)} {occ.cycle}"
                 if occ else occ_row.key)
        item_text = self._item_text(occ_row.task_key, finding.item_key, locale)
        si_fra = self.config.links["si_fra"].url if "si_fra" in self.config.links else None
        view = MeasureView(t(locale, "measure.title", item=item_text), where,
                           t(locale, "measure.finding", description=finding.description),
                           t(locale, "measure.owner", owner=self._name(measure.owner_email),
                             deadline=format_date(measure.deadline, locale)),
                           measure.external_ticket, si_fra, notice_text, error, closed_line)
        if closed_line:
            return measure_card(view, locale, None, None)
        nonce = nonce_for("measure", str(measure.id))
        return measure_card(view, locale, CardAction("measure.close", str(measure.id), nonce).pack(self.secret),
                            CardAction("measure.ticket", str(measure.id), nonce).pack(self.secret))

    def _item_text(self, task_key: str, item_key: str, locale: str) -> str:
        task = self.config.task(task_key)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        item = next((i for i in checklist.items if i.key == item_key), None) if checklist else None
        return item.text.get(i18n.lang(locale)) if item else item_key

    # -- actions ------------------------------------------------------------------------------------------------

    async def handle(self, s: AsyncSession, email: str | None, value: Any, now: dt.datetime,
                     locale: str) -> ActionResult:
        """Handle a pressed card button (Action.Execute value or Action.Submit data); returns the new card."""
        data = value.get("action", {}).get("data") if isinstance(value, dict) and isinstance(
            value.get("action"), dict) else value
        try:
            action = unpack(data, self.secret)
        except BadAction as exc:
            log.warning("card action refused: %s", exc)
            return ActionResult(notice(NoticeView(t(locale, "card.tampered"), (), None)), "tampered")
        if email is None:
            return ActionResult(notice(NoticeView(t(locale, "card.unknown_user"), ())), "unknown_user")
        values = inputs(data)
        if action.verb.startswith("measure."):
            return await self._measure_action(s, action, email, values, now, locale)
        occ = wheel.find_occurrence(self.config, action.ref)
        if occ is None:
            return ActionResult(notice(NoticeView(t(locale, "card.unknown"), ())), "unknown")
        if action.verb == "round.confirm":
            return await self._confirm(s, occ, email, now, locale)
        if not self.may_act(occ, email):
            who = ", ".join(self._name(e) for e in occ.assignees)
            return ActionResult(notice(NoticeView(t(locale, "card.not_allowed", who=who), ())), "not_allowed")
        row = await repo.ensure_occurrence(s, occ, now)
        if row.completed_at is not None:
            return await self._already_done(s, occ, row, action, locale)
        if action.verb == "task.done":
            return await self._task_done(s, occ, row, email, values, now, locale)
        return await self._round_action(s, occ, row, action, email, values, now, locale)

    async def _confirm(self, s: AsyncSession, occ: wheel.Occurrence, email: str, now: dt.datetime,
                       locale: str) -> ActionResult:
        """A participant (the safety representative on a safety round) confirms they took part; once."""
        if email not in occ.participants:
            return ActionResult(notice(NoticeView(t(locale, "confirm.not_participant"), ())), "not_allowed")
        row = await repo.occurrence_row(s, occ.key)
        if row is None or row.completed_at is None:
            return ActionResult(notice(NoticeView(t(locale, "confirm.not_submitted"), ())), "not_submitted")
        events = await repo.occurrence_events(s, [occ.key])
        done = [e for e in events if e.kind == "confirmed" and e.actor_email == email]
        if not done:
            s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="confirmed", actor_email=email, at=now))
            await s.commit()
        card = await self.result_card(s, occ, row, locale)
        return ActionResult(card, "already_confirmed" if done else "confirmed")

    async def _already_done(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, action: CardAction,
                            locale: str) -> ActionResult:
        assert row.id is not None and row.completed_at is not None
        mine = await repo.latest_answers(s, row.id, submission_id=action.nonce, final=True)
        text = (t(locale, "card.already_submitted") if mine else
                t(locale, "card.completed_by", who=self._name(row.completed_by), when=self._when(row.completed_at,
                                                                                                  locale)))
        card = await self.result_card(s, occ, row, locale, notice_text=text)
        return ActionResult(card, "duplicate" if mine else "completed_by_other")

    async def result_card(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, locale: str,
                          notice_text: str | None = None) -> dict[str, Any]:
        """The read-only card of a done occurrence: who, when, deviations, every answer."""
        assert row.id is not None
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        who = self._name(row.completed_by)
        when = self._when(row.completed_at, locale) if row.completed_at else "–"
        if checklist is None:
            events = [e for e in await repo.occurrence_events(s, [occ.key]) if e.kind == "completed"]
            note = events[0].note if events else None
            line = t(locale, "task.done", who=who, when=when) + (f" {note}" if note else "")
            return task_card(TaskView(self._task_title(occ, locale), scope_name(self.config, occ, locale),
                                      t(locale, "round.due_line", due=format_date(occ.due, locale)), notice_text,
                                      done_line=line), locale, None)
        answers = await repo.latest_answers(s, row.id, final=True)
        lang = i18n.lang(locale)
        labels = {a.key: (a.label.get(lang), a.is_deviation) for a in checklist.answers}
        rows = []
        for item in checklist.items:
            answer = answers.get(item.key)
            if answer is None:
                continue
            label, deviation = labels.get(answer.answer, (answer.answer, False))
            rows.append((item.text.get(lang), label, answer.comment or "", deviation))
        count = sum(r[3] for r in rows)
        headline = (t(locale, "checklist.headline", who=who, when=when, count=count) if count else
                    t(locale, "checklist.headline_none", who=who, when=when))
        confirmed = [e for e in await repo.occurrence_events(s, [occ.key]) if e.kind == "confirmed"]
        for event in confirmed:
            headline += "\n\n" + t(locale, "confirm.done", who=self._name(event.actor_email),
                                    when=self._when(event.at, locale))
        return submitted_card(SubmittedView(self._task_title(occ, locale), scope_name(self.config, occ, locale),
                                            headline, tuple(rows), notice_text), locale)

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

    async def _round_action(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, action: CardAction,
                            email: str, given: dict[str, str], now: dt.datetime, locale: str) -> ActionResult:
        assert row.id is not None
        task = self.config.task(occ.task)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        if checklist is None:
            return ActionResult(notice(NoticeView(t(locale, "card.unknown"), ())), "unknown")
        item_keys = [i.key for i in checklist.items]
        values = {k[2:]: v for k, v in given.items() if k.startswith("a:") and k[2:] in item_keys}
        comments = {k[2:]: v.strip()[:FINDING_TEXT_MAX] for k, v in given.items()
                    if k.startswith("c:") and k[2:] in item_keys and v.strip()}
        drafts = await repo.latest_answers(s, row.id)
        merged_values = {k: a.answer for k, a in drafts.items()} | values
        merged_comments = {k: a.comment for k, a in drafts.items() if a.comment} | comments
        if action.tpl != checklist.key or action.tplv != checklist.version:
            await self._save_draft(s, row, checklist, action.nonce, values, comments, email, now)
            card = self.occurrence_card(occ, locale, nonce=action.nonce, notice_text=t(locale, "card.template_changed"),
                                        values=merged_values, comments=merged_comments)
            return ActionResult(card, "template_changed")
        view = self._checklist_view(occ, checklist, locale, action.page, {}, {}, {}, None)
        if action.verb == "round.open":
            card = self.occurrence_card(occ, locale, nonce=action.nonce, values=merged_values,
                                        comments=merged_comments)
            return ActionResult(card, "opened")
        if action.verb == "round.page":
            await self._save_draft(s, row, checklist, action.nonce, values, comments, email, now)
            # the page being left is the one whose inputs came in; check those only when moving forward
            leaving = [k for k in item_keys if f"a:{k}" in given]
            errors = self._validate(checklist, leaving, merged_values, merged_comments, locale)
            forward = not leaving or action.page > _page_of(view, leaving[0])
            if errors and forward:
                page = _page_of(view, next(iter(errors)))
                card = self.occurrence_card(occ, locale, nonce=action.nonce, page=page, values=merged_values,
                                            comments=merged_comments, errors=errors,
                                            notice_text=t(locale, "checklist.fix_errors"))
                return ActionResult(card, "invalid")
            card = self.occurrence_card(occ, locale, nonce=action.nonce, page=action.page, values=merged_values,
                                        comments=merged_comments)
            return ActionResult(card, "page")
        errors = self._validate(checklist, item_keys, merged_values, merged_comments, locale)
        if errors:
            await self._save_draft(s, row, checklist, action.nonce, values, comments, email, now)
            page = _page_of(view, next(k for k in item_keys if k in errors))
            card = self.occurrence_card(occ, locale, nonce=action.nonce, page=page, values=merged_values,
                                        comments=merged_comments, errors=errors,
                                        notice_text=t(locale, "checklist.fix_errors"))
            return ActionResult(card, "invalid")
        if not await repo.complete_once(s, row, email, now):
            await s.rollback()
            row = await repo.occurrence_row(s, occ.key) or row
            return await self._already_done(s, occ, row, action, locale)
        for key in item_keys:
            s.add(m.ChecklistAnswer(occurrence_id=m.pk(row), submission_id=action.nonce, template_key=checklist.key,
                                    template_version=checklist.version, item_key=key, answer=merged_values[key],
                                    comment=merged_comments.get(key), is_draft=False, submitted_by=email,
                                    submitted_at=now))
        s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=email, at=now,
                                note=f"checklist {checklist.key} v{checklist.version}"))
        deviations = [k for k in item_keys if next(a for a in checklist.answers
                                                   if a.key == merged_values[k]).is_deviation]
        measures = await self._findings(s, occ, row, deviations, merged_comments, email, now, locale)
        await s.commit()
        row = await repo.occurrence_row(s, occ.key) or row
        await self._after_submit(s, occ, row, measures, now)
        card = await self.result_card(s, occ, row, locale)
        log.info("round submitted", extra={"occurrence": occ.key, "deviations": len(deviations)})
        return ActionResult(card, "submitted")

    async def _save_draft(self, s: AsyncSession, row: m.Occurrence, checklist: Checklist, nonce: str,
                          values: dict[str, str], comments: dict[str, str], email: str, now: dt.datetime) -> None:
        allowed = {a.key for a in checklist.answers}
        for key, answer in values.items():
            if answer in allowed:
                s.add(m.ChecklistAnswer(occurrence_id=m.pk(row), submission_id=nonce, template_key=checklist.key,
                                        template_version=checklist.version, item_key=key, answer=answer,
                                        comment=comments.get(key), is_draft=True, submitted_by=email,
                                        submitted_at=now))
        await s.commit()

    async def _findings(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, deviations: list[str],
                        comments: dict[str, str], email: str, now: dt.datetime,
                        locale: str) -> list[tuple[m.Measure, m.Finding]]:
        """Every deviation becomes a finding and a measure owned by the section leader (flushes)."""
        assert row.id is not None
        section = self.config.section(occ.section) if occ.section else None
        owner = section.leader if section else self.config.roles.hmsb_adviser
        deadline = wheel.local_date(now, self.config) + dt.timedelta(days=self.config.measures.deadline_days)
        out = []
        for key in deviations:
            finding = m.Finding(occurrence_id=m.pk(row), item_key=key, description=comments.get(key, ""),
                                created_by=email, created_at=now)
            s.add(finding)
            await s.flush()
            measure = m.Measure(finding_id=m.pk(finding), owner_email=owner, deadline=deadline, status="open",
                                created_at=now)
            s.add(measure)
            await s.flush()
            s.add(m.MeasureEvent(measure_id=m.pk(measure), status="open", actor_email=email, at=now,
                                 note="created from a deviation"))
            out.append((measure, finding))
        return out

    async def _after_submit(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence,
                            measures: list[tuple[m.Measure, m.Finding]], now: dt.datetime) -> None:
        """Queue the slow work: the adviser's copy, the LAMU summary, each measure owner's card."""
        locale = self.config.unit.locale
        adviser = self.config.roles.hmsb_adviser
        doc = await self.result_card(s, occ, row, locale)
        title = t(locale, "summary.doc", task=self._task_title(occ, locale), where=scope_name(self.config, occ,
                                                                                                locale))
        rows: list[dict[str, object]] = [outbox_row(f"{occ.key}|documentation|{adviser}", "documentation",
                                                    person_target(adviser), message(doc, title))]
        rows.append(outbox_row(f"{occ.key}|lamu-summary", "lamu_summary",
                               self._lamu_target(occ), self._summary(occ, row, len(measures), locale)))
        for participant in occ.participants:
            rows.append(outbox_row(f"{occ.key}|confirm|{participant}", "confirm", person_target(participant),
                                   self._confirm_activity(occ, row, doc, locale)))
        for measure, finding in measures:
            rows.append(outbox_row(f"measure:{measure.id}|created|{measure.owner_email}", "measure",
                                   person_target(measure.owner_email),
                                   self.measure_activity(measure, finding, row, locale, t(locale, "measure.new"))))
        await repo.enqueue(s, rows, now)

    def _confirm_activity(self, occ: wheel.Occurrence, row: m.Occurrence, doc: dict[str, Any],
                          locale: str) -> dict[str, Any]:
        ask = t(locale, "confirm.ask", who=self._name(row.completed_by), task=self._task_title(occ, locale),
                where=scope_name(self.config, occ, locale))
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
            locale, "summary.thread", task=self._task_title(occ, locale), cycle=occ.cycle)}

    def _summary(self, occ: wheel.Occurrence, row: m.Occurrence, deviations: int, locale: str) -> dict[str, Any]:
        who = self._name(row.completed_by)
        when = self._when(row.completed_at, locale) if row.completed_at else "–"
        responsible = occ.accountable[0] if occ.accountable else (occ.assignees[0] if occ.assignees else None)
        lines = [t(locale, "summary.body", who=who, when=when, count=deviations)]
        if responsible:
            lines.append(t(locale, "summary.responsible", who=f"<at>{self._name(responsible)}</at>"))
        title = t(locale, "summary.title", task=self._task_title(occ, locale), cycle=occ.cycle,
                  where=scope_name(self.config, occ, locale))
        activity = message(notice(NoticeView(title, tuple(lines), "Attention" if deviations else "Good")), title)
        if responsible:
            activity["mention"] = {"email": responsible, "name": self._name(responsible)}
        return activity

    async def _task_done(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, email: str,
                         values: dict[str, str], now: dt.datetime, locale: str) -> ActionResult:
        note = values.get("note", "").strip()[:1000] or None
        link = values.get("link", "").strip() or None
        if link and not link.startswith("https://"):
            view = TaskView(self._task_title(occ, locale), scope_name(self.config, occ, locale),
                            t(locale, "round.due_line", due=format_date(occ.due, locale)),
                            error=t(locale, "task.link_invalid"))
            return ActionResult(task_card(view, locale, CardAction("task.done", occ.key, nonce_for(
                occ.key, "task")).pack(self.secret)), "invalid")
        if not await repo.complete_once(s, row, email, now):
            await s.rollback()
            row = await repo.occurrence_row(s, occ.key) or row
            return await self._already_done(s, occ, row, CardAction("task.done", occ.key, ""), locale)
        s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=email, at=now, note=note,
                                link=link))
        await s.commit()
        row = await repo.occurrence_row(s, occ.key) or row
        return ActionResult(await self.result_card(s, occ, row, locale), "done")

    async def _measure_action(self, s: AsyncSession, action: CardAction, email: str, values: dict[str, str],
                              now: dt.datetime, locale: str) -> ActionResult:
        found = await repo.measure_with_context(s, int(action.ref)) if action.ref.isdigit() else None
        if found is None:
            return ActionResult(notice(NoticeView(t(locale, "card.unknown"), ())), "unknown")
        measure, finding, occ_row = found
        section = self.config.section(occ_row.section_key) if occ_row.section_key else None
        allowed = {measure.owner_email, self.config.roles.hmsb_adviser} | ({section.leader} if section else set())
        if email not in allowed:
            return ActionResult(notice(NoticeView(t(locale, "card.not_allowed", who=self._name(
                measure.owner_email)), ())), "not_allowed")
        if measure.status == "closed":
            events = [e for e in await repo.measure_events(s, measure.id or 0) if e.status == "closed"]
            last = events[-1] if events else None
            closed = t(locale, "measure.closed", who=self._name(last.actor_email if last else None),
                       when=self._when(last.at, locale) if last else "–", note=last.note if last else "")
            return ActionResult(self.measure_card(measure, finding, occ_row, locale, closed_line=closed),
                                "already_closed")
        if action.verb == "measure.ticket":
            ticket = values.get("ticket", "").strip()[:100]
            if not ticket:
                return ActionResult(self.measure_card(measure, finding, occ_row, locale,
                                                      error=t(locale, "measure.ticket")), "invalid")
            measure.external_ticket = ticket
            s.add(m.MeasureEvent(measure_id=m.pk(measure), status=measure.status, actor_email=email, at=now,
                                 note=f"ticket {ticket}"))
            await s.commit()
            return ActionResult(self.measure_card(measure, finding, occ_row, locale,
                                                  notice_text=t(locale, "measure.ticket_saved", ticket=ticket)),
                                "ticket")
        note = values.get("note", "").strip()[:1000]
        if not note:
            return ActionResult(self.measure_card(measure, finding, occ_row, locale,
                                                  error=t(locale, "measure.note_required")), "invalid")
        measure.status = "closed"
        s.add(m.MeasureEvent(measure_id=m.pk(measure), status="closed", actor_email=email, at=now, note=note))
        await s.commit()
        closed = t(locale, "measure.closed", who=self._name(email), when=self._when(now, locale), note=note)
        return ActionResult(self.measure_card(measure, finding, occ_row, locale, closed_line=closed), "closed")


def _page_of(view: ChecklistView, item_key: str) -> int:
    for page in range(1, view.pages + 1):
        if any(i.key == item_key for i in view.page_items(page)):
            return page
    return 1


def person_target(email: str) -> dict[str, Any]:
    return {"kind": "person", "email": email}


def outbox_row(dedupe_key: str, kind: str, target: dict[str, Any], activity: dict[str, Any]) -> dict[str, object]:
    """An outbox row: the activity to send and where to (a person's chat, or the LAMU channel)."""
    email = target.get("email") if target.get("kind") == "person" else None
    return {"dedupe_key": dedupe_key[:300], "kind": kind, "recipient_email": email,
            "payload": json.dumps({"target": target, "activity": activity}, ensure_ascii=False)}

