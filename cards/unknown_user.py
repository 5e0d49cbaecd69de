"""The polite refusal an unknown user gets: who to contact, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, heading, message, text
from hms.i18n import t


@dataclass(frozen=True)
class UnknownUserView:
    unit: str
    adviser_name: str
    adviser_email: str


def unknown_user_card(view: UnknownUserView, locale: str) -> dict[str, Any]:
    body = [heading(t(locale, "unknown_user.title")),
            text(t(locale, "unknown_user.body", unit=view.unit)),
            text(t(locale, "unknown_user.contact", name=view.adviser_name, email=view.adviser_email))]
    return message(card(body), t(locale, "unknown_user.title"))
