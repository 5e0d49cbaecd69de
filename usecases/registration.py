"""Work done before or outside the bot, put on record afterwards by the HMSB adviser: from the command line
(`hms-bot done`) and from the chat.

On record like any completion (the occurrence is done, by whom and on which day), marked as registered afterwards,
with who registered it and when, apart from the day the work was done (see `storage.models.OccurrenceEvent`).

In the chat the adviser writes what was done ("registrer brannvernrunde 1. etasje utført 12.11.2026"). Nothing is
stored from the words alone: understanding free text is a guess and a record is not, so the answer is a card that
shows exactly what will be written (the task and place, the cycle it belongs to with its deadline, the day, who
registers it) with one button; what is missing or wrong is asked for again in words. The button's signed payload
carries the occurrence and the day ("fire_round:2026-Q4:hm-1:2026-11-12"), and the press is checked again (the
adviser, a day not in the future, not done by someone meanwhile) before anything is stored. Card verb:
task.register.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction, nonce_for
from cards.common import message
from cards.notices import NoticeView, notice, notice_card
from cards.register import RegisterView, register_card
from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from hms.nlu import Understanding
from hms.periods import tokenize
from storage import models as m, repo
from usecases.cardactions import ActionResult, CardHandler, CardPress, refusal
from usecases.database import opened
from usecases.naming import Names
from usecases.routing import Router

NOTE_MAX = 1000
DONE_HOUR = 12  # only the day of the work is known: noon keeps it on that day in every time zone nearby

ResultCard = Callable[[AsyncSession, wheel.Occurrence, m.Occurrence, str, str | None], Awaitable[dict[str, Any]]]


class Refused(Exception):
    """Why a registration cannot be made: a text key and its values. A `task` value is a task key, `where` a place
    key and `day` a date; `text` names them in the reader's language."""

    def __init__(self, key: str, **values: object):
        super().__init__(key)
        self.key = key
        self.values = values

    def text(self, config: HmsConfig, locale: str | None) -> str:
        lang = i18n.lang(locale)
        values = dict(self.values)
        task = config.task(str(values.get("task")))
        if task is not None:
            values["task"] = task.title.get(lang)
        if "where" in values:
            where = str(values["where"])
            place = config.floor(where) or config.section(where) or config.building(where)
            values["where"] = place.name.get(lang) if place else config.unit.name.get(lang)
        if isinstance(values.get("day"), dt.date):
            values["day"] = format_date(values["day"], locale)  # type: ignore[arg-type]
        return t(locale, self.key, **values)


def done_at(config: HmsConfig, day: dt.date) -> dt.datetime:
    """The instant a completion registered for `day` is stored at."""
    return dt.datetime.combine(day, dt.time(DONE_HOUR), config.tz)


def task_named(config: HmsConfig, text_value: str) -> str | None:
    """The task whose title the words name ("handlingsplanen" is the action plan), or None when none or several
    fit equally. A task fits by the share of its title's longer words that start a word of the text."""
    words = tokenize(text_value)
    best: list[tuple[float, int, str]] = []
    for task in config.tasks:
        for title in (task.title.nb, task.title.en):
            parts = [w for w in tokenize(title) if len(w) >= 5]  # no "hms", "with", "plan", "fire"
            hits = sum(any(w.startswith(p) for w in words) for p in parts)
            if parts and hits and hits * 2 >= len(parts):
                best.append((hits / len(parts), hits, task.key))
    if not best:
        return None
    top = max(best)[:2]
    winners = {key for share, hits, key in best if (share, hits) == top}
    return winners.pop() if len(winners) == 1 else None


def choose_occurrence(config: HmsConfig, task_key: str, section: str | None, floor: str | None, day: dt.date,
                      cycle: str | None = None, building: str | None = None) -> wheel.Occurrence:
    """The occurrence work done on `day` belongs to: the one of that task and place whose window holds the day,
    else the newest one due before it (done late); or the named `cycle`. Raises Refused."""
    task = config.task(task_key)
    if task is None:
        raise Refused("card.unknown")
    if task.scope == "section" and section is None and floor is not None:
        flr = config.floor(floor)
        section = flr.section if flr else None
    if task.scope == "building" and building is None and floor is not None:
        building = config.building_of(floor)
    if task.scope == "section" and section is None:
        raise Refused("register.need_section", task=task_key)
    if task.scope == "floor" and floor is None:
        raise Refused("register.need_floor", task=task_key)
    if task.scope == "building" and building is None:
        raise Refused("register.need_building", task=task_key)
    scope = {"unit": "unit", "section": section, "floor": floor, "building": building}[task.scope]
    found = [o for o in wheel.task_occurrences(config, task_key, day.year - 4, day.year + 1)
             if o.key.endswith(f":{scope}")]
    if not found:
        raise Refused("register.no_schedule", task=task_key)
    if cycle is not None:
        chosen = [o for o in found if o.cycle == cycle and o.window_start <= day]
    else:
        chosen = [o for o in found if o.window_start <= day <= o.due] or [o for o in found if o.due < day][-1:]
    if not chosen:
        raise Refused("register.no_occurrence", task=task_key, where=scope, day=day)
    return chosen[0]


class Registration:
    """Registering work afterwards: who may, the card the adviser confirms, and the verb that stores it."""

    def __init__(self, config: HmsConfig, secret: bytes, result_card: ResultCard):
        self.config = config
        self.secret = secret
        self.names = Names(config)
        self.result_card = result_card
        self.router: Router[CardHandler] = Router("registration")
        self.router.register("task.register", self._on_press)

    def may_register(self, email: str) -> bool:
        """Only the HMSB adviser registers work afterwards (a floor contact submits her own round on its card)."""
        return email.lower() == self.config.roles.hmsb_adviser

    async def register(self, s: AsyncSession, occ: wheel.Occurrence, day: dt.date, registrar: str, now: dt.datetime,
                       *, by: str | None = None, note: str | None = None) -> tuple[m.Occurrence, bool]:
        """Put `occ` on record as done on `day` (by `by`, when known), registered afterwards by `registrar` at
        `now`. False when it was done already (nothing changes). Raises Refused. Commits."""
        today = wheel.local_date(now, self.config)
        if day > today:
            raise Refused("register.future", day=day)
        if day < occ.window_start:
            raise Refused("register.no_occurrence", task=occ.task,
                          where=occ.floor or occ.section or occ.building or "unit", day=day)
        if by and self.config.person(by) is None:
            raise Refused("register.unknown_person", who=by)
        note = (note or "").strip()[:NOTE_MAX] or None
        return await repo.register_completion(s, occ, done_at(self.config, day), (by or registrar).lower(),
                                              registrar, now, note)

    # -- the chat ------------------------------------------------------------------------------------------------

    async def answer(self, s: AsyncSession, u: Understanding, text_value: str, email: str, now: dt.datetime,
                     locale: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The answer to "registrer ... utført DATE": the confirmation card, or what is missing, in words."""
        if not self.may_register(email):
            adviser = self.names.person(self.config.roles.hmsb_adviser)
            return notice_card(t(locale, "register.only_adviser", name=adviser)), {"refused": "not_adviser"}
        rounds = self.config.round_tasks(u.round) if u.round else []
        task_key = (rounds[0] if len(rounds) == 1 else None) or task_named(self.config, text_value)
        if task_key is None:
            return notice_card(t(locale, "register.need_task")), {"missing": "task"}
        day = u.period.start if u.period is not None and u.period.start == u.period.end else None
        try:
            occ = choose_occurrence(self.config, task_key, u.section, u.floor,
                                    day or wheel.local_date(now, self.config))
            if day is None:
                raise Refused("register.need_day")
            if day > wheel.local_date(now, self.config):
                raise Refused("register.future", day=day)
        except Refused as exc:
            return notice_card(exc.text(self.config, locale)), {"missing": exc.key, "task": task_key}
        summary = {"occurrence": occ.key, "day": day.isoformat()}
        row = await repo.occurrence_row(s, occ.key)
        if row is not None and row.completed_at is not None:
            line = self._already(occ, row, locale)
            card = await self.result_card(s, occ, row, locale, line)
            return message(card, line), {**summary, "completed": True}
        data = CardAction("task.register", f"{occ.key}:{day.isoformat()}",  # the occurrence, and the day
                          nonce_for(occ.key, "register", day.isoformat())).pack(self.secret)
        return message(register_card(self._view(occ, day, email, locale), locale, data),
                       t(locale, "register.title")), {**summary, "completed": False}

    def _view(self, occ: wheel.Occurrence, day: dt.date, registrar: str, locale: str) -> RegisterView:
        people = dict.fromkeys([*occ.assignees, *([occ.deputy] if occ.deputy else []), *occ.accountable,
                                *occ.participants])
        return RegisterView(f"{self.names.task(occ, locale)} – {self.names.scope(occ, locale)}",
                            t(locale, "register.cycle_value", cycle=occ.cycle, due=format_date(occ.due, locale)),
                            format_date(day, locale), self.names.person(registrar),
                            tuple((e, self.names.person(e)) for e in people))

    def _already(self, occ: wheel.Occurrence, row: m.Occurrence, locale: str) -> str:
        done = t(locale, "task.done", who=self.names.person(row.completed_by), when=self.names.done_when(row, locale))
        return t(locale, "register.already", task=self.names.task(occ, locale), where=self.names.scope(occ, locale),
                 cycle=occ.cycle, done=done)

    async def _on_press(self, press: CardPress) -> ActionResult:
        """The adviser confirmed: store the completion (checked again), then show the record."""
        locale = press.locale
        if not self.may_register(press.email):
            return refusal(locale, "register.only_adviser", "not_allowed",
                           name=self.names.person(self.config.roles.hmsb_adviser))
        key, _, day_text = press.action.ref.rpartition(":")
        occ = wheel.find_occurrence(self.config, key)
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            occ = None
        if occ is None:
            return refusal(locale, "card.unknown", "unknown")
        try:
            row, created = await self.register(press.session, occ, day, press.email, press.now,
                                               by=press.values.get("by") or None, note=press.values.get("note"))
        except Refused as exc:
            return ActionResult(notice(NoticeView(exc.text(self.config, locale), ())), "invalid")
        notice_text = None if created else self._already(occ, row, locale)
        return ActionResult(await self.result_card(press.session, occ, row, locale, notice_text),
                            "registered" if created else "completed_by_other")


async def register_done(url: str, config: HmsConfig, task_key: str, day: dt.date, now: dt.datetime, *,
                        section: str | None = None, floor: str | None = None, cycle: str | None = None,
                        by: str | None = None, note: str | None = None,
                        building: str | None = None) -> tuple[wheel.Occurrence, m.Occurrence, bool]:
    """`hms-bot done`: register work done on `day` as the HMSB adviser. Raises Refused."""
    occ = choose_occurrence(config, task_key, section, floor, day, cycle, building)
    registration = Registration(config, b"", _no_card)
    async with opened(url, now=now) as s:
        row, created = await registration.register(s, occ, day, config.roles.hmsb_adviser, now, by=by, note=note)
    return occ, row, created


async def _no_card(*_args: Any) -> dict[str, Any]:
    return {}
