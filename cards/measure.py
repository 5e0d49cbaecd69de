"""A measure (corrective action) for those who follow it up: what it is about, where it came from, its owner and
deadline, EA's ticket number and the Si fra link, its evidence; and forms to reassign it, move its deadline (each
with a reason), add evidence and close it with a note on what was done. Also the form that creates a measure from
any source ("nytt tiltak")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cards.common import card, execute, heading, open_url, text
from hms.i18n import t


@dataclass(frozen=True)
class MeasureView:
    title: str
    where: str
    finding: str
    owner_line: str
    ticket: str | None
    si_fra_url: str | None
    notice: str | None = None
    error: str | None = None
    closed_line: str | None = None
    lines: tuple[str, ...] = ()  # source, CIM reference, evidence, the last changes
    people: tuple[tuple[str, str], ...] = ()  # (email, name): whom it can be reassigned to
    evidence_hint: str = ""  # how to send a photo for this measure


@dataclass(frozen=True)
class MeasureActions:
    """The signed payloads of the measure card's buttons (None: the button is not shown)."""

    close: dict[str, Any] | None = None
    ticket: dict[str, Any] | None = None
    reassign: dict[str, Any] | None = None
    deadline: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None


def measure_card(view: MeasureView, locale: str, actions: MeasureActions | None = None) -> dict[str, Any]:
    body: list[dict[str, Any]] = [heading(view.title), text(view.where, spacing="None"), text(view.finding),
                                  text(view.owner_line, subtle=True)]
    body += [text(line, subtle=True, spacing="None") for line in view.lines]
    if view.notice:
        body.append(text(view.notice))
    if view.ticket:
        body.append(text(f"{t(locale, 'measure.ticket')}: {view.ticket}", subtle=True))
    if view.closed_line:
        body.append(text(view.closed_line))
        return card(body)
    if view.error:
        body.append(text(view.error, color="Attention"))
    acts = actions or MeasureActions()
    buttons: list[dict[str, Any]] = []
    if view.si_fra_url:
        buttons.append(open_url(t(locale, "measure.si_fra"), view.si_fra_url))
    if acts.ticket is not None:
        buttons.append(_form(t(locale, "measure.save_ticket"), "measure.ticket", acts.ticket, [
            {"type": "Input.Text", "id": "ticket", "label": t(locale, "measure.ticket"), "isRequired": True,
             "maxLength": 100, "errorMessage": t(locale, "measure.ticket")}]))
    if acts.reassign is not None:
        buttons.append(_form(t(locale, "measure.reassign"), "measure.reassign", acts.reassign, [
            person_choice("owner", t(locale, "measure.new_owner"), view.people, locale),
            _reason(locale)]))
    if acts.deadline is not None:
        buttons.append(_form(t(locale, "measure.move_deadline"), "measure.deadline", acts.deadline, [
            {"type": "Input.Date", "id": "deadline", "label": t(locale, "measure.new_deadline"), "isRequired": True,
             "errorMessage": t(locale, "measure.deadline_required")},
            _reason(locale)]))
    if acts.evidence is not None:
        buttons.append(_form(t(locale, "measure.add_evidence"), "measure.evidence", acts.evidence, [
            text(view.evidence_hint, subtle=True),
            {"type": "Input.Text", "id": "note", "label": t(locale, "measure.evidence_note"), "isMultiline": True,
             "maxLength": 1000},
            {"type": "Input.Text", "id": "link", "label": t(locale, "measure.evidence_link"), "style": "Url",
             "maxLength": 2000}]))
    if acts.close is not None:
        buttons.append(_form(t(locale, "measure.close"), "measure.close", acts.close, [
            {"type": "Input.Text", "id": "note", "label": t(locale, "measure.close_note"), "isMultiline": True,
             "isRequired": True, "maxLength": 1000, "errorMessage": t(locale, "measure.note_required")}],
            style="positive"))
    return card(body, buttons)


@dataclass(frozen=True)
class NewMeasureView:
    """The "nytt tiltak" form: the choices and what was filled in before (kept when something was wrong)."""

    sources: tuple[tuple[str, str], ...]  # (key, label)
    people: tuple[tuple[str, str], ...]  # (email, name)
    sections: tuple[tuple[str, str], ...]  # (key, name)
    values: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    notice: str | None = None


def new_measure_card(view: NewMeasureView, locale: str, data: dict[str, Any]) -> dict[str, Any]:
    """The form that creates a measure; `data` is the create button's signed payload."""
    v = view.values
    body: list[dict[str, Any]] = [
        heading(t(locale, "new_measure.title")),
        text(t(locale, "new_measure.intro"), subtle=True, spacing="None"),
        _choice("source", t(locale, "new_measure.source"), view.sources, v.get("source"), locale),
        {"type": "Input.Text", "id": "cim", "label": t(locale, "new_measure.cim"), "maxLength": 40,
         "placeholder": t(locale, "new_measure.cim_hint"), **({"value": v["cim"]} if v.get("cim") else {})},
        {"type": "Input.Text", "id": "description", "label": t(locale, "new_measure.description"),
         "isMultiline": True, "isRequired": True, "maxLength": 1000,
         "errorMessage": t(locale, "new_measure.description_required"),
         **({"value": v["description"]} if v.get("description") else {})},
        person_choice("owner", t(locale, "new_measure.owner"), view.people, locale, v.get("owner")),
        {"type": "Input.Date", "id": "deadline", "label": t(locale, "new_measure.deadline"), "isRequired": True,
         "errorMessage": t(locale, "measure.deadline_required"),
         **({"value": v["deadline"]} if v.get("deadline") else {})},
        _choice("section", t(locale, "new_measure.section"), view.sections, v.get("section"), locale),
    ]
    if view.notice:
        body.append(text(view.notice))
    if view.error:
        body.append(text(view.error, color="Attention"))
    title = t(locale, "new_measure.button")
    return card(body, [{"type": "Action.Execute", "title": title, "verb": "measure.create", "data": data,
                        "style": "positive", "fallback": {"type": "Action.Submit", "title": title, "data": data}}])


def person_choice(input_id: str, label: str, people: tuple[tuple[str, str], ...], locale: str,
                  value: str | None = None) -> dict[str, Any]:
    """A searchable choice of people from the organisation file."""
    choice = _choice(input_id, label, people, value, locale)
    choice["style"] = "filtered"
    return choice


def _choice(input_id: str, label: str, options: tuple[tuple[str, str], ...], value: str | None,
            locale: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Input.ChoiceSet", "id": input_id, "label": label, "style": "compact",
                           "isRequired": True, "errorMessage": t(locale, "new_measure.choose"),
                           "choices": [{"title": title, "value": key} for key, title in options]}
    if value:
        out["value"] = value
    return out


def _reason(locale: str) -> dict[str, Any]:
    return {"type": "Input.Text", "id": "reason", "label": t(locale, "measure.reason"), "isRequired": True,
            "maxLength": 500, "errorMessage": t(locale, "measure.reason_required")}


def _form(title: str, verb: str, data: dict[str, Any], inputs: list[dict[str, Any]],
          style: str | None = None) -> dict[str, Any]:
    return {"type": "Action.ShowCard", "title": title, "card": {
        "type": "AdaptiveCard", "body": inputs, "actions": [execute(title, verb, data, style=style)]}}
