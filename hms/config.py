"""The organisation and its annual wheel, as loaded and validated from a YAML file.

Everything a unit configures lives here: people, roles, sections, buildings and floors, the wheel's tasks with
their recurrence, and the checklist templates. Loading never half-succeeds: every problem is collected with
the file name and the place in the file (line, column and path), and a broken file is refused as a whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
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

# Package data (pyproject.toml), so an installed wheel finds it as a checkout does.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "orgfiles" / "khm.yaml"

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
"""The built-in roles a task can name. Section roles resolve per section, floor roles per floor. A unit declares
more under `roles.declared` (a hovedverneombud, a brannvernleder per building, a lab manager per section)."""

SCOPES = ("unit", "building", "section", "floor")
"""What a task is done for: once for the unit, once per building, per section or per floor."""

TASK_KINDS = ("checklist_round", "safety_round", "report", "mark_done")
"""What a task does: a round with a checklist per place (the fire round), the yearly safety round with the safety
representative (a checklist too), a report (the annual report: the chat's "årsrapport" answers from it), or a task
that is simply marked done."""

BUILTIN_SCOPE_ROLES: dict[str, frozenset[str]] = {
    "unit": frozenset({"hmsb_adviser", "unit_head", "management_group", "lamu", "anyone"}),
    "building": frozenset({"hmsb_adviser", "unit_head", "management_group", "lamu", "anyone", "section_leader",
                           "safety_rep"}),
    "section": frozenset({"hmsb_adviser", "unit_head", "management_group", "lamu", "anyone", "section_leader",
                          "safety_rep"}),
    "floor": frozenset(ROLES),
}
"""Which built-in roles a task of each scope can resolve (a building's section roles are its sections')."""

DECLARED_ROLE_REACH: dict[str, frozenset[str]] = {
    "unit": frozenset(SCOPES),
    "building": frozenset({"building", "floor"}),
    "section": frozenset({"section", "floor"}),
    "floor": frozenset({"floor"}),
}
"""For a declared role of a scope, the task scopes it can be resolved for (a building's brannvernleder for the
building's tasks and its floors', a section's lab manager for the section's and its floors')."""


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


class DeclaredRole(_Strict):
    """A role the unit declares beyond the built-in ones, held for the unit or per building, section or floor.

    `holders` lists the people for a unit-wide role, and maps each building/section/floor key to its holder (or
    holders) otherwise; a task names the role by `key` as responsible, accountable or participant."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    title: Text
    scope: Literal["unit", "building", "section", "floor"] = "unit"
    holders: list[str] | dict[str, str | list[str]] = Field(default_factory=list)

    def held(self) -> list[tuple[str | None, str]]:
        """Every (scope key, email) of the role; the scope key is None for a unit-wide role."""
        if isinstance(self.holders, list):
            return [(None, e.lower()) for e in self.holders]
        return [(k, e.lower()) for k, v in self.holders.items() for e in ([v] if isinstance(v, str) else v)]


class Roles(_Strict):
    hmsb_adviser: str
    unit_head: str
    management_group: list[str] = Field(min_length=1)
    lamu: Lamu
    declared: list[DeclaredRole] = Field(default_factory=list)


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
    """The section that owns the floor: its leader is accountable for the floor's rounds and owns their measures."""
    shared_with: list[str] = Field(default_factory=list)
    """Other sections on the floor: they see its tasks, and their leaders and safety representatives take part."""
    contact: str | None = None
    deputy: str | None = None
    aliases: list[str] = Field(default_factory=list)

    @property
    def sections(self) -> tuple[str, ...]:
        """Every section on the floor, the owner first."""
        return tuple(dict.fromkeys((self.section, *self.shared_with)))


class Building(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: Text
    address: str | None = None
    aliases: list[str] = Field(default_factory=list)
    floors: list[Floor] = Field(min_length=1)

    @field_validator("name", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        # a building's name is often the same in both languages: a plain string stands for both
        return {"nb": v, "en": v} if isinstance(v, str) else v

    @property
    def sections(self) -> tuple[str, ...]:
        """Every section with a floor in the building, in the file's order."""
        return tuple(dict.fromkeys(s for f in self.floors for s in f.sections))


class Link(_Strict):
    title: Text
    url: str = Field(pattern=r"^https://")


class Yearly(_Strict):
    kind: Literal["yearly"]
    due: MonthDay
    opens: MonthDay | None = None


class Quarterly(_Strict):
    """Four times a year; each quarter's deadline is `due_day` of its `due_month` (1-3, the month within the
    quarter), by default the quarter's last day. A day past a month's end means that month's last day."""

    kind: Literal["quarterly"]
    due_month: Literal[1, 2, 3] = 3
    due_day: int | Literal["last"] = Field(default="last")

    @field_validator("due_day")
    @classmethod
    def _day(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 31:
            raise ValueError(f"expected a day of the month (1-31) or 'last', got {v}")
        return v


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
    escalate_to_unit_head_after: int | None = Field(default=None, ge=1, le=250)
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
    escalate_to_unit_head_after: int | None = Field(default=None, ge=1, le=250)  # off for tasks; measures set it
    deputy_after_days: int | None = Field(default=5, ge=1, le=60)
    skip_july_holiday: bool = False
    enabled: bool = True

    def merged(self, overrides: ReminderOverrides | None) -> ReminderPolicy:
        if overrides is None:
            return self
        changes = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return self.model_copy(update=changes)


def _max_len(limit: int) -> AfterValidator:
    """Each language of a Text at most `limit` characters (a limit of the Teams app manifest)."""
    def check(v: Text | None) -> Text | None:
        for lang, value in (("nb", v.nb), ("en", v.en)) if v is not None else ():
            if len(value) > limit:
                raise ValueError(f"{lang} is {len(value)} characters; Teams allows at most {limit}")
        return v
    return AfterValidator(check)


class App(_Strict):
    """The Teams app package's names, description, developer and URLs (`hms-bot manifest`), in the manifest's two
    languages; the limits are the Teams app manifest's (v1.19)."""

    name_short: Annotated[Text, _max_len(30)]
    name_full: Annotated[Text, _max_len(100)]
    description_short: Annotated[Text | None, _max_len(80)] = None
    description_full: Annotated[Text | None, _max_len(4000)] = None
    developer: str = Field(min_length=1, max_length=32)
    website_url: str = Field(pattern=r"^https://\S+$", max_length=2048)
    privacy_url: str = Field(pattern=r"^https://\S+$", max_length=2048)
    terms_url: str = Field(pattern=r"^https://\S+$", max_length=2048)


class MeasureDefaults(_Strict):
    """Measures follow the unit's reminder policy (reminders before the deadline, an overdue notice, the section
    leader and the adviser told after so many working days), and the unit head after `escalate_to_unit_head_after`
    working days past the deadline: a measure is followed up until it is closed."""

    deadline_days: int = Field(default=30, ge=1, le=365)
    escalate_to_unit_head_after: int | None = Field(default=20, ge=1, le=250)


class Task(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: Text
    sentence_name: Text | None = None
    """How the task reads inside a sentence ("Det er tid for brannvernrunden ...": {nb: brannvernrunden, en: fire
    safety round}); left out: the title, with a small first letter unless it is an abbreviation."""
    description: Text | None = None
    scope: Literal["unit", "building", "section", "floor"]
    kind: Literal["checklist_round", "safety_round", "report", "mark_done"] | None = None
    """What the task does (see TASK_KINDS); left out: a checklist round if it has a checklist, else mark-done."""
    responsible: str
    accountable: str | None = None
    participants: list[str] = Field(default_factory=list)
    recurrence: Recurrence
    reporting_year: Literal["deadline", "previous"] = "deadline"
    """The calendar year a cycle reports on: the year of its deadline, or the year before (an annual report due 1
    March reports on the previous year)."""
    checklist: str | None = None
    links: list[str] = Field(default_factory=list)
    reminders: ReminderOverrides | None = None
    notify_when_done: list[str] = Field(default_factory=list)
    """Roles told when someone marks an occurrence of this task done in the chat (the section's annual report to the
    HMSB adviser, say), naming the place, who and when."""
    assumption: str | None = None

    @property
    def does(self) -> str:
        """The task's kind, with the default filled in."""
        return self.kind or ("checklist_round" if self.checklist else "mark_done")

    def reports_on(self, deadline: dt.date) -> int:
        """The calendar year the cycle with this deadline reports on."""
        return deadline.year - 1 if self.reporting_year == "previous" else deadline.year


class ChecklistItem(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    text: Text
    help: Text | None = None
    """What to look for, folded away under the item on the card until it is tapped."""
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
    app: App | None = None
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
    def memo(self) -> dict[Any, Any]:
        """Pure work derived from this file, kept by the core's functions (a loaded file never changes)."""
        return {}

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

    @cached_property
    def _buildings_by_key(self) -> dict[str, Building]:
        return {b.key: b for b in self.buildings}

    @cached_property
    def _building_of_floor(self) -> dict[str, str]:
        return {f.key: b.key for b in self.buildings for f in b.floors}

    @cached_property
    def _declared_roles(self) -> dict[str, DeclaredRole]:
        return {r.key: r for r in self.roles.declared}

    def section(self, key: str) -> Section | None:
        return self._sections_by_key.get(key)

    def building(self, key: str) -> Building | None:
        return self._buildings_by_key.get(key)

    def building_of(self, floor_key: str) -> str | None:
        """The key of the building a floor is in."""
        return self._building_of_floor.get(floor_key)

    def declared_role(self, key: str) -> DeclaredRole | None:
        return self._declared_roles.get(key)

    def role_title(self, key: str, locale: str | None) -> str | None:
        """A declared role's title in the reader's language (None for built-in roles)."""
        role = self.declared_role(key)
        return role.title.get(locale or "nb") if role else None

    def tasks_of_kind(self, *kinds: str) -> list[Task]:
        """The tasks that do one of these things (see TASK_KINDS), in the file's order."""
        return [t for t in self.tasks if t.does in kinds]

    def round_tasks(self, word: str | None) -> list[str]:
        """The keys of the round tasks "start brannvernrunde" / "start vernerunde" name by their word ("fire",
        "safety"): the tasks of the nearer kind, else of the other (a unit whose only round is a lab-safety round
        gets it either way)."""
        order = ("safety_round", "checklist_round") if word == "safety" else ("checklist_round", "safety_round")
        for kind in order:
            found = [t.key for t in self.tasks_of_kind(kind)]
            if found:
                return found
        return []

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
        for role in self.roles.declared:
            held += [(role.key, scope) for scope, holder in role.held() if holder == email]
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
    config, structural, origin = _validate_what_can_be(data)
    problems = [ConfigProblem(name, _dotted(loc), *marks.find(loc), msg) for loc, msg in structural]
    if config is not None:  # the references are checked too, on what could be read, so every problem shows at once
        problems += [ConfigProblem(name, _dotted(origin(loc)), *marks.find(origin(loc)), msg)
                     for loc, msg in _cross_check(config, _declared_keys(data))]
    if problems:
        raise ConfigError(_sorted(_unique(problems)))
    assert config is not None
    return config


Origin = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _validate_what_can_be(data: dict[str, Any]) -> tuple[HmsConfig | None, list[tuple[tuple[Any, ...], str]], Origin]:
    """Validate the document; when parts of it are broken, also the rest without them.

    Returns the config made from what is valid (None when something the whole file needs is broken), every
    structural problem with its place in the file, and a function from a place in the config made to the place in
    the file (list items left out shift the ones after them). A broken list item (a task with a bad date) is left
    out and an optional field with a bad value is left at its default, so the references of everything else are
    still checked: one bad date does not hide the errors after it."""
    import copy

    work = copy.deepcopy(data)
    kept: dict[int, list[int]] = {}  # id of a list in `work` -> the original index of each item still in it

    def origin(loc: tuple[Any, ...]) -> tuple[Any, ...]:
        node: Any = work
        out: list[Any] = []
        for part in loc:
            if isinstance(node, list) and isinstance(part, int):
                out.append(kept.get(id(node), list(range(len(node))))[part] if part < len(node) else part)
                node = node[part] if part < len(node) else None
            else:
                out.append(part)
                node = node.get(part) if isinstance(node, dict) else None
        return tuple(out)

    problems: list[tuple[tuple[Any, ...], str]] = []
    first = True
    for _ in range(200):  # each round leaves something out, so this ends; 200 is far beyond a real file's errors
        try:
            return HmsConfig.model_validate(work), problems, origin
        except ValidationError as exc:
            errors = exc.errors()
        targets: list[tuple[Any, Any]] = []
        for err in errors:
            loc = _clean_loc(err["loc"])
            if first or err["type"] not in ("missing", "too_short"):
                problems.append((origin(loc), _message(err)))
            target = _part_holding(work, loc)
            if target is not None and not any(t[0] is target[0] and t[1] == target[1] for t in targets):
                targets.append(target)
        first = False
        if not targets:
            break
        # leave the parts out together, the later items of a list first, so the places of the others hold
        for parent, key in sorted(targets, key=lambda t: t[1] if isinstance(t[1], int) else -1, reverse=True):
            if isinstance(parent, list):
                index = kept.setdefault(id(parent), list(range(len(parent))))
                del parent[key], index[key]
            else:
                del parent[key]
    return None, problems, origin


def _part_holding(work: dict[str, Any], loc: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """What to leave out for a problem at `loc`: the innermost list item holding it, else the field itself (then
    its default applies, or its absence is reported on the next round); None when nothing can be."""
    nodes: list[Any] = [work]
    for part in loc:
        node = nodes[-1]
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            nodes.append(node[part])
        elif isinstance(node, dict) and part in node:
            nodes.append(node[part])
        else:
            break
    for depth in range(len(nodes) - 1, 0, -1):
        if isinstance(nodes[depth - 1], list):
            return nodes[depth - 1], loc[depth - 1]
    if len(nodes) > 1:
        return nodes[-2], loc[len(nodes) - 2]
    return None


@dataclass(frozen=True)
class _Declared:
    """Keys the raw file declares, including in parts left out as broken: a reference to them is not an error
    of its own (the broken part is reported already)."""

    emails: frozenset[str]
    sections: frozenset[str]
    checklists: frozenset[str]
    links: frozenset[str]
    roles: frozenset[str]


def _declared_keys(data: dict[str, Any]) -> _Declared:
    def keys(items: Any, field: str = "key") -> frozenset[str]:
        if not isinstance(items, list):
            return frozenset()
        return frozenset(str(i[field]).lower() if field == "email" else str(i[field])
                         for i in items if isinstance(i, dict) and field in i)

    roles = data.get("roles")
    links = data.get("links")
    return _Declared(emails=keys(data.get("people"), "email"), sections=keys(data.get("sections")),
                     checklists=keys(data.get("checklists")),
                     links=frozenset(links) if isinstance(links, dict) else frozenset(),
                     roles=keys(roles.get("declared")) if isinstance(roles, dict) else frozenset())


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


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


def _cross_check(c: HmsConfig, declared: _Declared | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across the file: references, uniqueness, and roles that a task's scope cannot resolve. `declared`:
    keys the raw file declares in parts left out as broken (already reported), which references may name."""
    known = declared or _Declared(frozenset(), frozenset(), frozenset(), frozenset(), frozenset())
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
        if email is not None and email.lower() not in emails and email.lower() not in known.emails:
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
    sections_known = section_keys | known.sections

    floor_keys: set[str] = set()
    building_keys: set[str] = set()
    for bi, b in enumerate(c.buildings):
        if b.key in building_keys:
            out.append((("buildings", bi, "key"), f"building key {b.key!r} is used twice"))
        building_keys.add(b.key)
        for fi, f in enumerate(b.floors):
            loc: tuple[Any, ...] = ("buildings", bi, "floors", fi)
            if f.key in floor_keys:
                out.append(((*loc, "key"), f"floor key {f.key!r} is used twice"))
            floor_keys.add(f.key)
            if f.section not in sections_known:
                out.append(((*loc, "section"), f"unknown section {f.section!r}"))
            for si, shared in enumerate(f.shared_with):
                if shared not in sections_known:
                    out.append(((*loc, "shared_with", si), f"unknown section {shared!r}"))
                elif shared == f.section:
                    out.append(((*loc, "shared_with", si), f"{shared!r} owns the floor already (field 'section')"))
            if not f.contact:
                out.append((loc, f"floor {f.key!r} has no floor contact (field 'contact')"))
            ref((*loc, "contact"), f.contact)
            ref((*loc, "deputy"), f.deputy)
            if f.contact and f.deputy and f.contact.lower() == f.deputy.lower():
                out.append(((*loc, "deputy"), "the deputy must be another person than the floor contact"))

    places = {"building": building_keys, "section": sections_known, "floor": floor_keys}
    role_keys: set[str] = set()
    for ri, drole in enumerate(c.roles.declared):
        loc = ("roles", "declared", ri)
        if drole.key in ROLES or drole.key == "floor_deputy":
            out.append(((*loc, "key"), f"{drole.key!r} is a built-in role; declare only other roles"))
        elif drole.key in role_keys:
            out.append(((*loc, "key"), f"role {drole.key!r} is declared twice"))
        role_keys.add(drole.key)
        if drole.scope == "unit" and isinstance(drole.holders, dict):
            out.append(((*loc, "holders"), "a unit-wide role lists its holders (a list of e-mails), not per place"))
            continue
        if drole.scope != "unit" and isinstance(drole.holders, list) and drole.holders:
            out.append(((*loc, "holders"), f"a role per {drole.scope} maps each {drole.scope} key to its holder"))
            continue
        if isinstance(drole.holders, list):
            for hi, email in enumerate(drole.holders):
                ref((*loc, "holders", hi), email)
            continue
        for place, holder in drole.holders.items():
            if place not in places[drole.scope]:
                out.append(((*loc, "holders", place), f"unknown {drole.scope} {place!r}"))
            for hi, email in enumerate([holder] if isinstance(holder, str) else holder):
                ref((*loc, "holders", place) if isinstance(holder, str) else (*loc, "holders", place, hi), email)
    roles_known = set(ROLES) | role_keys | known.roles

    checklist_keys = {ck.key for ck in c.checklists} | known.checklists
    task_keys: set[str] = set()
    for i, t in enumerate(c.tasks):
        if t.key in task_keys:
            out.append((("tasks", i, "key"), f"task key {t.key!r} is used twice"))
        task_keys.add(t.key)
        for field, roles in (("responsible", [t.responsible]), ("accountable", [t.accountable]),
                             ("participants", t.participants), ("notify_when_done", t.notify_when_done)):
            for ri, role in enumerate(roles):
                if role is None:
                    continue
                loc = ("tasks", i, field, ri) if field in ("participants", "notify_when_done") else ("tasks", i, field)
                if role not in roles_known:
                    out.append((loc, f"unknown role {role!r}: declare it under roles.declared (built-in roles: "
                                     f"{', '.join(ROLES)})"))
                    continue
                custom = c.declared_role(role)
                if custom is not None:
                    resolvable = t.scope in DECLARED_ROLE_REACH[custom.scope]
                else:
                    resolvable = role in BUILTIN_SCOPE_ROLES[t.scope] or role in known.roles
                if not resolvable:
                    out.append((loc, f"role {role!r} cannot be resolved for a task of scope {t.scope!r}"))
        if t.checklist and t.checklist not in checklist_keys:
            out.append((("tasks", i, "checklist"), f"unknown checklist {t.checklist!r}"))
        if t.does in ("checklist_round", "safety_round") and not t.checklist:
            out.append((("tasks", i, "kind"), f"a task of kind {t.does!r} needs a checklist (field 'checklist')"))
        if t.does in ("report", "mark_done") and t.checklist:
            out.append((("tasks", i, "kind"), f"a task of kind {t.does!r} has no checklist; use checklist_round"))
        for li, link in enumerate(t.links):
            if link not in c.links and link not in known.links:
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
