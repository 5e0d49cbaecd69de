"""The HMS annual report, drafted from the records: three weeks before a section's report is due (the task's prompt
lead), its leader gets a card with every part prefilled from what is on record for the reporting year (the task's
`reporting_year`): the fire rounds and the safety round done against planned, counting only occurrences due by the
report's deadline; deviations and measures opened and closed; ARK measures and their status; appraisals and other
section tasks marked done; help from BHT where a measure or a note names it. The leader edits the texts and submits
the card like a checklist (verb report.submit, once: a compare-and-set on the occurrence); the report goes on
record (`annual_report`, with the numbers it was drafted from), the adviser gets it through the outbox, and the
stored reports are read back per year (`reports_for_year`), for LAMU.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction, nonce_for
from cards.annual_report_form import PART_MAX, ReportFormView, ReportPart, annual_report_form_card
from cards.common import message
from cards.notices import NoticeView, notice
from hms import i18n, periods, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from storage import models as m, repo
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.database import opened
from usecases.due import due_items
from usecases.naming import Names
from usecases.outbox import outbox_row, person_target
from usecases.routing import Router

log = logging.getLogger("hms.reports")

PARTS = ("rounds", "deviations", "ark", "appraisals", "other", "bht", "comments")
APPRAISAL_WORDS = ("medarbeidersamtal", "apprais")  # how a task's title says it is the appraisals
BHT_WORDS = ("bht", "bedriftshelsetjeneste", "occupational health")
OTHER_SOURCES = ("ros", "audit", "lamu", "incident", "other")


@dataclass(frozen=True)
class RoundFigures:
    task: str
    title: str
    planned: int  # occurrences due in the year by the report's deadline, tracked
    done: int
    late: int  # of `done`, done after their deadline
    missed: int  # past their deadline and not done
    pending: int  # not due yet


@dataclass(frozen=True)
class MeasureLine:
    id: int
    source: str
    description: str
    status: str  # open, overdue, closed
    deadline: dt.date
    closed_on: dt.date | None


@dataclass(frozen=True)
class TaskLine:
    task: str
    title: str
    due: dt.date
    done_on: dt.date | None
    note: str | None


@dataclass(frozen=True)
class ReportFigures:
    """What the records say for one section's report: every number the draft is prefilled with."""

    year: int
    section: str
    deadline: dt.date
    rounds: tuple[RoundFigures, ...]
    deviations: int
    measures_opened: int
    measures_closed: int
    measures_open: int
    ark: tuple[MeasureLine, ...]
    tasks: tuple[TaskLine, ...]
    other_measures: tuple[MeasureLine, ...]  # from ROS, audits, LAMU, incidents and other sources, closed this year
    bht: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Stable field names, ISO dates."""
        def plain(value: Any) -> Any:
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value
        return dict(plain(asdict(self)))


class AnnualReports:
    """The drafted annual report: its figures, its card, the verb that submits it, and the reports on record."""

    def __init__(self, config: HmsConfig, secret: bytes, may_act: Callable[[wheel.Occurrence, str], bool]):
        self.config = config
        self.secret = secret
        self.may_act = may_act
        self.names = Names(config)
        self.router: Router[CardHandler] = Router("reports")
        self.router.register("report.submit", self._submit)

    def is_report(self, occ: wheel.Occurrence) -> bool:
        task = self.config.task(occ.task)
        return task is not None and task.does == "report" and occ.section is not None

    def reporting_year(self, occ: wheel.Occurrence) -> int:
        task = self.config.task(occ.task)
        return occ.reporting_year or (task.reports_on(occ.due) if task else occ.due.year)

    # -- the figures ------------------------------------------------------------------------------------------

    async def figures(self, s: AsyncSession, occ: wheel.Occurrence, now: dt.datetime) -> ReportFigures:
        """The records of the reporting year for the occurrence's section, as of `now`."""
        assert occ.section is not None
        section, year, lang = occ.section, self.reporting_year(occ), i18n.lang(self.config.unit.locale)
        start, end = dt.date(year, 1, 1), min(dt.date(year, 12, 31), occ.due)
        today = wheel.local_date(now, self.config)
        items = [i for i in await due_items(s, self.config, periods.Period(start, dt.date(year, 12, 31)), now)
                 if start <= i.occurrence.due <= end and i.occurrence.concerns(section)
                 and i.status != "before_start"]
        rounds = []
        for task in self.config.tasks_of_kind("checklist_round", "safety_round"):
            mine = [i for i in items if i.occurrence.task == task.key]
            if not mine:
                continue
            done = [i for i in mine if i.completion is not None]
            late = sum(i.completion.at.astimezone(self.config.tz).date() > i.occurrence.due
                       for i in done if i.completion)
            rounds.append(RoundFigures(task.key, task.title.get(lang), len(mine), len(done), late,
                                       sum(i.status == "overdue" for i in mine),
                                       sum(i.status in ("open", "upcoming") for i in mine)))
        tasks = []
        others = [i for i in items if (kind := self.config.task(i.occurrence.task)) is not None
                  and kind.does == "mark_done" and i.occurrence.scope == "section"]
        notes = {e.occurrence_id: e.note for e in await repo.occurrence_events(s, [i.occurrence.key for i in others])
                 if e.kind == "completed" and e.note}
        ids = {r.key: r.id for r in [await repo.occurrence_row(s, i.occurrence.key) for i in others] if r}
        for i in others:
            other_task = self.config.task(i.occurrence.task)
            assert other_task is not None
            done_on = i.completion.at.astimezone(self.config.tz).date() if i.completion else None
            tasks.append(TaskLine(other_task.key, other_task.title.get(lang), i.occurrence.due, done_on,
                                  notes.get(ids.get(i.occurrence.key) or -1)))

        # what is on record as of `now` (a figure never counts what had not happened then)
        first, after = self._instant(dt.date(year, 1, 1)), min(self._instant(dt.date(year + 1, 1, 1)), now)
        deviations = sum(o.section_key == section for _, o in await repo.findings_between(s, first, after))
        closings = await repo.measure_closings(s)
        opened_n = closed_n = open_n = 0
        ark, other, bht = [], [], []
        for measure, finding, occ_row in await repo.all_measures(s):
            if (measure.section_key or (occ_row.section_key if occ_row else None)) != section \
                    or measure.created_at > now:
                continue
            closed_at = closings.get(m.pk(measure)) if measure.status == "closed" else None
            closed_at = closed_at if closed_at is not None and closed_at <= now else None
            in_year = first <= measure.created_at < after
            closed_in_year = closed_at is not None and first <= closed_at < after
            opened_n += in_year
            closed_n += closed_in_year
            open_n += closed_at is None
            description = measure.description or (finding.description if finding else "") or "–"
            line = MeasureLine(m.pk(measure), measure.source, description,
                               "closed" if closed_at else "overdue" if measure.deadline < today else "open",
                               measure.deadline, closed_at.astimezone(self.config.tz).date() if closed_at else None)
            if measure.source == "ark" and (in_year or closed_in_year or closed_at is None):
                ark.append(line)
            elif measure.source in OTHER_SOURCES and closed_in_year:
                other.append(line)
            if (in_year or closed_in_year) and _names_bht(description):
                bht.append(description)
        bht += [n for n in notes.values() if n and _names_bht(n)]
        return ReportFigures(year, section, occ.due, tuple(rounds), deviations, opened_n, closed_n, open_n,
                             tuple(ark), tuple(tasks), tuple(other), tuple(bht))

    def _instant(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), self.config.tz)

    # -- the texts a draft is prefilled with -----------------------------------------------------------------------

    def draft_parts(self, figures: ReportFigures, locale: str) -> dict[str, str]:
        """Each part of the report, written from the figures in the reader's language."""
        rounds = [t(locale, "report.round_line", task=r.title, done=r.done, planned=r.planned)
                  + (t(locale, "report.round_late", count=r.late) if r.late else "")
                  + (t(locale, "report.round_missed", count=r.missed) if r.missed else "")
                  + (t(locale, "report.round_pending", count=r.pending) if r.pending else "")
                  for r in figures.rounds]
        deviations = t(locale, "report.deviations_line", deviations=figures.deviations,
                       opened=figures.measures_opened, closed=figures.measures_closed, open=figures.measures_open)
        ark = [self._measure_text(x, locale) for x in figures.ark] or [t(locale, "report.ark_none")]
        appraisals = [self._task_text(x, locale) for x in figures.tasks if _is_appraisal(self.config, x.task)]
        other = [self._task_text(x, locale) for x in figures.tasks if not _is_appraisal(self.config, x.task)]
        other += [self._measure_text(x, locale) for x in figures.other_measures]
        return {"rounds": "\n".join(rounds), "deviations": deviations, "ark": "\n".join(ark),
                "appraisals": "\n".join(appraisals) or t(locale, "report.not_recorded"),
                "other": "\n".join(other), "bht": "\n".join(figures.bht), "comments": ""}

    def _measure_text(self, x: MeasureLine, locale: str) -> str:
        status = (t(locale, "report.measure_closed", day=format_date(x.closed_on, locale)) if x.closed_on else
                  t(locale, f"report.measure_{x.status}", deadline=format_date(x.deadline, locale)))
        return t(locale, "report.measure_line", id=x.id, description=x.description[:120], status=status)

    def _task_text(self, x: TaskLine, locale: str) -> str:
        line = (t(locale, "report.task_done", task=x.title, day=format_date(x.done_on, locale)) if x.done_on else
                t(locale, "report.task_not_done", task=x.title, due=format_date(x.due, locale)))
        return line + (f" ({x.note[:200]})" if x.note else "")

    # -- cards --------------------------------------------------------------------------------------------------

    def _view(self, occ: wheel.Occurrence, figures: ReportFigures, parts: dict[str, str], locale: str, *,
              notice: str | None = None, errors: dict[str, str] | None = None,
              done_line: str | None = None) -> ReportFormView:
        fact_rows = [(r.title, f"{r.done}/{r.planned}") for r in figures.rounds]
        fact_rows += [(t(locale, "report.fact_deviations"), str(figures.deviations)),
                      (t(locale, "report.fact_measures"), f"{figures.measures_opened}/{figures.measures_closed}")]
        return ReportFormView(
            t(locale, "report.title", year=figures.year, section=self.names.scope(occ, locale)),
            t(locale, "round.due_line", due=format_date(occ.due, locale)),
            t(locale, "report.intro_done" if done_line else "report.intro", year=figures.year), tuple(fact_rows),
            tuple(ReportPart(k, t(locale, f"report.part.{k}"), parts.get(k, ""), (errors or {}).get(k))
                  for k in PARTS), notice, done_line, self._form_url(occ))

    def _form_url(self, occ: wheel.Occurrence) -> str | None:
        task = self.config.task(occ.task)
        link = self.config.links.get(task.links[0]) if task and task.links else None
        return link.url if link else None

    def form_card(self, occ: wheel.Occurrence, figures: ReportFigures, locale: str, *, nonce: str,
                  parts: dict[str, str] | None = None, notice: str | None = None,
                  errors: dict[str, str] | None = None) -> dict[str, Any]:
        """The draft to edit and submit."""
        data = CardAction("report.submit", occ.key, nonce).pack(self.secret)
        view = self._view(occ, figures, parts if parts is not None else self.draft_parts(figures, locale), locale,
                          notice=notice, errors=errors)
        return annual_report_form_card(view, locale, data)

    def report_card(self, occ: wheel.Occurrence, stored: m.AnnualReport, locale: str,
                    notice: str | None = None) -> dict[str, Any]:
        """The report as submitted, read-only."""
        figures = _figures_from_json(json.loads(stored.figures))
        done = t(locale, "report.submitted", who=self.names.person(stored.submitted_by),
                 when=self.names.when(stored.submitted_at, locale))
        view = self._view(occ, figures, json.loads(stored.parts), locale, notice=notice, done_line=done)
        return annual_report_form_card(view, locale, None)

    async def activity(self, s: AsyncSession, occ: wheel.Occurrence, now: dt.datetime, locale: str,
                       line: str | None, step: str = "ask") -> dict[str, Any]:
        """The message with the drafted report (a prompt's, a reminder's, or the answer to "årsrapport"); the
        submitted report once it is on record."""
        row = await repo.occurrence_row(s, occ.key)
        stored = await repo.annual_report(s, m.pk(row)) if row is not None and row.id is not None else None
        title = line or self.names.task(occ, locale)
        if stored is not None:
            return message(self.report_card(occ, stored, locale, line), title)
        if row is not None and row.completed_at is not None:  # marked done without the draft (registered afterwards)
            done = t(locale, "report.completed_by", who=self.names.person(row.completed_by),
                     when=self.names.done_when(row, locale))
            return message(notice(NoticeView(title, (done,), "Good")), done)
        card = self.form_card(occ, await self.figures(s, occ, now), locale, nonce=nonce_for(occ.key, step),
                              notice=line)
        return message(card, title)

    # -- the verb -----------------------------------------------------------------------------------------------

    async def _submit(self, press: CardPress) -> ActionResult:
        """Put the section's report on record once, tell the adviser, and answer with the report as submitted."""
        s, email, now, locale = press.session, press.email, press.now, press.locale
        occ = wheel.find_occurrence(self.config, press.action.ref)
        if occ is None or not self.is_report(occ):
            return refusal(locale, "card.unknown", "unknown")
        if not self.may_act(occ, email):
            who = ", ".join(self.names.person(e) for e in occ.assignees)
            return refusal(locale, "card.not_allowed", "not_allowed", who=who)
        row = await repo.ensure_occurrence(s, occ, now)
        if row.completed_at is not None:
            return await self._already(s, occ, row, press.action.nonce, locale)
        parts = {k: press.values.get(f"part:{k}", "").strip() for k in PARTS}
        errors = {k: t(locale, "report.too_long", max=PART_MAX) for k, v in parts.items() if len(v) > PART_MAX}
        figures = await self.figures(s, occ, now)
        if errors:
            card = self.form_card(occ, figures, locale, nonce=press.action.nonce, parts=parts, errors=errors,
                                  notice=t(locale, "checklist.fix_errors"))
            return ActionResult(card, "invalid")
        if not await repo.complete_once(s, row, email, now):
            await s.rollback()
            row = await repo.occurrence_row(s, occ.key) or row
            return await self._already(s, occ, row, press.action.nonce, locale)
        stored = m.AnnualReport(occurrence_id=m.pk(row), year=figures.year, section_key=figures.section,
                                parts=json.dumps(parts, ensure_ascii=False),
                                figures=json.dumps(figures.to_json(), ensure_ascii=False), submitted_by=email,
                                submitted_at=now, submission_id=press.action.nonce)
        s.add(stored)
        s.add(m.OccurrenceEvent(occurrence_id=m.pk(row), kind="completed", actor_email=email, at=now,
                                note="annual report"))
        await s.commit()
        await self._tell_adviser(s, occ, stored, now)
        log.info("annual report submitted", extra={"occurrence": occ.key})
        return ActionResult(self.report_card(occ, stored, locale), "submitted")

    async def _already(self, s: AsyncSession, occ: wheel.Occurrence, row: m.Occurrence, nonce: str,
                       locale: str) -> ActionResult:
        stored = await repo.annual_report(s, m.pk(row))
        if stored is not None and stored.submission_id == nonce:
            return ActionResult(self.report_card(occ, stored, locale, t(locale, "card.already_submitted")),
                                "duplicate")
        if stored is None:  # marked done without the drafted report (an older card, or registered afterwards)
            return refusal(locale, "report.completed_by", "completed_by_other", who=self.names.person(row.completed_by),
                           when=self.names.done_when(row, locale))
        notice = t(locale, "report.completed_by", who=self.names.person(row.completed_by),
                   when=self.names.done_when(row, locale))
        return ActionResult(self.report_card(occ, stored, locale, notice), "completed_by_other")

    async def _tell_adviser(self, s: AsyncSession, occ: wheel.Occurrence, stored: m.AnnualReport,
                            now: dt.datetime) -> None:
        """The adviser gets the report as submitted (the roles under the task's `notify_when_done`, else the
        adviser), in the unit's language, through the outbox."""
        task = self.config.task(occ.task)
        roles = (task.notify_when_done if task and task.notify_when_done else ["hmsb_adviser"])
        told = dict.fromkeys(e for role in roles for e in wheel.resolve_role(self.config, role, occ.section, None))
        locale = self.config.unit.locale
        line = t(locale, "done_notice.line", where=self.names.scope(occ, locale), task=self.names.task(occ, locale),
                 who=self.names.person(stored.submitted_by), when=self.names.when(stored.submitted_at, locale))
        activity = message(self.report_card(occ, stored, locale, line), line)
        await repo.enqueue(s, [outbox_row(f"{occ.key}|done|{to}", "done_notice", person_target(to), activity)
                               for to in told if to != stored.submitted_by], now)

    # -- the reports on record -----------------------------------------------------------------------------------

    def occurrences_for_year(self, year: int) -> list[wheel.Occurrence]:
        """Every section's report occurrence that reports on `year`."""
        found = []
        for task in self.config.tasks_of_kind("report"):
            found += [o for o in wheel.task_occurrences(self.config, task.key, year - 1, year + 1)
                      if o.section is not None and task.reports_on(o.due) == year]
        return found

    async def reports_for_year(self, s: AsyncSession, year: int, locale: str) -> dict[str, Any]:
        """Every section's report on `year`: as submitted (the parts with their labels, who, when, the figures), or
        not submitted (with its deadline). What the adviser takes to LAMU."""
        lang = i18n.lang(locale)
        out = []
        for occ in self.occurrences_for_year(year):
            row = await repo.occurrence_row(s, occ.key)
            stored = await repo.annual_report(s, m.pk(row)) if row is not None and row.id is not None else None
            section = self.config.section(occ.section or "")
            entry: dict[str, Any] = {"occurrence": occ.key, "section": occ.section,
                                     "section_name": section.name.get(lang) if section else occ.section,
                                     "leader": section.leader if section else None,
                                     "leader_name": self.names.person(section.leader) if section else None,
                                     "due": occ.due.isoformat(),
                                     "submitted": stored is not None}
            if stored is not None:
                parts = json.loads(stored.parts)
                entry |= {"submitted_by": stored.submitted_by, "submitted_by_name": self.names.person(
                    stored.submitted_by), "submitted_at": stored.submitted_at.astimezone(self.config.tz).isoformat(),
                    "parts": [{"key": k, "label": t(locale, f"report.part.{k}"), "text": parts.get(k, "")}
                              for k in PARTS],
                    "figures": json.loads(stored.figures)}
            out.append(entry)
        return {"year": year, "reports": out}


def _names_bht(text_value: str) -> bool:
    """Whether a text names the occupational health service (BHT)."""
    lower = text_value.lower()
    return "bht" in re.findall(r"\w+", lower) or any(w in lower for w in BHT_WORDS[1:])


def _is_appraisal(config: HmsConfig, task_key: str) -> bool:
    task = config.task(task_key)
    return task is not None and any(w in f"{task.title.nb} {task.title.en}".lower() for w in APPRAISAL_WORDS)


def _figures_from_json(data: dict[str, Any]) -> ReportFigures:
    def day(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    return ReportFigures(
        data["year"], data["section"], dt.date.fromisoformat(data["deadline"]),
        tuple(RoundFigures(**r) for r in data["rounds"]), data["deviations"], data["measures_opened"],
        data["measures_closed"], data["measures_open"],
        tuple(MeasureLine(**{**x, "deadline": dt.date.fromisoformat(x["deadline"]), "closed_on": day(x["closed_on"])})
              for x in data["ark"]),
        tuple(TaskLine(**{**x, "due": dt.date.fromisoformat(x["due"]), "done_on": day(x["done_on"])})
              for x in data["tasks"]),
        tuple(MeasureLine(**{**x, "deadline": dt.date.fromisoformat(x["deadline"]), "closed_on": day(x["closed_on"])})
              for x in data["other_measures"]),
        tuple(data["bht"]))


async def reports_for_year(url: str, config: HmsConfig, year: int, locale: str, card_key: bytes) -> dict[str, Any]:
    """The annual reports on `year` from the database (`hms-bot annual-reports`): reads only."""
    reports = AnnualReports(config, card_key, lambda _o, _e: False)
    async with opened(url) as s:
        return await reports.reports_for_year(s, year, locale)
