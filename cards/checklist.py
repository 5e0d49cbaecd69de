"""The round checklist as an Adaptive Card form (paged, pre-filled from a draft), and the read-only card that
replaces it once the round is submitted (with the building faults to report to EA, when there are any).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cards.common import card, execute, heading, open_url, subheading, text
from hms.i18n import t

PAGE_SIZE = 9


@dataclass(frozen=True)
class ChecklistItemView:
    key: str
    text: str


@dataclass(frozen=True)
class ChecklistView:
    title: str
    where: str
    due_line: str
    items: tuple[ChecklistItemView, ...]
    answers: tuple[tuple[str, str], ...]
    deviation_answers: frozenset[str]
    page: int = 1
    values: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notice: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.items) // PAGE_SIZE))

    def page_items(self, page: int | None = None) -> tuple[ChecklistItemView, ...]:
        p = page or self.page
        return self.items[(p - 1) * PAGE_SIZE:p * PAGE_SIZE]


def checklist_card(view: ChecklistView, locale: str, data: Callable[[str, int], dict[str, Any]],
                   schedule_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form for one page. `data(verb, page)` gives the signed action data for a button; `schedule_data`, for a
    round done with the safety representative, that of the button to agree on its time (meeting.open)."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.due_line, subtle=True, spacing="None")]
    if view.notice:
        body.append(text(view.notice, color="Warning"))
    if view.pages > 1:
        body.append(text(t(locale, "checklist.page", page=view.page, pages=view.pages), subtle=True))
    choices = [{"title": label, "value": key} for key, label in view.answers]
    first = (view.page - 1) * PAGE_SIZE
    for n, item in enumerate(view.page_items(), start=first + 1):
        block: dict[str, Any] = {"type": "Container", "separator": True, "items": [
            text(f"**{n}.** {item.text}"),
            {"type": "Input.ChoiceSet", "id": f"a:{item.key}", "style": "expanded", "isRequired": True,
             "errorMessage": t(locale, "checklist.choose"), "label": t(locale, "checklist.answer"),
             "choices": choices, **({"value": view.values[item.key]} if item.key in view.values else {})},
            {"type": "Input.Text", "id": f"c:{item.key}", "isMultiline": True, "maxLength": 500,
             "label": t(locale, "checklist.comment"), "placeholder": t(locale, "checklist.comment_hint"),
             **({"value": view.comments[item.key]} if item.key in view.comments else {})},
        ]}
        if item.key in view.errors:
            block["items"].append(text(view.errors[item.key], color="Attention"))
            block["style"] = "attention"
        body.append(block)
    actions: list[dict[str, Any]] = []
    if view.page > 1:
        actions.append(execute(t(locale, "checklist.previous"), "round.page", data("round.page", view.page - 1),
                                validate=False))
    if view.page < view.pages:
        actions.append(execute(t(locale, "checklist.next"), "round.page", data("round.page", view.page + 1)))
    else:
        actions.append(execute(t(locale, "checklist.submit"), "round.submit", data("round.submit", view.page),
                                style="positive"))
    if schedule_data is not None:
        actions.append(execute(t(locale, "meeting.open"), "meeting.open", schedule_data, validate=False))
    return card(body, actions, fallback=t(locale, "checklist.fallback"))


@dataclass(frozen=True)
class BuildingFault:
    """A deviation on an item about the building, reported to EA: EA's ticket number once recorded, and the signed
    data of the button that records it (None where the reader may not, or the measure is closed)."""

    item: str
    ticket: str | None
    input_id: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class SubmittedView:
    title: str
    where: str
    headline: str
    rows: tuple[tuple[str, str, str, bool], ...]  # item, answer label, comment, is a deviation
    notice: str | None = None
    faults: tuple[BuildingFault, ...] = ()
    si_fra_url: str | None = None  # EA's fault report, offered to a reader who can record the ticket number


def submitted_card(view: SubmittedView, locale: str) -> dict[str, Any]:
    """Read-only: who submitted when, how many deviations, and each answer (deviations first)."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.headline, size="Medium", color="Good")]
    if view.notice:
        body.append(text(view.notice, color="Warning"))
    deviations = [r for r in view.rows if r[3]]
    if deviations:
        body.append(subheading(t(locale, "checklist.deviations")))
        body += [text(f"- **{item}**: {comment}", color="Attention") for item, _, comment, _ in deviations]
    if view.faults:
        body += building_faults(view.faults, view.si_fra_url, locale)
    body.append(subheading(t(locale, "checklist.all_answers")))
    body += [text(f"{answer} · {item}" + (f" – {comment}" if comment and not dev else ""), subtle=True,
                  spacing="None") for item, answer, comment, dev in view.rows]
    return card(body)


def building_faults(faults: tuple[BuildingFault, ...], si_fra_url: str | None, locale: str) -> list[dict[str, Any]]:
    """The faults to report to EA: the Si fra link, and per fault its ticket number or a field to record it."""
    blocks: list[dict[str, Any]] = [subheading(t(locale, "building.title")),
                                    text(t(locale, "building.intro" if si_fra_url else "building.record"))]
    if si_fra_url:
        blocks.append({"type": "ActionSet", "actions": [open_url(t(locale, "measure.si_fra"), si_fra_url)]})
    for fault in faults:
        state = t(locale, "building.ticket", ticket=fault.ticket) if fault.ticket else t(locale, "building.no_ticket")
        blocks.append(text(f"- **{fault.item}**: {state}", spacing="Small"))
        if fault.data is None:
            continue
        label = t(locale, "measure.save_ticket")
        blocks.append({"type": "ActionSet", "actions": [{"type": "Action.ShowCard", "title": label, "card": {
            "type": "AdaptiveCard",
            "body": [{"type": "Input.Text", "id": fault.input_id, "label": t(locale, "measure.ticket"),
                      "isRequired": True, "maxLength": 100, "errorMessage": t(locale, "building.ticket_missing"),
                      **({"value": fault.ticket} if fault.ticket else {})}],
            "actions": [execute(label, "round.ticket", fault.data)]}}]})
    return blocks
