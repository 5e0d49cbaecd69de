"""Building faults and the adviser's loop (issue 11.5), on SQLite and PostgreSQL, through the paths people use: the
chat's turns and the command line.

- A floor contact's deviation on an item about the building (`building: true` in the checklist) offers EA's Si fra
  link on the card she gets back at once, and she records EA's ticket number there herself: kept on the measure as
  the section leader's measure card keeps it, with who and when.
- The HMSB adviser is told when a section marks its input to the action plan or its annual report done
  (`notify_when_done`), naming the section, who and when.
- "The annual reports presented to LAMU" is a task of the wheel, the adviser's.
- The three-yearly ROS is prompted three months ahead (a per-task prompt lead), the ARK survey when it opens; a lead
  that cannot take effect is refused by check-config with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.turns import HmsBot
from hms.clock import FixedClock
from hms.config import HmsConfig
from hms.wheel import find_occurrence
from storage import db, models as m
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.test_first_day import FIRST_DAY, hms_bot
from tests.test_turns import BOT, TENANT, FakeProactive, FakeTurn, activity

HANNE = "hanne.solberg@khm.uio.no"
FATIMA = "fatima.ali@khm.uio.no"
JONAS = "jonas.eide@khm.uio.no"  # leader of the public programmes section, which the 1st floor belongs to
TOR = "tor.arne.nilsen@khm.uio.no"  # leader of the collection management section
PER = "per.kristian.lie@khm.uio.no"  # the unit head, first of the management group
KEY = b"adviser-loop-test-key"
SI_FRA = "https://www.uio.no/for-ansatte/arbeidsstotte/eiendom/si-fra/"


@pytest.fixture
def first_day(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """An empty database migrated on the morning of 30 November 2026, as the unit's first day; the command line
    signs cards with the bot's key (HMS_CARD_SECRET), as one deployment does."""
    monkeypatch.setenv("HMS_CARD_SECRET", KEY.decode())
    code, _, err = hms_bot(db_url, monkeypatch, capsys, "db", "upgrade", "--now", "2026-11-30T08:00")
    assert code == 0, err
    return db_url


@pytest.fixture
async def bot(first_day: str, khm: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(first_day)
    b = HmsBot(config=khm, engine=engine, clock=FixedClock(FIRST_DAY), tenant_id=TENANT, bot_id=BOT,
               card_key=KEY, proactive=FakeProactive())
    await b.start()
    yield b
    await b.ledger.close()
    await engine.dispose()


_ids = iter(range(1, 100_000))


def turn_for(khm: HmsConfig, email: str, kind: str = "message", locale: str = "nb-NO", **extra: Any) -> FakeTurn:
    """A turn from `email` in their personal chat: known by the Entra id in the file, else by the e-mail Teams gives."""
    person = khm.person(email)
    assert person is not None
    user = f"29:{email.split('@')[0]}"
    return FakeTurn(activity(kind, id=f"a{next(_ids)}", aad=person.entra_object_id, user=user,
                             conversation=f"a:{user}", locale=locale, **extra),
                    members={user: {"email": email, "userPrincipalName": email}})


async def say(bot: HmsBot, khm: HmsConfig, email: str, words: str, locale: str = "nb-NO") -> dict[str, Any]:
    """A chat message from `email`, and the card of the bot's answer."""
    turn = turn_for(khm, email, text=words, locale=locale)
    await bot.on_turn(turn)
    return dict(turn.sent[-1]["attachments"][0]["content"])


async def hms_bot_async(*args: Any) -> tuple[int, str, str]:
    """`hms-bot` from an async test: the command runs its own event loop, so it runs in a thread, as a terminal's."""
    return await asyncio.to_thread(hms_bot, *args)


def execute_actions(card: dict[str, Any], verb: str) -> list[dict[str, Any]]:
    """Every Action.Execute of `verb` anywhere on a card (in show cards and action sets too)."""
    return [n for n in nodes(card) if n.get("type") == "Action.Execute" and n.get("verb") == verb]


async def press(bot: HmsBot, khm: HmsConfig, email: str, action: dict[str, Any], inputs: dict[str, str],
                locale: str = "nb-NO") -> dict[str, Any]:
    """An Action.Execute press (the card's inputs merged into the action's data), and the card that replaces it."""
    turn = turn_for(khm, email, "invoke", locale=locale, name="adaptiveCard/action",
                    value={"action": {"type": "Action.Execute", "verb": action["verb"],
                                      "data": {**action["data"], **inputs}}})
    await bot.on_turn(turn)
    assert turn.invoke is not None and turn.invoke[0] == 200
    return dict(turn.invoke[1]["value"])


def rows(db_url: str, model: type, *where: Any) -> list[Any]:
    engine = db.create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            table = m.table(model)
            return list(conn.execute(sa.select(table).where(*where).order_by(table.c.id)).all())
    finally:
        engine.dispose()


def outbox_card(row: Any) -> dict[str, Any]:
    return dict(json.loads(row.payload)["activity"]["attachments"][0]["content"])


async def submit_fire_round(bot: HmsBot, khm: HmsConfig, deviations: dict[str, str],
                            locale: str = "nb-NO") -> dict[str, Any]:
    """Fatima's fire round on the 1st floor, through the chat, with `deviations` (item key: comment)."""
    card = await say(bot, khm, FATIMA, "start brannvernrunde", locale)
    values: dict[str, str] = {}
    for item in khm.checklist("fire_round").items:
        values[f"a:{item.key}"] = "avvik" if item.key in deviations else "ok"
        if item.key in deviations:
            values[f"c:{item.key}"] = deviations[item.key]
    [next_page] = execute_actions(card, "round.page")
    page2 = await press(bot, khm, FATIMA, next_page, {k: v for k, v in values.items() if k in input_ids(card)}, locale)
    [submit] = execute_actions(page2, "round.submit")
    return await press(bot, khm, FATIMA, submit, {k: v for k, v in values.items() if k in input_ids(page2)}, locale)


# -- building faults -----------------------------------------------------------------------------------------------


async def test_the_floor_contact_reports_a_building_fault_and_records_eas_ticket(bot: HmsBot, khm: HmsConfig,
                                                                               first_day: str) -> None:
    done = await submit_fire_round(bot, khm, {"fire_doors": "Branndør til trapp B lukker ikke",
                                              "storage": "Esker lagret i korridoren ved heisen"})
    shown = texts(done)
    assert "Levert av Fatima Ali 30. november kl. 09.00 – 2 avvik" in shown
    # at once, on the card she gets back: the building fault, the Si fra link, and a field for EA's ticket number
    building = shown.split("Feil på bygget – meldes til EA\n")[1].split("Alle svar")[0]
    assert building.splitlines() == [
        "Disse avvikene er feil på bygget. Meld dem til Eiendomsavdelingen (EA) i Si fra, og registrer "
        "saksnummeret du får, her.",
        "- **Branndører lukker helt og er ikke kilt opp; holdemagneter slipper**: ingen EA-sak registrert ennå",
    ]  # the boxes stored in the corridor are not EA's
    assert [n["url"] for n in nodes(done) if n.get("type") == "Action.OpenUrl"] == [SI_FRA]
    [measure] = rows(first_day, m.Measure, m.table(m.Finding).c.item_key == "fire_doors",
                     m.table(m.Measure).c.finding_id == m.table(m.Finding).c.id)
    [record] = execute_actions(done, "round.ticket")
    assert input_ids(done) == [f"ticket:{measure.id}"]
    events_before = rows(first_day, m.MeasureEvent)

    # nothing written: refused with the reason, nothing stored
    empty = await press(bot, khm, FATIMA, record, {f"ticket:{measure.id}": "   "})
    assert "Skriv saksnummeret du fikk fra EA." in texts(empty) and execute_actions(empty, "round.ticket")
    assert rows(first_day, m.MeasureEvent) == events_before

    # someone who has nothing to do with the floor: refused, nothing stored
    other = await press(bot, khm, TOR, record, {f"ticket:{measure.id}": "EA-1"})
    assert "Saksnummeret registreres av den som meldte feilen" in texts(other)
    assert "Ingenting ble lagret" in texts(other)
    assert rows(first_day, m.Measure, m.table(m.Measure).c.id == measure.id)[0].external_ticket is None

    saved = await press(bot, khm, FATIMA, record, {f"ticket:{measure.id}": " EA-4711 "})
    assert "Saksnummer EA-4711 er lagret." in texts(saved)
    assert ": EA-sak EA-4711" in texts(saved)
    [stored] = rows(first_day, m.Measure, m.table(m.Measure).c.id == measure.id)
    assert stored.external_ticket == "EA-4711" and stored.status == "open"
    new = rows(first_day, m.MeasureEvent)[len(events_before):]
    assert [(e.measure_id, e.status, e.actor_email, e.at, e.note) for e in new] == [
        (measure.id, "open", FATIMA, FIRST_DAY, "ticket EA-4711")]  # on record: who and when
    again = await press(bot, khm, FATIMA, record, {f"ticket:{measure.id}": "EA-4711"})  # a Teams retry
    assert "EA-4711" in texts(again) and len(rows(first_day, m.MeasureEvent)) == len(events_before) + 1

    # asking for the round again gives the same card, with the ticket number and the field to change it
    later = await say(bot, khm, FATIMA, "start brannvernrunde")
    assert "Du leverte runden 30. november kl. 09.00." in texts(later) and ": EA-sak EA-4711" in texts(later)
    assert execute_actions(later, "round.ticket")

    # the section leader's measure card shows the same number (one record, two ways in)
    measure_msgs = rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "measure")
    fire_doors = next(outbox_card(r) for r in measure_msgs if "Branndører" in texts(outbox_card(r)))
    [close] = execute_actions(fire_doors, "measure.close")
    closed = await press(bot, khm, JONAS, close, {"note": "Dørlukker skiftet av EA"})
    assert "Saksnummer hos EA (Si fra): EA-4711" in texts(closed) and "Lukket av Jonas Eide" in texts(closed)

    # once the measure is closed the number stays as it was
    late = await press(bot, khm, FATIMA, record, {f"ticket:{measure.id}": "EA-9999"})
    assert "Tiltaket er lukket, så saksnummeret ble ikke endret." in texts(late)
    assert not execute_actions(late, "round.ticket")
    assert rows(first_day, m.Measure, m.table(m.Measure).c.id == measure.id)[0].external_ticket == "EA-4711"


async def test_the_advisers_copy_names_the_building_faults_without_buttons(bot: HmsBot, khm: HmsConfig,
                                                                            first_day: str) -> None:
    done = await submit_fire_round(bot, khm, {"exit_signs": "Skilt over dør 104 lyser ikke"}, locale="en-US")
    assert "Faults in the building – report them to EA" in texts(done)
    assert "**Exit signs are visible and lit**: no EA ticket recorded yet" in texts(done)
    [doc] = rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "documentation")
    card = outbox_card(doc)
    assert doc.recipient_email == HANNE
    assert "Disse avvikene er feil på bygget og meldes til Eiendomsavdelingen (EA) i Si fra." in texts(card)
    assert not execute_actions(card, "round.ticket") and not [n for n in nodes(card) if n.get("type") ==
                                                                 "Action.OpenUrl"]


async def test_a_round_without_building_faults_has_no_si_fra_block(bot: HmsBot, khm: HmsConfig) -> None:
    done = await submit_fire_round(bot, khm, {"open_flame": "Stearinlys i resepsjonen"})
    assert "1 avvik" in texts(done) and "Feil på bygget" not in texts(done)
    assert not execute_actions(done, "round.ticket")


# -- the adviser is told ------------------------------------------------------------------------------------------


async def test_the_adviser_is_told_when_a_section_marks_its_annual_report_done(
        bot: HmsBot, khm: HmsConfig, first_day: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the first tick reminds the section leaders of the annual report due tomorrow, with the report drafted
    code, _, err = await hms_bot_async(first_day, monkeypatch, capsys, "plan", "--now", "2026-11-30T09:00")
    assert code == 0, err
    [reminder] = rows(first_day, m.OutboxMessage,
                      m.table(m.OutboxMessage).c.dedupe_key == f"annual_report:2026:samling|reminder-1|{TOR}")
    [mark] = execute_actions(outbox_card(reminder), "report.submit")
    done = await press(bot, khm, TOR, mark, {"part:comments": "Skjema sendt"})
    assert "Sendt inn av Tor Arne Nilsen 30. november kl. 09.00." in texts(done) and "Skjema sendt" in texts(done)

    [told] = rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "done_notice")
    assert (told.recipient_email, told.dedupe_key) == (HANNE, f"annual_report:2026:samling|done|{HANNE}")
    shown = texts(outbox_card(told))
    assert ("Seksjon for samlingsforvaltning – HMS-årsrapport: merket utført av Tor Arne Nilsen 30. november kl. 09.00."
            in shown)
    assert "Skjema sendt" in shown
    assert json.loads(told.payload)["target"] == {"kind": "person", "email": HANNE}

    # the adviser sees it waiting for delivery from a terminal, too
    code, out, _ = await hms_bot_async(first_day, monkeypatch, capsys, "outbox", "--status", "pending", "--json")
    assert code == 0
    assert {"kind": "done_notice", "recipient": HANNE, "key": f"annual_report:2026:samling|done|{HANNE}"}.items() <= \
        next(r for r in json.loads(out) if r["kind"] == "done_notice").items()

    # pressed again (a Teams retry): done once, told once
    again = await press(bot, khm, TOR, mark, {"part:comments": "Skjema sendt"})
    assert "Sendt inn av Tor Arne Nilsen" in texts(again)
    assert len(rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "done_notice")) == 1


async def test_the_adviser_is_told_of_the_action_plan_input_but_not_of_what_she_marks_herself(
        khm: HmsConfig, first_day: str) -> None:
    engine = db.create_engine(first_day)
    september = HmsBot(config=khm, engine=engine, clock=FixedClock(oslo(2027, 9, 10, 14, 5)), tenant_id=TENANT,
                       bot_id=BOT, card_key=KEY, proactive=FakeProactive())
    await september.start()
    try:
        rounds = september.rounds
        def card_for(key: str) -> dict[str, Any]:
            occ = find_occurrence(khm, key)
            assert occ is not None
            return rounds.occurrence_card(occ, "nb-NO", nonce="n")

        [mark] = execute_actions(card_for("action_plan_input:2027:samling"), "task.done")
        await press(september, khm, TOR, mark, {})
        [told] = rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "done_notice")
        assert "Seksjon for samlingsforvaltning – Innspill til HMS-handlingsplan: merket utført av Tor Arne Nilsen " \
               "10. september kl. 14.05." in texts(outbox_card(told))

        # the adviser marking a section's report done herself is not told of it; a task that names no one tells no one
        [mark] = execute_actions(card_for("annual_report:2027:adm"), "task.done")
        await press(september, khm, HANNE, mark, {})
        [mark] = execute_actions(card_for("appraisals:2027:samling"), "task.done")
        await press(september, khm, TOR, mark, {})
        assert len(rows(first_day, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "done_notice")) == 1
        assert len(rows(first_day, m.OccurrenceEvent)) == 3
    finally:
        await september.ledger.close()
        await engine.dispose()


# -- the annual reports presented to LAMU ---------------------------------------------------------------------------


async def test_the_annual_reports_presented_to_lamu_are_a_task_of_the_wheel(
        bot: HmsBot, khm: HmsConfig, first_day: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await hms_bot_async(first_day, monkeypatch, capsys, "due", "--json", "--month", "2026-12",
                                       "--now", "2026-11-30T09:00")
    assert code == 0
    [lamu] = [r for r in json.loads(out) if r["task"] == "annual_report_lamu"]
    assert (lamu["occurrence"], lamu["due"]) == ("annual_report_lamu:2026:unit", "2026-12-15")
    assert HANNE in json.dumps(lamu)
    # the adviser is prompted when it opens, the day after the reports were due
    code, out, _ = await hms_bot_async(first_day, monkeypatch, capsys, "plan", "--dry-run", "--json", "--now",
                                       "2026-12-02T09:00")
    planned = {(p["kind"], p["recipient"], p["occurrence"], p["deadline"]) for p in json.loads(out)}
    assert ("prompt", HANNE, "annual_report_lamu:2026:unit", "2026-12-15") in planned
    # and she sees it among her tasks in the chat
    mine = texts(await say(bot, khm, HANNE, "mine oppgaver"))
    assert "Framlegging av HMS-årsrapportene for LAMU" in mine


# -- rare tasks are prompted months ahead -----------------------------------------------------------------------------


def planned(first_day: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], now: str,
            *extra: str) -> set[tuple[str, str, str, str]]:
    code, out, err = hms_bot(first_day, monkeypatch, capsys, "plan", "--dry-run", "--json", "--now", now, *extra)
    assert code == 0, err
    return {(p["kind"], p["recipient"], p["occurrence"], p["deadline"]) for p in json.loads(out) if p["occurrence"]}


def test_the_ros_is_prompted_three_months_ahead(first_day: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ros = ("prompt", PER, "ros:2027:unit", "2027-06-15")
    assert not [p for p in planned(first_day, monkeypatch, capsys, "2027-03-16T09:00") if p[2].startswith("ros:")]
    assert ros in planned(first_day, monkeypatch, capsys, "2027-03-17T09:00")  # 90 days before 15 June, not 21
    # the ARK survey when it opens, three months before it closes
    assert ("prompt", PER, "ark_survey:2029:unit", "2029-04-30") in planned(first_day, monkeypatch, capsys,
                                                                           "2029-02-01T09:00")
    assert rows(first_day, m.OutboxMessage) == []  # dry runs


def test_a_prompt_lead_in_the_organisation_file_moves_the_prompt(first_day: str, khm_text: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(khm_text.replace("reminders: {first_prompt_days_before: 90}",
                                     "reminders: {first_prompt_days_before: 60}", 1), encoding="utf-8")
    assert not [p for p in planned(first_day, monkeypatch, capsys, "2027-03-17T09:00", "--config", str(path))
                if p[2].startswith("ros:")]
    assert ("prompt", PER, "ros:2027:unit", "2027-06-15") in planned(first_day, monkeypatch, capsys,
                                                                     "2027-04-16T09:00", "--config", str(path))


@pytest.mark.parametrize(("old", "new", "message"), [
    ("reminders: {first_prompt_days_before: 90}", "reminders: {first_prompt_days_before: 120}",
     "tasks[5].reminders.first_prompt_days_before: a prompt 120 days before the deadline would come before the "
     "task opens (106 days before its deadline at the least)"),
    ("closes.\n    reminders: {prompt_when_window_opens: true}", "closes.\n    reminders: {prompt_when_window_opens: "
     "true, first_prompt_days_before: 30}",
     "set either first_prompt_days_before or prompt_when_window_opens, not both"),
    ("reminders: {enabled: false}", "reminders: {enabled: false, first_prompt_days_before: 30}",
     "a task with recurrence 'event' has no deadlines to prompt ahead of"),
    ("reminders: {first_prompt_days_before: 90}", "reminders: {first_prompt_days_before: 400}",
     "less than or equal to 365"),
    ("    notify_when_done: [hmsb_adviser]\n    recurrence: {kind: yearly, due: \"12-01\"",
     "    notify_when_done: [floor_contact]\n    recurrence: {kind: yearly, due: \"12-01\"",
     "role 'floor_contact' cannot be resolved for a task of scope 'section'"),
    ("    notify_when_done: [hmsb_adviser]\n    recurrence: {kind: yearly, due: \"12-01\"",
     "    notify_when_done: [janitor]\n    recurrence: {kind: yearly, due: \"12-01\"", "unknown role 'janitor'"),
])
def test_check_config_explains_a_lead_or_a_role_that_cannot_work(khm_text: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str], old: str,
                                                                 new: str, message: str) -> None:
    assert khm_text.count(old) == 1
    path = tmp_path / "org.yaml"
    path.write_text(khm_text.replace(old, new), encoding="utf-8")
    code, out, err = hms_bot("sqlite:///unused", monkeypatch, capsys, "check-config", str(path))
    assert code == 2 and message in out + err and f"{path}:" in out + err, out + err
