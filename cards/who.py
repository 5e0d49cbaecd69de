"""Who holds an HMS role (from the organisation file): name, role and how to reach them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, message, text
from hms.i18n import t


@dataclass(frozen=True)
class WhoRow:
    name: str
    role: str
    email: str
    title: str | None = None  # the person's job title, when the file has one


@dataclass(frozen=True)
class WhoView:
    title: str
    rows: tuple[WhoRow, ...]
    empty_text: str
    hint: str | None = None


def who_card(view: WhoView, locale: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [heading(view.title)]
    for row in view.rows:
        body.append(text(t(locale, "who.row", name=row.name, role=row.role), spacing="Medium"))
        contact = f"[{row.email}](mailto:{row.email})"
        body.append(text(f"{row.title} · {contact}" if row.title else contact, subtle=True, spacing="None"))
    if not view.rows:
        body.append(text(view.empty_text))
    if view.hint:
        body.append(text(view.hint, subtle=True))
    return message(card(body), view.title)
