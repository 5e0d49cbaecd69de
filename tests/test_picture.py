"""The wheel as a picture (SQLite and PostgreSQL): `hms-bot wheel` draws the year, the bot serves it at
`/wheel/<token>.svg` and "vis årshjulet" links to it; Debian's Chromium renders what the bot serves (headless, on
loopback, no browser download) and the screenshot is kept in docs/ when HMS_UPDATE_DOCS=1."""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import BOT
from hms.config import HmsConfig
from tests.cardtext import texts
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, activity, auth_settings, door, post
from tests.test_measures import hms_bot as cli

SVG = "{http://www.w3.org/2000/svg}"
FATIMA = "fatima.ali@khm.uio.no"
CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer() as p:  # its own port, so botbuilder's cache of OpenID metadata never mixes two peers
        yield p


def dots(svg: str) -> list[dict[str, str]]:
    return [c.attrib for c in ET.fromstring(svg).iter(f"{SVG}circle") if c.get("class") == "deadline"]


async def test_the_wheel_is_drawn_served_and_rendered(peer: BfPeer, db_url: str, khm: HmsConfig, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    async def run(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, db_url, monkeypatch, capsys, *args)  # as at a terminal

    assert (await run("db", "upgrade", "--now", "2026-11-30T08:00"))[0] == 0
    for floor, day in (("hm-1", "2027-03-10"), ("hm-2", "2027-03-20"), ("hm-3", "2027-03-25"),
                       ("okern-mag", "2027-03-30"), ("hm-u", "2027-04-05")):
        code, _, err = await run("done", "fire_round", "--floor", floor, "--date", day, "--cycle", "2027-Q1",
                                 "--now", "2027-04-06T10:00")
        assert code == 0, err
    out = tmp_path / "wheel.svg"
    assert (await run("wheel", "--year", "2027", "--out", str(out), "--now", "2027-07-15T10:00"))[0] == 0
    svg = out.read_text(encoding="utf-8")
    root = ET.fromstring(svg)
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "month"]) == 12
    names = [x.text for x in root.iter(f"{SVG}text") if x.get("class") == "month-name"]
    assert names == ["Januar", "Februar", "Mars", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
                     "November", "Desember"]
    fire = {d["data-due"]: d for d in dots(svg) if d["data-task"] == "Brannvernrunde"}
    # every floor's first quarter is done, one of them late; nobody did the second; the third is open, the fourth
    # not yet due
    assert {due: (d["data-status"], d["data-count"]) for due, d in fire.items()} == {
        "2027-03-31": ("done_late", "5"), "2027-06-30": ("missed", "5"), "2027-09-30": ("open", "5"),
        "2027-12-31": ("not_yet_due", "5")}
    assert [x.text for x in root.iter(f"{SVG}text") if x.get("class") == "today-label"] == ["I dag"]
    legend = [x.text for x in root.iter(f"{SVG}text") if x.get("class") == "legend-status"]
    assert "ikke utført (fristen er passert)" in legend and "utført for sent" in legend
    assert (await run("wheel", "--year", "2027", "--out", str(out)))[0] == 2  # no overwrite without --force

    mine = tmp_path / "mine.svg"
    assert (await run("wheel", "--year", "2027", "--person", FATIMA, "--locale", "en", "--out", str(mine),
                      "--now", "2027-07-15T10:00"))[0] == 0
    assert {d["data-task"] for d in dots(mine.read_text())} == {"Fire safety round"}
    assert ">missed (deadline passed)<" in mine.read_text() and ">Today<" in mine.read_text()

    async with door(auth_settings(peer, Path("unused"), database_url=db_url), khm) as client:
        client.server.app[BOT].clock.current = oslo(2027, 7, 15, 10)  # type: ignore[attr-defined]
        assert (await post(client, activity(peer, id="w1", text="vis årshjulet"), peer.mint(APP_ID))).status == 200
        [reply] = [c.body for c in peer.sent_activities() if c.activity_id == "w1" and "Årshjulet" in texts(c.body)]
        url = reply["attachments"][0]["content"]["actions"][0]["url"]
        path = "/wheel/" + url.rsplit("/", 1)[1]
        got = await client.get(path)
        assert got.status == 200 and got.content_type == "image/svg+xml"
        served = await got.text()
        assert {d["data-task"] for d in dots(served)} == {"Brannvernrunde"}
        assert (await client.get("/wheel/" + "B" * 43 + ".svg")).status == 404
        code, links, _ = await run("calendar", "link", "--unit")
        unit = "/wheel/" + links.splitlines()[1].rsplit("/", 1)[1]

        # Debian's Chromium renders what the bot serves, from 127.0.0.1 only
        from playwright.async_api import async_playwright

        shot = (DOCS if os.environ.get("HMS_UPDATE_DOCS") == "1" else tmp_path) / "wheel.png"
        async with async_playwright() as pw:
            # a fresh profile (Playwright takes it as user_data_dir, not as --user-data-dir)
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium"), executable_path=CHROMIUM, headless=True,
                viewport={"width": 1260, "height": 900}, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            try:
                page = await browser.new_page()
                response = await page.goto(f"http://127.0.0.1:{client.server.port}{unit}")
                assert response is not None and response.status == 200
                drawn = await page.evaluate("""() => [...document.querySelectorAll('circle.deadline')]
                    .filter(c => c.getBBox().width > 0).map(c => c.getAttribute('data-status'))""")
                assert len(drawn) == len(dots(await (await client.get(unit)).text())) > 12
                assert {"done_late", "missed", "open", "not_yet_due"} <= set(drawn)
                label = await page.evaluate("() => document.querySelector('text.today-label').getBBox().width")
                assert label > 10
                await page.screenshot(path=str(shot))
            finally:
                await browser.close()
        assert shot.stat().st_size > 20_000
