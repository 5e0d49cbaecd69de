"""The greeting a known user gets when the bot is installed: who the bot is, their roles, what it will send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import bullets, card, heading, message, subheading, text
from hms.i18n import t


@dataclass(frozen=True)
class WelcomeView:
    first_name: str
    unit: str
    roles: tuple[str, ...]
    sends: tuple[str, ...]


def welcome_card(view: WelcomeView, locale: str) -> dict[str, Any]:
    body = [heading(t(locale, "welcome.title", name=view.first_name)),
            text(t(locale, "welcome.intro", unit=view.unit))]
    if view.roles:
        body += [subheading(t(locale, "welcome.roles")), bullets(list(view.roles))]
    else:
        body.append(text(t(locale, "welcome.no_roles")))
    if view.sends:
        body += [subheading(t(locale, "welcome.sends")), bullets(list(view.sends))]
    body += [subheading(t(locale, "welcome.ask")), text(t(locale, "examples"), subtle=True)]
    return message(card(body), t(locale, "welcome.title", name=view.first_name))
