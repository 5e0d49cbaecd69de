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
    help: str | None = None  # folded away under the item


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
    """The form for one page, made for a phone: one row per item (the item and a compact OK / Avvik / Ikke relevant
    choice side by side), its comment and help folded away under the item until it is tapped (open already where
    the answer is a deviation, there is a comment, or the answer was refused), and "Alt annet OK", which answers
    every item still open with OK and submits the round. What the user must see after a press is where they look:
    the page and the refused items at the top and again next to the buttons at the bottom. `data(verb, page)` gives
    the signed action data for a button; `schedule_data`, for a round done with the safety representative, that of
    the button to agree on its time (meeting.open)."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.due_line, subtle=True, spacing="None")]
    if view.notice:
        body.append(text(view.notice))
    status = _status(view, locale)
    body += status
    body.append(text(t(locale, "checklist.tap_hint"), subtle=True, size="Small", spacing="Small"))
    choices = [{"title": label, "value": key} for key, label in view.answers]
    first = (view.page - 1) * PAGE_SIZE
    for n, item in enumerate(view.page_items(), start=first + 1):
        body.append(_item(view, item, n, choices, locale))
    body += [{**block, "separator": True} if i == 0 else block for i, block in enumerate(status)]
    actions: list[dict[str, Any]] = []
    if view.page > 1:
        actions.append(execute(t(locale, "checklist.previous"), "round.page", data("round.page", view.page - 1),
                                validate=False))
    if view.page < view.pages:
        actions.append(execute(t(locale, "checklist.next"), "round.page", data("round.page", view.page + 1)))
    else:
        actions.append(execute(t(locale, "checklist.submit"), "round.submit", data("round.submit", view.page),
                                style="positive"))
    actions.append(execute(t(locale, "checklist.all_ok"), "round.allok", data("round.allok", view.page)))
    if schedule_data is not None:
        actions.append(execute(t(locale, "meeting.open"), "meeting.open", schedule_data, validate=False))
    return card(body, actions, fallback=t(locale, "checklist.fallback"))


def _status(view: ChecklistView, locale: str) -> list[dict[str, Any]]:
    """The page and, after a refused press, what was refused: each item whose answer was refused by number and name
    with what is wrong, and the numbers of the items not answered yet in one line."""
    blocks: list[dict[str, Any]] = []
    if view.pages > 1:
        blocks.append(text(t(locale, "checklist.page", page=view.page, pages=view.pages), subtle=True,
                           spacing="Small"))
    if view.errors:
        lines = [f"- **{n}.** {item.text}: {view.errors[item.key]}" for n, item in enumerate(view.items, start=1)
                 if item.key in view.errors and view.values.get(item.key)]
        missing = [str(n) for n, item in enumerate(view.items, start=1)
                   if item.key in view.errors and not view.values.get(item.key)]
        if missing:
            lines.append("- " + t(locale, "checklist.missing_items", numbers=", ".join(missing)))
        blocks.append({"type": "Container", "style": "attention", "spacing": "Small", "items": [
            text(t(locale, "checklist.fix_errors"), color="Attention"), text("\n".join(lines), spacing="None")]})
    return blocks


def _item(view: ChecklistView, item: ChecklistItemView, n: int, choices: list[dict[str, str]],
          locale: str) -> dict[str, Any]:
    """One item in one row; its comment field (and help) folded under it, shown by tapping the item. A refused item
    is marked in red with what is wrong; its comment field opens where it has an answer (a deviation to describe)."""
    value = view.values.get(item.key)
    error = view.errors.get(item.key)
    folded = f"more:{item.key}"
    details: list[dict[str, Any]] = []
    if item.help:
        details.append(text(item.help, subtle=True, size="Small", spacing="None"))
    details.append({"type": "Input.Text", "id": f"c:{item.key}", "maxLength": 500, "spacing": "Small",
                    "placeholder": t(locale, "checklist.comment_hint"),
                    **({"value": view.comments[item.key]} if item.key in view.comments else {})})
    open_ = bool((value and (error or value in view.deviation_answers)) or view.comments.get(item.key))
    label = [text(f"**{n}.** {item.text}", size="Small", color="Attention" if error else None)]
    if error:
        label.append(text(error, color="Attention", size="Small", spacing="None"))
    return {"type": "Container", "separator": True, "spacing": "Small", "items": [
        {"type": "ColumnSet", "columns": [
            {"type": "Column", "width": "stretch", "verticalContentAlignment": "Center",
             "selectAction": {"type": "Action.ToggleVisibility", "title": t(locale, "checklist.comment"),
                              "targetElements": [folded]},
             "items": label},
            {"type": "Column", "width": "118px", "verticalContentAlignment": "Center", "items": [
                {"type": "Input.ChoiceSet", "id": f"a:{item.key}", "style": "compact",
                 "placeholder": t(locale, "checklist.answer"), "choices": choices,
                 **({"value": value} if value else {})}]},
        ]},
        {"type": "Container", "id": folded, "isVisible": open_, "spacing": "None", "items": details},
    ]}


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
    notice_color: str | None = None  # "Attention" for a notice that asks the reader to act; else the default


def submitted_card(view: SubmittedView, locale: str) -> dict[str, Any]:
    """Read-only: who submitted when, how many deviations, and each answer (deviations first). Plain text in the
    default colour (green and yellow are hard to read on a phone); red only for the deviations and a notice that
    asks the reader to act."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"),
                                  text(view.headline, size="Medium")]
    if view.notice:
        body.append(text(view.notice, color=view.notice_color))
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
