"""A measure (corrective action) for its owner: the deviation, deadline, Si fra link, the EA ticket number,
and closing it with a note on what was done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, open_url, text
from hms.i18n import t


@dataclass(frozen=True)
class MeasureView:
    title: str
    where: str
    finding: str
    owner_line: str
    ticket: str | None
    si_fra_url: str | None
    notice: str | None = None
    error: str | None = None
    closed_line: str | None = None


def measure_card(view: MeasureView, locale: str, close_data: dict[str, Any] | None,
                 ticket_data: dict[str, Any] | None) -> dict[str, Any]:
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"), text(view.finding),
                                  text(view.owner_line, subtle=True)]
    if view.notice:
        body.append(text(view.notice, color="Warning"))
    if view.ticket:
        body.append(text(f"{t(locale, 'measure.ticket')}: {view.ticket}", subtle=True))
    if view.closed_line:
        body.append(text(view.closed_line, color="Good"))
        return card(body)
    if view.error:
        body.append(text(view.error, color="Attention"))
    actions: list[dict[str, Any]] = []
    if view.si_fra_url:
        actions.append(open_url(t(locale, "measure.si_fra"), view.si_fra_url))
    if ticket_data is not None:
        actions.append({"type": "Action.ShowCard", "title": t(locale, "measure.save_ticket"), "card": {
            "type": "AdaptiveCard",
            "body": [{"type": "Input.Text", "id": "ticket", "label": t(locale, "measure.ticket"), "isRequired": True,
                      "maxLength": 100, "errorMessage": t(locale, "measure.ticket")}],
            "actions": [_execute(t(locale, "measure.save_ticket"), "measure.ticket", ticket_data)]}})
    if close_data is not None:
        actions.append({"type": "Action.ShowCard", "title": t(locale, "measure.close"), "card": {
            "type": "AdaptiveCard",
            "body": [{"type": "Input.Text", "id": "note", "label": t(locale, "measure.close_note"), "isMultiline": True,
                      "isRequired": True, "maxLength": 1000, "errorMessage": t(locale, "measure.note_required")}],
            "actions": [_execute(t(locale, "measure.close"), "measure.close", close_data, style="positive")]}})
    return card(body, actions)


def _execute(title: str, verb: str, data: dict[str, Any], style: str | None = None) -> dict[str, Any]:
    action = {"type": "Action.Execute", "title": title, "verb": verb, "data": data,
              "fallback": {"type": "Action.Submit", "title": title, "data": data}}
    if style:
        action["style"] = style
    return action
