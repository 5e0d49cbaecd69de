"""Short cards without actions: escalations, LAMU summaries, undeliverable notices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, message, text


@dataclass(frozen=True)
class NoticeView:
    title: str
    lines: tuple[str, ...]
    color: str | None = None


def notice(view: NoticeView) -> dict[str, Any]:
    return card([heading(view.title), *(text(line, color=view.color if i == 0 else None)
                                        for i, line in enumerate(view.lines))])


def notice_card(message_text: str) -> dict[str, Any]:
    """A one-line answer message (a question back, or why nothing can be done)."""
    return message(card([text(message_text)]), message_text[:80])
