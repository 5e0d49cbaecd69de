"""What a question is about: the wheel's tasks it names and the places it names, found by what the organisation
file calls them (a round by the kind its name reads as: "Brannvernrunde" is a fire round, "Lab safety round" a
safety round; any other task by its title), never by a task key."""

from __future__ import annotations

from hms import wheel
from hms.config import HmsConfig
from hms.nlu import Understanding, round_of
from usecases.registration import task_named


class AskedTasks:
    """Finds the tasks and places a question names, for one organisation file (built once; not changed after)."""

    def __init__(self, config: HmsConfig):
        self.config = config
        rounds: dict[str, list[str]] = {}
        for task in config.tasks:
            checklist = config.checklist(task.checklist) if task.checklist else None
            if checklist is None:
                continue
            names = (task.title.nb, task.title.en, checklist.title.nb, checklist.title.en)
            for kind in dict.fromkeys(k for k in map(round_of, names) if k):
                rounds.setdefault(kind, []).append(task.key)
        self.rounds = {kind: tuple(keys) for kind, keys in rounds.items()}

    def round_tasks(self, kind: str | None) -> tuple[str, ...]:
        """The tasks that are rounds of this kind ("fire", "safety"); every checklist round when kind is None."""
        if kind is None:
            return tuple(dict.fromkeys(k for keys in self.rounds.values() for k in keys))
        return self.rounds.get(kind, ())

    def tasks(self, u: Understanding, text_value: str) -> tuple[str, ...]:
        """The tasks the question names: its round kind's tasks, else the task whose title the words name."""
        if u.round:
            return self.round_tasks(u.round)
        named = task_named(self.config, text_value)
        return (named,) if named else ()

    def at_place(self, occ: wheel.Occurrence, section: str | None, floor: str | None) -> bool:
        """Whether an occurrence is for the place named (a floor: its own occurrences, its section's, the unit's)."""
        if floor:
            if occ.floor:
                return occ.floor == floor
            flr = self.config.floor(floor)
            return occ.section is None or (flr is not None and occ.section == flr.section)
        if section:
            return occ.section == section
        return True

    def holds_at(self, scope: str | None, section: str | None, floor: str | None) -> bool:
        """Whether a role held for `scope` (a section or floor key; None for the unit) is at the place named."""
        if scope is None or not (section or floor):
            return True
        flr = self.config.floor(scope)
        if flr is not None:  # a floor role
            return scope == floor or (not floor and flr.section == section)
        if floor:  # a section role, asked about a floor: that floor's section
            asked = self.config.floor(floor)
            return asked is not None and asked.section == scope
        return scope == section
