"""The wheel in people's calendars (SQLite and PostgreSQL): `hms-bot calendar link|revoke`, "kalender" in the chat,
and `GET /calendar/<token>.ics` read back with the icalendar library; its deadlines are `hms-bot due`'s."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from icalendar import Calendar

from bot.app import BOT
from hms.config import HmsConfig
from tests.cardtext import texts
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, activity, auth_settings, door, post
from tests.test_measures import hms_bot as cli

FATIMA = "fatima.ali@khm.uio.no"
YEAR = ("--from", "2027-01-01", "--to", "2027-12-31")


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer() as p:  # its own port, so botbuilder's cache of OpenID metadata never mixes two peers
        yield p


def deadlines(cal: Calendar, start: str, end: str) -> list[tuple[str, str]]:
    """(summary, day) of the deadline events in [start, end]."""
    return sorted((str(e["summary"]), e.decoded("dtstart").isoformat()) for e in cal.walk("VEVENT")
                  if str(e["summary"]).startswith("Frist:") and start <= e.decoded("dtstart").isoformat() <= end)


async def test_a_persons_feed_holds_their_deadlines_with_alarms_and_status(
        peer: BfPeer, db_url: str, khm: HmsConfig, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def run(*args: str) -> str:
        code, out, err = await asyncio.to_thread(cli, db_url, monkeypatch, capsys, *args)  # as at a terminal
        assert code == 0, err
        return out

    await run("db", "upgrade", "--now", "2026-11-30T08:00")
    await run("done", "fire_round", "--floor", "hm-1", "--date", "2027-03-10", "--by", FATIMA,
              "--now", "2027-03-11T10:00")
    link = (await run("calendar", "link", "--person", FATIMA)).splitlines()
    assert link[0].startswith("http://localhost:3978/calendar/") and link[1].endswith(".svg")
    assert (await run("calendar", "link", "--person", FATIMA)).splitlines() == link  # one live token per feed
    token = link[0].rsplit("/", 1)[1].removesuffix(".ics")
    section = (await run("calendar", "link", "--section", "publikum")).splitlines()[0]
    section = section.rsplit("/", 1)[1].removesuffix(".ics")
    unit = (await run("calendar", "link", "--unit")).splitlines()[0].rsplit("/", 1)[1].removesuffix(".ics")
    assert len({token, section, unit}) == 3 and min(len(token), len(section), len(unit)) >= 40
    code, _, err = await asyncio.to_thread(cli, db_url, monkeypatch, capsys, "calendar", "link", "--section", "nope")
    assert code == 2 and "no section 'nope'" in err
    due = json.loads(await run("due", *YEAR, "--person", FATIMA, "--json", "--now", "2027-03-15T10:00"))

    async with door(auth_settings(peer, Path("unused"), database_url=db_url), khm) as client:
        client.server.app[BOT].clock.current = oslo(2027, 3, 15, 10)  # type: ignore[attr-defined]
        got = await client.get(f"/calendar/{token}.ics")
        assert got.status == 200 and got.content_type == "text/calendar"
        cal = Calendar.from_ical(await got.read())
        assert str(cal["x-wr-calname"]) == "HMS-hjulet – Fatima Ali" and str(cal["x-wr-timezone"]) == "Europe/Oslo"
        # the deadlines are the ones `hms-bot due` lists for her, on the same days
        assert deadlines(cal, "2027-01-01", "2027-12-31") == sorted(
            (f"Frist: {d['title']} – Historisk museum, 1. etasje", d["due"]) for d in due)
        events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
        first = events["fire_round:2027-Q1:hm-1@khm.hms-hjulet"]
        assert first.decoded("dtstart") == dt.date(2027, 3, 31) and first.decoded("dtend") == dt.date(2027, 4, 1)
        assert "Status: utført: utført av Fatima Ali 10. mars 2027" in str(first["description"])
        [alarm] = first.walk("VALARM")
        assert alarm.decoded("trigger") == dt.timedelta(days=-7)
        window = events["fire_round:2027-Q2:hm-1:window@khm.hms-hjulet"]
        assert (window.decoded("dtstart"), window.decoded("dtend")) == (dt.date(2027, 4, 1), dt.date(2027, 7, 1))
        assert "Status: ikke forfalt ennå" in str(window["description"])
        again = Calendar.from_ical(await (await client.get(f"/calendar/{token}.ics")).read())
        assert {str(e["uid"]) for e in again.walk("VEVENT")} == set(events)  # stable: calendars update in place

        section_cal = Calendar.from_ical(await (await client.get(f"/calendar/{section}.ics")).read())
        summaries = {str(e["summary"]) for e in section_cal.walk("VEVENT")}
        assert "Frist: Vernerunde – Seksjon for publikum og formidling" in summaries
        assert not any("Administrasjonsseksjonen" in s for s in summaries)
        unit_cal = Calendar.from_ical(await (await client.get(f"/calendar/{unit}.ics")).read())
        assert len(unit_cal.walk("VEVENT")) > len(section_cal.walk("VEVENT")) > len(cal.walk("VEVENT"))

        # "kalender" in the chat gives Fatima her own link
        assert (await post(client, activity(peer, id="k1", text="kalender"), peer.mint(APP_ID))).status == 200
        [reply] = [c.body for c in peer.sent_activities() if c.activity_id == "k1" and "kalender" in texts(c.body)]
        assert reply["attachments"][0]["content"]["actions"][0]["url"].endswith(f"/calendar/{token}.ics")

        await run("calendar", "revoke", token)
        assert (await client.get(f"/calendar/{token}.ics")).status == 404
        assert (await client.get(f"/calendar/{section}.ics")).status == 200
        assert (await client.get("/calendar/not-a-token.ics")).status == 404
    code, _, err = await asyncio.to_thread(cli, db_url, monkeypatch, capsys, "calendar", "revoke", token)
    assert code == 2 and "no live token" in err


def test_a_token_never_starts_with_a_dash_so_the_command_line_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hms-bot calendar revoke TOKEN` would read "-abc…" as an option: such tokens are never handed out."""
    import secrets

    from usecases import feeds

    drawn = iter(["-starts-with-a-dash", "--two", "fine-token"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: next(drawn))
    assert feeds.new_token() == "fine-token"
