"""Typed card action payloads: a verb, what it refers to, the template version it was made from, and a
signature, so a tampered or forged payload is refused before anything is read from it.

Packed into `data.hms` of an Action.Execute (or Action.Submit) and unpacked from the invoke value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

PAYLOAD_VERSION = 1


def nonce_for(*parts: str) -> str:
    """A stable card id derived from what the card is for (so a re-planned card keeps its id)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class BadAction(Exception):
    """The payload is malformed, unsigned, tampered with, or of an unknown version or verb."""


@dataclass(frozen=True)
class CardAction:
    verb: str
    ref: str
    nonce: str
    tpl: str | None = None
    tplv: int | None = None
    page: int = 1
    v: int = PAYLOAD_VERSION

    def _body(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def pack(self, secret: bytes) -> dict[str, Any]:
        """The `data` of a card action (Teams merges the inputs into it on submit)."""
        sig = hmac.new(secret, self._body().encode(), hashlib.sha256).hexdigest()[:32]
        return {"hms": {**asdict(self), "sig": sig}}

    def with_page(self, page: int) -> CardAction:
        return CardAction(self.verb, self.ref, self.nonce, self.tpl, self.tplv, page, self.v)

    def with_verb(self, verb: str) -> CardAction:
        return CardAction(verb, self.ref, self.nonce, self.tpl, self.tplv, self.page, self.v)


def unpack(data: Any, secret: bytes, verbs: Collection[str] = ()) -> CardAction:
    """The action in a submitted card's data; raises BadAction unless it is ours, untouched, and its verb is one
    of `verbs` (the verbs somebody handles)."""
    raw = data.get("hms") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise BadAction("no HMS payload")
    sig = raw.get("sig")
    try:
        action = CardAction(verb=str(raw["verb"]), ref=str(raw["ref"]), nonce=str(raw["nonce"]),
                            tpl=None if raw.get("tpl") is None else str(raw["tpl"]),
                            tplv=None if raw.get("tplv") is None else int(raw["tplv"]),
                            page=int(raw.get("page", 1)), v=int(raw.get("v", 0)))
    except (KeyError, TypeError, ValueError):
        raise BadAction("malformed payload") from None
    expected = hmac.new(secret, action._body().encode(), hashlib.sha256).hexdigest()[:32]
    if not isinstance(sig, str) or not hmac.compare_digest(sig, expected):
        raise BadAction("signature does not match")
    if action.v != PAYLOAD_VERSION:
        raise BadAction(f"unknown payload version {action.v}")
    if action.verb not in verbs:
        raise BadAction(f"unknown verb {action.verb}")
    return action


def inputs(data: Any) -> dict[str, str]:
    """The input values in a submitted card's data (everything but our payload), as strings."""
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if k not in ("hms", "msteams") and v is not None}
