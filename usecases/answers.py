"""From a question to an answer card: understand the text, look up the wheel and the database, build the card.

Shared by the chat (`HmsBot`) and the terminal (`hms-bot ask`). Role-aware: a floor contact sees their floors,
a section leader and a safety representative their section, the adviser, the management group and LAMU the
whole unit. Takes `now` as an argument.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.annual_report import AnnualReportView, annual_report_card
from cards.common import message
from cards.due_list import DueGroup, DueRow, DueView, due_card
from cards.help import help_card
from cards.incident import incident_card
from cards.measures import MeasureRow, open_measures_card
from cards.notices import notice_card
from cards.status import StatusLine, StatusView, status_card
from hms import i18n, periods, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from hms.nlu import Understanding, Vocabulary, clip, text_language, understand
from storage import repo
from usecases.database import opened
from usecases.due import due_items, scope_name, tracking_starts
from usecases.rounds import Rounds, nonce_for

WHOLE_UNIT_ROLES = {"hmsb_adviser", "unit_head", "management_group", "lamu"}
MEMO_SIZE = 512  # entries per memo (cards, understandings); the oldest goes first
ROUND_TASKS = {"fire": "fire_round", "safety": "vernerunde"}


@dataclass(frozen=True)
class Visibility:
    """What part of the wheel a person sees."""

    everything: bool = False
    sections: frozenset[str] = field(default_factory=frozenset)
    floors: frozenset[str] = field(default_factory=frozenset)

    def sees(self, occ: wheel.Occurrence) -> bool:
        return self.everything or occ.section in self.sections or occ.floor in self.floors

    def describe(self, config: HmsConfig, locale: str) -> str:
        lang = i18n.lang(locale)
        if self.everything:
            return t(locale, "due.scope.all")
        names = [s.name.get(lang) for s in config.sections if s.key in self.sections]
        names += [f.name.get(lang) for f in config.floors() if f.key in self.floors and f.section not in self.sections]
        return ", ".join(names)


LOCALES = {"nb": "nb-NO", "en": "en-US"}


def _remember(memo: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """memo[key], made on first use; the oldest entry goes when the memo holds MEMO_SIZE."""
    found = memo.get(key)
    if found is None:
        if len(memo) >= MEMO_SIZE:
            memo.pop(next(iter(memo)))
        found = memo[key] = make()
    return found


def answer_locale(text_value: str, fallback: str) -> str:
    """The locale to answer in: the language of the question when its words tell, else `fallback` (the Teams
    locale, or the terminal's --locale)."""
    return LOCALES.get(text_language(text_value) or "", fallback)


def visibility(config: HmsConfig, email: str) -> Visibility:
    roles = config.roles_of(email)
    if any(role in WHOLE_UNIT_ROLES for role, _ in roles):
        return Visibility(everything=True)
    sections = {s for role, s in roles if role in ("section_leader", "safety_rep") and s}
    floors = {s for role, s in roles if role in ("floor_contact", "floor_deputy") and s}
    return Visibility(False, frozenset(sections), frozenset(floors))


def vocabulary(config: HmsConfig) -> Vocabulary:
    """The section and floor names the language understanding should recognise."""
    return Vocabulary(
        sections={s.key: [s.name.nb, s.name.en, *s.aliases] for s in config.sections},
        floors={f.key: [f.name.nb, f.name.en, *f.aliases] for f in config.floors()},
    )


@dataclass(frozen=True)
class Answer:
    understanding: Understanding
    activity: dict[str, Any]
    summary: dict[str, Any]


class Answerer:
    """Answers questions for one organisation."""

    def __init__(self, config: HmsConfig, rounds: Rounds):
        self.config = config
        self.rounds = rounds
        self.vocab = vocabulary(config)
        self.cache = wheel.OccurrenceCache(config)
        self._cards: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._understood: dict[tuple[str, dt.date], Understanding] = {}
        self._visibility: dict[str, Visibility] = {}

    def visibility(self, email: str) -> Visibility:
        """What `email` sees (the config does not change while the process runs)."""
        found: Visibility = _remember(self._visibility, email, lambda: visibility(self.config, email))
        return found

    def understand(self, text_value: str, now: dt.datetime) -> Understanding:
        """`hms.nlu.understand`, memoised: a pure function of the words and the date, and people ask the same
        few questions in the same words again and again."""
        today = wheel.local_date(now, self.config)
        words = clip(text_value)  # the memo keeps what is understood, not a 100 KB message
        found: Understanding = _remember(self._understood, (words, today), lambda: understand(words, today, self.vocab))
        return found

    async def answer(self, session: AsyncSession, text_value: str, email: str, now: dt.datetime,
                     locale: str) -> Answer:
        """Understand `text_value` asked by `email` and build the answer card in `locale`."""
        u = self.understand(text_value, now)
        handler = getattr(self, f"_{u.intent}", None)
        if u.intent == "register_done":  # the one answer that reads the words again: a task named by its title
            activity, summary = await self.rounds.registration.answer(session, u, text_value, email.lower(), now,
                                                                      locale)
        elif handler is None:
            activity, summary = help_card(locale, short=True), {}
        else:
            activity, summary = await handler(session, u, email.lower(), now, locale)
        return Answer(u, activity, summary)

    # -- intents -----------------------------------------------------------------------------------------

    async def _help(self, _s: AsyncSession, _u: Understanding, _e: str, _n: dt.datetime,
                    locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return help_card(locale), {}

    async def _due(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                   locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        period = u.period or periods.month(today.year, today.month)
        vis = self.visibility(email)
        items = [i for i in await due_items(s, self.config, period, now, self.cache) if vis.sees(i.occurrence)]
        if u.section:
            items = [i for i in items if i.occurrence.section == u.section]
        title = t(locale, "due.title", period=i18n.format_period(period.start, period.end, locale))
        return self._due_card(title, items, t(locale, "due.empty"), vis, locale)

    async def _overdue(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                       locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        period = periods.Period(today - dt.timedelta(days=366), today)
        vis = self.visibility(email)
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if i.status == "overdue" and vis.sees(i.occurrence)]
        if u.section:
            items = [i for i in items if i.occurrence.section == u.section]
        return self._due_card(t(locale, "due.title.overdue"), items, t(locale, "due.empty.overdue"), vis, locale)

    async def _my_tasks(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                        locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        period = u.period or periods.Period(today - dt.timedelta(days=366), today + dt.timedelta(days=61))
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if i.status != "done" and (email in i.occurrence.assignees or email == i.occurrence.deputy)]
        if not u.period:  # past items only when they are still not done
            items = [i for i in items if i.occurrence.due >= today or i.status == "overdue"]
        return self._due_card(t(locale, "due.title.mine"), items, t(locale, "due.empty.mine"), None, locale)

    async def _status(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                      locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        lang = i18n.lang(locale)
        period = periods.year_of(today)
        vis = self.visibility(email)
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if vis.sees(i.occurrence) and i.occurrence.due.year == today.year]
        section = self.config.section(u.section) if u.section else None
        if section:
            items = [i for i in items if i.occurrence.section == section.key]
        total = _line("", items)
        lines: tuple[StatusLine, ...] = ()
        if not section and (vis.everything or len(vis.sections) > 1):
            lines = tuple(_line(sec.name.get(lang), [i for i in items if i.occurrence.section == sec.key])
                          for sec in self.config.sections if vis.everything or sec.key in vis.sections)
        fire = [i for i in items if i.occurrence.task == "fire_round" and i.occurrence.window_start <= today
                and i.status != "before_start"]
        measures = await repo.open_measures(s)
        title = (t(locale, "status.title.section", year=today.year, section=section.name.get(lang)) if section
                 else t(locale, "status.title", year=today.year))
        before = sum(i.status == "before_start" for i in items)
        starts = await tracking_starts(s, self.config) if before else None
        view = StatusView(title, total, lines, sum(i.status == "done" for i in fire), len(fire), len(measures),
                          before, format_date(starts, locale) if starts else "")
        counts = {k: getattr(total, k) for k in ("done", "open", "overdue", "upcoming")}
        return status_card(view, locale), {"counts": counts, "before_start": before,
                                           "section": section.key if section else None}

    async def _open_measures(self, s: AsyncSession, _u: Understanding, email: str, now: dt.datetime,
                             locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        vis = self.visibility(email)
        rows = []
        for measure, finding, occ in await repo.open_measures(s):
            if not (vis.everything or occ.section_key in vis.sections or occ.floor_key in vis.floors
                    or measure.owner_email == email):
                continue
            owner = self.config.person(measure.owner_email)
            age = (today - measure.created_at.astimezone(self.config.tz).date()).days
            rows.append(MeasureRow(finding.description, owner.name if owner else measure.owner_email,
                                   format_date(measure.deadline, locale), age, measure.deadline < today))
        return open_measures_card(rows, locale), {"count": len(rows)}

    async def _report_incident(self, _s: AsyncSession, _u: Understanding, _e: str, _n: dt.datetime,
                               locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        links = self.config.links
        cim = links["cim"].url if "cim" in links else "https://uio-cim.no/"
        si_fra = links["si_fra"].url if "si_fra" in links else None
        return incident_card(cim, si_fra, locale), {"url": cim}

    async def _annual_report(self, s: AsyncSession, _u: Understanding, email: str, now: dt.datetime,
                             locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        lang = i18n.lang(locale)
        task = self.config.task("annual_report")
        year = today.year
        items = await due_items(s, self.config, periods.year_of(today), now, self.cache)
        vis = self.visibility(email)
        lines = []
        for sec in self.config.sections:
            if not (vis.everything or sec.key in vis.sections):
                continue
            fire = [i for i in items if i.occurrence.task == "fire_round" and i.occurrence.section == sec.key]
            vr = [i for i in items if i.occurrence.task == "vernerunde" and i.occurrence.section == sec.key]
            before = sum(i.status == "before_start" for i in fire)
            lines.append(t(locale, "annual.rounds", section=sec.name.get(lang),
                           fire_done=sum(i.status == "done" for i in fire), fire_total=len(fire) - before,
                           vernerunde=t(locale, "yes") if any(i.status == "done" for i in vr) else t(locale, "no"))
                         + (t(locale, "annual.before_start", count=before) if before else ""))
        link = self.config.links.get(task.links[0]) if task and task.links else None
        form = link.url if link else None
        due = next((i.occurrence.due for i in items if i.occurrence.task == "annual_report"), None)
        view = AnnualReportView(year, format_date(due, locale) if due else "–",
                                task.description.get(lang) if task and task.description else "", form, tuple(lines))
        return annual_report_card(view, locale), {"year": year}

    async def _start_round(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                           locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        lang = i18n.lang(locale)
        task_key = ROUND_TASKS.get(u.round or "fire", "fire_round")
        items = [i for i in await due_items(s, self.config, periods.day(today), now, self.cache)
                 if i.occurrence.task == task_key]
        mine = [i for i in items if self.rounds.may_act(i.occurrence, email)]
        if u.floor:
            mine = [i for i in mine if i.occurrence.floor == u.floor]
        if u.section:
            mine = [i for i in mine if i.occurrence.section == u.section]
        if not mine:
            return notice_card(t(locale, "round.none")), {"occurrence": None}
        if len(mine) > 1 and task_key == "fire_round":
            own = [i for i in mine if email in i.occurrence.assignees or email == i.occurrence.deputy]
            if len(own) != 1:
                return notice_card(t(locale, "round.no_floor")), {"occurrence": None}
            mine = own
        item = mine[0]
        occ = item.occurrence
        row = await repo.occurrence_row(s, occ.key)
        if row is not None and row.completed_at is not None:
            done = t(locale, "round.done", who=self._name(row.completed_by or ""),
                     when=self.rounds.names.done_when(row, locale))
            card = await self.rounds.result_card(s, occ, row, locale, notice_text=done, viewer=email)
            return message(card, done), {"occurrence": occ.key, "completed": True}
        values: dict[str, str] = {}
        comments: dict[str, str] = {}
        if row is not None and row.id is not None:
            values, comments = await repo.draft(s, row.id)
        nonce = nonce_for(occ.key, "start", email, now.isoformat())
        card = self.rounds.occurrence_card(occ, locale, nonce=nonce, values=values, comments=comments)
        task = self.config.task(task_key)
        title = f"{task.title.get(lang) if task else task_key} – {scope_name(self.config, occ, locale)}"
        return message(card, title), {"occurrence": occ.key, "completed": False, "draft_items": len(values)}

    # -- helpers -------------------------------------------------------------------------------------------

    def _name(self, email: str) -> str:
        person = self.config.person(email)
        return person.name if person else email

    def _due_card(self, title: str, items: list[wheel.DueItem], empty: str, vis: Visibility | None,
                  locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The list card and its summary; a pure function of its arguments, so the same question with the same
        statuses gets what was built before (the list is what most people ask for, many times a day). Callers
        must not change what is returned."""
        key = (title, empty, vis, locale, tuple((i.occurrence.key, i.status) for i in items))
        found: tuple[dict[str, Any], dict[str, Any]] = _remember(self._cards, key, lambda: (
            due_card(self._due_view(title, items, empty, vis, locale), locale), self._items_summary(items)))
        return found

    def _due_view(self, title: str, items: list[wheel.DueItem], empty: str, vis: Visibility | None,
                  locale: str) -> DueView:
        lang = i18n.lang(locale)
        groups: list[DueGroup] = []
        rows: list[DueRow] = []
        label = None
        for item in sorted(items, key=lambda i: (i.occurrence.due, i.occurrence.key)):
            occ = item.occurrence
            this = i18n.format_period(occ.due.replace(day=1), periods.month(occ.due.year, occ.due.month).end,
                                      locale).capitalize()
            if this != label:
                if rows:
                    groups.append(DueGroup(label or "", tuple(rows)))
                label, rows = this, []
            task = self.config.task(occ.task)
            rows.append(DueRow(format_date(occ.due, locale, year=False), task.title.get(lang) if task else occ.task,
                               scope_name(self.config, occ, locale),
                               ", ".join(self._name(e) for e in occ.assignees[:2]) or "–", item.status))
        if rows:
            groups.append(DueGroup(label or "", tuple(rows)))
        note = t(locale, "due.scope_note", scope=vis.describe(self.config, locale)) if vis else None
        return DueView(title, tuple(groups), empty, note)

    @staticmethod
    def _items_summary(items: list[wheel.DueItem]) -> dict[str, Any]:
        return {"count": len(items), "items": [{"occurrence": i.occurrence.key, "due": i.occurrence.due.isoformat(),
                                                "status": i.status} for i in items]}


def _line(label: str, items: list[wheel.DueItem]) -> StatusLine:
    return StatusLine(label, *(sum(i.status == s for i in items) for s in ("done", "open", "overdue", "upcoming")))






async def ask(url: str, config: HmsConfig, questions: list[str], email: str, now: dt.datetime,
              locale: str, card_key: bytes) -> list[Any]:
    """Answer questions as `email` would get them in the chat (same understanding, same cards)."""
    answerer = Answerer(config, Rounds(config, card_key))
    async with opened(url) as session:
        return [await answerer.answer(session, q, email, now, answer_locale(q, locale)) for q in questions]
