"""A section's HMS annual report, drafted from the records: the form its leader edits and submits (every part a
text input prefilled from the records), and the read-only report once submitted (what the adviser gets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, execute, facts, heading, open_url, subheading, text
from hms.i18n import t

PART_MAX = 2000  # characters per part, checked in the card and again on the server


@dataclass(frozen=True)
class ReportPart:
    key: str
    label: str
    value: str
    error: str | None = None


@dataclass(frozen=True)
class ReportFormView:
    title: str  # "HMS-årsrapport 2026 – Administrasjonsseksjonen"
    due_line: str
    intro: str
    figures: tuple[tuple[str, str], ...]  # the numbers the draft was made from, as facts
    parts: tuple[ReportPart, ...]
    notice: str | None = None
    done_line: str | None = None  # set: the read-only report
    form_url: str | None = None  # the unit's own form, where it keeps one (`links:` of the task)


def annual_report_form_card(view: ReportFormView, locale: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The form (`data` for its submit button), or the read-only report when `view.done_line` is set."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.due_line, subtle=True, spacing="None")]
    if view.notice:
        body.append(text(view.notice, color="Warning"))
    if view.done_line:
        body.append(text(view.done_line, color="Good"))
    body.append(text(view.intro, subtle=True))
    if view.figures:
        body.append(facts(list(view.figures)))
    for part in view.parts:
        if view.done_line:
            body += [subheading(part.label), text(part.value or "–")]
            continue
        body.append({"type": "Input.Text", "id": f"part:{part.key}", "label": part.label, "isMultiline": True,
                     "value": part.value, "maxLength": PART_MAX, "errorMessage": t(locale, "report.too_long",
                                                                                    max=PART_MAX)})
        if part.error:
            body.append(text(part.error, color="Attention", spacing="None"))
    form = [open_url(t(locale, "annual.open_form"), view.form_url)] if view.form_url else []
    if view.done_line or data is None:
        return card(body, form or None)
    return card(body, [execute(t(locale, "report.submit"), "report.submit", data, style="positive"), *form])
