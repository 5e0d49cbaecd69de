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
from cards.due_list import DueGroup, DueRow, DueView, LaterRow, due_card
from cards.help import help_card
from cards.incident import incident_card
from cards.measures import MeasureRow, open_measures_card
from cards.notices import notice_card
from cards.status import StatusLine, StatusView, status_card
from cards.task_check import CheckRow, CheckView, task_check_card
from cards.who import WhoRow, WhoView, who_card
from hms import i18n, periods, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from hms.nlu import Understanding, Vocabulary, clip, smalltalk_kind, text_language, understand
from storage import repo, sessions
from usecases.asked import AskedTasks
from usecases.database import opened
from usecases.due import by_deadline, due_items, scope_name, tracking_starts
from usecases.naming import Names
from usecases.rounds import Rounds, nonce_for

WHOLE_UNIT_ROLES = {"hmsb_adviser", "unit_head", "management_group", "lamu"}
REPORT_GRACE = 60  # days after its deadline a report is still the one at hand (a late one is still written)
MEMO_SIZE = 512  # entries per memo (cards, understandings); the oldest goes first
HORIZON_YEARS = 4  # how far ahead "when is X" looks: every_n_years tasks come every third year
LATE_GRACE_DAYS = 31
"""How long after its deadline a missed round is offered before the one going on ("start brannvernrunde" on 3 April
offers the missed first-quarter round); later, the round going on comes first (a fire round three months late no
longer says how the floor is). With no round going on, the missed one is offered (a vernerunde in August)."""


@dataclass(frozen=True)
class Visibility:
    """What part of the wheel a person sees: a building's tasks are seen by those who hold a role for it or for one
    of its floors, a floor's and a building's by every section on it."""

    everything: bool = False
    sections: frozenset[str] = field(default_factory=frozenset)
    floors: frozenset[str] = field(default_factory=frozenset)
    buildings: frozenset[str] = field(default_factory=frozenset)

    def sees(self, occ: wheel.Occurrence) -> bool:
        return (self.everything or occ.section in self.sections or occ.floor in self.floors
                or any(s in self.sections for s in occ.sections)
                or (occ.scope == "building" and occ.building in self.buildings))

    def with_sections_of_floors(self, config: HmsConfig) -> Visibility:
        """Also the sections of the floors seen: a floor contact asking about a section's round sees her own."""
        sections = {s for f in config.floors() if f.key in self.floors for s in (f.section, *f.sections)}
        return Visibility(self.everything, self.sections | frozenset(sections), self.floors, self.buildings)

    def describe(self, config: HmsConfig, locale: str) -> str:
        lang = i18n.lang(locale)
        if self.everything:
            return t(locale, "due.scope.all")
        names = [s.name.get(lang) for s in config.sections if s.key in self.sections]
        names += [f.name.get(lang) for f in config.floors()
                  if f.key in self.floors and not any(s in self.sections for s in f.sections)]
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
    declared = {r.key: r.scope for r in config.roles.declared}
    if any(declared.get(role) == "unit" for role, _ in roles):
        return Visibility(everything=True)
    sections = {s for role, s in roles if s and (role in ("section_leader", "safety_rep")
                                                 or declared.get(role) == "section")}
    floors = {s for role, s in roles if s and (role in ("floor_contact", "floor_deputy")
                                               or declared.get(role) == "floor")}
    buildings = {s for role, s in roles if s and declared.get(role) == "building"}
    buildings |= {b for f in floors if (b := config.building_of(f))}  # a floor's people see its building's drills
    return Visibility(False, frozenset(sections), frozenset(floors), frozenset(buildings))


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
        self.asked = AskedTasks(config)
        self.names = Names(config)
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
        if u.intent == "register_done":  # answers that read the words again: a task named by its title
            activity, summary = await self.rounds.registration.answer(session, u, text_value, email.lower(), now,
                                                                      locale)
        elif u.intent in ("due", "done_check", "who", "smalltalk"):
            activity, summary = await getattr(self, f"_{u.intent}")(session, u, email.lower(), now, locale,
                                                                   text_value)
        elif handler is None:
            activity, summary = help_card(locale, short=True), {}
        else:
            activity, summary = await handler(session, u, email.lower(), now, locale)
        return Answer(u, activity, summary)

    # -- intents -----------------------------------------------------------------------------------------

    async def _help(self, _s: AsyncSession, _u: Understanding, _e: str, _n: dt.datetime,
                    locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return help_card(locale), {}

    async def _smalltalk(self, _s: AsyncSession, _u: Understanding, _e: str, _n: dt.datetime, locale: str,
                         text_value: str) -> tuple[dict[str, Any], dict[str, Any]]:
        kind = smalltalk_kind(text_value)
        return notice_card(t(locale, f"smalltalk.{kind}")), {"smalltalk": kind}

    async def _due(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime, locale: str,
                   text_value: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """Deadlines in the period; work open in it with a later deadline apart. A question about one task without
        a period ("når er vernerunden?") gets that task's next deadline per place."""
        today = wheel.local_date(now, self.config)
        period = u.period or periods.month(today.year, today.month)
        vis = self.visibility(email)
        tasks = self.asked.tasks(u, text_value)
        if tasks and not u.period_named:
            return await self._next_deadlines(s, u, tasks, email, now, locale)
        if tasks:
            vis = vis.with_sections_of_floors(self.config)
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if (vis.sees(i.occurrence) or (tasks and (u.section or u.floor)))]
        if u.section:
            items = [i for i in items if i.occurrence.concerns(u.section)]
        span = i18n.format_period(period.start, period.end, locale)
        title, empty = t(locale, "due.title", period=span), t(locale, "due.empty")
        if tasks:
            items = [i for i in items if i.occurrence.task in tasks
                     and self.asked.at_place(i.occurrence, u.section, u.floor)]
            name = self._task_title(tasks, locale)
            title, empty = t(locale, "due.title.task", task=name, period=span), t(locale, "due.empty.task", task=name)
        due, later = by_deadline(items, period)
        later_title = t(locale, "due.later" if period.start <= today <= period.end else "due.later.period")
        return self._due_card(title, due, empty, vis, locale, later, later_title)

    async def _next_deadlines(self, s: AsyncSession, u: Understanding, tasks: tuple[str, ...], email: str,
                              now: dt.datetime, locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Per place, the next deadline of the task(s) not done yet (what is overdue is the overdue answer's)."""
        today = wheel.local_date(now, self.config)
        horizon = periods.Period(today, today.replace(year=today.year + HORIZON_YEARS))
        vis = self.visibility(email).with_sections_of_floors(self.config)
        placed = bool(u.section or u.floor)
        first: dict[tuple[str, str | None, str | None], wheel.DueItem] = {}
        for item in await due_items(s, self.config, horizon, now, self.cache):
            occ = item.occurrence
            if (occ.task in tasks and item.status in ("open", "upcoming") and occ.due >= today
                    and (placed or vis.sees(occ)) and self.asked.at_place(occ, u.section, u.floor)):
                first.setdefault((occ.task, occ.section, occ.floor), item)
        name = self._task_title(tasks, locale)
        return self._due_card(t(locale, "due.title.next", task=name), list(first.values()),
                              t(locale, "due.empty.next", task=name), None if placed else vis, locale)

    async def _done_check(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime, locale: str,
                          text_value: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Whether a task was done, per place: the current cycle (or the cycles due in the period named). Never a
        checklist: asking is not starting."""
        tasks = self.asked.tasks(u, text_value)
        if not tasks:
            return notice_card(t(locale, "check.need_task")), {"missing": "task"}
        today = wheel.local_date(now, self.config)
        placed = bool(u.section or u.floor)
        vis = self.visibility(email).with_sections_of_floors(self.config)
        period = u.period if u.period_named and u.period else periods.Period(today - dt.timedelta(days=400), today)
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if i.occurrence.task in tasks and (placed or vis.sees(i.occurrence))
                 and self.asked.at_place(i.occurrence, u.section, u.floor)]
        if u.period_named and u.period:
            chosen = by_deadline(items, period)[0]
        else:  # the cycle going on (the newest whose window has opened), per task and place
            current: dict[tuple[str, str | None, str | None], wheel.DueItem] = {}
            for item in items:
                occ = item.occurrence
                if occ.window_start <= today:
                    current[(occ.task, occ.section, occ.floor)] = item  # ordered by deadline: the newest wins
            chosen = list(current.values())
        order = {f.key: i for i, f in enumerate(self.config.floors())} | {
            sec.key: i for i, sec in enumerate(self.config.sections)}
        chosen.sort(key=lambda i: (i.occurrence.task, order.get(i.occurrence.floor or i.occurrence.section or "", 0),
                                   i.occurrence.due))
        rows = tuple(self._check_row(i, locale) for i in chosen)
        name = self._task_title(tasks, locale)
        note = None if placed else t(locale, "due.scope_note", scope=vis.describe(self.config, locale))
        view = CheckView(t(locale, "check.title", task=name), rows,
                         t(locale, "check.none", task=i18n.in_sentence(name)), note)
        return task_check_card(view, locale), {"items": [
            {"occurrence": i.occurrence.key, "status": i.status, "completed_by": i.completion.by if i.completion
             else None, "completed_at": i.completion.at.isoformat() if i.completion else None} for i in chosen]}

    def _check_row(self, item: wheel.DueItem, locale: str) -> CheckRow:
        occ = item.occurrence
        where = t(locale, "check.cycle", where=scope_name(self.config, occ, locale), cycle=occ.cycle)
        due = format_date(occ.due, locale)
        done = item.completion
        if done is not None:
            if done.registered_by:
                when = format_date(done.at.astimezone(self.config.tz).date(), locale)
                line = t(locale, "task.done", who=self._name(done.by), when=when) + " " + t(
                    locale, "check.registered", registrar=self._name(done.registered_by))
            else:
                line = t(locale, "task.done", who=self._name(done.by), when=self.names.when(done.at, locale))
            return CheckRow(where, line, True)
        line = t(locale, f"check.{item.status}", due=due)
        return CheckRow(where, line, False, item.status == "overdue")

    async def _who(self, _s: AsyncSession, u: Understanding, _e: str, _n: dt.datetime, locale: str,
                   text_value: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Who holds a role (for a place, when one is named), from the organisation file; or who is responsible
        for a task the words name; or, asked about nobody in particular, the unit's HMS roles."""
        lang = i18n.lang(locale)
        tasks = self.asked.tasks(u, text_value) if u.role is None else ()
        task = self.config.task(tasks[0]) if tasks else None
        if u.role is not None:
            wanted, title = {u.role}, t(locale, f"who.title.{u.role}")
        elif task is not None:
            wanted = {task.responsible, *([task.accountable] if task.accountable else [])}
            title = t(locale, "who.title.task", task=task.title.get(lang))
        else:
            wanted = {"hmsb_adviser", "unit_head"} | ({"section_leader", "safety_rep", "floor_contact", "floor_deputy"}
                                                      if u.section or u.floor else set())
            title = t(locale, "who.title.any")
        order = ("hmsb_adviser", "unit_head", "section_leader", "safety_rep", "floor_contact", "floor_deputy")
        found: list[tuple[int, str, str | None, str]] = []
        for person in self.config.people:
            for role, scope in self.config.roles_of(person.email):
                if role in wanted and self.asked.holds_at(scope, u.section, u.floor):
                    found.append((order.index(role) if role in order else len(order), person.email, scope, role))
        unit = self.config.unit.name.get(lang)
        rows = []
        for _, email, scope, role in sorted(found, key=lambda f: (f[0], self._scope_rank(f[2]))):
            holder = self.config.person(email)
            place = self.config.section(scope) or self.config.floor(scope) if scope else None
            rows.append(WhoRow(holder.name if holder else email,
                               t(locale, f"role.{role}", scope=place.name.get(lang) if place else "", unit=unit),
                               email, holder.title if holder else None))
        hint = t(locale, "who.ask") if u.role is None and task is None else None
        return who_card(WhoView(title, tuple(rows), t(locale, "who.none"), hint), locale), {
            "role": u.role, "people": [{"email": r.email, "role": r.role} for r in rows]}

    def _scope_rank(self, scope: str | None) -> int:
        keys = [sec.key for sec in self.config.sections] + [f.key for f in self.config.floors()]
        return keys.index(scope) if scope in keys else -1

    def _task_title(self, tasks: tuple[str, ...], locale: str) -> str:
        task = self.config.task(tasks[0])
        return task.title.get(i18n.lang(locale)) if task else tasks[0]

    async def _overdue(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                       locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        period = periods.Period(today - dt.timedelta(days=366), today)
        vis = self.visibility(email)
        items = [i for i in await due_items(s, self.config, period, now, self.cache)
                 if i.status == "overdue" and vis.sees(i.occurrence)]
        if u.section:
            items = [i for i in items if i.occurrence.concerns(u.section)]
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
            items = [i for i in items if i.occurrence.concerns(section.key)]
        total = _line("", items)
        lines: tuple[StatusLine, ...] = ()
        if not section and (vis.everything or len(vis.sections) > 1):
            lines = tuple(_line(sec.name.get(lang), [i for i in items if i.occurrence.concerns(sec.key)])
                          for sec in self.config.sections if vis.everything or sec.key in vis.sections)
        round_tasks = self.config.tasks_of_kind("checklist_round")
        rounds = {task.key for task in round_tasks}
        fire = [i for i in items if i.occurrence.task in rounds and i.occurrence.window_start <= today
                and i.status != "before_start"]
        measures = await repo.open_measure_rows(s)
        title = (t(locale, "status.title.section", year=today.year, section=section.name.get(lang)) if section
                 else t(locale, "status.title", year=today.year))
        before = sum(i.status == "before_start" for i in items)
        starts = await tracking_starts(s, self.config) if before else None
        view = StatusView(title, total, lines, sum(i.status == "done" for i in fire), len(fire), len(measures),
                          before, format_date(starts, locale) if starts else "",
                          ", ".join(task.title.get(lang) for task in round_tasks))
        counts = {k: getattr(total, k) for k in ("done", "open", "overdue", "upcoming")}
        return status_card(view, locale), {"counts": counts, "before_start": before,
                                           "section": section.key if section else None}

    async def _open_measures(self, s: AsyncSession, _u: Understanding, email: str, now: dt.datetime,
                             locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        today = wheel.local_date(now, self.config)
        key = ("open_measures_card", id(self), email, locale, today)
        found: tuple[dict[str, Any], dict[str, Any]] = await sessions.kept(
            s, key, lambda: self._open_measures_card(s, email, today, locale))
        return found

    async def _open_measures_card(self, s: AsyncSession, email: str, today: dt.date,
                                  locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        vis = self.visibility(email)
        rows = []
        for m_id, owner_email, created_by, deadline, created_at, description, section_key, floor_key, building_key \
                in await repo.open_measure_rows(s):
            if not (vis.everything or section_key in vis.sections or floor_key in vis.floors
                    or (floor_key is None and building_key in vis.buildings)
                    or any(s in vis.sections for s in self._sections_of(floor_key))
                    or email in (owner_email, created_by)):
                continue
            owner = self.config.person(owner_email)
            age = (today - created_at.astimezone(self.config.tz).date()).days
            rows.append(MeasureRow(t(locale, "measures.numbered", id=m_id, description=description or "–"),
                                   owner.name if owner else owner_email,
                                   format_date(deadline, locale), age, deadline < today))
        return open_measures_card(rows, locale), {"count": len(rows)}

    async def _new_measure(self, _s: AsyncSession, _u: Understanding, email: str, now: dt.datetime,
                           locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.rounds.measures.new_measure_activity(email, now, locale), {"form": "new_measure"}

    async def _report_incident(self, _s: AsyncSession, _u: Understanding, _e: str, _n: dt.datetime,
                               locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        links = self.config.links
        cim = links["cim"].url if "cim" in links else "https://uio-cim.no/"
        si_fra = links["si_fra"].url if "si_fra" in links else None
        return incident_card(cim, si_fra, locale), {"url": cim}

    async def _annual_report(self, s: AsyncSession, _u: Understanding, email: str, now: dt.datetime,
                             locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The annual report of the cycle at hand (the next deadline, or the open one): the year it reports on (the
        task's `reporting_year`: a report due 1 March reports on the year before) and each section's rounds then."""
        today = wheel.local_date(now, self.config)
        lang = i18n.lang(locale)
        reports = self.config.tasks_of_kind("report")
        task = reports[0] if reports else None
        found = wheel.task_occurrences(self.config, task.key, today.year - 1, today.year + 1) if task else []
        recent = [o for o in found if o.window_start <= today and o.due >= today - dt.timedelta(days=REPORT_GRACE)]
        occ = recent[-1] if recent else next((o for o in found if o.due >= today), None)
        year = occ.reporting_year or occ.due.year if occ else today.year
        own = [o for o in found if occ and o.cycle == occ.cycle and o.window_start <= today and o.section
               and (sec := self.config.section(o.section)) and sec.leader == email]
        if len(own) == 1:  # the section leader gets the report drafted from the records, to edit and submit
            activity = await self.rounds.reports.activity(s, own[0], now, locale, None)
            return activity, {"year": year, "due": own[0].due.isoformat(), "occurrence": own[0].key, "draft": True}
        items = await due_items(s, self.config, periods.year_of(dt.date(year, 1, 1)), now, self.cache)
        items = [i for i in items if i.occurrence.due.year == year]
        rounds = self.config.tasks_of_kind("checklist_round", "safety_round")
        vis = self.visibility(email)
        lines = []
        for sec in self.config.sections:
            if not (vis.everything or sec.key in vis.sections):
                continue
            parts, before = [], 0
            for rt in rounds:
                mine = [i for i in items if i.occurrence.task == rt.key and i.occurrence.concerns(sec.key)]
                if not mine:
                    continue
                skipped = sum(i.status == "before_start" for i in mine)
                done = sum(i.status == "done" for i in mine)
                before += skipped
                title = rt.title.get(lang).lower()
                parts.append(t(locale, "annual.round_count", task=title, done=done, total=len(mine) - skipped)
                             if len(mine) > 1 or rt.does == "checklist_round" else
                             t(locale, "annual.round_done", task=title, answer=t(locale, "yes" if done else "no")))
            lines.append(f"{sec.name.get(lang)}: {', '.join(parts) or '–'}"
                         + (t(locale, "annual.before_start", count=before) if before else ""))
        link = self.config.links.get(task.links[0]) if task and task.links else None
        form = link.url if link else None
        view = AnnualReportView(year, format_date(occ.due, locale) if occ else "–",
                                task.description.get(lang) if task and task.description else "", form, tuple(lines))
        return annual_report_card(view, locale), {"year": year, "due": occ.due.isoformat() if occ else None}

    async def _start_round(self, s: AsyncSession, u: Understanding, email: str, now: dt.datetime,
                           locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The round's checklist: the one whose window is open, or, when the last one was missed (overdue and not
        done, and due after tracking started), that one first ("start vernerunde" on 10 July offers the round due
        1 July). See LATE_GRACE_DAYS."""
        today = wheel.local_date(now, self.config)
        lang = i18n.lang(locale)
        task_keys = self.config.round_tasks(u.round)
        items = [i for i in await due_items(s, self.config, periods.Period(today - dt.timedelta(days=366), today),
                                            now, self.cache)
                 if i.occurrence.task in task_keys and (i.status == "overdue" or i.occurrence.window_start <= today
                                                        <= i.occurrence.due)]
        mine = [i for i in items if self.rounds.may_act(i.occurrence, email)]
        if u.floor:
            mine = [i for i in mine if i.occurrence.floor == u.floor]
        if u.section:
            mine = [i for i in mine if i.occurrence.concerns(u.section)]
        places: dict[tuple[str, str | None, str | None, str | None], list[wheel.DueItem]] = {}
        for item in mine:  # ordered by deadline
            occ_ = item.occurrence
            places.setdefault((occ_.task, occ_.section, occ_.floor, occ_.building), []).append(item)
        if not places:
            return notice_card(t(locale, "round.none")), {"occurrence": None}
        if len(places) > 1:
            # their own round first (a lab manager who is also a deputy floor contact means her lab round)
            own = ([place for place, its in places.items() if any(email in i.occurrence.assignees for i in its)]
                   or [place for place, its in places.items() if any(email == i.occurrence.deputy for i in its)])
            if len(own) != 1:
                return notice_card(t(locale, "round.no_floor")), {"occurrence": None}
            places = {own[0]: places[own[0]]}
        [its] = places.values()
        going = [i for i in its if i.status != "overdue"]
        late = [i for i in its if i.status == "overdue"
                and (not going or (today - i.occurrence.due).days <= LATE_GRACE_DAYS)]
        item = late[-1] if late else going[-1]  # the round just missed, else the one going on
        occ = item.occurrence
        row = await repo.occurrence_row(s, occ.key)
        if row is not None and row.completed_at is not None:
            done = self.rounds.names.done_by(row, email, locale, "round.done")
            card = await self.rounds.result_card(s, occ, row, locale, notice_text=done, viewer=email)
            return message(card, done), {"occurrence": occ.key, "completed": True}
        values: dict[str, str] = {}
        comments: dict[str, str] = {}
        if row is not None and row.id is not None:
            values, comments = await repo.draft(s, row.id)
        nonce = nonce_for(occ.key, "start", email, now.isoformat())
        notice_text = t(locale, "round.late" if going else "round.late.only",
                        due=format_date(occ.due, locale)) if late else None
        card = self.rounds.occurrence_card(occ, locale, nonce=nonce, values=values, comments=comments,
                                           notice_text=notice_text)
        task = self.config.task(occ.task)
        title = f"{task.title.get(lang) if task else occ.task} – {scope_name(self.config, occ, locale)}"
        return message(card, title), {"occurrence": occ.key, "completed": False, "draft_items": len(values),
                                      "late": bool(late)}

    # -- helpers -------------------------------------------------------------------------------------------

    def _sections_of(self, floor_key: str | None) -> tuple[str, ...]:
        floor = self.config.floor(floor_key) if floor_key else None
        return floor.sections if floor else ()

    def _name(self, email: str) -> str:
        person = self.config.person(email)
        return person.name if person else email

    def _due_card(self, title: str, items: list[wheel.DueItem], empty: str, vis: Visibility | None,
                  locale: str, later: list[wheel.DueItem] | None = None,
                  later_title: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """The list card and its summary; a pure function of its arguments, so the same question with the same
        statuses gets what was built before (the list is what most people ask for, many times a day). Callers
        must not change what is returned. `later`: work open in the period with a later deadline, shown apart."""
        later = later or []
        key = (title, empty, vis, locale, tuple((i.occurrence.key, i.status) for i in items),
               later_title, tuple(i.occurrence.key for i in later))

        def make() -> tuple[dict[str, Any], dict[str, Any]]:
            view = self._due_view(title, items, empty, vis, locale)
            view = DueView(view.title, view.groups, view.empty_text, view.scope_note, later_title,
                           self._later_rows(later, locale))
            summary = self._items_summary(items)
            if later:
                summary["open_later"] = self._items_summary(later)["items"]
            return due_card(view, locale), summary

        found: tuple[dict[str, Any], dict[str, Any]] = _remember(self._cards, key, make)
        return found

    def _later_rows(self, later: list[wheel.DueItem], locale: str) -> tuple[LaterRow, ...]:
        """One line per task and deadline: the places it is open for, counted when more than two."""
        lang = i18n.lang(locale)
        grouped: dict[tuple[dt.date, str], list[wheel.Occurrence]] = {}
        for item in sorted(later, key=lambda i: (i.occurrence.due, i.occurrence.key)):
            grouped.setdefault((item.occurrence.due, item.occurrence.task), []).append(item.occurrence)
        rows = []
        for (due, task_key), occs in grouped.items():
            task = self.config.task(task_key)
            if len(occs) <= 2:
                where = ", ".join(scope_name(self.config, o, locale) for o in occs)
            else:
                where = t(locale, "due.places.floor" if occs[0].floor else "due.places.section", count=len(occs))
            rows.append(LaterRow(task.title.get(lang) if task else task_key, where, format_date(due, locale)))
        return tuple(rows)

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
            when = format_date(occ.due, locale, year=False, short=True)  # a narrow column: "30. sep."
            rows.append(DueRow(when, task.title.get(lang) if task else occ.task, scope_name(self.config, occ, locale),
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
