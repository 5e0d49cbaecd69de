"""Malformed input at the door, one example per kind the fuzz found answering 500 (tests/test_fuzz.py), each with
what it gets now: the status, and where a user gets a reply, the reply. Nothing is stored for a refused request
and nothing is sent; the log has no ERROR and no traceback, and a value from outside cannot forge a log line.

The bot runs in local mode (no tokens: what a Bot Framework token would let through reaches the turn), its
replies going to the local Bot Framework peer (tests/fakes/bf_peer.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import SQLModel

from bot.app import BOT
from bot.logs import LineFormatter
from bot.serving import serving
from hms.config import HmsConfig
from hms.i18n import t
from storage import db
from tests import fuzzing
from tests.cardtext import texts
from tests.fakes.bf_peer import BfPeer

MAX_DEPTH_BODY = b"[" * 100_000


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer() as p:
        yield p


@asynccontextmanager
async def local_door(db_url: str, khm: HmsConfig, tenant: str = fuzzing.TENANT) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(fuzzing.local_app(db_url, khm, tenant), host="127.0.0.1")) as client:
        yield client


def message(service_url: str, **changes: Any) -> dict[str, Any]:
    """Hanne's question, with `changes` applied to its top level (a dict value replaces the field whole)."""
    body = fuzzing.base_activity(service_url, "message", text="hva forfaller denne måneden?")
    body["id"] = "m-1"
    body.update(changes)
    return body


def raw_json(body: Any) -> bytes:
    """JSON as a client could send it: lone surrogates as \\u escapes (Python's default)."""
    return json.dumps(body).encode()


async def post(client: TestClient, raw: bytes, **headers: str) -> tuple[int, dict[str, Any] | str]:
    response = await client.post("/api/messages", data=raw, headers={"Content-Type": "application/json", **headers})
    text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def stored_rows(db_url: str) -> dict[str, int]:
    """Rows per table that a turn writes (the organisation's own tables are filled at start)."""
    engine = db.create_sync_engine(db_url)
    tables = [t for t in SQLModel.metadata.sorted_tables
              if t.name not in ("person", "section", "floor", "role_assignment")]
    with engine.connect() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in tables}
    engine.dispose()
    return {name: n for name, n in counts.items() if n}


def no_trouble(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()[:120]}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]


# -- what cannot be an activity: 400, nothing stored, nothing sent ---------------------------------------------


def _malformed(url: str) -> dict[str, tuple[bytes, str]]:
    """Each case: the body (replies go to `url`), and the start of the 400's message."""
    conversation = {"id": "a:hanne-personal", "conversationType": "personal", "tenantId": fuzzing.TENANT}
    return {
        "membersAdded is a number": (raw_json(message(url, type="conversationUpdate", membersAdded=5)),
                                     "membersAdded: Input should be a valid array"),
        "id is a number": (raw_json(message(url, id=5)), "id: Input should be a valid string"),
        "entities is a number": (raw_json(message(url, entities=5)), "entities: Input should be a valid array"),
        "tenantId is a list": (raw_json(message(url, conversation={**conversation, "tenantId": [fuzzing.TENANT]})),
                               "conversation.tenantId: Input should be a valid string"),
        "channelId is a list": (raw_json(message(url, channelId=["msteams"])),
                                "channelId: Input should be a valid string"),
        "conversationType is a list": (raw_json(message(url, conversation={
            **conversation, "conversationType": ["personal"]})),
            "conversation.conversationType: Input should be a valid string"),
        "lone surrogate in from.name": (raw_json(message(url, **{"from": {
            "id": "29:hanne", "name": "Hanne \ud800", "aadObjectId": fuzzing.ADVISER_AAD}})),
            "the body is not valid JSON (a \\u escape that is no character, such as a lone surrogate, at line 1"),
        "lone surrogate in conversation.id": (raw_json(message(url, conversation={
            **conversation, "id": "a:\udfff"})),
            "the body is not valid JSON (a \\u escape that is no character, such as a lone surrogate, at line 1"),
        "serviceUrl is not a URL": (raw_json(message(url, serviceUrl="not a url")),
                                    "serviceUrl: serviceUrl must be an http(s) URL"),
        "[ x 100,000": (MAX_DEPTH_BODY, "the body is not valid JSON (recursion limit exceeded"),
        "nested 65 deep inside the activity": (raw_json(message(url, value=json.loads("[" * 65 + "]" * 65))),
                                               "the activity is nested deeper than 64 levels"),
        "NUL in conversation.id": (raw_json(message(url, conversation={**conversation, "id": "a:\x00"})),
                                   "a string holds the NUL character"),
        "type with a newline": (raw_json(message(url, type="message\nINFO hms.http: forged")),
                                "type: not a value this field can have"),
        "invoke name with a newline": (raw_json(message(url, type="invoke", name="x\r\nERROR forged")),
                                       "name: not a value this field can have"),
    }


MALFORMED = list(_malformed("http://127.0.0.1:9/"))


@pytest.mark.parametrize("case", MALFORMED)
async def test_what_cannot_be_an_activity_is_a_400(case: str, db_path: Path, peer: BfPeer, khm: HmsConfig,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Refused at the door, before any database work: SQLite only."""
    db_url = f"sqlite:///{db_path}"
    raw, says = _malformed(peer.service_url)[case]
    # no tenant gate here: an activity of another tenant would be dropped before it could fail
    async with local_door(db_url, khm, tenant="") as client:
        status, answer = await post(client, raw)
        assert status == 400, answer
        assert isinstance(answer, dict) and answer["error"]["message"].startswith(says), answer
        # the same activity without the fault is answered (the 400 is about the fault)
        ok_status, _ = await post(client, raw_json(message(peer.service_url, id="m-ok")))
        assert ok_status == 200
    assert [c.conversation_id for c in peer.sent_activities()] == ["a:hanne-personal"] * 2  # welcome + answer
    assert set(stored_rows(db_url)) == {"conversation_ref", "processed_activity"}  # the valid one's only
    assert no_trouble(caplog) == []


async def test_a_refused_activity_stores_nothing(db_url: str, peer: BfPeer, khm: HmsConfig) -> None:
    async with local_door(db_url, khm, tenant="") as client:
        for raw, _ in _malformed(peer.service_url).values():
            assert (await post(client, raw))[0] == 400
        await client.app[BOT].ledger.flush()
    assert stored_rows(db_url) == {}
    assert peer.calls == []


# -- bodies that do not decode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "body", "expected"), [  # the door again: SQLite only
    ("deflate", b"definitely not deflate", (400, "undecodable_body")),
    ("gzip", b"\x1f\x8b garbage", (400, "undecodable_body")),
    ("x-custom", b"{}", (415, "unsupported_encoding")),
    ("gzip, deflate", b"{}", (415, "unsupported_encoding")),
])
async def test_a_body_that_does_not_decode_is_refused(encoding: str, body: bytes, expected: tuple[int, str],
                                                      db_path: Path, peer: BfPeer, khm: HmsConfig,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async with local_door(f"sqlite:///{db_path}", khm) as client:
        # (after a body it could not read, the server closes the connection)
        status, answer = await post(client, body, **{"Content-Encoding": encoding, "Connection": "close"})
        assert isinstance(answer, dict) and (status, answer["error"]["code"]) == expected, answer
        # a well-compressed activity is read as any other
        packed = zlib.compress(raw_json(message(peer.service_url)))
        assert (await post(client, packed, **{"Content-Encoding": "deflate"}))[0] == 200
    assert no_trouble(caplog) == []


# -- card payloads: a card saying so, nothing stored --------------------------------------------------------------


def invoke(peer: BfPeer, data: dict[str, Any], verb: str) -> bytes:
    return raw_json(fuzzing.base_activity(peer.service_url, "invoke", name="adaptiveCard/action",
                                  id="inv-1", value=fuzzing.execute(verb, data)))


async def _press(client: TestClient, raw: bytes) -> tuple[int, str]:
    status, answer = await post(client, raw)
    assert isinstance(answer, dict), answer
    return status, texts(answer["value"])


async def test_a_card_signature_that_is_not_ascii_gets_the_tampered_card(db_url: str, peer: BfPeer, khm: HmsConfig,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    data = fuzzing.card_data(fuzzing.CARD_KEY, "round.page", "fire_round:2026-Q4:hm-1", "n-1", khm, page=2)
    data["hms"]["sig"] = "ø" * 32
    async with local_door(db_url, khm) as client:
        status, card = await _press(client, invoke(peer, data, "round.page"))
    assert (status, card) == (200, t("nb-NO", "card.tampered"))
    assert set(stored_rows(db_url)) <= {"conversation_ref", "processed_activity"}  # no answer, no occurrence
    assert no_trouble(caplog) == []


@pytest.mark.parametrize(("ref", "reply"), [
    ("99999999999999999999", "card.unknown"), ("2147483648", "card.unknown"), ("0", "card.unknown"),
    ("-1", "card.unknown"), ("1.0", "card.unknown"), ("²", "card.tampered"), ("١٢", "card.tampered"),
])
async def test_a_signed_measure_ref_that_is_no_row_id_gets_a_card_saying_so(ref: str, reply: str, db_url: str,
                                                                           peer: BfPeer, khm: HmsConfig,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Only the key holder can sign a payload, but what it signs is still checked: a measure ref that cannot be
    a row id (beyond the column, not a positive number) is a card nobody can find; one with characters no
    payload of the bot's has (not ASCII digits) cannot be read. Neither is a 500."""
    data = {**fuzzing.card_data(fuzzing.CARD_KEY, "measure.close", ref, "n-1"), "note": "Fikset"}
    async with local_door(db_url, khm) as client:
        status, card = await _press(client, invoke(peer, data, "measure.close"))
    assert (status, card) == (200, t("nb-NO", reply))
    assert "measure_event" not in stored_rows(db_url)
    assert no_trouble(caplog) == []


async def test_a_task_link_longer_than_its_column_gets_the_card_again_with_the_limit(db_url: str, peer: BfPeer,
                                                                                    khm: HmsConfig) -> None:
    data = {**fuzzing.card_data(fuzzing.CARD_KEY, "task.done", "annual_report:2026:publikum", "n-1"),
            "link": "https://khm.example/" + "x" * 2000}
    async with local_door(db_url, khm) as client:
        status, card = await _press(client, invoke(peer, data, "task.done"))
    assert status == 200
    assert t("nb-NO", "task.link_too_long", max=2000) in card
    assert "occurrence_event" not in stored_rows(db_url)


# -- logs -------------------------------------------------------------------------------------------------------


def test_a_log_record_is_one_line_whatever_it_quotes() -> None:
    record = logging.LogRecord("hms.turns", logging.INFO, __file__, 1, "ignored activity of type %s",
                               ("x\nERROR hms.http: forged\r\u2028\x1b[31m\ud800",), None)
    line = LineFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    assert line.endswith("ignored activity of type x\\nERROR hms.http: forged\\r\\u2028\\x1b[31m\\ud800")
    line.encode("utf-8")  # a lone surrogate is escaped too: the stream can write it


async def test_a_logged_sql_error_does_not_carry_its_values(db_url: str) -> None:
    """People's e-mails, Teams ids and the tenant are statement parameters: a logged SQL error shows neither
    them (SQLAlchemy's parameters) nor the row PostgreSQL quotes back (its DETAIL line)."""
    engine = db.create_engine(db_url)
    table = sa.table("conversation_ref", sa.column("conversation_id"), sa.column("tenant_id"))
    row = {"conversation_id": "a:fatima.ali@khm.uio.no", "tenant_id": fuzzing.TENANT}  # (the traceback quotes
    with pytest.raises(sa.exc.DBAPIError) as caught:  # source lines: the values are not on the failing one)
        async with engine.begin() as conn:  # a conversation without its type and service URL
            await conn.execute(table.insert().values(**row))
    await engine.dispose()
    record = logging.LogRecord("hms.http", logging.ERROR, __file__, 1, "turn failed", (),
                               (type(caught.value), caught.value, caught.value.__traceback__))
    logged = LineFormatter().format(record)
    assert "IntegrityError" in logged and "conversation_type" in logged  # what failed is still there
    assert "fatima.ali" not in logged and fuzzing.TENANT not in logged, logged


async def test_a_client_that_disconnects_mid_body_is_an_info_line(db_path: Path, khm: HmsConfig,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Served as `hms-bot serve` serves it (bot/serving.py: the handler is not cancelled when the client goes)."""
    caplog.set_level(logging.INFO)
    url = f"sqlite:///{db_path}"
    async with serving(fuzzing.local_app(url, khm), fuzzing.LOCAL.model_copy(update={"database_url": url}),
                       "127.0.0.1", 0) as site:
        _reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        writer.write(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n{\"type\": \"message\", ")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(500):  # the server notices the closed connection on its own loop
            if any("disconnected" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert [(r.levelname, r.name) for r in lines] == [("INFO", "hms.http")]
    assert no_trouble(caplog) == []
