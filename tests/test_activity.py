"""The door's shape check (bot/activity.py): what Teams sends passes unchanged, what cannot be an activity is refused
with a message saying which field and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.activity import MAX_DEPTH, BadActivity, parse

TENANT = "5b0c9a31-8e7d-4c2b-b1a0-9d8e7f6a5b4c"

# shapes as Teams sends them (Bot Framework's activity schema and Teams' channel data), fields the bot does not
# read included: they pass through untouched
TEAMS_MESSAGE: dict[str, Any] = {
    "text": "<at>HMS-hjulet</at> hva forfaller denne måneden?", "textFormat": "plain", "type": "message",
    "timestamp": "2026-11-26T09:00:00.1234567Z", "localTimestamp": "2026-11-26T10:00:00.1234567+01:00",
    "id": "1764147600123", "channelId": "msteams", "serviceUrl": "https://smba.trafficmanager.net/emea/",
    "from": {"id": "29:1abcDEF-ghiJKL", "name": "Fatima Ali", "aadObjectId": "0a1b2c3d-000d-4000-8000-00000000000d"},
    "conversation": {"conversationType": "personal", "tenantId": TENANT,
                     "id": "a:1XyZ-abc_DEF123ghiJKL456mnoPQR789stuVWX012yzABC345"},
    "recipient": {"id": "28:7f3c1a52-1d2e-4b6f-9a1c-2f5e8d9b0a11", "name": "HMS-hjulet"},
    "entities": [{"mentioned": {"id": "28:7f3c1a52-1d2e-4b6f-9a1c-2f5e8d9b0a11", "name": "HMS-hjulet"},
                  "text": "<at>HMS-hjulet</at>", "type": "mention"},
                 {"locale": "nb-NO", "country": "NO", "platform": "Web", "timezone": "Europe/Oslo",
                  "type": "clientInfo"}],
    "channelData": {"tenant": {"id": TENANT}}, "locale": "nb-NO", "localTimezone": "Europe/Oslo",
    "attachments": [{"contentType": "text/html", "content": "<div>hei</div>"}],
}
TEAM_INSTALL: dict[str, Any] = {
    "membersAdded": [{"id": "28:7f3c1a52-1d2e-4b6f-9a1c-2f5e8d9b0a11"}], "type": "conversationUpdate",
    "timestamp": "2026-11-26T09:00:00.000Z", "id": "f:2b8c4a1e-1d2e-4b6f-9a1c", "channelId": "msteams",
    "serviceUrl": "https://smba.trafficmanager.net/emea/",
    "from": {"id": "29:1abc", "aadObjectId": "0a1b2c3d-0001-4000-8000-000000000001"},
    "conversation": {"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                     "id": "19:abc123@thread.tacv2"},
    "recipient": {"id": "28:7f3c1a52-1d2e-4b6f-9a1c-2f5e8d9b0a11", "name": "HMS-hjulet"},
    "channelData": {"team": {"aadGroupId": "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6", "name": "LAMU",
                             "id": "19:abc123@thread.tacv2"},
                    "eventType": "teamMemberAdded", "tenant": {"id": TENANT}, "settings": {"selectedChannel": {
                        "id": "19:abc123@thread.tacv2"}}},
}
CARD_INVOKE: dict[str, Any] = {
    "name": "adaptiveCard/action", "type": "invoke", "timestamp": "2026-11-26T09:00:00.000Z",
    "id": "f:5d6e7f80-1d2e", "channelId": "msteams", "serviceUrl": "https://smba.trafficmanager.net/emea/",
    "from": {"id": "29:1abc", "name": "Fatima Ali", "aadObjectId": "0a1b2c3d-000d-4000-8000-00000000000d"},
    "conversation": {"conversationType": "personal", "tenantId": TENANT, "id": "a:1XyZ"},
    "recipient": {"id": "28:7f3c1a52", "name": "HMS-hjulet"},
    "entities": [{"locale": "nb-NO", "country": "NO", "platform": "Android", "timezone": "Europe/Oslo",
                  "type": "clientInfo"}],
    "channelData": {"tenant": {"id": TENANT}, "source": {"name": "message"}, "legacy": {"replyToId": "1:1Zx"}},
    "replyToId": "1764147600999",
    "value": {"action": {"type": "Action.Execute", "verb": "round.page", "data": {
        "hms": {"verb": "round.page", "ref": "fire_round:2026-Q4:hm-1", "nonce": "0123456789abcdef",
                "tpl": "fire_round", "tplv": 1, "page": 2, "v": 1, "sig": "0" * 32},
        "a:escape_routes": "ok", "c:escape_routes": "", "nested": [[{"deep": [1.5, None, True]}]]}},
        "trigger": "manual"},
    "locale": "nb-NO",
}


@pytest.mark.parametrize("sample", [TEAMS_MESSAGE, TEAM_INSTALL, CARD_INVOKE], ids=["message", "install", "invoke"])
def test_what_teams_sends_passes_unchanged(sample: dict[str, Any]) -> None:
    assert parse(json.dumps(sample).encode()) == sample
    assert parse(json.dumps(sample, ensure_ascii=False).encode()) == sample  # escaped or raw UTF-8 alike
    assert parse(b"\xef\xbb\xbf" + json.dumps(sample).encode()) == sample  # a byte order mark is no fault


def refusal(body: Any) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadActivity) as refused:
        parse(raw)
    return f"{refused.value.code}: {refused.value}"


@pytest.mark.parametrize("url", ["https://smba.trafficmanager.net/emea/", "http://127.0.0.1:3978/",
                                 "http://localhost:56000", "http://[::1]:56000/api/", "HTTPS://Example.org/a%20b/"])
def test_service_urls_that_are_http_urls_pass(url: str) -> None:
    assert parse(json.dumps({**TEAMS_MESSAGE, "serviceUrl": url}).encode())["serviceUrl"] == url


@pytest.mark.parametrize("url", ["not a url", "", "ftp://127.0.0.1/", "http://", "//127.0.0.1/", "http:/x",
                                 "http://user:pw@127.0.0.1/", "http://127.0.0.1/?q=1", "http://127.0.0.1/#f",
                                 "http://127.0.0.1:99999/", "http://127.0.0.1/a b", "http://exa mple.org/",
                                 "http://127.0.0.1/\n", "javascript:alert(1)", "https://" + "a" * 400])
def test_service_urls_that_are_not_http_urls_are_refused(url: str) -> None:
    assert refusal({**TEAMS_MESSAGE, "serviceUrl": url}).startswith("malformed_activity: serviceUrl: ")


@pytest.mark.parametrize(("change", "says"), [
    ({"type": 5}, "malformed_activity: type: Input should be a valid string"),
    ({"type": ""}, "malformed_activity: type: String should have at least 1 character"),
    ({"locale": "nb-NO\n"}, "malformed_activity: locale: not a value this field can have"),
    ({"replyToId": ".."}, "malformed_activity: replyToId: not an id"),
    ({"id": "x" * 201}, "malformed_activity: id: String should have at most 200 characters"),
    ({"conversation": {"id": ""}}, "malformed_activity: conversation.id: String should have at least 1 character"),
    ({"conversation": {"id": "a:1", "isGroup": "true"}}, "malformed_activity: conversation.isGroup: Input should be"
                                                          " a valid boolean"),
    ({"channelData": {"team": {"id": 7}}}, "malformed_activity: channelData.team.id: Input should be a valid string"),
    ({"entities": [{"type": "clientInfo", "timezone": ["Europe/Oslo"]}]},
     "malformed_activity: entities.0.timezone: Input should be a valid string"),
    ({"membersRemoved": [{"id": 28}]}, "malformed_activity: membersRemoved.0.id: Input should be a valid string"),
    ({"from": {"id": "29:x", "aadObjectId": "a" * 65}},
     "malformed_activity: from.aadObjectId: String should have at most 64 characters"),
    ({"from": {"id": "29:x", "extra": 1e400}}, "malformed_json: a number is NaN, infinite or beyond the range of "
                                                 "a float"),
])
def test_a_field_the_bot_reads_with_another_type_or_size_is_refused(change: dict[str, Any], says: str) -> None:
    assert refusal({**TEAMS_MESSAGE, **change}) == says


def test_nesting_is_capped() -> None:
    def nested(depth: int) -> Any:
        return json.loads("[" * depth + "]" * depth)

    assert parse(json.dumps({**TEAMS_MESSAGE, "value": nested(MAX_DEPTH - 1)}).encode())  # the activity is level 1
    assert refusal({**TEAMS_MESSAGE, "value": nested(MAX_DEPTH)}) == (
        f"too_deep: the activity is nested deeper than {MAX_DEPTH} levels")
    assert refusal(b"[" * 100_000).startswith("malformed_json: the body is not valid JSON (recursion limit exceeded")


@pytest.mark.parametrize(("inside", "says"), [
    (b"NaN", "malformed_json: a number is NaN, infinite or beyond the range of a float"),
    (b"-Infinity", "malformed_json: a number is NaN, infinite or beyond the range of a float"),
    (b'"\\ud800"', "malformed_json: the body is not valid JSON (a \\u escape that is no character"),
    (b'"\\udc00\\ud800"', "malformed_json: the body is not valid JSON (a \\u escape that is no character"),
    (b'"\xed\xa0\x80"', "malformed_json: the body is not valid JSON (invalid unicode code point"),
    (b'"\xff"', "malformed_json: the body is not valid JSON (invalid unicode code point"),
    (b'"a\nb"', "malformed_json: the body is not valid JSON (control character"),
])
def test_what_is_not_json_text_is_refused(inside: bytes, says: str) -> None:
    """In a field the bot does not read: the body is refused as a whole."""
    raw = json.dumps(TEAMS_MESSAGE).encode()[:-1] + b', "unread": ' + inside + b"}"
    assert refusal(raw).startswith(says)
    assert refusal(b"[]") == "malformed_activity: the activity must be a JSON object"


def test_values_the_bot_does_not_read_may_hold_nan_only_where_no_reply_sends_them() -> None:
    """NaN and Infinity are not JSON: refused wherever they are; NUL anywhere (PostgreSQL stores no NUL)."""
    assert refusal(json.dumps({**TEAMS_MESSAGE, "value": {"x": float("nan")}}).encode()).startswith(
        "malformed_json: a number is NaN")
    assert refusal({**TEAMS_MESSAGE, "value": {"comment": "a\x00b"}}) == (
        "malformed_activity: a string holds the NUL character")
    text = {**TEAMS_MESSAGE, "text": "literally \\u0000 typed"}  # an escaped backslash: no NUL
    assert parse(json.dumps(text).encode())["text"] == "literally \\u0000 typed"
