"""What the bot understands; the short form answers anything it did not understand."""

from __future__ import annotations

from typing import Any

from cards.common import card, heading, message, text
from hms.i18n import t


def help_card(locale: str, *, short: bool = False) -> dict[str, Any]:
    title = t(locale, "help.short") if short else t(locale, "help.title")
    body = [text(title, size="Medium") if short else heading(title), text("- " + t(locale, "help.items"))]
    return message(card(body), title)
