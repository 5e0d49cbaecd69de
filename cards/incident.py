"""Where unwanted incidents are reported (CIM) and building faults (Si fra); the bot stores no incident content."""

from __future__ import annotations

from typing import Any

from cards.common import card, heading, message, open_url, text
from hms.i18n import t


def incident_card(cim_url: str, si_fra_url: str | None, locale: str) -> dict[str, Any]:
    body = [heading(t(locale, "incident.title")), text(t(locale, "incident.body")),
            text(t(locale, "incident.privacy"))]
    actions = [open_url(t(locale, "incident.open_cim"), cim_url)]
    if si_fra_url:
        body.append(text(t(locale, "incident.building"), subtle=True))
        actions.append(open_url(t(locale, "incident.open_sifra"), si_fra_url))
    return message(card(body, actions), t(locale, "incident.title"))
