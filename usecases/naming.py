"""Names people read on cards: a person's name, a task's title, a checklist item's text, a moment in the site's
time zone, the floor/section/unit an occurrence is for."""

from __future__ import annotations

import datetime as dt

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import format_datetime
from storage import models as m
from usecases.due import scope_name


class Names:
    """Looks names up in the organisation file, in the reader's language."""

    def __init__(self, config: HmsConfig):
        self.config = config

    def person(self, email: str | None) -> str:
        person = self.config.person(email) if email else None
        return person.name if person else (email or "–")

    def when(self, moment: dt.datetime, locale: str) -> str:
        return format_datetime(moment.astimezone(self.config.tz), locale)

    def done_when(self, row: m.Occurrence, locale: str) -> str:
        """When a stored occurrence was done: the day only for work registered afterwards (its time is not known)."""
        if row.completed_at is None:
            return "–"
        if row.registered_by:
            return i18n.format_date(row.completed_at.astimezone(self.config.tz).date(), locale)
        return self.when(row.completed_at, locale)

    def done_by(self, row: m.Occurrence, viewer: str | None, locale: str, key: str) -> str:
        """`key` ("round.done", "card.completed_by") naming who did it and when, or `key.you` ("Du leverte runden
        10. mars kl. 09.00") when the one who did it is the one reading."""
        when = self.done_when(row, locale)
        if viewer and row.completed_by and viewer.lower() == row.completed_by.lower() and not row.registered_by:
            return i18n.t(locale, f"{key}.you", when=when)
        return i18n.t(locale, key, who=self.person(row.completed_by), when=when)

    def task(self, occ: wheel.Occurrence, locale: str) -> str:
        task = self.config.task(occ.task)
        return task.title.get(i18n.lang(locale)) if task else occ.task

    def task_in_sentence(self, occ: wheel.Occurrence, locale: str) -> str:
        """The task as it reads inside a sentence: "brannvernrunden", "fire safety round" (see Task.sentence_name)."""
        task = self.config.task(occ.task)
        if task is None:
            return occ.task
        lang = i18n.lang(locale)
        return task.sentence_name.get(lang) if task.sentence_name else i18n.in_sentence(task.title.get(lang))

    def scope(self, occ: wheel.Occurrence, locale: str) -> str:
        return scope_name(self.config, occ, locale)

    def place(self, occ: wheel.Occurrence, locale: str) -> str:
        """Where an occurrence is, after a task in a bokmål sentence: "i 1. etasje, Historisk museum" (a floor named
        after its building reads floor first), "i Seksjon for publikum og formidling", "for Kulturhistorisk museum"."""
        name = self.scope(occ, locale)
        if not occ.floor and not occ.section and occ.scope != "building":
            return f"for {name}"
        building = self.config.building_of(occ.floor) if occ.floor else None
        found = self.config.building(building) if building else None
        prefix = f"{found.name.get(i18n.lang(locale))}, " if found else ""
        if prefix and name.startswith(prefix) and len(name) > len(prefix):
            name = f"{name[len(prefix):]}, {prefix[:-2]}"
        return f"i {name}"

    def item(self, task_key: str, item_key: str, locale: str) -> str:
        task = self.config.task(task_key)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        item = next((i for i in checklist.items if i.key == item_key), None) if checklist else None
        return item.text.get(i18n.lang(locale)) if item else item_key
