"""Typed card action payloads: a verb, what it refers to, the template version it was made from, and a
signature, so a tampered or forged payload is refused before anything is read from it.

Packed into `data.hms` of an Action.Execute (or Action.Submit) and unpacked from the invoke value. Unpacking
checks the payload's shape before its signature (each field of its JSON type, and short enough to be stored
where the bot stores it), so no check after it meets a value it cannot handle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12

PAYLOAD_VERSION = 1


def nonce_for(*parts: str) -> str:
    """A stable card id derived from what the card is for (so a re-planned card keeps its id)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class BadAction(Exception):
    """The payload is malformed, unsigned, tampered with, or of an unknown version or verb."""


_SMALL = Annotated[int, Field(ge=0, le=2**31 - 1)]
_TOKEN = r"^[A-Za-z0-9_.:-]+$"  # what keys, nonces and verbs are made of (no spaces, no control characters)


@with_config(ConfigDict(strict=True, extra="ignore"))
class _Payload(TypedDict):
    """`data.hms` as packed; lengths are those of the columns the values end up in (storage/models.py)."""

    verb: Annotated[str, Field(max_length=40, pattern=_TOKEN)]
    ref: Annotated[str, Field(max_length=200, pattern=_TOKEN)]
    nonce: Annotated[str, Field(max_length=64, pattern=_TOKEN)]
    tpl: NotRequired[Annotated[str, Field(max_length=64, pattern=_TOKEN)] | None]
    tplv: NotRequired[_SMALL | None]
    page: NotRequired[Annotated[int, Field(ge=1, le=1000)]]
    v: NotRequired[_SMALL]
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


_PAYLOAD: TypeAdapter[Any] = TypeAdapter(_Payload)
_ROW_ID = re.compile(r"[1-9][0-9]{0,8}")  # ASCII digits only ("²".isdigit() is true), below 2**31


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

    def ref_id(self) -> int | None:
        """The ref as the id of a stored row (a measure's), or None when it cannot be one."""
        return int(self.ref) if _ROW_ID.fullmatch(self.ref) else None


def unpack(data: Any, secret: bytes, verbs: Collection[str] = ()) -> CardAction:
    """The action in a submitted card's data; raises BadAction unless it is ours, untouched, and its verb is one
    of `verbs` (the verbs somebody handles)."""
    raw = data.get("hms") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise BadAction("no HMS payload")
    try:
        payload = _PAYLOAD.validate_python(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        raise BadAction(f"malformed payload ({'.'.join(map(str, error['loc']))}: {error['msg']})") from None
    action = CardAction(verb=payload["verb"], ref=payload["ref"], nonce=payload["nonce"], tpl=payload.get("tpl"),
                        tplv=payload.get("tplv"), page=payload.get("page", 1), v=payload.get("v", 0))
    expected = hmac.new(secret, action._body().encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(payload["sig"], expected):  # both ASCII hex: the shape says so
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
