"""The inspection pack: what internkontrollforskriften § 5 (points 4-8) asks a unit to hold in writing, for a period,
read from the record and the organisation file and named for people (never internal keys).

`build_pack` gathers it into plain data (`Pack`); `usecases.packfiles` writes it as XLSX, PDF, CSV or JSON.
"Plan against done" is every occurrence of the wheel due in the period, also those nobody opened: the wheel says
what was planned, the record what was done, and the difference is what an inspector asks about.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import t
from hms.periods import Period
from storage import repo
from usecases.database import opened
from usecases.due import due_items, filter_items, scope_name, tracking_starts

PLAN_STATUSES = ("done", "done_late", "missed", "open", "not_yet_due", "before_start")


@dataclass(frozen=True)
class PlanRow:
    """One occurrence of the wheel due in the period, against what is on record for it."""

    task: str
    scope: str
    window_start: dt.date
    deadline: dt.date
    status: str  # one of PLAN_STATUSES
    done_by: str | None
    done_at: dt.datetime | None  # Oslo time; noon of the day for work registered afterwards
    registered_by: str | None  # who put it on record afterwards (None: done in the bot)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    comment: str | None


@dataclass(frozen=True)
class Participant:
    name: str
    role: str
    confirmed_at: dt.datetime | None


@dataclass(frozen=True)
class RoundRecord:
    """A round on record: who did it when, who took part, and each checklist item's question and answer."""

    task: str
    scope: str
    deadline: dt.date
    done_by: str | None
    done_at: dt.datetime | None
    registered_by: str | None
    participants: tuple[Participant, ...]
    meeting: dt.datetime | None  # the agreed time with the participant (safety round), Oslo time
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class HistoryEntry:
    at: dt.datetime
    who: str
    what: str


@dataclass(frozen=True)
class MeasureRecord:
    """A deviation's measure (or a measure from another source) with its whole history and its evidence."""

    number: int
    source: str
    description: str
    section: str
    owner: str
    deadline: dt.date
    status: str
    created_by: str
    created_at: dt.datetime
    cim_ref: str | None
    ea_ticket: str | None
    round: str | None  # "Brannvernrunde – 1. etasje, frist 31. desember 2026" for a round's deviation
    history: tuple[HistoryEntry, ...]
    evidence: tuple[str, ...]  # file names, links and notes; never a file's bytes


@dataclass(frozen=True)
class Responsibility:
    role: str
    scope: str
    name: str
    email: str
    title: str


@dataclass(frozen=True)
class IndexEntry:
    point: int
    requirement: str
    where: str


@dataclass(frozen=True)
class Pack:
    """Everything in the pack, in one language."""

    locale: str
    unit: str
    start: dt.date
    end: dt.date
    section: str | None  # the section's name when the pack is for one section
    generated_at: dt.datetime
    generated_by: str
    plan: tuple[PlanRow, ...]
    rounds: tuple[RoundRecord, ...]
    measures: tuple[MeasureRecord, ...]
    responsibilities: tuple[Responsibility, ...]
    index: tuple[IndexEntry, ...]
    records: dict[str, Any] = field(default_factory=dict)  # the raw record (the JSON export keeps it)


def plan_status(item: wheel.DueItem, tz: Any) -> str:
    """done, done late (completed after the deadline day), missed, open, not yet due, or before tracking started."""
    if item.completion is not None:
        late = item.completion.at.astimezone(tz).date() > item.occurrence.due
        return "done_late" if late else "done"
    return {"overdue": "missed", "open": "open", "upcoming": "not_yet_due"}.get(item.status, item.status)


class _Namer:
    def __init__(self, config: HmsConfig, locale: str):
        self.config, self.locale, self.lang = config, locale, i18n.lang(locale)

    def person(self, email: str | None) -> str:
        person = self.config.person(email) if email else None
        return person.name if person else (email or "")

    def local(self, moment: dt.datetime | None) -> dt.datetime | None:
        return moment.astimezone(self.config.tz) if moment else None

    def task(self, key: str) -> str:
        task = self.config.task(key)
        return task.title.get(self.lang) if task else key

    def section(self, key: str | None) -> str:
        section = self.config.section(key) if key else None
        return section.name.get(self.lang) if section else (key or "")

    def role(self, role: str | None, scope: str) -> str:
        if role and (declared := self.config.role_title(role, self.lang)):
            return declared
        text = t(self.locale, f"role.{role}", scope=scope, unit=self.config.unit.name.get(self.lang))
        return text if not text.startswith("role.") else (role or "")


def _iso_moment(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _occurrence(config: HmsConfig, key: str) -> wheel.Occurrence | None:
    return wheel.find_occurrence(config, key)


def _rounds(config: HmsConfig, names: _Namer, data: dict[str, Any], section: str | None) -> list[RoundRecord]:
    answers_by: dict[str, list[dict[str, Any]]] = {}
    for a in data["answers"]:
        answers_by.setdefault(a["occurrence"], []).append(a)
    found = []
    for r in data["rounds"]:
        occ = _occurrence(config, r["occurrence"])
        if occ is None or (section and not occ.concerns(section)):
            continue
        if r["completed_at"] is None and not answers_by.get(r["occurrence"]):
            continue  # started or agreed, not done: the plan sheet shows it as open or missed
        task = config.task(occ.task)
        checklist = config.checklist(task.checklist) if task and task.checklist else None
        answers = []
        for a in answers_by.get(r["occurrence"], []):
            item = next((i for i in checklist.items if i.key == a["item"]), None) if checklist else None
            option = next((o for o in checklist.answers if o.key == a["answer"]), None) if checklist else None
            answers.append(Answer(item.text.get(names.lang) if item else a["item"],
                                  option.label.get(names.lang) if option else a["answer"], a["comment"]))
        confirmed = {e["by"]: _iso_moment(e["at"]) for e in r["events"] if e["kind"] == "confirmed"}
        scope = scope_name(config, occ, names.locale)
        participants = tuple(Participant(names.person(p["email"]), names.role(p["role"], scope),
                                         names.local(confirmed.get(p["email"]))) for p in r["participants"])
        agreed = [p for p in r["meeting"] if p["answer"] == "accepted"]
        found.append(RoundRecord(
            names.task(occ.task), scope, occ.due, names.person(r["completed_by"]) or None,
            names.local(_iso_moment(r["completed_at"])), names.person(r["registered_afterwards_by"]) or None,
            participants, names.local(_iso_moment(agreed[-1]["starts_at"])) if agreed else None, tuple(answers)))
    return found


def _history_text(names: _Namer, h: dict[str, Any]) -> str:
    kind = h["kind"] or ("closed" if h["status"] == "closed" else "created")
    what = t(names.locale, f"pack.event.{kind}")
    if kind == "reassigned":
        what += f": {names.person(h['from'])} → {names.person(h['to'])}"
    elif kind in ("deadline", "ticket"):
        what += f": {h['from'] or '–'} → {h['to']}"
    return what + (f" ({h['note']})" if h["note"] else "")


def _measures(config: HmsConfig, names: _Namer, data: dict[str, Any], section: str | None) -> list[MeasureRecord]:
    findings = {f["id"]: f for f in data["findings"]}
    rounds = {r["occurrence"]: r for r in data["rounds"]}
    found = []
    for x in data["measures"]:
        finding = findings.get(x["finding"])
        occ = _occurrence(config, finding["occurrence"]) if finding else None
        section_key = x["section"] or (occ.section if occ else None)
        if section and not (section_key == section or (occ is not None and occ.concerns(section))):
            continue
        round_text = None
        if occ is not None and finding is not None and finding["occurrence"] in rounds:
            round_text = (f"{names.task(occ.task)} – {scope_name(config, occ, names.locale)}, "
                          f"{i18n.format_date(occ.due, names.locale)}")
        created = dt.datetime.fromisoformat(x["created_at"])
        history = tuple(HistoryEntry(names.local(dt.datetime.fromisoformat(h["at"])) or created, names.person(h["by"]),
                                     _history_text(names, h)) for h in x["history"])
        evidence = tuple(e["file"] or e["url"] or e["note"] or "" for e in x["evidence"])
        found.append(MeasureRecord(
            x["id"], t(names.locale, f"measure.source.{x['source']}"),
            x["description"] or (finding["description"] if finding else ""), names.section(section_key),
            names.person(x["owner"]), dt.date.fromisoformat(x["deadline"]),
            t(names.locale, f"pack.measure.{x['status']}"),
            names.person(x["created_by"] or (finding["by"] if finding else None)), names.local(created) or created,
            x["cim_ref"], x["external_ticket"], round_text, history, evidence))
    return found


def responsibilities(config: HmsConfig, locale: str, section: str | None = None) -> list[Responsibility]:
    """Who is responsible for what (§ 5 point 5), from the organisation file."""
    names = _Namer(config, locale)
    unit = t(locale, "pack.responsibility.unit")
    rows: list[tuple[str, str | None, str]] = []  # role text, scope, email

    def add(role: str, scope: str, email: str | None) -> None:
        if email:
            rows.append((names.role(role, scope), scope, email))

    if section is None:
        add("hmsb_adviser", unit, config.roles.hmsb_adviser)
        add("unit_head", unit, config.roles.unit_head)
    for sec in config.sections:
        if section in (None, sec.key):
            name = sec.name.get(names.lang)
            add("section_leader", name, sec.leader)
            add("safety_rep", name, sec.safety_rep)
    for floor in config.floors():
        if section is None or section in floor.sections:
            name = floor.name.get(names.lang)
            add("floor_contact", name, floor.contact)
            add("floor_deputy", name, floor.deputy)
    for declared in config.roles.declared:
        for _key, email in declared.held():
            rows.append((declared.title.get(names.lang), unit, email))
    out = []
    for role, scope, email in rows:
        person = config.person(email)
        title = (person.title or "") if person else ""
        out.append(Responsibility(role, scope or unit, names.person(email), email, title))
    return out


def index(locale: str) -> list[IndexEntry]:
    """Points 4-8 of § 5, each with where the pack covers it or what the bot does not hold."""
    sheets = {k: t(locale, f"pack.sheet.{k}") for k in ("plan", "rounds", "measures", "history",
                                                         "responsibilities")}
    return [IndexEntry(p, t(locale, f"pack.point.{p}"), t(locale, f"pack.where.{p}", **sheets)) for p in range(4, 9)]


async def build_pack(url: str, config: HmsConfig, start: dt.date, end: dt.date, now: dt.datetime, *,
                     by: str, section: str | None = None, locale: str = "nb") -> Pack:
    """The inspection pack for the deadlines in [start, end] (one section's, or the unit's), as of `now`: opens the
    database, reads, closes it (the command line)."""
    async with opened(url) as session:
        return await pack_from(session, config, start, end, now, by=by, section=section, locale=locale)


async def pack_from(session: Any, config: HmsConfig, start: dt.date, end: dt.date, now: dt.datetime, *,
                    by: str, section: str | None = None, locale: str = "nb") -> Pack:
    """The inspection pack read through an open session (see `build_pack`)."""
    names = _Namer(config, locale)
    items = await due_items(session, config, Period(start, end), now)
    data = await repo.records(session, start, end)
    starts = await tracking_starts(session, config)
    plan = [PlanRow(names.task(i.occurrence.task), scope_name(config, i.occurrence, locale),
                    i.occurrence.window_start, i.occurrence.due, plan_status(i, config.tz),
                    names.person(i.completion.by) if i.completion else None,
                    names.local(i.completion.at) if i.completion else None,
                    names.person(i.completion.registered_by) if i.completion and i.completion.registered_by else None)
            for i in filter_items(config, items, section=section) if start <= i.occurrence.due <= end]
    for r in data["rounds"]:
        r["before_tracking_start"] = starts is not None and r["due"] < starts.isoformat()
    return Pack(
        locale=locale, unit=config.unit.name.get(names.lang), start=start, end=end,
        section=names.section(section) if section else None, generated_at=now.astimezone(config.tz),
        generated_by=names.person(by), plan=tuple(plan), rounds=tuple(_rounds(config, names, data, section)),
        measures=tuple(_measures(config, names, data, section)),
        responsibilities=tuple(responsibilities(config, locale, section)), index=tuple(index(locale)),
        records={"period": {"start": start.isoformat(), "end": end.isoformat()},
                 "tracking_starts": starts.isoformat() if starts else None, **data})
