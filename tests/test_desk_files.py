"""The adviser's desk through the bot's door (SQLite and PostgreSQL): "lag tilsynsrapport for 2026" in the chat brings
a link the bot serves (`GET /files/<token>`) to the workbook, until the token expires; anyone else is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from bot.app import BOT
from hms.config import HmsConfig
from tests.cardtext import texts
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, activity, auth_settings, door, post

HANNE_AAD = "0a1b2c3d-0001-4000-8000-000000000001"


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer() as p:  # its own port, so botbuilder's cache of OpenID metadata never mixes two peers
        yield p


def as_hanne(peer: BfPeer, text: str, id: str) -> dict[str, Any]:
    return activity(peer, id=id, text=text, conversation_id="a:hanne-personal",
                    **{"from": {"id": "29:hanne", "name": "Hanne Solberg", "aadObjectId": HANNE_AAD}})


def link_in(peer: BfPeer, activity_id: str) -> str:
    [reply] = [c.body for c in peer.sent_activities() if c.activity_id == activity_id and "Tilsynsmappe"
               in texts(c.body)]
    [action] = reply["attachments"][0]["content"]["actions"]
    assert action["type"] == "Action.OpenUrl"
    return str(action["url"])


async def test_the_adviser_gets_the_pack_as_a_link_that_expires(peer: BfPeer, db_url: str, khm: HmsConfig) -> None:
    settings = auth_settings(peer, Path("unused"), database_url=db_url, public_url="https://hms.example.org")
    async with door(settings, khm) as client:
        assert (await post(client, as_hanne(peer, "lag tilsynsrapport for 2026", "a1"), peer.mint(APP_ID))).status \
            == 200
        url = link_in(peer, "a1")
        assert url.startswith("https://hms.example.org/files/") and len(url.rsplit("/", 1)[1]) >= 40
        path = "/files/" + url.rsplit("/", 1)[1]
        got = await client.get(path)
        assert got.status == 200
        assert got.headers["Content-Disposition"] == 'attachment; filename="tilsynsmappe-2026.xlsx"'
        wb = load_workbook(io.BytesIO(await got.read()))
        cover = list(wb["Forside"].iter_rows(values_only=True))
        assert ("Laget av", "Hanne Solberg", None) in cover and ("Periode", "1. januar – 31. desember 2026", None) \
            in cover
        assert len(list(wb["Plan mot utført"].iter_rows())) > 30  # the whole wheel of 2026, opened or not

        assert (await post(client, as_hanne(peer, "tilsynsrapport 2026 som pdf", "a2"), peer.mint(APP_ID))).status \
            == 200
        pdf = await client.get("/files/" + link_in(peer, "a2").rsplit("/", 1)[1])
        assert "Tilsynsmappe" in PdfReader(io.BytesIO(await pdf.read())).pages[0].extract_text()

        # a day later the link is gone, and a made-up token was never there
        client.server.app[BOT].clock.current = oslo(2026, 11, 27, 10, 1)  # type: ignore[attr-defined]
        gone = await client.get(path)
        assert gone.status == 404 and "utløpt" in await gone.text()
        assert (await client.get("/files/" + "A" * 43)).status == 404
        assert (await client.get("/files/../../etc/passwd")).status == 404


async def test_others_are_refused_the_pack(peer: BfPeer, db_url: str, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, Path("unused"), database_url=db_url), khm) as client:
        assert (await post(client, activity(peer, id="f1", text="lag tilsynsrapport for 2026"),
                           peer.mint(APP_ID))).status == 200
    [reply] = [texts(c.body) for c in peer.sent_activities()
               if c.activity_id == "f1" and "tilsynsmappe" in texts(c.body)]
    assert "Bare HMSB-rådgiver (Hanne Solberg) kan lage tilsynsmappen" in reply
