"""The HMS annual report: deadline, what it contains, the form, and each section's rounds this year."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import bullets, card, heading, message, open_url, subheading, text
from hms.i18n import t


@dataclass(frozen=True)
class AnnualReportView:
    year: int
    due: str
    contents: str
    form_url: str | None
    sections: tuple[str, ...]


def annual_report_card(view: AnnualReportView, locale: str) -> dict[str, Any]:
    body = [heading(t(locale, "annual.title", year=view.year)), text(t(locale, "annual.body", due=view.due)),
            subheading(t(locale, "annual.contains")), text(view.contents)]
    if view.sections:
        body.append(bullets(list(view.sections)))
    actions = [open_url(t(locale, "annual.open_form"), view.form_url)] if view.form_url else None
    return message(card(body, actions), t(locale, "annual.title", year=view.year))
