"""Which round "start brannvernrunde" refers to: the floor or section, its deadline, and who holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, message, text
from hms.i18n import t


@dataclass(frozen=True)
class RoundInfoView:
    title: str
    deadline_line: str
    done_line: str | None
    checklist_items: int


def round_info_card(view: RoundInfoView, locale: str) -> dict[str, Any]:
    body = [heading(view.title), text(view.deadline_line)]
    if view.done_line:
        body.append(text(view.done_line, color="Good"))
    body.append(text(t(locale, "round.checklist_items", count=view.checklist_items), subtle=True))
    return message(card(body), view.title)


def notice_card(message_text: str) -> dict[str, Any]:
    """A one-line answer (a question back, or why nothing can be done)."""
    return message(card([text(message_text)]), message_text[:80])
