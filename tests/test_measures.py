"""Measures from every source, followed to the end (issue 11.3), on SQLite and PostgreSQL, through the paths people
use: chat turns (the bot's turn handler with our own TurnPort fake), the command line, and the planning tick.

Before this change a measure could only come from a round's deviation, had no history of owners or deadlines, no
evidence, was escalated no further than the adviser, and the floor contact who reported the deviation never learnt
what became of it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from bot.turns import HmsBot
from cli.main import main
from hms.clock import FixedClock
from hms.config import HmsConfig
from storage import db, models as m
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.test_turns import BOT, TENANT, FakeProactive, FakeTurn, activity
from usecases.ports import DeliveryError, FileTooLarge

HANNE = "hanne.solberg@khm.uio.no"
FATIMA = "fatima.ali@khm.uio.no"
JONAS = "jonas.eide@khm.uio.no"
TOR = "tor.arne.nilsen@khm.uio.no"
OLA = "ola.strand@khm.uio.no"
PER = "per.kristian.lie@khm.uio.no"
NOW = oslo(2026, 12, 1, 10)  # a Tuesday, the day after the unit started using the bot
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000
AADS = {HANNE: "0a1b2c3d-0001-4000-8000-000000000001", FATIMA: "0a1b2c3d-000d-4000-8000-00000000000d",
        TOR: "0a1b2c3d-0004-4000-8000-000000000004"}


class FileTurn(FakeTurn):
    """A turn whose files come from a dict (url -> bytes); a missing url fails like an unreachable download."""

    def __init__(self, act: dict[str, Any], files: dict[str, bytes], **kwargs: Any):
        super().__init__(act, **kwargs)
        self.files = files
        self.downloads: list[str] = []

    async def download(self, url: str, max_bytes: int) -> bytes:
        self.downloads.append(url)
        if url not in self.files:
            raise DeliveryError(404, "Not Found")
        if len(self.files[url]) > max_bytes:
            raise FileTooLarge(url)
        return self.files[url]


def hms_bot(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    """`hms-bot ARGS` on the test's database, as someone at a terminal runs it."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def rows(db_url: str, model: Any, *where: Any) -> list[Any]:
    engine = db.create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(m.table(model)).where(*where)))
    finally:
        engine.dispose()


@pytest.fixture
def started(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """The database was first migrated on Monday 30 November 2026: tracking starts that day."""
    assert hms_bot(db_url, monkeypatch, capsys, "db", "upgrade", "--now", "2026-11-30T08:00")[0] == 0
    return db_url


@pytest.fixture
async def bot(started: str, khm: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(started)
    b = HmsBot(config=khm, engine=engine, clock=FixedClock(NOW), tenant_id=TENANT, bot_id=BOT,
               card_key=b"test-key", proactive=FakeProactive())
    await b.start()
    yield b
    await b.ledger.close()
    await engine.dispose()


_ids = iter(range(1, 100_000))


def _turn(email: str, kind: str = "message", files: dict[str, bytes] | None = None, **extra: Any) -> FileTurn:
    user = "29:" + email.split("@")[0]
    member = {user: {"id": user, "email": email, "userPrincipalName": email}}
    return FileTurn(activity(kind, id=f"x{next(_ids)}", aad=AADS.get(email), user=user, conversation=f"a:{user}",
                             **extra), files or {}, members=member)


async def say(bot: HmsBot, email: str, text: str, **extra: Any) -> FileTurn:
    turn = _turn(email, text=text, **extra)
    await bot.on_turn(turn)
    return turn


async def ask(bot: HmsBot, email: str, text: str) -> dict[str, Any]:
    """A chat message and the bot's last answer (a greeting may come first in a new chat)."""
    return (await say(bot, email, text)).sent[-1]


async def press(bot: HmsBot, email: str, card: dict[str, Any], verb: str, inputs: dict[str, str]) -> dict[str, Any]:
    """An Action.Execute press on `card` (found in its show-cards too), and the card the bot answers with."""
    content = card["attachments"][0]["content"] if "attachments" in card else card
    found = [a for a in content.get("actions", []) if a.get("verb") == verb]
    found += [b for a in content.get("actions", []) if a.get("type") == "Action.ShowCard"
              for b in a["card"]["actions"] if b.get("verb") == verb]
    turn = _turn(email, "invoke", name="adaptiveCard/action",
                 value={"action": {"type": "Action.Execute", "verb": verb, "data": {**found[0]["data"], **inputs}}})
    await bot.on_turn(turn)
    assert turn.invoke is not None and turn.invoke[0] == 200
    return {"attachments": [{"content": turn.invoke[1]["value"]}]}


FORM = {"source": "ark", "description": "Støy i lesesalen: lydabsorbenter i taket", "owner": TOR,
        "deadline": "2027-02-15", "section": "samling", "cim": ""}


async def created_in_chat(bot: HmsBot, by: str = HANNE, **values: str) -> tuple[dict[str, Any], dict[str, Any]]:
    form = await ask(bot, by, "nytt tiltak")
    return form, await press(bot, by, form, "measure.create", {**FORM, **values})


# -- creating a measure in the chat ------------------------------------------------------------------------------


async def test_new_measure_in_the_chat_from_ark(bot: HmsBot, started: str) -> None:
    form, card = await created_in_chat(bot)
    assert "Nytt tiltak" in texts(form)
    assert input_ids(form) == ["source", "cim", "description", "owner", "deadline", "section"]
    sources = next(i for i in form["attachments"][0]["content"]["body"] if i.get("id") == "source")
    assert [c["value"] for c in sources["choices"]] == ["vernerunde", "brannvernrunde", "ark", "ros", "audit", "lamu",
                                                        "incident", "other"]
    assert "Tiltak nr. 1 er opprettet – ansvarlig Tor Arne Nilsen, frist 15. februar 2027." in texts(card)
    [measure] = rows(started, m.Measure)
    assert (measure.source, measure.owner_email, measure.deadline, measure.section_key, measure.created_by,
            measure.finding_id, measure.status) == ("ark", TOR, dt.date(2027, 2, 15), "samling", HANNE, None, "open")
    # the owner gets the card in his chat
    outbox = m.table(m.OutboxMessage).c
    [sent] = rows(started, m.OutboxMessage, outbox.dedupe_key == f"measure:{measure.id}|created|{TOR}")
    assert "Hanne Solberg har opprettet et tiltak med deg som ansvarlig" in sent.payload
    # and it is among the open measures, for the adviser and for the section leader, not for a floor contact
    assert "Nr. 1: Støy i lesesalen" in texts(await ask(bot, HANNE, "åpne tiltak"))
    assert "Nr. 1: Støy i lesesalen" in texts(await ask(bot, TOR, "åpne tiltak"))
    assert "Ingen åpne tiltak" in texts(await ask(bot, FATIMA, "åpne tiltak"))
    # the same form pressed again (a double click) creates nothing more
    again = await press(bot, HANNE, form, "measure.create", FORM)
    assert "allerede sendt: tiltak nr. 1" in texts(again) and len(rows(started, m.Measure)) == 1


async def test_new_measure_in_english(bot: HmsBot, started: str) -> None:
    form = await ask(bot, HANNE, "new measure")
    assert "New measure" in texts(form) and "Its owner is reminded until it is closed" in texts(form)
    assert [n.get("label") for n in nodes(form) if n.get("id") == "source"] == ["Source"]


@pytest.mark.parametrize(("values", "says"), [
    ({"description": "  "}, "Beskriv tiltaket."),
    ({"source": "incident", "cim": ""}, "trenger CIM-saksnummeret"),
    ({"source": "incident", "cim": "Ansatt falt i trappen og slo hodet"}, "trenger CIM-saksnummeret"),
    ({"owner": "someone@else.example"}, "someone@else.example står ikke i HMS-oversikten"),
    ({"deadline": "2026-11-01"}, "Fristen må være en dato fra i dag"),
    ({"deadline": "neste uke"}, "Fristen må være en dato fra i dag"),
    ({"section": "kantina"}, "Velg en seksjon fra listen."),
    ({"source": "rykte"}, "Velg en kilde fra listen."),
])
async def test_a_wrong_form_comes_back_filled_in_and_stores_nothing(values: dict[str, str], says: str, bot: HmsBot,
                                                                    started: str) -> None:
    _, card = await created_in_chat(bot, **values)
    assert says in texts(card) and "Ingenting ble lagret" in texts(card)
    body = card["attachments"][0]["content"]["body"]
    kept = next(i for i in body if i.get("id") == "owner")
    assert kept.get("value") == values.get("owner", TOR)  # what was filled in is kept
    assert rows(started, m.Measure) == [] and rows(started, m.MeasureEvent) == []


async def test_an_incident_is_kept_by_its_cim_reference_only(bot: HmsBot, started: str) -> None:
    _, card = await created_in_chat(bot, source="incident", cim="2026-4711",
                                    description="Sklisikre trinn i trapp B")
    assert "CIM-sak: 2026-4711" in texts(card) and "uønsket hendelse (CIM)" in texts(card)
    [measure] = rows(started, m.Measure)
    assert (measure.source, measure.cim_ref) == ("incident", "2026-4711")


# -- following it up ---------------------------------------------------------------------------------------------


async def test_owner_section_leader_and_adviser_follow_it_up_others_are_refused(bot: HmsBot, started: str) -> None:
    _, card = await created_in_chat(bot)
    # a floor contact may not change it
    refused = await press(bot, FATIMA, card, "measure.deadline", {"deadline": "2027-03-01", "reason": "Vil"})
    assert "Bare ansvarlig (Tor Arne Nilsen), seksjonslederen og HMSB-rådgiveren" in texts(refused)
    # a reason is required
    no_reason = await press(bot, TOR, card, "measure.deadline", {"deadline": "2027-03-01", "reason": " "})
    assert "Skriv en begrunnelse." in texts(no_reason)
    assert rows(started, m.Measure)[0].deadline == dt.date(2027, 2, 15)
    # the owner moves the deadline, the adviser gives it to Ola, who adds evidence and closes it
    moved = await press(bot, TOR, card, "measure.deadline", {"deadline": "2027-03-01", "reason": "Leveranse i mars"})
    assert "Fristen er flyttet til 1. mars 2027." in texts(moved)
    assert "flyttet fristen fra 15. februar 2027 til 1. mars 2027 – Leveranse i mars" in texts(moved)
    given = await press(bot, HANNE, moved, "measure.reassign", {"owner": OLA, "reason": "Ola har ansvar for lokalet"})
    assert "Tiltaket er gitt til Ola Strand." in texts(given)
    evidence = await press(bot, OLA, given, "measure.evidence", {"note": "Bestilt hos EA", "link": "ftp://x"})
    assert "Lenken må begynne med https://" in texts(evidence)
    evidence = await press(bot, OLA, given, "measure.evidence",
                           {"note": "Bestilt hos EA", "link": "https://uio.no/bestilling/42"})
    assert "Dokumentasjonen er lagret med tiltaket." in texts(evidence)
    assert "https://uio.no/bestilling/42" in texts(evidence)
    # Tor Arne is the section leader and may still act; Fatima may not close it
    assert "Bare ansvarlig (Ola Strand)" in texts(await press(bot, FATIMA, evidence, "measure.close", {"note": "x"}))
    closed = await press(bot, OLA, evidence, "measure.close", {"note": "Absorbenter montert 20. februar"})
    assert "Lukket av Ola Strand" in texts(closed) and "actions" not in closed["attachments"][0]["content"]
    history = [(e.kind, e.actor_email, e.old_value, e.new_value, e.note) for e in rows(started, m.MeasureEvent)]
    assert history == [
        ("created", HANNE, None, history[0][3], "source ark"),
        ("deadline", TOR, "2027-02-15", "2027-03-01", "Leveranse i mars"),
        ("reassigned", HANNE, TOR, OLA, "Ola har ansvar for lokalet"),
        ("evidence", OLA, None, "https://uio.no/bestilling/42", None),
        ("closed", OLA, None, None, "Absorbenter montert 20. februar")]
    assert [(e.kind, e.url, e.note) for e in rows(started, m.MeasureEvidence)] == [
        ("link", "https://uio.no/bestilling/42", "Bestilt hos EA")]
    again = await press(bot, HANNE, card, "measure.close", {"note": "igjen"})
    assert "Lukket av Ola Strand" in texts(again) and len(rows(started, m.MeasureEvent)) == 5


async def test_a_photo_sent_in_the_chat_is_stored_with_the_measure(bot: HmsBot, started: str) -> None:
    await created_in_chat(bot)
    await created_in_chat(bot, owner=TOR, description="Hyllene i magasinet forankres")
    upload = {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": "lesesal.jpg",
              "contentUrl": "https://uio.sharepoint.example/lesesal.jpg",
              "content": {"downloadUrl": "https://download.example/lesesal.jpg", "fileType": "jpg"}}
    files = {"https://download.example/lesesal.jpg": JPEG}
    # two open measures and no number: which one?
    turn = _turn(TOR, text="", attachments=[upload], files=files)
    await bot.on_turn(turn)
    assert "Hvilket tiltak gjelder filen?" in texts(turn.sent[-1]) and "nr. 1" in texts(turn.sent[-1])
    assert rows(started, m.MeasureEvidence) == [] and turn.downloads == []
    # with the number
    turn = _turn(TOR, text="bevis tiltak 1", attachments=[upload], files=files)
    await bot.on_turn(turn)
    assert "lesesal.jpg er lagret som dokumentasjon på tiltak nr. 1" in texts(turn.sent[-1])
    [stored] = rows(started, m.MeasureEvidence)
    assert (stored.measure_id, stored.kind, stored.filename, stored.content_type, stored.size, bytes(stored.data)) == (
        1, "file", "lesesal.jpg", "image/jpeg", len(JPEG), JPEG)
    # a photo pasted into the message (Teams sends it as an inline image held by the connector)
    inline = {"contentType": "image/*", "contentUrl": "https://smba.example/emea/v3/attachments/a1/views/original"}
    turn = _turn(TOR, text="tiltak 2", attachments=[inline],
                 files={inline["contentUrl"]: b"\x89PNG\r\n\x1a\n" + b"\x00" * 100})
    await bot.on_turn(turn)
    assert "photo er lagret som dokumentasjon på tiltak nr. 2" in texts(turn.sent[-1])


@pytest.mark.parametrize(("attachment", "data", "says"), [
    ({"name": "notat.docx", "fileType": "docx"}, b"PK\x03\x04", "ikke .docx"),
    ({"name": "stor.jpg", "fileType": "jpg"}, b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024),
     "stor.jpg er for stor: høyst 5 MB"),
    ({"name": "falsk.jpg", "fileType": "jpg"}, b"<html>not a photo</html>", "ikke image/jpeg"),
    ({"name": "borte.jpg", "fileType": "jpg"}, None, "fikk ikke hentet filen"),
])
async def test_a_file_that_cannot_be_evidence_gets_a_clear_answer(attachment: dict[str, str], data: bytes | None,
                                                                  says: str, bot: HmsBot, started: str) -> None:
    await created_in_chat(bot)
    url = f"https://download.example/{attachment['name']}"
    upload = {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": attachment["name"],
              "content": {"downloadUrl": url, "fileType": attachment["fileType"]}}
    turn = _turn(TOR, text="", attachments=[upload], files={url: data} if data is not None else {})
    await bot.on_turn(turn)
    assert says in texts(turn.sent[-1]) and "Ingenting ble lagret" in texts(turn.sent[-1])
    assert rows(started, m.MeasureEvidence) == []


async def test_a_file_from_someone_who_does_not_follow_the_measure_is_refused(bot: HmsBot, started: str) -> None:
    await created_in_chat(bot)
    upload = {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": "x.jpg",
              "content": {"downloadUrl": "https://download.example/x.jpg", "fileType": "jpg"}}
    turn = _turn(FATIMA, text="bevis tiltak 1", attachments=[upload], files={"https://download.example/x.jpg": JPEG})
    await bot.on_turn(turn)
    assert "Bare ansvarlig (Tor Arne Nilsen)" in texts(turn.sent[-1]) and turn.downloads == []
    turn = _turn(FATIMA, text="", attachments=[upload], files={})
    await bot.on_turn(turn)
    assert "Du har ingen åpne tiltak" in texts(turn.sent[-1])


# -- the floor contact sees what became of her deviation --------------------------------------------------------


async def test_the_floor_contact_sees_the_measure_and_is_told_when_it_is_closed(bot: HmsBot, khm: HmsConfig,
                                                                                started: str) -> None:
    start = await ask(bot, FATIMA, "start brannvernrunde")
    items = [i.key for i in khm.checklist("fire_round").items]
    answers = {f"a:{k}": "ok" for k in items} | {"a:fire_doors": "avvik", "c:fire_doors": "Branndør står på kile"}
    page2 = await press(bot, FATIMA, start, "round.page", {k: v for k, v in answers.items() if k[2:] in items[:9]})
    done = await press(bot, FATIMA, page2, "round.submit", {k: v for k, v in answers.items() if k[2:] in items[9:]})
    assert "Branndør står på kile" in texts(done)
    assert "Tiltak nr. 1 opprettet – ansvarlig Jonas Eide, frist 31. desember 2026" in texts(done)
    [measure] = rows(started, m.Measure)
    assert (measure.source, measure.section_key, measure.created_by) == ("round", "publikum", FATIMA)
    # Jonas moves the deadline; her card shows the new one
    card = json.loads(rows(started, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "measure")[0].payload)
    card = card["activity"]
    await press(bot, JONAS, card, "measure.deadline", {"deadline": "2027-01-20", "reason": "EA kommer i januar"})
    again = await ask(bot, FATIMA, "start brannvernrunde")
    assert "Tiltak nr. 1 opprettet – ansvarlig Jonas Eide, frist 20. januar 2027" in texts(again)
    # he closes it: she is told
    await press(bot, JONAS, card, "measure.close", {"note": "Kilen fjernet, dørpumpe justert"})
    [told] = rows(started, m.OutboxMessage, m.table(m.OutboxMessage).c.recipient_email == FATIMA)
    assert told.kind == "measure_closed" and told.dedupe_key == f"measure:{measure.id}|closed|{FATIMA}"
    assert "Avviket du meldte er fulgt opp: tiltaket er lukket av Jonas Eide" in told.payload
    assert "Kilen fjernet, dørpumpe justert" in told.payload
    assert "Tiltak nr. 1 lukket – ansvarlig Jonas Eide" in texts(await ask(bot, FATIMA, "start brannvernrunde"))


# -- reminders and escalation until it is closed -----------------------------------------------------------------


def planned(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            at: str) -> list[dict[str, Any]]:
    """`hms-bot plan --now AT --json`: the measure messages one tick planned (and wrote)."""
    code, out, err = hms_bot(db_url, monkeypatch, capsys, "plan", "--now", at, "--json")
    assert code == 0, err
    return [p for p in json.loads(out) if p["measure"] is not None]


def test_reminders_go_on_until_closed_and_follow_a_moved_deadline(started: str, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(started, monkeypatch, capsys, "measure", "add", "--source", "lamu", "--description",
                             "Rutine for alenearbeid i magasinet", "--owner", OLA, "--deadline", "2027-01-15",
                             "--section", "samling", "--now", "2026-12-01T10:00", "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == 1

    def steps(at: str) -> list[tuple[str, str]]:
        return [(p["key"].split("|")[1], p["recipient"]) for p in planned(started, monkeypatch, capsys, at)]

    assert steps("2026-12-01T09:00") == []
    assert steps("2027-01-06T09:00") == [("reminder-7", OLA)]  # 7 working days before 15 January
    assert steps("2027-01-06T15:00") == []  # planned once
    assert steps("2027-01-14T09:00") == [("reminder-1", OLA)]
    assert steps("2027-01-16T09:00") == []  # a Saturday: nothing goes out on a day off
    assert steps("2027-01-18T09:00") == [("overdue", OLA)]
    assert steps("2027-01-21T09:00") == [("escalation-section_leader", TOR)]  # 3 working days after
    assert steps("2027-02-01T09:00") == [("escalation-hmsb_adviser", HANNE)]  # 10 working days after
    assert steps("2027-02-12T08:59") == []
    assert steps("2027-02-15T09:00") == [("escalation-unit_head", PER)]  # 20 working days after
    assert steps("2027-03-15T09:00") == []  # each once
    # the section leader moves the deadline: the chain starts again for the new one
    code, out, err = hms_bot(started, monkeypatch, capsys, "measure", "deadline", "1", "--date", "2027-04-30",
                             "--reason", "Venter på budsjett", "--by", TOR, "--now", "2027-03-15T10:00")
    assert code == 0, err
    assert steps("2027-04-21T09:00") == [("reminder-7", OLA)]
    assert planned(started, monkeypatch, capsys, "2027-04-21T09:00") == []
    # closed: nothing more, and what was waiting is cancelled
    code, out, err = hms_bot(started, monkeypatch, capsys, "measure", "close", "1", "--note", "Rutine vedtatt i LAMU",
                             "--by", OLA, "--now", "2027-04-22T10:00")
    assert code == 0, err
    assert rows(started, m.OutboxMessage, m.table(m.OutboxMessage).c.status.in_(["pending", "retry"]),
                m.table(m.OutboxMessage).c.dedupe_key.startswith("measure:1@")) == []
    assert steps("2027-05-03T09:00") == []


def test_nothing_due_before_tracking_started_is_reminded(started: str, khm: HmsConfig, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A measure put on record with a deadline before the first day is not chased (issue 11.1's rule)."""
    engine = db.create_sync_engine(started)
    with engine.begin() as conn:
        conn.execute(sa.insert(m.table(m.Measure)).values(
            source="audit", description="Gammelt avvik fra tilsyn", section_key="adm", owner_email=JONAS,
            deadline=dt.date(2026, 11, 1), status="open", created_at=oslo(2026, 10, 1, 9)))
    engine.dispose()
    assert planned(started, monkeypatch, capsys, "2026-12-07T09:00") == []


# -- the command line --------------------------------------------------------------------------------------------


def test_the_command_line_follows_a_measure(started: str, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        return hms_bot(started, monkeypatch, capsys, "measure", *args)

    code, out, err = run("add", "--source", "incident", "--description", "Sklisikring i trapp B", "--owner", JONAS,
                         "--deadline", "2027-01-31", "--section", "publikum", "--now", "2026-12-01T10:00")
    assert code == 2 and "needs the CIM case number" in err
    code, out, err = run("add", "--source", "incident", "--cim", "2026-88", "--description", "Sklisikring i trapp B",
                         "--owner", JONAS, "--deadline", "2027-01-31", "--section", "publikum",
                         "--now", "2026-12-01T10:00")
    assert code == 0, err
    assert "measure 1 (open): Sklisikring i trapp B" in out and "CIM 2026-88" in out
    code, out, _ = run("list")
    assert code == 0 and "2027-01-31  jonas.eide@khm.uio.no" in out
    code, _, err = run("reassign", "1", "--to", FATIMA, "--reason", "Hun vet", "--by", FATIMA,
                       "--now", "2026-12-02T10:00")
    assert code == 2 and "Only the owner (Jonas Eide), the section leader and the HMS adviser" in err
    code, out, err = run("reassign", "1", "--to", "eirik.haugen@khm.uio.no", "--reason", "Eirik har trappen",
                         "--by", JONAS, "--now", "2026-12-02T10:00")
    assert code == 0, err
    photo = tmp_path / "trapp.jpg"
    photo.write_bytes(JPEG)
    code, out, err = run("evidence", "1", "--file", str(photo), "--by", "eirik.haugen@khm.uio.no",
                         "--now", "2026-12-03T10:00")
    assert code == 0 and "trapp.jpg (image/jpeg" in out, err
    text = tmp_path / "notat.txt"
    text.write_text("ikke et bilde")
    code, _, err = run("evidence", "1", "--file", str(text), "--now", "2026-12-03T10:00")
    assert code == 2 and "I accept photos" in err
    code, out, err = run("close", "1", "--note", "Sklilister montert", "--by", "eirik.haugen@khm.uio.no",
                         "--now", "2026-12-04T10:00", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "closed" and record["owner"] == "eirik.haugen@khm.uio.no"
    assert [(h["kind"], h["by"]) for h in record["history"]] == [
        ("created", HANNE), ("reassigned", JONAS), ("evidence", "eirik.haugen@khm.uio.no"),
        ("closed", "eirik.haugen@khm.uio.no")]
    assert record["history"][1]["note"] == "Eirik har trappen"
    code, _, err = run("deadline", "1", "--date", "2027-02-01", "--reason", "x", "--now", "2026-12-05T10:00")
    assert code == 2 and "closed already" in err
    code, out, _ = run("list")
    assert "no open measures" in out
    code, out, _ = run("list", "--all", "--json")
    assert [r["status"] for r in json.loads(out)] == ["closed"]
    code, _, err = run("show", "99")
    assert code == 2 and "cannot find measure no. 99" in err
    # the export for an inspector holds it, with its history and evidence (not the photo's bytes)
    code, out, err = hms_bot(started, monkeypatch, capsys, "export", "--from", "2027-01-01", "--to", "2027-12-31",
                             "--out", str(tmp_path / "export.json"))
    assert code == 0, err
    [exported] = json.loads((tmp_path / "export.json").read_text())["measures"]
    assert exported["cim_ref"] == "2026-88" and exported["evidence"][0]["file"] == "trapp.jpg"


async def test_a_measure_added_on_the_command_line_reaches_its_owner_with_a_card_that_works(
        bot: HmsBot, started: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HMS_CARD_SECRET", "test-key")  # the bot's card key (the fixture's)
    code, _, err = await asyncio.to_thread(
        hms_bot, started, monkeypatch, capsys, "measure", "add", "--source", "ros", "--description",
        "Reservestrøm til magasinet", "--owner", TOR, "--deadline", "2027-03-31", "--section", "samling",
        "--now", "2026-12-01T10:00")
    assert code == 0, err
    [sent] = rows(started, m.OutboxMessage, m.table(m.OutboxMessage).c.dedupe_key == f"measure:1|created|{TOR}")
    card = json.loads(sent.payload)["activity"]
    assert "Hanne Solberg har opprettet et tiltak med deg som ansvarlig" in texts(card)
    saved = await press(bot, TOR, card, "measure.evidence", {"note": "Tilbud innhentet"})
    assert "Dokumentasjonen er lagret med tiltaket." in texts(saved)


# -- the migration -------------------------------------------------------------------------------------------------


def test_migration_0010_keeps_measures_from_rounds_and_fills_in_their_context(db_url: str, khm: HmsConfig) -> None:
    config = db.alembic_config(db_url)
    command.downgrade(config, "0009")
    engine = db.create_sync_engine(db_url)
    try:
        with engine.begin() as conn:
            occ = conn.execute(sa.insert(m.table(m.Occurrence)).values(
                key="fire_round:2027-Q1:hm-1", task_key="fire_round", cycle="2027-Q1", section_key="publikum",
                floor_key="hm-1", window_start=dt.date(2027, 1, 1), due=dt.date(2027, 3, 31),
                created_at=oslo(2027, 3, 1, 9)).returning(m.table(m.Occurrence).c.id)).scalar()
            finding = conn.execute(sa.insert(m.table(m.Finding)).values(
                occurrence_id=occ, item_key="fire_doors", description="Dør på kile", created_by=FATIMA,
                created_at=oslo(2027, 3, 1, 8)).returning(m.table(m.Finding).c.id)).scalar()
            conn.execute(sa.text("INSERT INTO measure (finding_id, owner_email, deadline, status, created_at) "
                                 "VALUES (:f, :o, :d, 'open', :at)"),
                         {"f": finding, "o": JONAS, "d": dt.date(2027, 3, 31), "at": oslo(2027, 3, 1, 8)})
        db.upgrade(db_url)
        with engine.connect() as conn:
            [measure] = conn.execute(sa.select(m.table(m.Measure))).all()
        assert (measure.source, measure.description, measure.section_key, measure.created_by, measure.cim_ref) == (
            "round", "Dør på kile", "publikum", FATIMA, None)
        with engine.begin() as conn:
            conn.execute(sa.insert(m.table(m.Measure)).values(source="ark", description="Uten funn", owner_email=TOR,
                                                              deadline=dt.date(2027, 5, 1), status="open",
                                                              created_at=oslo(2027, 3, 2, 9)))
        command.downgrade(config, "0009")  # a measure without a finding cannot go back; the round's stays
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT finding_id FROM measure")).scalars().all() == [finding]
    finally:
        engine.dispose()
        db.upgrade(db_url)


# -- through the door: the real gateway fetches the file ----------------------------------------------------------


async def test_through_the_door_a_pasted_photo_is_fetched_with_the_bots_token_an_upload_without(
        db_path: Path, khm: HmsConfig) -> None:
    """POST /api/messages with a real token; the photo pasted into the chat is held by the connector (the bot's
    token goes along), a file Teams uploaded has its own download URL (no token goes to it)."""
    from tests.fakes.bf_peer import BfPeer
    from tests.test_door import APP_ID, activity as door_activity, auth_settings, door, post
    from usecases.measures import add_measure

    url = f"sqlite:///{db_path}"
    await add_measure(url, khm, {**FORM, "owner": FATIMA, "section": "publikum"}, HANNE, NOW, b"test-key")
    with BfPeer() as peer:
        peer.files["/v3/attachments/a1/views/original"] = JPEG
        peer.files["/files/skilt.pdf"] = b"%PDF-1.7\n" + b"0" * 500
        async with door(auth_settings(peer, db_path), khm) as client:
            pasted = door_activity(peer, id="f-1", text="bevis tiltak 1", attachments=[
                {"contentType": "image/*", "contentUrl": f"{peer.base_url}/v3/attachments/a1/views/original"}])
            assert (await post(client, pasted, peer.mint(APP_ID))).status == 200
            uploaded = door_activity(peer, id="f-2", text="", attachments=[
                {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": "skilt.pdf",
                 "content": {"downloadUrl": f"{peer.base_url}/files/skilt.pdf", "fileType": "pdf"}}])
            assert (await post(client, uploaded, peer.mint(APP_ID))).status == 200
        replies = [texts(c.body) for c in peer.sent_activities()]
    assert any("photo er lagret som dokumentasjon på tiltak nr. 1" in r for r in replies), replies
    assert any("skilt.pdf er lagret som dokumentasjon på tiltak nr. 1" in r for r in replies), replies
    assert peer.file_requests == [("/v3/attachments/a1/views/original", "Bearer peer-token-1"),
                                  ("/files/skilt.pdf", None)]
    stored = rows(url, m.MeasureEvidence)
    assert [(e.filename, e.content_type, e.added_by) for e in stored] == [
        ("photo", "image/jpeg", FATIMA), ("skilt.pdf", "application/pdf", FATIMA)]
