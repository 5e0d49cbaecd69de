"""The organisation and its annual wheel, as loaded and validated from a YAML file.

Everything a unit configures lives here: people, roles, sections, buildings and floors, the wheel's tasks with
their recurrence, and the checklist templates. Loading never half-succeeds: every problem is collected with
the file name and the place in the file (line, column and path), and a broken file is refused as a whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "khm.yaml"

ROLES = (
    "hmsb_adviser",
    "unit_head",
    "management_group",
    "lamu",
    "section_leader",
    "safety_rep",
    "floor_contact",
    "anyone",
)
"""Roles a task can name. Section roles resolve per section, floor roles per floor."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A text in Norwegian bokmål and English."""

    nb: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, locale: str) -> str:
        return self.en if locale.startswith("en") else self.nb


_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


def parse_month_day(value: Any) -> tuple[int, int]:
    """Parse 'MM-DD' into (month, day), refusing impossible dates and 29 February."""
    if not isinstance(value, str) or not _MONTH_DAY.match(value):
        raise ValueError(f"expected a day of the year as MM-DD (like 07-01), got {value!r}")
    month, day = int(value[:2]), int(value[3:])
    if (month, day) == (2, 29):
        raise ValueError("29 February does not exist every year; use 02-28 or 03-01")
    try:
        dt.date(2001, month, day)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: there is no day {day} in month {month}") from None
    return month, day


def _check_md(value: Any) -> str:
    parse_month_day(value)
    return str(value)


MonthDay = Annotated[str, AfterValidator(_check_md)]
"""A day of the year written MM-DD (29 February is refused: it does not exist every year)."""


class Unit(_Strict):
    key: str
    name: Text
    timezone: str = "Europe/Oslo"
    locale: Literal["nb", "en"] = "nb"
    demo_data: bool = False
    tracking_starts: dt.date | None = None
    """The first day the bot keeps the wheel: nothing due before it is overdue, reminded or escalated. Unset:
    the day the database was first migrated (stored in the database, the same for every replica)."""

    @field_validator("tracking_starts", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Any:
        # YAML reads 2026-11-30 as a date and 2026-11-30T09:00 as a datetime: only a plain day is meant
        if v is None or (isinstance(v, dt.date) and not isinstance(v, dt.datetime)):
            return v
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v)
            except ValueError:
                pass
        raise ValueError(f"expected a day as YYYY-MM-DD (like 2026-11-30), got {v!r}")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Person(_Strict):
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    entra_object_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")
    title: str | None = None
    demo: bool = False

    @field_validator("email")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class Lamu(_Strict):
    members: list[str] = Field(default_factory=list)
    team_name: str
    channel_name: str
    team_id: str | None = None
    channel_id: str | None = None


class Roles(_Strict):
    hmsb_adviser: str
    unit_head: str
    management_group: list[str] = Field(min_length=1)
    lamu: Lamu


class Section(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: Text
    leader: str
    safety_rep: str | None = None
    aliases: list[str] = Field(default_factory=list)


class Floor(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: Text
    section: str
    contact: str | None = None
    deputy: str | None = None
    aliases: list[str] = Field(default_factory=list)


class Building(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    address: str | None = None
    floors: list[Floor] = Field(min_length=1)


class Link(_Strict):
    title: Text
    url: str = Field(pattern=r"^https://")


class Yearly(_Strict):
    kind: Literal["yearly"]
    due: MonthDay
    opens: MonthDay | None = None


class Quarterly(_Strict):
    kind: Literal["quarterly"]


class EveryNYears(_Strict):
    kind: Literal["every_n_years"]
    interval: int = Field(ge=2, le=10)
    anchor_year: int = Field(ge=2000, le=2100)
    due: MonthDay
    opens: MonthDay | None = None


class Window(_Strict):
    kind: Literal["window"]
    start: MonthDay
    end: MonthDay

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("a window needs different start and end days")
        return self


class Continuous(_Strict):
    kind: Literal["continuous"]
    review_every_months: Literal[1, 2, 3, 4, 6, 12] | None = None


class Event(_Strict):
    kind: Literal["event"]


Recurrence = Annotated[
    Yearly | Quarterly | EveryNYears | Window | Continuous | Event, Field(discriminator="kind")
]


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"expected a time of day as HH:MM (like 09:00), got {value!r}")
    return value


class ReminderOverrides(_Strict):
    """Per-task changes to the reminder policy; fields left out keep the unit's defaults."""

    send_at: Annotated[str, AfterValidator(_check_hhmm)] | None = None
    first_prompt_days_before: int | None = Field(default=None, ge=0, le=365)
    prompt_when_window_opens: bool | None = None
    reminder_working_days_before: list[Annotated[int, Field(ge=1, le=60)]] | None = None
    overdue_notice: bool | None = None
    escalate_to_section_leader_after: int | None = Field(default=None, ge=1, le=60)
    escalate_to_adviser_after: int | None = Field(default=None, ge=1, le=120)
    deputy_after_days: int | None = Field(default=None, ge=1, le=60)
    skip_july_holiday: bool | None = None
    enabled: bool | None = None


class ReminderPolicy(_Strict):
    """When prompts, reminders, overdue notices and escalations go out. Days before/after are working days
    except `first_prompt_days_before` and `deputy_after_days`, which are calendar days."""

    send_at: Annotated[str, AfterValidator(_check_hhmm)] = "09:00"
    first_prompt_days_before: int = Field(default=21, ge=0, le=365)
    prompt_when_window_opens: bool = False
    reminder_working_days_before: list[Annotated[int, Field(ge=1, le=60)]] = Field(default_factory=lambda: [7, 1])
    overdue_notice: bool = True
    escalate_to_section_leader_after: int | None = Field(default=3, ge=1, le=60)
    escalate_to_adviser_after: int | None = Field(default=10, ge=1, le=120)
    deputy_after_days: int | None = Field(default=5, ge=1, le=60)
    skip_july_holiday: bool = False
    enabled: bool = True

    def merged(self, overrides: ReminderOverrides | None) -> ReminderPolicy:
        if overrides is None:
            return self
        changes = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return self.model_copy(update=changes)


class MeasureDefaults(_Strict):
    deadline_days: int = Field(default=30, ge=1, le=365)


class Task(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: Text
    description: Text | None = None
    scope: Literal["unit", "section", "floor"]
    responsible: str
    accountable: str | None = None
    participants: list[str] = Field(default_factory=list)
    recurrence: Recurrence
    checklist: str | None = None
    links: list[str] = Field(default_factory=list)
    reminders: ReminderOverrides | None = None
    notify_when_done: list[str] = Field(default_factory=list)
    """Roles told when someone marks an occurrence of this task done in the chat (the section's annual report to the
    HMSB adviser, say), naming the place, who and when."""
    assumption: str | None = None

    @field_validator("responsible", "accountable")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and v not in ROLES:
            raise ValueError(f"unknown role {v!r}; known roles: {', '.join(ROLES)}")
        return v

    @field_validator("participants", "notify_when_done")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        for role in v:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; known roles: {', '.join(ROLES)}")
        return v


class ChecklistItem(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    text: Text
    museum_only: bool = False
    building: bool = False
    """A deviation here is a fault in the building, reported to the estates department (EA) in Si fra: the card
    after submission offers the Si fra link and a field for EA's ticket number."""


class AnswerOption(_Strict):
    key: str = Field(pattern=r"^[a-z0-9_]+$")
    label: Text
    is_deviation: bool = False
    comment_required: bool = False


class Checklist(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    title: Text
    answers: list[AnswerOption] = Field(min_length=2)
    items: list[ChecklistItem] = Field(min_length=1)


class HmsConfig(_Strict):
    """The whole file: a unit, its people and roles, its places, links, checklists and the wheel."""

    version: Literal[1] = 1
    unit: Unit
    people: list[Person] = Field(min_length=1)
    roles: Roles
    sections: list[Section] = Field(min_length=1)
    buildings: list[Building] = Field(min_length=1)
    links: dict[str, Link] = Field(default_factory=dict)
    checklists: list[Checklist] = Field(default_factory=list)
    reminders: ReminderPolicy = Field(default_factory=ReminderPolicy)
    measures: MeasureDefaults = Field(default_factory=MeasureDefaults)
    weekly_digest: bool = True
    tasks: list[Task] = Field(min_length=1)

    # -- look-ups -------------------------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.unit.timezone)

    def person(self, email: str) -> Person | None:
        return self._people_by_email.get(email.lower())

    def person_by_entra_id(self, object_id: str) -> Person | None:
        """The person with this Entra (Azure AD) object id, the id Teams sends as `aadObjectId`."""
        return self._people_by_entra_id.get(object_id.lower())

    @cached_property
    def _people_by_email(self) -> dict[str, Person]:
        return {p.email: p for p in self.people}

    @cached_property
    def _people_by_entra_id(self) -> dict[str, Person]:
        return {p.entra_object_id.lower(): p for p in self.people if p.entra_object_id}

    @cached_property
    def _sections_by_key(self) -> dict[str, Section]:
        return {s.key: s for s in self.sections}

    @cached_property
    def _floors(self) -> list[Floor]:
        return [f for b in self.buildings for f in b.floors]

    @cached_property
    def _floors_by_key(self) -> dict[str, Floor]:
        return {f.key: f for f in self._floors}

    @cached_property
    def _tasks_by_key(self) -> dict[str, Task]:
        return {t.key: t for t in self.tasks}

    def section(self, key: str) -> Section | None:
        return self._sections_by_key.get(key)

    def floors(self) -> list[Floor]:
        return list(self._floors)

    def floor(self, key: str) -> Floor | None:
        return self._floors_by_key.get(key)

    def task(self, key: str) -> Task | None:
        return self._tasks_by_key.get(key)

    def policy(self, task: Task) -> ReminderPolicy:
        """The reminder policy of a task: the unit's defaults with the task's overrides."""
        return self.reminders.merged(task.reminders)

    def checklist(self, key: str) -> Checklist | None:
        return next((c for c in self.checklists if c.key == key), None)

    def roles_of(self, email: str) -> list[tuple[str, str | None]]:
        """Every (role, scope key) the person holds: scope is a section or floor key, or None for the unit."""
        email = email.lower()
        held: list[tuple[str, str | None]] = []
        if self.roles.hmsb_adviser == email:
            held.append(("hmsb_adviser", None))
        if self.roles.unit_head == email:
            held.append(("unit_head", None))
        if email in self.roles.management_group:
            held.append(("management_group", None))
        if email in self.roles.lamu.members:
            held.append(("lamu", None))
        for s in self.sections:
            if s.leader == email:
                held.append(("section_leader", s.key))
            if s.safety_rep == email:
                held.append(("safety_rep", s.key))
        for f in self.floors():
            if f.contact == email:
                held.append(("floor_contact", f.key))
            if f.deputy == email:
                held.append(("floor_deputy", f.key))
        return held


# -- errors -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, with where it is."""

    file: str
    path: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        at = f" at {self.path}" if self.path else ""
        return f"{where}:{at}: {self.message}" if at else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; `problems` lists everything found, in file order."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# -- loading ----------------------------------------------------------------------------------------------


class _Marks:
    """Maps a path in the parsed document (like ('tasks', 3, 'recurrence')) to its line and column."""

    def __init__(self, root: yaml.Node | None):
        self._marks: dict[tuple[Any, ...], tuple[int, int]] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self._marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                self._marks[(*path, key, "__key__")] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def find(self, path: Iterable[Any]) -> tuple[int | None, int | None]:
        parts = tuple(path)
        if parts and (*parts, "__key__") in self._marks:
            return self._marks[(*parts, "__key__")]
        while parts:
            if parts in self._marks:
                return self._marks[parts]
            parts = parts[:-1]
        return self._marks.get((), (None, None))


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_config(path: str | Path) -> HmsConfig:
    """Load and validate a config file, raising ConfigError with every problem found."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(name, "", None, None, f"cannot read the file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(name, "", None, None, "the file is not UTF-8 text")]) from None
    return parse_config(text, name)


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: the fields that take a date parse and check it themselves, with the
    place in the file (YAML's own reading of 2026-13-01 fails with a bare ValueError and no line)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def parse_config(text: str, name: str = "<config>") -> HmsConfig:
    """Validate a config given as YAML text; `name` is used in messages."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ConfigError([ConfigProblem(name, "", line, col, f"not valid YAML: {problem}")]) from None
    marks = _Marks(root)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(name, "", 1, 1, "the file must be a mapping with unit, people, ...")])
    try:
        config = HmsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            line, col = marks.find(loc)
            problems.append(ConfigProblem(name, _dotted(loc), line, col, _message(err)))
        raise ConfigError(_sorted(problems)) from None
    problems = [
        ConfigProblem(name, _dotted(loc), *marks.find(loc), msg) for loc, msg in _cross_check(config)
    ]
    if problems:
        raise ConfigError(_sorted(problems))
    return config


def _sorted(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # Discriminated unions add the tag ('yearly') as a path element; it is not in the file.
    kinds = {"yearly", "quarterly", "every_n_years", "window", "continuous", "event"}
    return tuple(p for p in loc if not (isinstance(p, str) and p in kinds))


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; it is not part of the format)"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return (
            "unknown recurrence kind; use one of yearly, quarterly, every_n_years, window, continuous, event"
        )
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _prompt_lead_problems(task: Task) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with a task's own prompt lead (`reminders.first_prompt_days_before`): a lead that cannot take
    effect. The prompt never comes before the task opens, so a longer lead would be silently cut short; a task
    without deadlines has nothing to prompt ahead of. (The unit's default lead is cut short on purpose for tasks
    that open later: it is not checked here.)"""
    if task.reminders is None or task.reminders.first_prompt_days_before is None:
        return []
    lead = task.reminders.first_prompt_days_before
    if task.reminders.prompt_when_window_opens:
        return [(("prompt_when_window_opens",), "set either first_prompt_days_before or prompt_when_window_opens, "
                 "not both: with prompt_when_window_opens the prompt goes out when the task opens")]
    from hms.wheel import cycles  # the wheel builds on this module; it knows each year's windows

    rec = task.recurrence
    first = rec.anchor_year if isinstance(rec, EveryNYears) else 2001
    spans = [(due - start).days for year in range(first, first + 4 * getattr(rec, "interval", 1))
             for _, start, due in cycles(task, year, year)]
    if not spans:
        return [(("first_prompt_days_before",), f"a prompt lead has no effect: a task with recurrence "
                 f"{rec.kind!r} has no deadlines to prompt ahead of")]
    room = min(spans)
    if lead > room:
        earlier = ", an earlier recurrence.opens" if isinstance(rec, Yearly | EveryNYears) else ""
        return [(("first_prompt_days_before",),
                 f"a prompt {lead} days before the deadline would come before the task opens ({room} days before "
                 f"its deadline at the least), and a prompt never comes before the task opens: use a lead of at "
                 f"most {room} days{earlier}, or prompt_when_window_opens: true")]
    return []


def _cross_check(c: HmsConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across the file: references, uniqueness, and roles that a task's scope cannot resolve."""
    out: list[tuple[tuple[Any, ...], str]] = []
    emails: dict[str, int] = {}
    entra_ids: dict[str, int] = {}
    for i, p in enumerate(c.people):
        if p.email in emails:
            out.append((("people", i, "email"), f"{p.email} is defined twice (also people[{emails[p.email]}])"))
        emails[p.email] = i
        if p.entra_object_id:  # the bot recognises people by it: two with one id would be mixed up
            oid = p.entra_object_id.lower()
            if oid in entra_ids:
                out.append((("people", i, "entra_object_id"),
                            f"entra_object_id {p.entra_object_id} is also people[{entra_ids[oid]}]'s"))
            entra_ids[oid] = i

    def ref(loc: tuple[Any, ...], email: str | None) -> None:
        if email is not None and email.lower() not in emails:
            out.append((loc, f"{email} is referenced here but not defined under people"))

    ref(("roles", "hmsb_adviser"), c.roles.hmsb_adviser)
    ref(("roles", "unit_head"), c.roles.unit_head)
    for i, e in enumerate(c.roles.management_group):
        ref(("roles", "management_group", i), e)
    for i, e in enumerate(c.roles.lamu.members):
        ref(("roles", "lamu", "members", i), e)

    section_keys: set[str] = set()
    for i, s in enumerate(c.sections):
        if s.key in section_keys:
            out.append((("sections", i, "key"), f"section key {s.key!r} is used twice"))
        section_keys.add(s.key)
        ref(("sections", i, "leader"), s.leader)
        ref(("sections", i, "safety_rep"), s.safety_rep)

    floor_keys: set[str] = set()
    for bi, b in enumerate(c.buildings):
        for fi, f in enumerate(b.floors):
            loc = ("buildings", bi, "floors", fi)
            if f.key in floor_keys:
                out.append(((*loc, "key"), f"floor key {f.key!r} is used twice"))
            floor_keys.add(f.key)
            if f.section not in section_keys:
                out.append(((*loc, "section"), f"unknown section {f.section!r}"))
            if not f.contact:
                out.append((loc, f"floor {f.key!r} has no floor contact (field 'contact')"))
            ref((*loc, "contact"), f.contact)
            ref((*loc, "deputy"), f.deputy)
            if f.contact and f.deputy and f.contact.lower() == f.deputy.lower():
                out.append(((*loc, "deputy"), "the deputy must be another person than the floor contact"))

    checklist_keys = {ck.key for ck in c.checklists}
    task_keys: set[str] = set()
    scope_roles = {
        "unit": {"hmsb_adviser", "unit_head", "management_group", "lamu", "anyone"},
        "section": {"hmsb_adviser", "unit_head", "management_group", "lamu", "anyone", "section_leader",
                    "safety_rep"},
        "floor": set(ROLES),
    }
    for i, t in enumerate(c.tasks):
        if t.key in task_keys:
            out.append((("tasks", i, "key"), f"task key {t.key!r} is used twice"))
        task_keys.add(t.key)
        for field, roles in (("responsible", [t.responsible]), ("accountable", [t.accountable]),
                             ("participants", t.participants), ("notify_when_done", t.notify_when_done)):
            for role in roles:
                if role is not None and role not in scope_roles[t.scope]:
                    out.append(((("tasks", i, field)),
                                f"role {role!r} cannot be resolved for a task of scope {t.scope!r}"))
        if t.checklist and t.checklist not in checklist_keys:
            out.append((("tasks", i, "checklist"), f"unknown checklist {t.checklist!r}"))
        for li, link in enumerate(t.links):
            if link not in c.links:
                out.append((("tasks", i, "links", li), f"unknown link {link!r} (define it under links)"))
        if isinstance(t.recurrence, Yearly | EveryNYears) and t.recurrence.opens == t.recurrence.due:
            out.append((("tasks", i, "recurrence", "opens"), "opens must be before due"))
        else:
            out += [((("tasks", i, "reminders", *loc)), msg) for loc, msg in _prompt_lead_problems(t)]
    for ci, ck in enumerate(c.checklists):
        seen: set[str] = set()
        for ii, item in enumerate(ck.items):
            if item.key in seen:
                out.append((("checklists", ci, "items", ii, "key"), f"item key {item.key!r} is used twice"))
            seen.add(item.key)
    return out
