"""The shape of an inbound activity, checked once at the door: what the turn code reads is what this declares.

`parse(raw)` turns a request body into the activity dict the turn gets, or raises `BadActivity` (the door
answers 400). It refuses, in one pass of pydantic's JSON parser and a check that only runs when the bytes call
for it:
- a body that is not UTF-8 JSON, or whose strings hold a lone surrogate (UTF-8 cannot encode it later: in the
  reply, the database, the log) or NUL (PostgreSQL cannot store it); NaN and Infinity (not JSON; a number
  beyond a float's range only where a reply sends it back); nesting deeper than `MAX_DEPTH`;
- an activity whose fields the bot reads (`Activity` below) have another JSON type, or do not fit where the bot
  keeps them (the database columns they are stored in), or whose serviceUrl is not an http(s) URL.
Fields the bot does not read pass through untouched; the activity stays the plain JSON dict Teams sent.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any, NotRequired
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12

MAX_DEPTH = 64  # Teams nests an activity a handful of levels; card data a few more

_SHAPE = ConfigDict(strict=True, extra="allow")
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"  # names that are logged: nothing that can break a log line


def _segment(value: str) -> str:
    """An id that goes into a URL path of the reply: "." or ".." there would name another resource."""
    if value in (".", ".."):
        raise ValueError("not an id")
    return value


# the lengths are those of the columns the values are stored in (storage/models.py)
PathId = Annotated[str, Field(max_length=200), AfterValidator(_segment)]
EntraId = Annotated[str, Field(max_length=64)]
TenantId = Annotated[str, Field(max_length=64)]
LongId = Annotated[str, Field(max_length=400)]
ConversationId = Annotated[str, Field(min_length=1, max_length=400), AfterValidator(_segment)]
ConversationType = Annotated[str, Field(pattern=r"^[A-Za-z]{0,20}$")]
ChannelId = Annotated[str, Field(max_length=40, pattern=_NO_CONTROL)]
ActivityType = Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_CONTROL)]
Name = Annotated[str, Field(max_length=200, pattern=_NO_CONTROL)]
Locale = Annotated[str, Field(max_length=20, pattern=r"^([A-Za-z]{1,8}([_-][A-Za-z0-9]{1,8})*)?$")]
TimeZone = Annotated[str, Field(max_length=64)]

_URL = re.compile(r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
                  r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?", re.IGNORECASE)


@functools.lru_cache(maxsize=256)  # a bot hears from a handful of service URLs: each is checked once
def _service_url(value: str) -> str:
    """An absolute http(s) URL with a host name or address, an optional port, and a plain path: no user info,
    query, fragment, spaces or other characters an HTTP client would reject when the bot replies."""
    if not _URL.fullmatch(value):
        raise ValueError("serviceUrl must be an http(s) URL")
    urlsplit(value).port  # noqa: B018 - raises ValueError for a port beyond 65535
    return value


ServiceUrl = Annotated[str, Field(max_length=400), AfterValidator(_service_url)]


@with_config(_SHAPE)
class Account(TypedDict, total=False):
    """A sender, recipient or member (ChannelAccount)."""

    id: PathId | None  # a member lookup puts it in a URL path
    name: str | None
    aadObjectId: EntraId | None
    role: str | None


@with_config(_SHAPE)
class Conversation(TypedDict):
    id: ConversationId
    tenantId: NotRequired[TenantId | None]
    conversationType: NotRequired[ConversationType | None]
    isGroup: NotRequired[bool | None]


@with_config(_SHAPE)
class Ref(TypedDict, total=False):
    id: LongId | None


@with_config(_SHAPE)
class TenantRef(TypedDict, total=False):
    id: TenantId | None


@with_config(_SHAPE)
class ChannelData(TypedDict, total=False):
    tenant: TenantRef | None
    team: Ref | None
    channel: Ref | None


@with_config(_SHAPE)
class Entity(TypedDict, total=False):
    """An entity; clientInfo carries the user's locale and time zone."""

    type: str | None
    locale: Locale | None
    timezone: TimeZone | None


# "from" is a Python keyword, hence the functional form
Activity = TypedDict("Activity", {
    "type": ActivityType,
    "id": NotRequired[PathId | None],
    "channelId": NotRequired[ChannelId | None],
    "serviceUrl": ServiceUrl,
    "locale": NotRequired[Locale | None],
    "text": NotRequired[str | None],
    "name": NotRequired[Name | None],
    "action": NotRequired[Name | None],
    "replyToId": NotRequired[PathId | None],
    "from": NotRequired[Account | None],
    "recipient": NotRequired[Account | None],
    "conversation": Conversation,
    "channelData": NotRequired[ChannelData | None],
    "entities": NotRequired[list[Entity] | None],
    "membersAdded": NotRequired[list[Account] | None],
    "membersRemoved": NotRequired[list[Account] | None],
    "value": NotRequired[Any],
})
"""The fields of an activity the bot reads, and what each may hold."""
Activity.__pydantic_config__ = _SHAPE  # type: ignore[attr-defined]  # what with_config sets on a class

_ACTIVITY: TypeAdapter[Any] = TypeAdapter(Activity)

_BOM = b"\xef\xbb\xbf"
_NOT_TEXT = {float, dict, list}


class BadActivity(ValueError):
    """The body cannot be an activity; `code` and the message go into the 400 answer."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def parse(raw: bytes) -> dict[str, Any]:
    """The activity in a request body, its shape checked; raises BadActivity."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        body = _ACTIVITY.validate_json(raw)
    except ValidationError as exc:
        raise _refusal(exc) from None
    # The parser lets three things through that the bytes betray cheaply: deep nesting, NUL, NaN and Infinity.
    if (raw.count(b"[") + raw.count(b"{") > MAX_DEPTH or b"\\u0000" in raw or b"NaN" in raw
            or b"Infinity" in raw):
        _check_tree(body)
    else:
        # A number beyond a float's range (1e400) parses as infinity, and no cheap look at the bytes finds it.
        # JSON has no infinity: the parts every reply sends back must not hold one.
        for echoed in ("conversation", "from", "recipient"):
            part = body.get(echoed)
            if part and any(type(value) in _NOT_TEXT for value in part.values()):
                _check_tree(part)
    return body


def _refusal(exc: ValidationError) -> BadActivity:
    error = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] == "json_invalid":
        # the parser's message says what and where (line, column), never the content
        what = error["msg"].removeprefix("Invalid JSON: ")
        if "surrogate" in what or "hex escape" in what:
            what = "a \\u escape that is no character, such as a lone surrogate, " + what[what.find("at line"):]
        return BadActivity("malformed_json", f"the body is not valid JSON ({what})")
    if not error["loc"]:
        return BadActivity("malformed_activity", "the activity must be a JSON object")
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "string_pattern_mismatch":  # the pattern itself says little to the sender
        return BadActivity("malformed_activity", f"{where}: not a value this field can have")
    return BadActivity("malformed_activity", f"{where}: {error['msg'].removeprefix('Value error, ')}")


def _check_tree(body: Any) -> None:
    """Depth, NUL in strings and non-finite numbers, over the whole tree (without recursion)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadActivity("too_deep", f"the activity is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                _check_leaf(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        else:
            _check_leaf(node)


def _check_leaf(value: Any) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise BadActivity("malformed_activity", "a string holds the NUL character")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadActivity("malformed_json", "a number is NaN, infinite or beyond the range of a float")
