"""A list of occurrences: what is due in a period, what is overdue, or a person's own tasks. Work whose window is
open in the period but whose deadline is later comes after the deadlines, in a short group of its own (one line per
task and deadline), never mixed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import MAX_ROWS, STATUS_COLORS, card, heading, message, subheading, text
from hms.i18n import t


@dataclass(frozen=True)
class DueRow:
    when: str
    title: str
    where: str
    who: str
    status: str


@dataclass(frozen=True)
class DueGroup:
    label: str
    rows: tuple[DueRow, ...]


@dataclass(frozen=True)
class LaterRow:
    """Work open in the period with a later deadline: a task, the places it is open for, its deadline."""

    title: str
    where: str
    due: str


@dataclass(frozen=True)
class DueView:
    title: str
    groups: tuple[DueGroup, ...]
    empty_text: str
    scope_note: str | None = None
    later_title: str = ""
    later: tuple[LaterRow, ...] = ()


def due_card(view: DueView, locale: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [heading(view.title)]
    if view.scope_note:
        body.append(text(view.scope_note, subtle=True, spacing="None"))
    shown = 0
    total = sum(len(g.rows) for g in view.groups)
    for group in view.groups:
        if shown >= MAX_ROWS:
            break
        body.append(subheading(group.label))
        for row in group.rows:
            if shown >= MAX_ROWS:
                break
            shown += 1
            body.append({
                "type": "ColumnSet", "spacing": "Small",
                "columns": [
                    {"type": "Column", "width": "90px", "items": [text(row.when, subtle=True)]},
                    {"type": "Column", "width": "stretch", "items": [
                        text(t(locale, "due.row", title=row.title, where=row.where)),
                        text(t(locale, "due.who", who=row.who, status=t(locale, f"status.{row.status}")),
                             subtle=True, color=STATUS_COLORS.get(row.status), spacing="None"),
                    ]},
                ],
            })
    if total == 0:
        body.append(text(view.empty_text))
    elif total > shown:
        body.append(text(t(locale, "due.more", count=total - shown), subtle=True))
    if view.later:
        body.append(subheading(view.later_title))
        body.extend(text(t(locale, "due.later.row", title=row.title, where=row.where, due=row.due), subtle=True,
                         spacing="Small") for row in view.later)
    return message(card(body), view.title)
