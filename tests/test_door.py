"""The door: POST /api/messages against a local Bot Framework peer (tests/fakes/bf_peer.py).

Covers token validation (every failure a 401, nothing stored, nothing sent), the tenant gate, request-shape
errors, de-duplication, the invoke-body fix (and the upstream defect it works around), token caching and
connection reuse, and proactive calls in local mode. Every server binds 127.0.0.1; the bot's OpenID metadata,
token endpoint and serviceUrl all point at the peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization

from bot.app import BOT, GATEWAY, Runtime, create_app
from bot.gateway import Coordinates, _signing_keys
from bot.settings import Settings
from hms.clock import FixedClock
from hms.config import HmsConfig
from hms.i18n import t
from storage import db
from tests.cardtext import texts
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer, hs256_token, rsa_key

APP_ID = "7f3c1a52-1d2e-4b6f-9a1c-2f5e8d9b0a11"
TENANT = "5b0c9a31-8e7d-4c2b-b1a0-9d8e7f6a5b4c"
OTHER_TENANT = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"
FATIMA_AAD = "0a1b2c3d-000d-4000-8000-00000000000d"
ISSUER = "https://api.botframework.com"


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

    with BfPeer() as p:
        yield p
    # botbuilder caches OpenID keys per metadata URL for a day, class-wide: forget this peer's
    JwtTokenExtractor.metadataCache.pop(p.metadata_url, None)


def auth_settings(peer: BfPeer, db_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_id": APP_ID, "app_password": "secret", "app_type": "SingleTenant", "app_tenant_id": TENANT,
        "database_url": f"sqlite:///{db_path}", "openid_metadata_url": peer.metadata_url,
        "token_issuer": ISSUER, "token_endpoint": peer.token_url, "max_body_bytes": 256 * 1024,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def door(settings: Settings, khm: HmsConfig) -> AsyncIterator[TestClient]:
    # the scheduler is off here: these tests count every message the bot sends
    app = create_app(settings, config=khm, clock=FixedClock(oslo(2026, 11, 26, 10)), runtime=Runtime(scheduler=False))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def activity(peer: BfPeer, *, id: str = "act-1", type: str = "message", text: str | None = "hjelp",
             tenant: str = TENANT, conversation_id: str = "a:fatima-personal", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type, "id": id, "timestamp": "2026-11-26T09:00:00.000Z", "channelId": "msteams",
        "serviceUrl": peer.service_url, "locale": "nb-NO",
        "from": {"id": "29:fatima", "name": "Fatima Ali", "aadObjectId": FATIMA_AAD},
        "recipient": {"id": f"28:{APP_ID}", "name": "HMS-hjulet"},
        "conversation": {"id": conversation_id, "conversationType": "personal", "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
    }
    if text is not None:
        body["text"] = text
    body.update(extra)
    return body


async def post(client: TestClient, body: Any, token: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post("/api/messages", json=body, headers=headers, **kwargs)


def rows(db_path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute(f"SELECT * FROM {table}"))  # fixed table names only


def assert_nothing_stored(db_path: Path) -> None:
    assert rows(db_path, "conversation_ref") == []
    assert rows(db_path, "processed_activity") == []


# -- 1. the happy path ---------------------------------------------------------------------------------------


async def test_valid_token_reply_reaches_connector_with_local_token(peer: BfPeer, db_path: Path,
                                                                     khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await post(client, activity(peer), peer.mint(APP_ID))
        assert response.status == 200, await response.text()

    sent = peer.sent_activities()
    assert sent, "the bot sent no reply"
    for call in sent:
        assert call.conversation_id == "a:fatima-personal"
        assert call.activity_id == "act-1"  # a reply to the inbound activity
        assert call.authorization == "Bearer peer-token-1"
        assert call.body["type"] == "message"
        assert call.body["conversation"]["id"] == "a:fatima-personal"
    # the token came from the local endpoint, asked for with the app's credentials
    assert len(peer.token_requests) == 1
    form = peer.token_requests[0]
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == APP_ID
    assert form["client_secret"] == "secret"
    assert form["scope"] == "https://api.botframework.com/.default"
    # Fatima was recognised by her Entra object id: her conversation is stored with her e-mail
    refs = rows(db_path, "conversation_ref")
    assert len(refs) == 1
    assert "fatima.ali@khm.uio.no" in refs[0]
    assert len(rows(db_path, "processed_activity")) == 1


# -- 2. bad tokens -------------------------------------------------------------------------------------------


def _bad_tokens(peer: BfPeer) -> dict[str, str | None]:
    other = rsa_key("forger")
    public_pem = peer.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    return {
        "missing": None,
        "not a jwt": "not-a-jwt",
        "forged, same kid": peer.mint(APP_ID, key=other),
        "forged, unknown kid": peer.mint(APP_ID, key=other, kid="unknown-kid"),
        "hs256 with the public key": hs256_token(peer.claims(APP_ID), public_pem, peer.kid),
        "expired": peer.mint(APP_ID, exp=now - 3600, nbf=now - 7200, iat=now - 7200),
        "not yet valid": peer.mint(APP_ID, nbf=now + 3600, iat=now + 3600),
        "wrong audience": peer.mint("11111111-2222-4333-8444-555555555555"),
        "no audience": peer.mint(APP_ID, aud=None),
        "wrong issuer": peer.mint(APP_ID, iss="https://evil.example.invalid"),
        "serviceurl mismatch": peer.mint(APP_ID, service_url="http://127.0.0.1:9/elsewhere/"),
        "no serviceurl": peer.mint(APP_ID, serviceurl=None),
    }


BAD_TOKEN_CASES = ["missing", "not a jwt", "forged, same kid", "forged, unknown kid", "hs256 with the public key",
                   "expired", "not yet valid", "wrong audience", "no audience", "wrong issuer",
                   "serviceurl mismatch", "no serviceurl"]


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
async def test_bad_token_is_401_and_leaves_no_trace(case: str, peer: BfPeer, db_path: Path,
                                                    khm: HmsConfig) -> None:
    token = _bad_tokens(peer)[case]
    async with door(auth_settings(peer, db_path), khm) as client:
        # a valid token first proves this very set-up accepts good tokens (so the 401 is about the token)
        if case != "missing":
            ok = await post(client, activity(peer, id="warm-up", type="typing", text=None), peer.mint(APP_ID))
            assert ok.status == 200
            peer.calls.clear()
            await client.app[BOT].ledger.flush()  # its record is written behind; write it before clearing
            with sqlite3.connect(db_path) as conn:
                conn.execute("DELETE FROM processed_activity")
                conn.execute("DELETE FROM conversation_ref")
        response = await post(client, activity(peer), token)
        text = await response.text()
        assert response.status == 401, text
        assert json.loads(text)["error"]["code"] == "unauthorized"
        assert "Traceback" not in text
    assert_nothing_stored(db_path)
    assert peer.calls == []


async def test_scheme_other_than_bearer_is_401(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await client.post("/api/messages", json=activity(peer),
                                     headers={"Authorization": f"Basic {peer.mint(APP_ID)}"})
        assert response.status == 401
    assert_nothing_stored(db_path)
    assert peer.calls == []


# -- 3. another tenant ---------------------------------------------------------------------------------------


OTHER_TENANT_ACTIVITIES: dict[str, dict[str, Any]] = {
    "message": {"type": "message"},
    "card action (invoke)": {"type": "invoke", "text": None, "name": "adaptiveCard/action",
                             "value": {"action": {"type": "Action.Execute", "verb": "status", "data": {}}}},
    "unknown invoke": {"type": "invoke", "text": None, "name": "composeExtension/query"},
    "install": {"type": "installationUpdate", "text": None, "action": "add"},
    "members added": {"type": "conversationUpdate", "text": None, "membersAdded": [{"id": "29:fatima"}]},
}


@pytest.mark.parametrize("case", list(OTHER_TENANT_ACTIVITIES))
async def test_other_tenant_is_dropped_silently(case: str, peer: BfPeer, db_path: Path, khm: HmsConfig,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Every activity from another tenant, whatever its type, is dropped at the door with a 200 and nothing
    stored or sent (an invoke got 501 before: the turn dropped it without answering)."""
    caplog.set_level(logging.WARNING)
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await post(client, activity(peer, tenant=OTHER_TENANT, **OTHER_TENANT_ACTIVITIES[case]),
                              peer.mint(APP_ID))
        assert response.status == 200, await response.text()
        assert await response.read() == b""
    assert_nothing_stored(db_path)
    assert peer.calls == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("another tenant" in w for w in warnings), [r.getMessage() for r in caplog.records]


async def test_another_tenant_needs_a_valid_token_to_learn_that(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    """The tenant gate comes after authentication: without a valid token the answer is 401, as for anyone."""
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await post(client, activity(peer, tenant=OTHER_TENANT, type="invoke", text=None,
                                               name="adaptiveCard/action"))
        assert response.status == 401
    assert_nothing_stored(db_path)


# -- 4. request shape ----------------------------------------------------------------------------------------


async def test_body_over_limit_is_413(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path, max_body_bytes=4096), khm) as client:
        body = activity(peer, text="x" * 5000)
        raw = json.dumps(body).encode()
        assert len(raw) > 5000
        response = await client.post("/api/messages", data=raw, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {peer.mint(APP_ID)}"})
        assert response.status == 413
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["code"] == "too_large"
        # just under the limit is still accepted
        small = await post(client, activity(peer, id="small", text="x" * 3000), peer.mint(APP_ID))
        assert small.status == 200
    assert len(rows(db_path, "processed_activity")) == 1  # only the small one


BAD_BODIES: dict[str, tuple[bytes, str, int]] = {
    "malformed json": (b'{"type": "message", ', "application/json", 400),
    "not utf-8": (b'{"type": "\xff\xfe"}', "application/json", 400),
    "empty body": (b"", "application/json", 400),
    "json array": (b'[{"type": "message"}]', "application/json", 400),
    "json string": (b'"message"', "application/json", 400),
    "json null": (b"null", "application/json", 400),
    "no type": (b'{"serviceUrl": "http://127.0.0.1:9/", "conversation": {"id": "a:1"}}', "application/json", 400),
    "type not a string": (b'{"type": 5, "serviceUrl": "http://127.0.0.1:9/", "conversation": {"id": "a:1"}}',
                          "application/json", 400),
    "no serviceUrl": (b'{"type": "message", "conversation": {"id": "a:1"}}', "application/json", 400),
    "no conversation": (b'{"type": "message", "serviceUrl": "http://127.0.0.1:9/"}', "application/json", 400),
    "no conversation id": (b'{"type": "message", "serviceUrl": "http://127.0.0.1:9/", "conversation": {}}',
                           "application/json", 400),
    "conversation not an object": (b'{"type": "message", "serviceUrl": "http://127.0.0.1:9/", "conversation": 1}',
                                   "application/json", 400),
    "from not an object": (b'{"type": "message", "serviceUrl": "http://127.0.0.1:9/", '
                           b'"conversation": {"id": "a:1"}, "from": "x"}', "application/json", 400),
    "text/plain": (b'{"type": "message"}', "text/plain", 415),
    "form": (b"type=message", "application/x-www-form-urlencoded", 415),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_request_shapes_get_a_json_4xx(case: str, peer: BfPeer, db_path: Path,
                                                 khm: HmsConfig) -> None:
    raw, content_type, expected = BAD_BODIES[case]
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await client.post("/api/messages", data=raw, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {peer.mint(APP_ID)}"})
        text = await response.text()
        assert response.status == expected, text
        assert "Traceback" not in text
        assert json.loads(text)["error"]["code"]
    assert_nothing_stored(db_path)
    assert peer.calls == []


# -- 5. unknown activity types -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["typing", "foo"])
async def test_unknown_activity_type_is_200_and_silent(kind: str, peer: BfPeer, db_path: Path,
                                                       khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await post(client, activity(peer, type=kind, text=None), peer.mint(APP_ID))
        assert response.status == 200, await response.text()
    assert peer.sent_activities() == []


# -- 6. retries ----------------------------------------------------------------------------------------------


async def test_same_activity_twice_is_handled_once(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        # the first message of a fresh conversation also gets the welcome card; get that out of the way
        first = await post(client, activity(peer, id="act-0", text="hei"), peer.mint(APP_ID))
        assert first.status == 200
        before = len(peer.sent_activities())
        assert before >= 1
        for _ in range(2):
            response = await post(client, activity(peer, id="act-dup"), peer.mint(APP_ID))
            assert response.status == 200
    replies = peer.sent_activities()[before:]
    assert len(replies) == 1, [c.body.get("type") for c in replies]
    assert replies[0].activity_id == "act-dup"
    keys = [r for r in rows(db_path, "processed_activity") if any("act-dup" in str(v) for v in r)]
    assert len(keys) == 1


@pytest.mark.parametrize("fault", ["connector down", "connector answers 502"])
async def test_a_turn_whose_reply_failed_is_answered_by_the_retry(fault: str, peer: BfPeer, db_url: str,
                                                                  khm: HmsConfig) -> None:
    """The reply cannot be sent: the bot answers 500. The connector comes back and Teams retries the same
    activity: exactly one answer arrives (after the welcome of the new chat), and a later retry of it is dropped
    (SQLite and PostgreSQL)."""
    if fault == "connector down":
        with socket.socket() as s:  # a port nothing listens on, until the connector starts on it
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        connector = BfPeer(port=port)
        service_url = f"http://127.0.0.1:{port}/"
    else:
        connector, service_url = peer, peer.service_url
        peer.activity_status = 502
    body = activity(peer, id="act-r", serviceUrl=service_url)
    token = peer.mint(APP_ID, service_url=service_url)
    async with door(auth_settings(peer, Path("unused"), database_url=db_url), khm) as client:
        response = await post(client, body, token)
        assert response.status == 500
        if fault == "connector down":
            connector.start()
        else:
            assert peer.rejected  # the bot did try
            peer.activity_status = 200
        try:
            for _ in range(2):  # Teams' retry, then one more
                response = await post(client, body, token)
                assert response.status == 200
        finally:
            if connector is not peer:
                connector.stop()
    replies = [texts(c.body) for c in connector.sent_activities() if c.activity_id == "act-r"]
    # a new chat: the welcome (it did not go out either), then the answer, each once
    assert len(replies) == 2 and "Hei, Fatima!" in replies[0] and "Hei, Fatima!" not in replies[1], replies


# -- 7. invoke -----------------------------------------------------------------------------------------------


async def test_invoke_returns_the_body_the_bot_set(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    body = activity(peer, id="inv-1", type="invoke", text=None, name="adaptiveCard/action",
                    value={"action": {"type": "Action.Execute", "verb": "status", "data": {}}, "trigger": "manual"})
    async with door(auth_settings(peer, db_path), khm) as client:
        response = await post(client, body, peer.mint(APP_ID))
        text = await response.text()
        assert response.status == 200, text
        assert response.content_type == "application/json"
        answer = json.loads(text)
        assert (answer["statusCode"], answer["type"]) == (200, "application/vnd.microsoft.card.adaptive")
        # an unsigned payload is refused with a card saying so, and nothing is stored
        assert answer["value"]["body"][0]["text"] == t("nb-NO", "card.tampered")
    assert peer.sent_activities() == []


async def test_botbuilder_operations_get_their_turn_context_on_demand(peer: BfPeer, db_path: Path,
                                                                      khm: HmsConfig) -> None:
    """Turns build botbuilder's TurnContext only when they need it: a member lookup (TeamsInfo) for someone
    the bot cannot place by Entra id, and replacing a pressed card (update_activity) for Action.Submit."""
    stranger = {"id": "29:eirik", "name": "Eirik", "aadObjectId": "ffffffff-0000-4000-8000-0000000000ee"}
    peer.member_email = "eirik.haugen@khm.uio.no"
    async with door(auth_settings(peer, db_path), khm) as client:
        asked = activity(peer, id="m-1", text="hjelp", conversation_id="a:eirik", **{"from": stranger})
        response = await post(client, asked, peer.mint(APP_ID))
        assert response.status == 200, await response.text()
        submit = activity(peer, id="m-2", text=None, conversation_id="a:eirik", replyToId="card-7",
                          value={"verb": "round.page", "nonce": "forged"}, **{"from": stranger})
        response = await post(client, submit, peer.mint(APP_ID))
        assert response.status == 200, await response.text()
    lookups = [c for c in peer.calls if c.method == "GET"]
    assert [c.path for c in lookups] == ["/v3/conversations/a:eirik/members/29:eirik"]
    assert "eirik.haugen@khm.uio.no" in [v for r in rows(db_path, "conversation_ref") for v in r]
    updates = [c for c in peer.calls if c.method == "PUT"]
    assert [(c.conversation_id, c.activity_id) for c in updates] == [("a:eirik", "card-7")]
    assert updates[0].body["attachments"][0]["content"]["body"][0]["text"] == t("nb-NO", "card.tampered")
    assert updates[0].authorization == "Bearer peer-token-1"


async def test_an_invoke_the_bot_does_not_answer_gets_501_as_in_botbuilder(peer: BfPeer, db_path: Path,
                                                                          khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        unknown = activity(peer, id="inv-x", type="invoke", text=None, name="composeExtension/query")
        handled = await post(client, unknown, peer.mint(APP_ID))
        assert handled.status == 200  # the bot answers unknown invoke names with an empty body
        app = client.app
        gateway = app[GATEWAY]
        authenticated = await gateway.authenticate(f"Bearer {peer.mint(APP_ID)}", activity(peer, type="invoke"))

        async def silent(_turn: Any) -> None:
            return None

        assert await gateway.run(authenticated, activity(peer, id="inv-y", type="invoke"), silent) == (501, None)
        assert await gateway.run(authenticated, activity(peer, id="m-9"), silent) == (200, None)


async def test_upstream_cloud_adapter_process_fails_on_invoke_with_dict_body() -> None:
    """Documents the botbuilder 4.17.1 defect bot/gateway.py works around; if this fails, upstream changed."""
    from botbuilder.core import InvokeResponse, TurnContext
    from botbuilder.integration.aiohttp import CloudAdapter
    from botbuilder.schema import Activity
    from botframework.connector.auth import (
        BotFrameworkAuthenticationFactory,
        PasswordServiceClientCredentialFactory,
    )

    adapter = CloudAdapter(BotFrameworkAuthenticationFactory.create(
        credential_factory=PasswordServiceClientCredentialFactory()))  # no app id: auth disabled
    ran: list[str] = []
    errors: list[BaseException] = []

    class Bot:
        async def on_turn(self, context: TurnContext) -> None:
            ran.append(context.activity.name)
            await context.send_activity(Activity(type="invokeResponse", value=InvokeResponse(
                status=200, body={"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                                  "value": "ok"})))

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response = await adapter.process(request, Bot())
        except BaseException as exc:
            errors.append(exc)
            raise
        assert response is not None
        return response

    app = web.Application()
    app.router.add_post("/api/messages", handler)
    invoke = {"type": "invoke", "name": "adaptiveCard/action", "id": "inv-1", "channelId": "msteams",
              "serviceUrl": "http://127.0.0.1:9/", "from": {"id": "29:u"}, "recipient": {"id": "28:b"},
              "conversation": {"id": "a:1"}, "value": {"action": {"type": "Action.Execute"}}}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post("/api/messages", json=invoke)
        assert ran == ["adaptiveCard/action"]  # the bot ran and set its answer...
        assert response.status == 500  # ...which the stock adapter cannot serialize
    assert len(errors) == 1
    assert isinstance(errors[0], AttributeError)
    assert "is_xml_model" in str(errors[0])


# -- 8. token cache and connection reuse ---------------------------------------------------------------------


async def test_twenty_turns_one_token_few_connections(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        for i in range(20):
            response = await post(client, activity(peer, id=f"act-{i}"), peer.mint(APP_ID))
            assert response.status == 200, await response.text()
    sent = peer.sent_activities()
    assert len(sent) >= 20
    assert len(peer.token_requests) == 1, peer.token_requests
    assert {c.authorization for c in sent} == {"Bearer peer-token-1"}
    assert len(peer.connector_connections) <= 2, peer.connector_connections
    assert peer.metadata_fetches == 1 and peer.jwks_fetches == 1
    print(f"\n[door] turns=20 connector_calls={len(sent)} token_requests={len(peer.token_requests)} "
          f"connector_tcp_connections={len(peer.connector_connections)} "
          f"metadata_fetches={peer.metadata_fetches} jwks_fetches={peer.jwks_fetches}")


async def test_a_token_is_validated_once_until_it_expires(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    """Bot Framework reuses its token for an hour: validated once, then remembered for that channel and
    service URL only; a token that fails is never remembered."""
    async with door(auth_settings(peer, db_path), khm) as client:
        auth = client.app[GATEWAY].adapter.bot_framework_authentication
        token = peer.mint(APP_ID)
        for i in range(10):
            assert (await post(client, activity(peer, id=f"same-{i}"), token)).status == 200
        assert auth.validations == 1
        assert (await post(client, activity(peer, id="other"), peer.mint(APP_ID))).status == 200
        assert auth.validations == 2
        # the same good token for another service URL is checked again, and refused (its serviceurl claim)
        moved = activity(peer, id="moved", serviceUrl="http://127.0.0.1:9/")
        assert (await post(client, moved, token)).status == 401
        forged = peer.mint(APP_ID, key=rsa_key("forger"))
        for i in range(2):
            assert (await post(client, activity(peer, id=f"forged-{i}"), forged)).status == 401
        assert auth.validations == 5


async def test_a_remembered_token_is_checked_again_when_it_expires() -> None:
    from botframework.connector.auth import AuthenticateRequestResult, ClaimsIdentity

    from bot.gateway import _PooledAuthentication

    now = [1_000_000.0]

    class Inner:
        calls = 0

        async def authenticate_request(self, _activity: Any, _header: str) -> AuthenticateRequestResult:
            Inner.calls += 1
            if now[0] >= 1_000_100:
                raise PermissionError("token expired")
            result = AuthenticateRequestResult()
            result.claims_identity = ClaimsIdentity({"exp": 1_000_100}, True)
            return result

    from botbuilder.schema import Activity

    auth = _PooledAuthentication(Inner(), connectors=None, clock=lambda: now[0])  # type: ignore[arg-type]
    act = Activity(channel_id="msteams", service_url="https://smba.example/")
    await auth.authenticate_request(act, "Bearer t")
    now[0] += 99
    await auth.authenticate_request(act, "Bearer t")
    assert Inner.calls == 1
    now[0] += 1  # at its exp the token is validated again, and refused
    with pytest.raises(PermissionError):
        await auth.authenticate_request(act, "Bearer t")
    assert Inner.calls == 2


# -- 9. local mode proactive calls ---------------------------------------------------------------------------


async def test_local_mode_proactive_calls_use_the_dev_bot_id(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:
    settings = Settings(app_id="", app_password="", app_tenant_id="", database_url=f"sqlite:///{db_path}",
                        openid_metadata_url=None, token_issuer=None, token_endpoint=None)
    app = create_app(settings, config=khm, clock=FixedClock(oslo(2026, 11, 26, 10)),
                     runtime=Runtime(dev=True, dev_bot_id="28:local-bot", dev_tenant_id=TENANT,
                                     scheduler=False))
    gateway = app[GATEWAY]
    try:
        conversation_id = await gateway.create_personal_conversation(peer.service_url, TENANT, "29:user")
        assert conversation_id == "a:new"
        created = [c for c in peer.calls if c.path == "/v3/conversations"]
        assert len(created) == 1
        params = created[0].body
        assert params["bot"]["id"] == "28:local-bot"
        assert params["members"] == [{"id": "29:user"}]
        assert params["isGroup"] is False
        assert params["channelData"]["tenant"]["id"] == TENANT
        assert TENANT in (params.get("tenantId"), params.get("tenantID"))  # botbuilder-schema spells it tenantID

        sent_id = await gateway.send_to(
            Coordinates(conversation_id="a:new", service_url=peer.service_url, tenant_id=TENANT,
                        conversation_type="personal"),
            {"type": "message", "text": "Påminnelse: brannrunde"})
        assert sent_id and sent_id.startswith("sent-")
    finally:
        await gateway.close()
    posts = peer.sent_activities()
    assert len(posts) == 1
    assert posts[0].conversation_id == "a:new"
    # (botbuilder posts proactive messages as a "reply" to the continuation activity's generated id)
    assert posts[0].body["text"] == "Påminnelse: brannrunde"
    assert posts[0].body["from"]["id"] == "28:local-bot"
    assert peer.token_requests == []  # auth off: no tokens asked for


async def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(db_path: Path, khm: HmsConfig,
                                                                       peer: BfPeer) -> None:
    """SQLite serves one process (the retry ledger counts on it): a second server says so and stops."""
    from storage.db import DatabaseInUse

    async with door(auth_settings(peer, db_path), khm) as first:
        assert (await first.get("/healthz")).status == 200
        second = create_app(auth_settings(peer, db_path), config=khm, runtime=Runtime(scheduler=False))
        with pytest.raises(DatabaseInUse, match="PostgreSQL"):
            async with TestClient(TestServer(second, host="127.0.0.1")):
                pass
    # once the first has stopped, the file is free again
    async with door(auth_settings(peer, db_path), khm) as again:
        assert (await again.get("/healthz")).status == 200


# -- Bot Framework's signing keys -----------------------------------------------------------------------------


async def test_a_slow_key_download_blocks_no_one_and_happens_once(peer: BfPeer, db_path: Path,
                                                                 khm: HmsConfig) -> None:
    """botbuilder downloads the signing keys with blocking calls on the event loop; ours does not."""
    peer.metadata_gate = threading.Event()
    async with door(auth_settings(peer, db_path), khm) as client:
        turns = [asyncio.create_task(post(client, activity(peer, id=f"k-{i}"), peer.mint(APP_ID)))
                 for i in range(3)]
        requested = await asyncio.get_running_loop().run_in_executor(None, peer.metadata_requested.wait, 10)
        assert requested, "the bot never asked for the keys"
        # the download is in flight: the server still answers, and the turns wait for it
        health = await asyncio.wait_for(client.get("/healthz"), timeout=10)
        assert health.status == 200
        assert peer.metadata_answers == 0, "the server answered only after the download ended"
        assert not any(t.done() for t in turns)
        peer.metadata_gate.set()
        assert [r.status for r in await asyncio.gather(*turns)] == [200, 200, 200]
    assert peer.metadata_fetches == 1  # one download for every turn that waited


async def test_keys_are_kept_when_a_refresh_fails(peer: BfPeer, db_path: Path, khm: HmsConfig,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        assert (await post(client, activity(peer, id="r-1"), peer.mint(APP_ID))).status == 200
        keys = _signing_keys(peer.metadata_url)
        keys._fetched -= keys.max_age + 1  # a day later, and Bot Framework's endpoint is down
        peer.metadata_status = 503
        assert (await post(client, activity(peer, id="r-2"), peer.mint(APP_ID))).status == 200
        assert "could not refresh Bot Framework's signing keys" in caplog.text
        assert (await post(client, activity(peer, id="r-3"), peer.mint(APP_ID))).status == 200
    assert peer.metadata_fetches == 2  # the next try waits a few minutes, not one per turn


async def test_without_keys_an_unreachable_endpoint_is_401_until_it_answers(peer: BfPeer, db_path: Path,
                                                                          khm: HmsConfig) -> None:
    peer.metadata_status = 503
    async with door(auth_settings(peer, db_path), khm) as client:
        refused = await post(client, activity(peer, id="u-1"), peer.mint(APP_ID))
        assert refused.status == 401
        peer.metadata_status = 200
        assert (await post(client, activity(peer, id="u-2"), peer.mint(APP_ID))).status == 200
    assert peer.metadata_fetches == 2


# -- health and readiness -------------------------------------------------------------------------------------


async def test_ready_only_when_the_database_is_reachable_and_migrated(peer: BfPeer, db_path: Path, khm: HmsConfig,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        caplog.clear()
        for _ in range(3):  # probes come every few seconds: they answer quietly
            ready = await client.get("/readyz")
            assert (ready.status, (await ready.json())["status"]) == (200, "ready")
        assert not [r for r in caplog.records if r.name.startswith("alembic")]
        assert (await client.get("/healthz")).status == 200

        with sqlite3.connect(db_path) as conn:  # a release whose migrations were not run yet
            conn.execute("UPDATE alembic_version SET version_num = '0002'")
        behind = await client.get("/readyz")
        assert behind.status == 503
        assert "hms-bot db upgrade" in (await behind.json())["status"]

        bot = client.app[BOT]
        working = bot.engine
        bot.engine = db.create_engine(f"sqlite:///{db_path.parent}/missing/dir/hms.sqlite3")  # the database is gone
        try:
            gone = await client.get("/readyz")
            assert (gone.status, await gone.json()) == (503, {"status": "database unreachable"})
            assert (await client.get("/healthz")).status == 200  # alive all the same
        finally:
            await bot.engine.dispose()
            bot.engine = working
