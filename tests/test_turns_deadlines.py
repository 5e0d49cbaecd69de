"""Deadlines as people mean them (issue 11.2), on SQLite and PostgreSQL, through the bot's door (chat turns) and the
command line (`hms-bot ask`).

Before this change "Frister – mars 2027" listed 18 rows, 13 of them due in June or July (a period meant "open during
it"); "når er vernerunden?" listed the whole wheel's next twelve months; "har vi gjort brannrunden i 3. etg?" opened
the fire round's checklist; "hvem er verneombud for publikum?" got the help card; "start vernerunde" on 10 July found
no round; "hei" got "I did not quite get that"."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.turns import HmsBot
from cli.main import main
from hms.clock import FixedClock
from hms.config import HmsConfig, parse_config
from hms.wheel import find_occurrence
from storage import db, repo
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.test_turns import BOT, FATIMA_AAD, TENANT, FakeProactive, FakeTurn, activity

HANNE_AAD = "0a1b2c3d-0001-4000-8000-000000000001"
TOR_AAD = "0a1b2c3d-0004-4000-8000-000000000004"  # section leader, collection management (samling)
USERS = {HANNE_AAD: "29:hanne", FATIMA_AAD: "29:fatima", TOR_AAD: "29:tor"}

Bots = Callable[..., Any]


@pytest.fixture
async def bots(db_url: str, khm: HmsConfig) -> AsyncIterator[Bots]:
    """Bots on the test's database, each with its own clock (and organisation file when given)."""
    made: list[tuple[HmsBot, Any]] = []

    async def make(when: dt.datetime, config: HmsConfig | None = None) -> HmsBot:
        engine = db.create_engine(db_url)
        b = HmsBot(config=config or khm, engine=engine, clock=FixedClock(when), tenant_id=TENANT, bot_id=BOT,
                   card_key=b"test-key", proactive=FakeProactive())
        await b.start()
        made.append((b, engine))
        return b

    yield make
    for b, engine in made:
        await b.ledger.close()
        await engine.dispose()


_ids = iter(range(1, 100_000))


async def say(bot: HmsBot, text: str, aad: str = HANNE_AAD, locale: str = "nb-NO") -> dict[str, Any]:
    user = USERS[aad]
    turn = FakeTurn(activity(id=f"d{next(_ids)}", text=text, aad=aad, user=user, conversation=f"a:{user}",
                             locale=locale))
    await bot.on_turn(turn)
    return turn.sent[-1]


def body_texts(answer: dict[str, Any]) -> list[str]:
    return [n["text"] for n in nodes(answer) if n.get("type") == "TextBlock"]


async def complete(bot: HmsBot, key: str, by: str, at: dt.datetime) -> None:
    occ = find_occurrence(bot.config, key)
    assert occ is not None
    async with bot.sessions() as s:
        await repo.record_completion(s, occ, by, at)


# -- "Frister – <period>": deadlines in the period, open windows apart ---------------------------------------


async def test_a_period_lists_its_deadlines_and_the_open_windows_apart(bots: Bots) -> None:
    bot = await bots(oslo(2027, 3, 10, 9))
    answer = await say(bot, "hva forfaller i mars?")
    lines = body_texts(answer)
    assert lines[0] == "Frister – mars 2027"
    split = lines.index("Åpent nå, frist senere")
    deadlines, later = lines[:split], lines[split + 1:]
    rows = [x for x in deadlines if x.startswith("**")]
    assert len(rows) == 5 and all(x.startswith("**Brannvernrunde**") for x in rows)  # was 18 rows
    assert not any("juni" in x or "juli" in x for x in deadlines)
    assert "**Vernerunde** · 4 seksjoner · frist 1. juli 2027" in later
    assert "**Medarbeidersamtaler** · 4 seksjoner · frist 15. juni 2027" in later
    assert "**Helhetlig ROS-analyse** · Kulturhistorisk museum · frist 15. juni 2027" in later
    assert len(later) == 4  # one short line per task and deadline, not 13 rows

    english = body_texts(await say(bot, "what's due in June?"))
    assert english[0] == "Deadlines – June 2027" and "Open in the period, due later" in english
    assert "**Safety inspection round** · 4 sections · due 1 July 2027" in english
    # a floor contact's list keeps to her floor; nothing open later on it in March
    fatima = body_texts(await say(bot, "frister i mars", aad=FATIMA_AAD))
    assert "Åpent nå, frist senere" not in fatima and "**Brannvernrunde** · Historisk museum, 1. etasje" in fatima


# -- one task, one place --------------------------------------------------------------------------------------


async def test_when_is_a_task_gives_its_next_deadline_per_place(bots: Bots) -> None:
    bot = await bots(oslo(2026, 11, 30, 9))
    lines = body_texts(await say(bot, "når er vernerunden?"))
    assert lines[0] == "Vernerunde – neste frist"
    rows = [x for x in lines if x.startswith("**")]
    assert len(rows) == 4 and all(x.startswith("**Vernerunde**") for x in rows)  # one per section, not 62 rows
    assert lines.count("1. juli") == 4
    fatima = body_texts(await say(bot, "når er vernerunden?", aad=FATIMA_AAD))
    assert [x for x in fatima if x.startswith("**")] == ["**Vernerunde** · Seksjon for publikum og formidling"]
    floor = body_texts(await say(bot, "når må brannvernrunden i 2. etasje være gjort"))
    assert [x for x in floor if x.startswith("**")] == ["**Brannvernrunde** · Historisk museum, 2. etasje"]
    assert "31. des." in floor  # the short month in the list's narrow date column: "31. desem|ber" broke on a phone
    # done rounds are skipped: the next deadline is the next one not done
    await complete(bot, "fire_round:2026-Q4:hm-2", "eirik.haugen@khm.uio.no", oslo(2026, 11, 20, 10))
    again = body_texts(await say(bot, "when is the fire round due on the second floor?", locale="en-US"))
    assert again[0] == "Fire safety round – next deadline" and "31 Mar" in again


async def test_was_it_done_answers_who_and_when_and_never_opens_a_checklist(bots: Bots) -> None:
    bot = await bots(oslo(2026, 12, 2, 10))
    await complete(bot, "fire_round:2026-Q4:hm-3", "maria.johansen@khm.uio.no", oslo(2026, 11, 12, 9, 14))
    answer = await say(bot, "har vi gjort brannrunden i 3. etg?")
    card = answer["attachments"][0]["content"]
    assert texts(card).splitlines() == ["Brannvernrunde – er den gjort?", "**Historisk museum, 3. etasje (2026-Q4)**",
                                        "✓ Utført av Maria Johansen 12. november kl. 09.14."]
    assert "actions" not in card and input_ids(card) == []
    not_yet = await say(bot, "har vi gjort brannrunden i 2. etasje?")
    assert "Ikke utført ennå · frist 31. desember 2026" in texts(not_yet)
    assert "actions" not in not_yet["attachments"][0]["content"]
    async with bot.sessions() as s:  # asking stored nothing: no occurrence row, no draft
        assert await repo.occurrence_row(s, "fire_round:2026-Q4:hm-2") is None
    english = texts(await say(bot, "is the fire round on the 3rd floor done?", locale="en-US"))
    assert english.splitlines()[0] == "Fire safety round – is it done?"
    assert "✓ Done by Maria Johansen 12 November at 09:14." in english
    # the whole unit, for the adviser: five floors, one done
    unit = await say(bot, "er brannvernrunden gjort?")
    assert texts(unit).count("✓") == 1 and texts(unit).count("(2026-Q4)") == 5
    # a past cycle by its period; an overdue one says so
    later = await bots(oslo(2027, 4, 5, 10))
    q1 = texts(await say(later, "har vi gjort brannrunden i 2. etasje i mars?"))
    assert "(2027-Q1)" in q1 and "Ikke utført · fristen var 31. mars 2027" in q1


async def test_who_answers_from_the_organisation_file(bots: Bots) -> None:
    bot = await bots(oslo(2026, 11, 30, 9))
    rep = await say(bot, "hvem er verneombud for publikum?", aad=FATIMA_AAD)
    assert body_texts(rep) == ["Verneombud", "**Ahmed Rahimi** · verneombud for Seksjon for publikum og formidling",
                               "Verneombud · [ahmed.rahimi@khm.uio.no](mailto:ahmed.rahimi@khm.uio.no)"]
    floor = body_texts(await say(bot, "who is the floor contact for the 2nd floor?", aad=FATIMA_AAD, locale="nb-NO"))
    assert floor[:2] == ["Floor contact", "**Eirik Haugen** · floor contact for Historical Museum, 2nd floor"]
    adviser = body_texts(await say(bot, "hvem er HMS-rådgiver?"))
    assert adviser[1:] == ["**Hanne Solberg** · HMSB-rådgiver",
                           "HMSB-rådgiver · [hanne.solberg@khm.uio.no](mailto:hanne.solberg@khm.uio.no)"]
    reps = body_texts(await say(bot, "hvem er verneombud"))
    assert len([x for x in reps if x.startswith("**")]) == 4
    deputy = body_texts(await say(bot, "kven er vara for etasjekontakten i kjelleren"))
    assert deputy[1] == "**Nina Vik** · vara etasjekontakt for Historisk museum, underetasjen"
    responsible = body_texts(await say(bot, "hvem har ansvar for brannvernrunden i 3. etasje?"))
    assert responsible[0] == "Ansvarlig for Brannvernrunde"
    assert [x for x in responsible if x.startswith("**")] == [
        "**Siri Holm** · seksjonsleder for Seksjon for fornminneforvaltning",
        "**Maria Johansen** · etasjekontakt for Historisk museum, 3. etasje"]


# -- starting a late round by asking --------------------------------------------------------------------------


async def test_a_missed_round_is_offered_first(bots: Bots, khm_text: str) -> None:
    july = await bots(oslo(2027, 7, 10, 9))
    answer = await say(july, "start vernerunde", aad=TOR_AAD)
    lines = texts(answer)
    assert "Vernerunde" in lines and "Seksjon for samlingsforvaltning" in lines
    assert "Denne runden hadde frist 1. juli 2027 og er ikke levert. Du kan levere den nå." in lines
    assert input_ids(answer["attachments"][0]["content"])  # the checklist itself

    april = await bots(oslo(2027, 4, 3, 9))
    q1 = await say(april, "start brannvernrunde", aad=FATIMA_AAD)
    assert "Frist 31. mars 2027" in texts(q1)
    assert "hadde frist 31. mars 2027 og er ikke levert. Lever den først; den neste kan du starte etterpå." in texts(q1)
    await complete(april, "fire_round:2027-Q1:hm-1", "fatima.ali@khm.uio.no", oslo(2027, 4, 3, 11))
    q2 = texts(await say(april, "start brannvernrunde", aad=FATIMA_AAD))
    assert "Frist 30. juni 2027" in q2 and "hadde frist" not in q2
    # six weeks late, the round going on comes first (a quarter-old fire round says little of the floor now)
    may = await bots(oslo(2027, 5, 15, 9))
    assert "Frist 30. juni 2027" in texts(await say(may, "start brannvernrunde i 2. etasje"))
    # a round due before tracking started is no missed round
    edited = khm_text.replace("  demo_data: true\n", "  demo_data: true\n  tracking_starts: 2027-04-01\n", 1)
    started = await bots(oslo(2027, 4, 3, 9), parse_config(edited))
    fresh = texts(await say(started, "start brannvernrunde", aad=FATIMA_AAD))
    assert "Frist 30. juni 2027" in fresh and "hadde frist" not in fresh


# -- small talk and help ------------------------------------------------------------------------------------------


async def test_small_talk_and_help_in_the_users_language(bots: Bots) -> None:
    bot = await bots(oslo(2026, 11, 30, 9))
    assert texts(await say(bot, "hei")).startswith("Hei! Spør meg om frister")
    assert texts(await say(bot, "tusen takk!")) == "Bare hyggelig! Si fra hvis det er noe mer."
    assert texts(await say(bot, "thanks", locale="nb-NO")) == "You're welcome! Just ask if there is anything else."
    assert texts(await say(bot, "help", locale="nb-NO")).startswith("Here is what I can help with")
    assert texts(await say(bot, "hjelp", locale="en-US")).startswith("Dette kan jeg hjelpe med")
    assert "«hvem er verneombud for publikum?»" in texts(await say(bot, "hjelp"))


# -- the command line ----------------------------------------------------------------------------------------------


def test_ask_from_the_command_line(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    capsys.readouterr()
    assert main(["ask", "når er vernerunden?", "--json", "--now", "2026-11-30T09:00"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["intent"] == "due" and answer["round"] == "safety" and answer["answer"]["count"] == 4
    assert {i["due"] for i in answer["answer"]["items"]} == {"2027-07-01"}
    assert main(["ask", "hvem er verneombud for publikum?", "--json"]) == 0
    who = json.loads(capsys.readouterr().out)
    assert (who["intent"], who["role"], who["section"]) == ("who", "safety_rep", "publikum")
    assert [p["email"] for p in who["answer"]["people"]] == ["ahmed.rahimi@khm.uio.no"]
    assert main(["ask", "har vi gjort brannrunden i 3. etg?", "--json", "--now", "2026-12-02T10:00"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["intent"] == "done_check"
    assert check["answer"]["items"] == [{"occurrence": "fire_round:2026-Q4:hm-3", "status": "open",
                                         "completed_by": None, "completed_at": None}]
    assert main(["ask", "frister i mars", "--json", "--now", "2027-03-10T09:00"]) == 0
    march = json.loads(capsys.readouterr().out)["answer"]
    assert march["count"] == 5 and len(march["open_later"]) == 13


async def test_tasks_are_found_by_their_names_not_their_keys(bots: Bots, khm_text: str) -> None:
    """Another unit's file may call its fire round anything: the questions find it by what its name says."""
    renamed = parse_config(khm_text.replace("fire_round", "etasjesjekk").replace("key: vernerunde", "key: vr-aarlig")
                           .replace("checklist: vernerunde", "checklist: vr-aarlig"))
    assert renamed.task("fire_round") is None and renamed.task("etasjesjekk") is not None
    bot = await bots(oslo(2027, 4, 3, 9), renamed)
    when = body_texts(await say(bot, "når er brannvernrunden i 2. etasje?"))
    assert [x for x in when if x.startswith("**")] == ["**Brannvernrunde** · Historisk museum, 2. etasje"]
    started = texts(await say(bot, "start brannvernrunde", aad=FATIMA_AAD))
    assert "Frist 31. mars 2027" in started and "hadde frist" in started
    july = await bots(oslo(2027, 7, 10, 9), renamed)
    assert "Denne runden hadde frist 1. juli 2027" in texts(await say(july, "start vernerunde", aad=TOR_AAD))
    check = texts(await say(july, "er vernerunden for publikum gjennomført?"))
    assert "Seksjon for publikum og formidling (2027)" in check and "fristen var 1. juli 2027" in check
