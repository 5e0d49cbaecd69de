"""The simple card that marks a wheel task without a checklist as done, with a note and an optional link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, text
from hms.i18n import t


@dataclass(frozen=True)
class TaskView:
    title: str
    where: str
    due_line: str
    notice: str | None = None
    error: str | None = None
    done_line: str | None = None


def task_card(view: TaskView, locale: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The form (with `data` for the button), or the read-only card when `view.done_line` is set."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.due_line, subtle=True, spacing="None")]
    if view.notice:
        body.append(text(view.notice))
    if view.done_line:
        body.append(text(view.done_line))
        return card(body)
    body += [
        {"type": "Input.Text", "id": "note", "label": t(locale, "task.note"), "isMultiline": True, "maxLength": 1000},
        {"type": "Input.Text", "id": "link", "label": t(locale, "task.link"), "style": "Url", "maxLength": 2000,
         "regex": "^(https://.*)?$", "errorMessage": t(locale, "task.link_invalid")},
    ]
    if view.error:
        body.append(text(view.error, color="Attention"))
    actions = [{"type": "Action.Execute", "title": t(locale, "task.done_button"), "verb": "task.done",
                "data": data, "style": "positive", "fallback": {"type": "Action.Submit",
                                                                "title": t(locale, "task.done_button"), "data": data}}]
    return card(body, actions)
