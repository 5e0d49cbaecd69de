"""Agreeing on the time of a round with its participant: the section leader's card that proposes a day and a time
for the safety round with the safety representative, and the proposal card whoever must answer gets (the
representative's invitation, or the leader's counter-proposal) with Accept and Propose another time. Both are
read-only once there is nothing left to press."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, execute, heading, text
from hms.i18n import t


@dataclass(frozen=True)
class TimeInputs:
    """The day and time inputs: the earliest and latest day the client offers (YYYY-MM-DD), and what was typed."""

    date_min: str
    date_max: str
    date: str | None = None
    time: str | None = None


@dataclass(frozen=True)
class ScheduleView:
    title: str
    where: str
    due_line: str
    intro: str
    status: str
    agreed: bool
    inputs: TimeInputs
    notice: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ProposalView:
    title: str
    where: str
    lines: tuple[str, ...]
    inputs: TimeInputs
    notice: str | None = None
    error: str | None = None
    answered_line: str | None = None


def schedule_card(view: ScheduleView, locale: str, propose_data: dict[str, Any],
                  open_data: dict[str, Any] | None) -> dict[str, Any]:
    """The section leader's card: the meeting as it stands, a day and a time to propose, and the checklist."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.due_line, subtle=True, spacing="None")]
    if view.notice:
        body.append(text(view.notice))
    body += [text(view.status, color=None if view.agreed else "Accent"), text(view.intro),
             *_time_inputs(view.inputs, locale)]
    if view.error:
        body.append(text(view.error, color="Attention"))
    actions = [execute(t(locale, "meeting.send"), "meeting.propose", propose_data, validate=True, style="positive")]
    if open_data is not None:
        actions.append(execute(t(locale, "meeting.open_checklist"), "round.open", open_data, validate=False))
    return card(body, actions)


def proposal_card(view: ProposalView, locale: str, accept_data: dict[str, Any] | None,
                  counter_data: dict[str, Any] | None, open_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A proposed time for the person who must answer it (Accept, or Propose another time), or read-only with
    `view.answered_line` (and the checklist button, `open_data`, for the section leader)."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None")]
    if view.notice:
        body.append(text(view.notice))
    body += [text(line, subtle=i > 0) for i, line in enumerate(view.lines)]
    if view.error:
        body.append(text(view.error, color="Attention"))
    actions: list[dict[str, Any]] = []
    if view.answered_line or accept_data is None or counter_data is None:
        if view.answered_line:
            body.append(text(view.answered_line))
    else:
        actions += [
            execute(t(locale, "meeting.accept"), "meeting.accept", accept_data, validate=False, style="positive"),
            {"type": "Action.ShowCard", "title": t(locale, "meeting.counter"), "card": {
                "type": "AdaptiveCard", "body": _time_inputs(view.inputs, locale),
                "actions": [execute(t(locale, "meeting.counter_send"), "meeting.counter", counter_data,
                                     validate=True)]}},
        ]
    if open_data is not None:
        actions.append(execute(t(locale, "meeting.open_checklist"), "round.open", open_data, validate=False))
    return card(body, actions or None)


def _time_inputs(inputs: TimeInputs, locale: str) -> list[dict[str, Any]]:
    date: dict[str, Any] = {"type": "Input.Date", "id": "date", "label": t(locale, "meeting.date"), "isRequired": True,
                            "min": inputs.date_min, "max": inputs.date_max,
                            "errorMessage": t(locale, "meeting.date_missing")}
    time: dict[str, Any] = {"type": "Input.Time", "id": "time", "label": t(locale, "meeting.time"), "isRequired": True,
                            "errorMessage": t(locale, "meeting.time_missing")}
    if inputs.date:
        date["value"] = inputs.date
    if inputs.time:
        time["value"] = inputs.time
    return [date, time]

