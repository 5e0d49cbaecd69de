"""The card on which the HMSB adviser registers work done before or outside the bot: what will be put on record
(task, place, cycle and deadline, the day it was done, who registers it), who did it and a note, one button."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, facts, heading, text
from hms.i18n import t


@dataclass(frozen=True)
class RegisterView:
    task: str  # "Brannvernrunde – Historisk museum, 1. etasje"
    cycle: str  # "2026-Q4 · frist 31. desember 2026"
    day: str  # "12. november 2026"
    registrar: str
    people: tuple[tuple[str, str], ...]  # (email, name) of those who may have done it


def register_card(view: RegisterView, locale: str, data: dict[str, Any]) -> dict[str, Any]:
    """The confirmation form; `data` is the button's signed payload."""
    title = t(locale, "register.title")
    body: list[dict[str, Any]] = [
        heading(title),
        text(t(locale, "register.intro"), subtle=True, spacing="None"),
        facts([(t(locale, "register.task"), view.task), (t(locale, "register.cycle"), view.cycle),
               (t(locale, "register.done_on"), view.day), (t(locale, "register.registrar"), view.registrar)]),
        {"type": "Input.ChoiceSet", "id": "by", "label": t(locale, "register.by"), "style": "compact",
         "placeholder": t(locale, "register.by_unknown"), "isRequired": False,
         "choices": [{"title": name, "value": email} for email, name in view.people]},
        {"type": "Input.Text", "id": "note", "label": t(locale, "register.note"), "isMultiline": True,
         "maxLength": 1000},
    ]
    button = t(locale, "register.button")
    actions = [{"type": "Action.Execute", "title": button, "verb": "task.register", "data": data,
                "style": "positive", "fallback": {"type": "Action.Submit", "title": button, "data": data}}]
    return card(body, actions)
