"""Building blocks shared by the cards: the Adaptive Card envelope (schema 1.5), text, facts and links.

Every card is a pure function from a view model and a locale to a dict; nothing here reads the clock,
the database or the environment.
"""

from __future__ import annotations

from typing import Any

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_ROWS = 40


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None, *,
         fallback: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION,
                           "body": body, "msteams": {"width": "Full"}}
    if actions:
        out["actions"] = actions
    if fallback:
        out["fallbackText"] = fallback
    return out


def message(content: dict[str, Any], summary: str) -> dict[str, Any]:
    """A message activity carrying one card; `summary` shows in notifications and the chat list."""
    return {"type": "message", "summary": summary, "text": "",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": content}]}


def heading(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "size": "Large", "weight": "Bolder", "wrap": True,
            "style": "heading"}


def subheading(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "weight": "Bolder", "wrap": True, "spacing": "Medium"}


def text(value: str, *, subtle: bool = False, color: str | None = None, size: str | None = None,
         spacing: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": value, "wrap": True}
    if subtle:
        block["isSubtle"] = True
    if color:
        block["color"] = color
    if size:
        block["size"] = size
    if spacing:
        block["spacing"] = spacing
    return block


def bullets(items: list[str]) -> dict[str, Any]:
    return text("\n".join(f"- {i}" for i in items))


def facts(rows: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in rows]}


def open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def execute(title: str, verb: str, data: dict[str, Any], *, validate: bool = True,
            style: str | None = None) -> dict[str, Any]:
    """An Action.Execute button with its Action.Submit fallback; `validate` sends (and checks) the card's inputs."""
    action: dict[str, Any] = {"type": "Action.Execute", "title": title, "verb": verb, "data": data,
                              "associatedInputs": "auto" if validate else "none",
                              "fallback": {"type": "Action.Submit", "title": title, "data": data}}
    if style:
        action["style"] = style
    return action


def message_back(title: str, text_value: str) -> dict[str, Any]:
    """A button that sends `text_value` as if the user typed it (Teams imBack)."""
    return {"type": "Action.Submit", "title": title,
            "data": {"msteams": {"type": "imBack", "value": text_value}}}


STATUS_COLORS = {"overdue": "Attention", "open": "Accent", "upcoming": "Default", "done": "Good"}
