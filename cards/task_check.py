"""Whether one task was done, per place: done by whom and when, or not yet and its deadline. Read-only: it never
carries a checklist or a button (asking about a round must not start one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, message, text


@dataclass(frozen=True)
class CheckRow:
    where: str
    line: str
    done: bool
    late: bool = False


@dataclass(frozen=True)
class CheckView:
    title: str
    rows: tuple[CheckRow, ...]
    empty_text: str
    scope_note: str | None = None


def task_check_card(view: CheckView, locale: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [heading(view.title)]
    if view.scope_note:
        body.append(text(view.scope_note, subtle=True, spacing="None"))
    for row in view.rows:
        color = "Attention" if row.late and not row.done else None
        body.append(text(f"**{row.where}**", spacing="Medium"))
        body.append(text(("✓ " if row.done else "") + row.line, color=color, spacing="None"))
    if not view.rows:
        body.append(text(view.empty_text))
    return message(card(body), view.title)
