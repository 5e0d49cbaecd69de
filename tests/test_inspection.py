"""The inspection pack (`hms-bot export`), on SQLite and PostgreSQL: a known year is put on record through the paths
people use (a fire round in the chat with a deviation, work registered afterwards on time and late, measures from
other sources followed through every state), and each format is opened with the library that reads it."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from hms.config import HmsConfig
from storage import db, repo
from tests.conftest import oslo
from tests.test_measures import hms_bot as cli  # `hms-bot ARGS` on the test's database
from usecases.answers import Answerer
from usecases.cardactions import CardActions
from usecases.rounds import Rounds

FATIMA = "fatima.ali@khm.uio.no"
JONAS = "jonas.eide@khm.uio.no"
HANNE = "hanne.solberg@khm.uio.no"  # the HMSB adviser
NOW = "2027-07-15T10:00"
YEAR = ("--from", "2027-01-01", "--to", "2027-12-31")


async def fire_round_in_chat(db_url: str, khm: HmsConfig, at: dt.datetime, deviation: str) -> None:
    """Fatima does the first quarter's fire round on her floor in the chat, one deviation on the fire doors."""
    rounds = Rounds(khm, b"k")
    verbs = CardActions(b"k", rounds.router, rounds.measures.router)
    engine = db.create_engine(db_url)
    async with db.session_factory(engine)() as s:
        await repo.import_org(s, khm, at)
        card = (await Answerer(khm, rounds).answer(s, "start brannvernrunde", FATIMA, at, "nb-NO")
                ).activity["attachments"][0]["content"]
        keys = [i.key for i in khm.checklist("fire_round").items]  # type: ignore[union-attr]
        values = {f"a:{k}": "ok" for k in keys} | {"a:fire_doors": "avvik", "c:fire_doors": deviation}

        def press(card: dict[str, Any], verb: str, page: list[str]) -> dict[str, Any]:
            action = next(a for a in card["actions"] if a.get("verb") == verb)
            data = {**action["data"], **{k: v for k, v in values.items() if k[2:] in page}}
            return {"action": {"type": "Action.Execute", "verb": verb, "data": data}}

        page2 = (await verbs.handle(s, FATIMA, press(card, "round.page", keys[:9]), at, "nb-NO")).card
        done = await verbs.handle(s, FATIMA, press(page2, "round.submit", keys[9:]), at, "nb-NO")
        assert done.outcome == "submitted"
    await engine.dispose()


@pytest.fixture
def year(db_url: str, khm: HmsConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """2027 on record, as of 15 July 2027 (tracking started 30 November 2026)."""
    def run(*args: str) -> str:
        code, out, err = cli(db_url, monkeypatch, capsys, *args)
        assert code == 0, err
        return out

    run("db", "upgrade", "--now", "2026-11-30T08:00")
    asyncio.run(fire_round_in_chat(db_url, khm, oslo(2027, 3, 10, 9, 12), "Branndør til trapp B står på kile"))
    # registered afterwards: the 2nd floor's first quarter on time, the basement's five days late
    run("done", "fire_round", "--floor", "hm-2", "--date", "2027-03-20", "--by", JONAS, "--now", "2027-03-21T10:00")
    run("done", "fire_round", "--floor", "hm-u", "--date", "2027-04-05", "--cycle", "2027-Q1",
        "--now", "2027-04-05T12:00")
    # measures in every state: the deviation's (open, then given to Hanne with a new deadline and evidence), an
    # incident's by its CIM number (closed), an ARK measure long overdue (open)
    run("measure", "reassign", "1", "--to", HANNE, "--reason", "Bygget", "--by", JONAS, "--now", "2027-03-12T09:00")
    run("measure", "deadline", "1", "--date", "2027-08-31", "--reason", "Venter på EA", "--by", HANNE,
        "--now", "2027-03-13T09:00")
    run("measure", "evidence", "1", "--link", "https://example.org/sifra/4711", "--by", HANNE,
        "--now", "2027-03-14T09:00")
    run("measure", "add", "--source", "incident", "--description", "Sklisikring på trappen", "--owner", JONAS,
        "--deadline", "2027-05-01", "--section", "publikum", "--cim", "2027-17", "--now", "2027-04-01T09:00")
    run("measure", "close", "2", "--note", "Sklilist montert", "--by", JONAS, "--now", "2027-04-20T09:00")
    run("measure", "add", "--source", "ark", "--description", "Bedre støydemping i kontorlandskapet",
        "--owner", "marianne.berg@khm.uio.no", "--deadline", "2027-06-01", "--section", "adm",
        "--now", "2027-02-01T09:00")
    return db_url


def export(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: Path,
           *more: str) -> tuple[int, str, str]:
    return cli(db_url, monkeypatch, capsys, "export", *YEAR, "--out", str(out), "--now", NOW, *more)


def excel(value: dt.date) -> dt.datetime:
    """What openpyxl reads back for a date or an Oslo time: Excel's cells hold wall-clock time without a zone."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.combine(value, dt.time()).replace(tzinfo=None)


def sheet(wb: Any, title: str) -> list[dict[str, Any]]:
    rows = list(wb[title].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_the_workbook_holds_plan_against_done_rounds_measures_and_responsibilities(
        year: str, khm: HmsConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tilsyn.xlsx"
    code, printed, _ = export(year, monkeypatch, capsys, out)
    assert code == 0 and str(out) in printed
    wb = load_workbook(out)
    assert wb.sheetnames == ["Forside", "Plan mot utført", "Runder", "Avvik og tiltak", "Tiltakshistorikk", "Ansvar"]
    cover = [r for r in wb["Forside"].iter_rows(values_only=True)]
    assert ("Enhet", "Kulturhistorisk museum", None) in cover and ("Laget av", "Hanne Solberg", None) in cover
    assert [r[0] for r in cover if r[0] and str(r[0]).startswith("§ 5-")] == [f"§ 5-{p}" for p in range(4, 9)]
    assert any("Boten har ikke HMS-målene" in str(r[2]) for r in cover)

    plan = sheet(wb, "Plan mot utført")
    assert wb["Plan mot utført"].freeze_panes == "A2" and wb["Plan mot utført"].column_dimensions["A"].width == 34
    march = excel(dt.date(2027, 3, 31))
    fire = {r["Gjelder"]: r for r in plan if r["Oppgave"] == "Brannvernrunde" and r["Frist"] == march}
    assert len(fire) == len(khm.floors())  # every floor's round, also those nobody opened
    first = fire["Historisk museum, 1. etasje"]
    assert (first["Status"], first["Utført av"], first["Utført (Oslo-tid)"], first["Registrert i etterkant"]) == (
        "utført", "Fatima Ali", excel(oslo(2027, 3, 10, 9, 12)), "nei")
    second = fire["Historisk museum, 2. etasje"]
    assert (second["Status"], second["Utført av"], second["Registrert av"]) == (
        "utført", "Jonas Eide", "Hanne Solberg")
    basement = fire["Historisk museum, underetasjen"]
    assert (basement["Status"], basement["Registrert i etterkant"]) == ("utført for sent", "ja")
    assert fire["Magasinet på Økern"]["Status"] == "ikke utført (fristen er passert)"
    statuses = {r["Status"] for r in plan}
    assert {"åpen", "ikke forfalt ennå"} <= statuses  # the third quarter's round is open, the fourth's to come
    # the wheel's count, not the record's: as many rows as `hms-bot due` lists deadlines for the year
    code, due, _ = cli(year, monkeypatch, capsys, "due", *YEAR, "--json", "--now", NOW)
    assert len(plan) == len(json.loads(due))
    assert all(":" not in str(r["Oppgave"]) and "fire_round" not in str(r["Gjelder"]) for r in plan)

    rounds = sheet(wb, "Runder")
    answered = [r for r in rounds if r["Svar"]]
    assert len(answered) == 18 and {r["Utført av"] for r in answered} == {"Fatima Ali"}
    # work registered afterwards is a round on record too, without a checklist
    assert {(r["Gjelder"], r["Utført av"]) for r in rounds if not r["Svar"]} == {
        ("Historisk museum, 2. etasje", "Jonas Eide"), ("Historisk museum, underetasjen", "Hanne Solberg")}
    door = next(r for r in rounds if r["Svar"] == "Avvik")
    assert door["Punkt på sjekklisten"].startswith("Branndører lukker helt")
    assert door["Kommentar"] == "Branndør til trapp B står på kile"

    measures = {r["Tiltak nr."]: r for r in sheet(wb, "Avvik og tiltak")}
    assert measures[1]["Ansvarlig"] == "Hanne Solberg" and measures[1]["Frist"] == excel(dt.date(2027, 8, 31))
    assert measures[1]["Status"] == "åpent" and measures[1]["Dokumentasjon"] == "https://example.org/sifra/4711"
    assert measures[1]["Fra runde"].startswith("Brannvernrunde – Historisk museum, 1. etasje")
    assert (measures[2]["CIM-referanse"], measures[2]["Status"]) == ("2027-17", "lukket")
    assert measures[3]["Kilde"] == "ARK (arbeidsmiljøundersøkelse)" and measures[3]["Status"] == "åpent"
    history = [(r["Tiltak nr."], r["Hvem"], r["Hva"]) for r in sheet(wb, "Tiltakshistorikk")]
    assert (1, "Jonas Eide", "ny ansvarlig: Jonas Eide → Hanne Solberg (Bygget)") in history
    assert (1, "Hanne Solberg", "ny frist: 2027-07-09 → 2027-08-31 (Venter på EA)") in history or any(
        h[0] == 1 and h[2].startswith("ny frist:") and "2027-08-31" in h[2] for h in history)
    assert (2, "Jonas Eide", "lukket (Sklilist montert)") in history

    people = sheet(wb, "Ansvar")
    assert {"Rolle": "HMSB-rådgiver", "Gjelder": "hele enheten", "Navn": "Hanne Solberg"}.items() <= people[0].items()
    assert any(r["Navn"] == "Ahmed Rahimi" and r["Rolle"].startswith("verneombud") for r in people)
    assert any(r["Navn"] == "Lars Bakke" and r["Rolle"].startswith("vara etasjekontakt") for r in people)


def test_the_pdf_reads_as_a_pack_with_a_page_per_round(year: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tilsyn.pdf"
    assert export(year, monkeypatch, capsys, out)[0] == 0
    pages = [p.extract_text() for p in PdfReader(out).pages]
    text = "\n".join(pages)
    assert "Tilsynsmappe – internkontroll HMS" in pages[0] and "Kulturhistorisk museum" in pages[0]
    assert "Boten har ikke HMS-målene" in text
    [round_page] = [p for p in pages if p.startswith("Brannvernrunde – Historisk museum, 1. etasje")]
    assert "Levert av Fatima Ali 10.03.2027 09:12" in round_page and "Branndør til trapp B står på kile" in round_page
    assert "utført for sent" in text and "ikke utført (fristen er passert)" in text
    assert "Sklisikring på trappen" in text and "Hanne Solberg" in text and "Økern" in text


def test_csv_for_norwegian_excel_and_json(year: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tilsyn.csv"
    assert export(year, monkeypatch, capsys, out)[0] == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with out.open(encoding="utf-8-sig", newline="") as f:
        plan = list(csv.DictReader(f, delimiter=";"))
    row = next(r for r in plan if r["Gjelder"] == "Historisk museum, underetasjen" and r["Frist"] == "31.03.2027")
    assert (row["Oppgave"], row["Status"], row["Registrert i etterkant"]) == ("Brannvernrunde", "utført for sent", "ja")
    with (tmp_path / "tilsyn-measures.csv").open(encoding="utf-8-sig", newline="") as f:
        measures = list(csv.DictReader(f, delimiter=";"))
    assert [m["Kilde"] for m in measures] == ["avvik fra en runde", "uønsket hendelse (CIM)",
                                             "ARK (arbeidsmiljøundersøkelse)"]
    assert {p.name for p in tmp_path.glob("tilsyn*.csv")} == {
        "tilsyn.csv", "tilsyn-rounds.csv", "tilsyn-measures.csv", "tilsyn-history.csv",
        "tilsyn-responsibilities.csv", "tilsyn-index.csv"}

    data_file = tmp_path / "tilsyn.json"
    assert export(year, monkeypatch, capsys, data_file, "--locale", "en")[0] == 0
    data = json.loads(data_file.read_text())
    assert data["period"] == {"start": "2027-01-01", "end": "2027-12-31"} and len(data["measures"]) == 3
    statuses = {(p["scope"], p["status"]) for p in data["pack"]["plan"] if p["deadline"] == "2027-03-31"}
    assert ("Historical Museum, basement", "done_late") in statuses
    assert ("Økern collection store", "missed") in statuses


def test_an_existing_file_is_not_overwritten_without_force(year: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tilsyn.xlsx"
    out.write_bytes(b"the adviser's own notes")
    code, _, err = export(year, monkeypatch, capsys, out)
    assert code == 2 and "finnes allerede; bruk --force" in err and "Traceback" not in err
    assert out.read_bytes() == b"the adviser's own notes"
    code, _, err = export(year, monkeypatch, capsys, out, "--force")
    assert code == 0 and load_workbook(out).sheetnames[0] == "Forside"
    assert "5/5 Ansvar" not in err  # no progress into a pipe or a log
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # at a terminal, the export says where it is
    code, _, err = export(year, monkeypatch, capsys, out, "--force")
    assert code == 0 and "\r5/5 Ansvar" in err
    monkeypatch.undo()
    # the section's pack holds its own rounds and measures only
    code, _, _ = export(year, monkeypatch, capsys, tmp_path / "admin.json", "--section", "adm")
    pack = json.loads((tmp_path / "admin.json").read_text())["pack"]
    assert code == 0 and [m["number"] for m in pack["measures"]] == [3] and pack["rounds"] == []
    assert {p["scope"] for p in pack["plan"]} <= {"Administrasjonsseksjonen", "Kulturhistorisk museum"} | {
        f.name.get("nb") for f in load_config_floors_of("adm")}
    code, _, err = export(year, monkeypatch, capsys, tmp_path / "x.json", "--section", "nope")
    assert code == 2 and "no section 'nope'" in err


def load_config_floors_of(section: str) -> list[Any]:
    from hms.config import DEFAULT_CONFIG_PATH, load_config

    return [f for f in load_config(DEFAULT_CONFIG_PATH).floors() if section in f.sections]
