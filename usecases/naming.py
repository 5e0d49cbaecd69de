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

    def task(self, occ: wheel.Occurrence, locale: str) -> str:
        task = self.config.task(occ.task)
        return task.title.get(i18n.lang(locale)) if task else occ.task

    def scope(self, occ: wheel.Occurrence, locale: str) -> str:
        return scope_name(self.config, occ, locale)

    def item(self, task_key: str, item_key: str, locale: str) -> str:
        task = self.config.task(task_key)
        checklist = self.config.checklist(task.checklist) if task and task.checklist else None
        item = next((i for i in checklist.items if i.key == item_key), None) if checklist else None
        return item.text.get(i18n.lang(locale)) if item else item_key
