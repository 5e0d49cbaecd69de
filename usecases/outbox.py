"""The shape of a message waiting in the outbox: what to send, and to whom (a person's chat, or the LAMU
channel). Written by the rounds and the planning tick, sent by the delivery loop."""

from __future__ import annotations

import json
from typing import Any


def person_target(email: str) -> dict[str, Any]:
    """Send to a person's personal chat with the bot."""
    return {"kind": "person", "email": email}


def outbox_row(dedupe_key: str, kind: str, target: dict[str, Any], activity: dict[str, Any]) -> dict[str, object]:
    """An outbox row: the activity to send and where to (a person's chat, or the LAMU channel)."""
    email = target.get("email") if target.get("kind") == "person" else None
    return {"dedupe_key": dedupe_key[:300], "kind": kind, "recipient_email": email,
            "payload": json.dumps({"target": target, "activity": activity}, ensure_ascii=False)}
