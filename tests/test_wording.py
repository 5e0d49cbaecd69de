"""What the cards say after a round, and how they say it (issue 12, parts 2 and 3), on SQLite and PostgreSQL,
through the chat's turns, the planning tick and the command line:

- the submitter's card right after "Lever runden" says what became of each deviation (the measure's number, owner
  and deadline), and the round asked for again says "Du leverte runden ..." to her, "... levert av NN" to others;
- the LAMU summary names each deviation briefly (the item and the place, never the comment), its measure, owner and
  deadline, in a thread called "Brannvernrunde 4. kvartal 2026";
- the adviser's copy says where the round's record and its measures are, and those commands work;
- Norwegian times read "30. november kl. 09.00", English plurals are plurals, the prompt is one plain sentence.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from bot.turns import HmsBot
from hms.config import HmsConfig
from storage import models as m
from tests.cardtext import nodes, texts
from tests.conftest import oslo
from tests.test_adviser_loop import (
    FATIMA,
    HANNE,
    JONAS,
    bot,  # noqa: F401 -- the fixture: the bot on the first day, 30 November 2026
    first_day,  # noqa: F401
    hms_bot_async,
    outbox_card,
    rows,
    say,
    submit_fire_round,
)
from usecases.planning import plan

LARS = "lars.bakke@khm.uio.no"  # Fatima's deputy on the 1st floor
EIRIK = "eirik.haugen@khm.uio.no"  # floor contact of the 2nd floor
DEVIATIONS = {"fire_doors": "Branndør til trapp B står på kile", "open_flame": "Stearinlys i resepsjonen"}
DEADLINE = "30. desember 2026"  # 30 days after the first day


def outbox_rows(db_url: str, kind: str) -> list[Any]:
    return rows(db_url, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == kind)


def measure_ids(db_url: str) -> dict[str, int]:
    """The measures made from the round's deviations, by checklist item."""
    found = rows(db_url, m.Finding)
    by_finding = {r.finding_id: r.id for r in rows(db_url, m.Measure)}
    return {f.item_key: by_finding[f.id] for f in found}


def text_colors(card: dict[str, Any]) -> dict[str, str | None]:
    return {n["text"]: n.get("color") for n in nodes(card) if n.get("type") == "TextBlock"}


async def test_the_submitter_is_told_what_became_of_each_deviation(bot: HmsBot, khm: HmsConfig,  # noqa: F811
                                                                   first_day: str) -> None:  # noqa: F811
    done = await submit_fire_round(bot, khm, DEVIATIONS)
    ids = measure_ids(first_day)
    shown = texts(done)
    assert "Levert av Fatima Ali 30. november kl. 09.00 – 2 avvik" in shown
    for key in DEVIATIONS:
        assert f"Tiltak nr. {ids[key]} opprettet – ansvarlig Jonas Eide, frist {DEADLINE}" in shown
    # plain text in the default colour: only the deviations (what needs action) are red
    colors = text_colors(done)
    assert colors["Levert av Fatima Ali 30. november kl. 09.00 – 2 avvik"] is None
    assert {c for c in colors.values()} <= {None, "Attention"}

    # asking for the round again: to her, "you"; to her deputy, her name
    mine = await say(bot, khm, FATIMA, "start brannvernrunde")
    assert "Du leverte runden 30. november kl. 09.00." in texts(mine)
    assert "levert av Fatima Ali" not in texts(mine)
    assert text_colors(mine)["Du leverte runden 30. november kl. 09.00."] is None
    deputy = await say(bot, khm, LARS, "start brannvernrunde")
    assert "Runden er allerede levert av Fatima Ali 30. november kl. 09.00." in texts(deputy)
    assert f"Tiltak nr. {ids['fire_doors']} opprettet" in texts(deputy)


async def test_the_lamu_summary_names_each_deviation_its_owner_and_deadline(bot: HmsBot, khm: HmsConfig,  # noqa: F811
                                                                           first_day: str) -> None:  # noqa: F811
    await submit_fire_round(bot, khm, DEVIATIONS)
    ids = measure_ids(first_day)
    [row] = outbox_rows(first_day, "lamu_summary")
    payload = json.loads(row.payload)
    assert payload["target"]["thread_title"] == "Brannvernrunde 4. kvartal 2026"
    card = outbox_card(row)
    lines = texts(card).splitlines()
    assert lines[:4] == [
        "Brannvernrunde 4. kvartal 2026 – Historisk museum, 1. etasje",
        "Levert av Fatima Ali 30. november kl. 09.00: 2 avvik.",
        "- **Branndører lukker helt og er ikke kilt opp; holdemagneter slipper** (Historisk museum, 1. etasje): "
        f"tiltak nr. {ids['fire_doors']}, ansvarlig Jonas Eide, frist {DEADLINE}",
        f"- **Ingen levende lys eller åpen flamme** (Historisk museum, 1. etasje): tiltak nr. {ids['open_flame']}, "
        f"ansvarlig Jonas Eide, frist {DEADLINE}",
    ]
    assert lines[4] == "Ansvarlig for oppfølging: <at>Jonas Eide</at>"
    # the channel is wide: what was found is named by the checklist's item, never by the floor contact's comment
    assert not any(comment in texts(card) for comment in DEVIATIONS.values())
    assert {c for c in text_colors(card).values()} == {None}
    assert payload["activity"]["mention"]["email"] == JONAS


async def test_a_round_without_deviations_says_so_in_words(bot: HmsBot, khm: HmsConfig,  # noqa: F811
                                                          first_day: str) -> None:  # noqa: F811
    done = await submit_fire_round(bot, khm, {})
    assert "Levert av Fatima Ali 30. november kl. 09.00 – ingen avvik" in texts(done)
    [row] = outbox_rows(first_day, "lamu_summary")
    assert "Levert av Fatima Ali 30. november kl. 09.00: ingen avvik." in texts(outbox_card(row))
    [doc] = outbox_rows(first_day, "documentation")
    assert "hms-bot export --from 2026-12-31 --to 2026-12-31" in texts(outbox_card(doc))
    assert "Tiltak" not in texts(outbox_card(doc))  # no measures, so none are named


async def test_the_advisers_copy_leads_to_the_record_and_the_measures(bot: HmsBot, khm: HmsConfig,  # noqa: F811
                                                                     first_day: str,  # noqa: F811
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await submit_fire_round(bot, khm, DEVIATIONS)
    ids = measure_ids(first_day)
    [doc] = outbox_rows(first_day, "documentation")
    assert doc.recipient_email == HANNE
    shown = texts(outbox_card(doc))
    first, second = sorted(ids.values())
    assert ("Runden ligger i arkivet: «hms-bot export --from 2026-12-31 --to 2026-12-31 --out runde.json» "
            "(runder med frist 31. desember 2026).") in shown
    assert (f"Tiltakene: nr. {first}, {second}. Se dem med «hms-bot measure show {first}» osv., eller skriv "
            "«åpne tiltak» her i chatten.") in shown
    for key in DEVIATIONS:
        assert f"Tiltak nr. {ids[key]} opprettet – ansvarlig Jonas Eide, frist {DEADLINE}" in shown

    # what the card tells her to run works, and shows this round and these measures
    out = tmp_path / "runde.json"
    code, _, err = await hms_bot_async(first_day, monkeypatch, capsys, "export", "--from", "2026-12-31", "--to",
                                       "2026-12-31", "--out", str(out))
    assert code == 0, err
    record = out.read_text(encoding="utf-8")
    assert "fire_round:2026-Q4:hm-1" in record and "Branndør til trapp B står på kile" in record
    code, shown_measure, err = await hms_bot_async(first_day, monkeypatch, capsys, "measure", "show", str(first))
    assert code == 0, err
    assert f"measure {first} (open)" in shown_measure and f"owner {JONAS}" in shown_measure
    # and "åpne tiltak" in her chat lists them by the same numbers, with their age in words
    listed = texts(await say(bot, khm, HANNE, "åpne tiltak"))
    assert f"Nr. {first}:" in listed and f"Nr. {second}:" in listed and "opprettet i dag" in listed


async def test_english_counts_deviations_as_english_does(bot: HmsBot, khm: HmsConfig,  # noqa: F811
                                                        first_day: str) -> None:  # noqa: F811
    one = await submit_fire_round(bot, khm, {"exit_signs": "Sign over door 104 is not lit"}, locale="en-US")
    assert "Submitted by Fatima Ali 30 November at 09:00 – 1 deviation" in texts(one)
    assert "deviation(s)" not in texts(one) and "1 deviations" not in texts(one)
    [measure_id] = measure_ids(first_day).values()
    assert f"Measure no. {measure_id} created – owner Jonas Eide, due 30 December 2026" in texts(one)
    again = await say(bot, khm, FATIMA, "start fire round", locale="en-US")
    assert "You submitted this round 30 November at 09:00." in texts(again)


async def test_the_prompt_is_one_plain_sentence(bot: HmsBot, khm: HmsConfig, first_day: str) -> None:  # noqa: F811
    """The planning tick on 10 March 2027 at 09:00 prompts Fatima's fire round: one sentence that does not repeat
    the card's header, with the task in small letters and the floor before the building."""
    async with bot.sessions() as s:
        await plan(s, khm, bot.rounds, oslo(2027, 3, 10, 9))
    [row] = [r for r in outbox_rows(first_day, "prompt") if r.dedupe_key.startswith("fire_round:2027-Q1:hm-1")]
    sentence = "Det er tid for brannvernrunden i 1. etasje, Historisk museum. Frist 31. mars 2027."
    assert json.loads(row.payload)["activity"]["summary"] == sentence
    assert sentence in texts(outbox_card(row))
    assert text_colors(outbox_card(row))[sentence] is None  # plain text: yellow reads as a warning


def test_times_plurals_and_quarters_as_each_language_writes_them() -> None:
    from hms.i18n import format_cycle, format_datetime, format_moment, tn

    moment = dt.datetime(2027, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert format_datetime(moment, "nb-NO") == "10. mars kl. 09.00"
    assert format_datetime(moment, "en-US") == "10 March at 09:00"
    assert format_moment(moment, "nb-NO") == "onsdag 10. mars 2027 kl. 09.00"
    assert format_cycle("2027-Q1", "nb") == "1. kvartal 2027" and format_cycle("2027-Q1", "en") == "Q1 2027"
    assert format_cycle("2027", "nb") == "2027"
    assert [tn("en", "summary.body", n, who="A", when="B") for n in (0, 1, 2)] == [
        "Submitted by A B: no deviations.", "Submitted by A B: 1 deviation.", "Submitted by A B: 2 deviations."]
    assert [tn("nb", "measures.age", n) for n in (0, 1, 5)] == [
        "opprettet i dag", "opprettet i går", "opprettet for 5 dager siden"]
