"""The adviser's desk (issue 13, parts 1 and 3), on SQLite and PostgreSQL, against a database seeded with a known
year: the public programmes section's 2026 (fire rounds on its two floors done, done late and missed, the safety
round done late, the appraisals marked done, the action-plan input missed; deviations; measures from rounds, ARK and
other sources in every state, one from 2025 and one of another section that must not count).

- The weekly digest: `hms-bot digest --preview --json` gives the numbers and lists; the header, the chart, the
  overdue list and `hms-bot due` count the same deadlines; what changed since last week is the seeded week; the
  open measures come oldest first with owner and deadline; the card shows at most eight and "Vis alle" the rest.
- The annual report drafted: the planning tick three weeks before 1 December brings the section leader the report
  prefilled from the records (rounds due by the report's deadline only); he asks "årsrapport" in the chat, edits
  and submits it through the bot's door; it is on record once, the adviser gets it, and `hms-bot annual-reports`
  reads it back for the year, and writes all sections' reports as one XLSX and one PDF for LAMU.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.turns import HmsBot
from hms.clock import FixedClock
from hms.config import HmsConfig, load_config
from hms.wheel import find_occurrence
from storage import db, models as m, repo
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.test_adviser_loop import execute_actions, hms_bot_async, outbox_card, press, rows, say
from tests.test_first_day import hms_bot
from tests.test_turns import BOT, TENANT, FakeProactive
from usecases.planning import plan
from usecases.rounds import Rounds

KEY = b"desk-test-key"
HANNE = "hanne.solberg@khm.uio.no"
JONAS = "jonas.eide@khm.uio.no"  # leader of the public programmes section (floors hm-1 and hm-2)
FATIMA = "fatima.ali@khm.uio.no"  # hm-1
EIRIK = "eirik.haugen@khm.uio.no"  # hm-2
TOR = "tor.arne.nilsen@khm.uio.no"  # leader of the collection management section
DIGEST_NOW = oslo(2026, 11, 16, 9)  # a Monday
PROMPT_DAY = oslo(2026, 11, 10, 9)  # three weeks before the annual report's 1 December


@pytest.fixture
def config_file(khm_text: str, tmp_path: Path) -> Path:
    """KHM's file with the wheel kept from 1 January 2026, so the seeded year counts."""
    path = tmp_path / "khm.yaml"
    path.write_text(khm_text.replace("  demo_data: true\n", "  demo_data: true\n  tracking_starts: 2026-01-01\n", 1),
                    encoding="utf-8")
    return path


@pytest.fixture
def config(config_file: Path) -> HmsConfig:
    return load_config(config_file)


async def _done(s: Any, config: HmsConfig, key: str, by: str, at: dt.datetime, note: str | None = None) -> m.Occurrence:
    occ = find_occurrence(config, key)
    assert occ is not None, key
    return await repo.record_completion(s, occ, by, at, note)


async def _measure(s: Any, *, source: str, description: str, owner: str, section: str, deadline: dt.date,
                   created: dt.datetime, closed: dt.datetime | None = None, finding: m.Finding | None = None,
                   ) -> m.Measure:
    measure = m.Measure(finding_id=finding.id if finding else None, source=source,
                        description=None if finding else description, section_key=section, created_by=HANNE,
                        owner_email=owner, deadline=deadline, status="closed" if closed else "open",
                        created_at=created)
    s.add(measure)
    await s.flush()
    s.add(m.MeasureEvent(measure_id=m.pk(measure), status="open", actor_email=HANNE, at=created, kind="created"))
    if closed:
        s.add(m.MeasureEvent(measure_id=m.pk(measure), status="closed", actor_email=owner, at=closed, kind="closed",
                             note="utført"))
    await s.flush()
    return measure


async def _finding(s: Any, row: m.Occurrence, item: str, text: str, by: str, at: dt.datetime) -> m.Finding:
    finding = m.Finding(occurrence_id=m.pk(row), item_key=item, description=text, created_by=by, created_at=at)
    s.add(finding)
    await s.flush()
    return finding


@pytest.fixture
async def seeded(db_url: str, config: HmsConfig) -> str:
    """The known year. Measures of the public programmes section, numbered as stored:
    1 round, closed 1 May · 2 round, open, overdue since 5 May · 3 round, closed 13 November (last week) ·
    4 ARK, open · 5 ARK, closed 1 October · 6 other (BHT), closed 20 October · 7 ARK from 2025, closed 2025 ·
    8 collection management's ARK, open · 9 round of 12 November (last week), open."""
    engine = db.create_engine(db_url)
    async with db.session_factory(engine)() as s:
        await repo.import_org(s, config, oslo(2026, 1, 2, 8))
        q1 = await _done(s, config, "fire_round:2026-Q1:hm-1", FATIMA, oslo(2026, 3, 20, 10))
        q1_late = await _done(s, config, "fire_round:2026-Q1:hm-2", EIRIK, oslo(2026, 4, 5, 10))  # due 31 March
        await _done(s, config, "fire_round:2026-Q2:hm-1", FATIMA, oslo(2026, 6, 15, 10))
        q3 = await _done(s, config, "fire_round:2026-Q3:hm-1", FATIMA, oslo(2026, 9, 10, 10))
        # Q2 and Q3 on hm-2 are missed; Q4 on hm-1 is done last week but due 31 December: not in the report
        q4 = await _done(s, config, "fire_round:2026-Q4:hm-1", FATIMA, oslo(2026, 11, 12, 10))
        await _done(s, config, "vernerunde:2026:publikum", JONAS, oslo(2026, 7, 8, 10))  # due 1 July: late
        await _done(s, config, "appraisals:2026:publikum", JONAS, oslo(2026, 6, 10, 12), "Alle samtaler holdt")
        await _done(s, config, "fire_round:2026-Q1:hm-u", "ola.strand@khm.uio.no", oslo(2026, 3, 2, 10))
        other_row = await repo.occurrence_row(s, "fire_round:2026-Q1:hm-u")
        assert other_row is not None and q1 is not None
        f1 = await _finding(s, q1_late, "exit_signs", "Utgangsskilt lyser ikke", EIRIK, oslo(2026, 4, 5, 10))
        f2 = await _finding(s, q1_late, "storage", "Esker i korridoren", EIRIK, oslo(2026, 4, 5, 10))
        f3 = await _finding(s, q3, "fire_doors", "Branndør på kile", FATIMA, oslo(2026, 9, 10, 10))
        await _finding(s, other_row, "storage", "Paller i gangen", "ola.strand@khm.uio.no", oslo(2026, 3, 2, 10))
        f9 = await _finding(s, q4, "candles", "Stearinlys i resepsjonen", FATIMA, oslo(2026, 11, 12, 10))
        await _measure(s, source="round", description="", owner=JONAS, section="publikum", finding=f1,
                       deadline=dt.date(2026, 5, 5), created=oslo(2026, 4, 5, 10), closed=oslo(2026, 5, 1, 12))
        await _measure(s, source="round", description="", owner=JONAS, section="publikum", finding=f2,
                       deadline=dt.date(2026, 5, 5), created=oslo(2026, 4, 5, 10, 1))
        await _measure(s, source="round", description="", owner=JONAS, section="publikum", finding=f3,
                       deadline=dt.date(2026, 10, 10), created=oslo(2026, 9, 10, 10), closed=oslo(2026, 11, 13, 12))
        await _measure(s, source="ark", description="Støy i lesesalen", owner=JONAS, section="publikum",
                       deadline=dt.date(2027, 3, 1), created=oslo(2026, 6, 1, 9))
        await _measure(s, source="ark", description="Bedre belysning i verkstedet", owner=JONAS, section="publikum",
                       deadline=dt.date(2026, 10, 15), created=oslo(2026, 6, 1, 9, 5), closed=oslo(2026, 10, 1, 12))
        await _measure(s, source="other", description="Ergonomisk vurdering av skranken med BHT", owner=JONAS,
                       section="publikum", deadline=dt.date(2026, 11, 1), created=oslo(2026, 8, 1, 9),
                       closed=oslo(2026, 10, 20, 12))
        await _measure(s, source="ark", description="Fjorårets ARK-tiltak", owner=JONAS, section="publikum",
                       deadline=dt.date(2025, 12, 1), created=oslo(2025, 5, 1, 9), closed=oslo(2025, 11, 20, 9))
        await _measure(s, source="ark", description="Samlingens ARK-tiltak", owner=TOR, section="samling",
                       deadline=dt.date(2027, 2, 1), created=oslo(2026, 6, 2, 9))
        await _measure(s, source="round", description="", owner=JONAS, section="publikum", finding=f9,
                       deadline=dt.date(2026, 12, 12), created=oslo(2026, 11, 12, 10))
        await s.commit()
    await engine.dispose()
    return db_url


# -- the weekly digest -------------------------------------------------------------------------------------------


def test_the_digest_counts_what_the_records_and_the_wheel_say(seeded: str, config_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(seeded, monkeypatch, capsys, "digest", "--preview", "--json", "--config",
                             str(config_file), "--now", DIGEST_NOW.isoformat())
    assert code == 0, err
    digest = json.loads(out)
    assert digest["week"] == "47" and digest["period"] == {"from": "2025-11-16", "to": "2026-12-31"}

    # the header counts exactly what `hms-bot due` lists for the same period, status by status
    code, out, err = hms_bot(seeded, monkeypatch, capsys, "due", "--json", "--config", str(config_file),
                             "--from", "2025-11-16", "--to", "2026-12-31", "--now", DIGEST_NOW.isoformat())
    assert code == 0, err
    listed = json.loads(out)
    due = [r for r in listed if r["status"] != "before_start"]
    # 2025's deadlines after 16 November came before tracking started: said, not counted
    assert digest["before_start"] == len(listed) - len(due) > 0
    for status in ("done", "open", "overdue", "upcoming"):
        assert digest["counts"][status] == sum(r["status"] == status for r in due), status
        assert digest["counts"][status] == sum(sec[status] for sec in digest["sections"]), status
    assert digest["counts"]["overdue"] == len(digest["overdue"])
    assert {r["occurrence"] for r in due if r["status"] == "overdue"} == {i["occurrence"] for i in digest["overdue"]}

    # the public programmes section: 7 of its 2026 rounds done (Q4 on hm-1 early), the safety round and the
    # appraisals; the missed fire rounds on hm-2 and the action-plan input are overdue
    public = next(sec for sec in digest["sections"] if sec["section"] == "publikum")
    assert public["done"] == 7
    overdue = [i["occurrence"] for i in digest["overdue"] if i["section"] == "publikum"]
    assert {"fire_round:2026-Q2:hm-2", "fire_round:2026-Q3:hm-2", "action_plan_input:2026:publikum"} <= set(overdue)
    assert "fire_round:2026-Q1:hm-2" not in overdue  # done late is done
    sections = [i["section"] for i in digest["overdue"]]
    assert sections == sorted(sections, key=lambda k: [s["section"] for s in digest["sections"]].index(k))
    dues = [i["due"] for i in digest["overdue"] if i["section"] == "publikum"]
    assert dues == sorted(dues, reverse=True)  # newest first within a section

    # since last week: Fatima's Q4 round and its deviation, measure 3 closed; nothing older
    assert digest["changes"] == {"days": 7, "rounds_done": 1, "new_deviations": 1, "measures_closed": 1}
    # open measures, oldest first, with owner and deadline: 2, 4, 8, 9 (1, 3, 5, 6, 7 are closed)
    measures = digest["measures"]
    assert [x["id"] for x in measures["items"]] == [2, 4, 8, 9]
    assert measures["open"] == 4 and measures["overdue"] == 1
    assert [(x["owner"], x["deadline"]) for x in measures["items"]][:2] == [("Jonas Eide", "2026-05-05"),
                                                                          ("Jonas Eide", "2027-03-01")]
    # the next 14 days: the management review due 30 November; the annual reports of 1 December are 15 days away
    soon = {i["occurrence"] for i in digest["due_soon"]}
    assert "management_review:2026:unit" in soon and "annual_report:2026:publikum" not in soon
    assert all("2026-11-16" <= i["due"] <= "2026-11-30" for i in digest["due_soon"])

    # the terminal prints the same content
    code, text, _ = hms_bot(seeded, monkeypatch, capsys, "digest", "--preview", "--config", str(config_file),
                            "--now", DIGEST_NOW.isoformat())
    assert code == 0
    assert f"{digest['counts']['overdue']} forsinket" in text and f"Forsinket ({len(digest['overdue'])})" in text
    assert "1 runde utført · 1 nytt avvik · 1 tiltak lukket" in text
    assert "Nr. 2: Esker i korridoren – Jonas Eide, frist 5. mai 2026 (over fristen)" in text


async def test_the_digest_card_shows_eight_and_opens_the_rest(seeded: str, config: HmsConfig) -> None:
    engine = db.create_engine(seeded)
    async with db.session_factory(engine)() as s:
        report = await plan(s, config, Rounds(config, KEY), DIGEST_NOW)
    await engine.dispose()
    assert "digest" in {msg.kind for msg in report.messages}
    [row] = rows(seeded, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "digest")
    card = outbox_card(row)
    header = next(b["text"] for b in card["body"] if "forsinket ·" in b.get("text", ""))
    counted = int(re.search(r"(\d+) forsinket", header).group(1))
    [chart] = [b for b in card["body"] if b["type"] == "Chart.VerticalBar.Grouped"]
    assert chart["fallback"]["type"] == "FactSet"  # clients without charts get the numbers as facts
    assert counted == sum(v["y"] for d in chart["data"] if d["legend"] == "Forsinket" for v in d["values"])
    blocks = [b.get("text", "") for b in card["body"]]
    start = blocks.index(f"Forsinket ({counted})")
    end = next(n for n, b in enumerate(blocks) if b.startswith("Åpne tiltak ("))
    in_card = sum(b.count("\n- ") + 1 for b in blocks[start:end] if b.startswith("- "))
    assert counted > 8 and in_card == 8
    [show_all] = [a["card"] for a in card["actions"] if a["type"] == "Action.ShowCard"
                  and a["title"] == "Vis alle forsinkede"]
    assert sum(b["text"].count("\n- ") + 1 for b in show_all["body"] if b["text"].startswith("- ")) == counted
    assert "Seksjon for publikum og formidling" in texts(show_all)
    assert len(json.dumps(card).encode()) < 28_000  # Teams' limit for a bot message
    # planned without a public URL the card has no link to the wheel's picture, and no feed token was made
    assert not [a for a in card["actions"] if a["type"] == "Action.OpenUrl"] and rows(seeded, m.FeedToken) == []


async def test_the_digest_links_to_the_units_wheel_where_the_bot_is_reached(seeded: str, config: HmsConfig) -> None:
    engine = db.create_engine(seeded)
    async with db.session_factory(engine)() as s:
        dry = await plan(s, config, Rounds(config, KEY), DIGEST_NOW, dry_run=True, public_url="https://hms.khm.no/")
        assert "digest" in {msg.kind for msg in dry.messages}
    assert rows(seeded, m.FeedToken) == []  # a dry run writes nothing, not even the link's token
    async with db.session_factory(engine)() as s:
        await plan(s, config, Rounds(config, KEY), DIGEST_NOW, public_url="https://hms.khm.no/")
        await s.commit()
    await engine.dispose()
    [token] = rows(seeded, m.FeedToken)
    assert (token.kind, token.subject, token.created_by) == ("unit", None, HANNE)
    [row] = rows(seeded, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "digest")
    [link] = [a for a in outbox_card(row)["actions"] if a["type"] == "Action.OpenUrl"]
    assert (link["title"], link["url"]) == ("Se årshjulet", f"https://hms.khm.no/wheel/{token.token}.svg")


# -- the annual report drafted -----------------------------------------------------------------------------------


async def test_the_leader_is_prompted_with_the_report_drafted_from_the_records(seeded: str,
                                                                               config: HmsConfig) -> None:
    engine = db.create_engine(seeded)
    async with db.session_factory(engine)() as s:
        await plan(s, config, Rounds(config, KEY), PROMPT_DAY - dt.timedelta(minutes=1))
        before = {r.dedupe_key for r in rows(seeded, m.OutboxMessage)}
        await plan(s, config, Rounds(config, KEY), PROMPT_DAY)
    await engine.dispose()
    prompts = [r for r in rows(seeded, m.OutboxMessage) if r.dedupe_key not in before
               and r.dedupe_key.startswith("annual_report:2026:")]
    assert {r.recipient_email for r in prompts} == {"marianne.berg@khm.uio.no", TOR, "siri.holm@khm.uio.no", JONAS}
    card = outbox_card(next(r for r in prompts if r.recipient_email == JONAS))
    values = {n["id"]: n.get("value", "") for n in nodes(card) if n.get("type") == "Input.Text"}
    assert values["part:rounds"].splitlines() == [
        "Vernerunde: 1 av 1 utført, 1 etter fristen",
        "Brannvernrunde: 4 av 6 utført, 1 etter fristen; 2 ikke utført"]  # Q4 is due after 1 December
    # 10 November: the 12 November deviation and the 13 November closing have not happened yet
    assert values["part:deviations"] == ("Avvik funnet på runder: 3. Tiltak opprettet: 6, lukket: 3. "
                                         "Åpne tiltak nå: 3.")
    assert values["part:ark"].splitlines() == [
        "Tiltak nr. 4: Støy i lesesalen – åpent, frist 1. mars 2027",
        "Tiltak nr. 5: Bedre belysning i verkstedet – lukket 1. oktober 2026"]
    assert values["part:appraisals"] == "Medarbeidersamtaler: markert utført 10. juni 2026 (Alle samtaler holdt)"
    assert "Innspill til HMS-handlingsplan: ikke markert utført (frist 15. september 2026)" in values["part:other"]
    assert "Tiltak nr. 6: Ergonomisk vurdering av skranken med BHT – lukket 20. oktober 2026" in values["part:other"]
    assert values["part:bht"] == "Ergonomisk vurdering av skranken med BHT"
    assert "Brannvernrunde: 4/6" in texts(card)
    assert execute_actions(card, "report.submit")


@pytest.fixture
async def bot(seeded: str, config: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(seeded)
    b = HmsBot(config=config, engine=engine, clock=FixedClock(DIGEST_NOW.replace(hour=10)), tenant_id=TENANT,
               bot_id=BOT, card_key=KEY, proactive=FakeProactive())
    await b.start()
    yield b
    await b.ledger.close()
    await engine.dispose()


async def test_the_leader_edits_and_submits_it_in_the_chat_and_it_is_on_record(
        bot: HmsBot, seeded: str, config: HmsConfig, config_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    card = await say(bot, config, JONAS, "årsrapport")
    ids = input_ids(card)
    assert ids == [f"part:{k}" for k in ("rounds", "deviations", "ark", "appraisals", "other", "bht", "comments")]
    values = {n["id"]: n.get("value", "") for n in nodes(card) if n.get("type") == "Input.Text"}
    # 16 November: last week's deviation and closing count now; Q4 done on 12 November still does not
    assert values["part:deviations"] == ("Avvik funnet på runder: 4. Tiltak opprettet: 7, lukket: 4. "
                                         "Åpne tiltak nå: 3.")
    assert values["part:rounds"].endswith("Brannvernrunde: 4 av 6 utført, 1 etter fristen; 2 ikke utført")
    [submit] = execute_actions(card, "report.submit")

    # a part too long comes back with the form as filled in; nothing is stored
    edited = {**values, "part:comments": "x" * 2001}
    again = await press(bot, config, JONAS, submit, edited)
    assert "Høyst 2000 tegn." in texts(again) and rows(seeded, m.AnnualReport) == []
    kept = {n["id"]: n.get("value") for n in nodes(again) if n.get("type") == "Input.Text"}
    assert kept["part:comments"] == "x" * 2001

    # someone who may not submit it is refused
    refused = await press(bot, config, FATIMA, submit, values)
    assert "Jonas Eide" in texts(refused) and rows(seeded, m.AnnualReport) == []

    edited = {**values, "part:comments": "Godt år, men brannrundene i 2. etasje må følges opp.",
              "part:bht": "BHT vurderte ergonomien ved skranken i oktober."}
    done = await press(bot, config, JONAS, submit, edited)
    assert "Sendt inn av Jonas Eide" in texts(done) and "Godt år, men brannrundene" in texts(done)
    assert not execute_actions(done, "report.submit")
    [stored] = rows(seeded, m.AnnualReport)
    assert stored.year == 2026 and stored.section_key == "publikum" and stored.submitted_by == JONAS
    assert json.loads(stored.parts)["bht"] == "BHT vurderte ergonomien ved skranken i oktober."
    figures = json.loads(stored.figures)
    assert [(r["task"], r["planned"], r["done"], r["late"], r["missed"]) for r in figures["rounds"]] == [
        ("vernerunde", 1, 1, 1, 0), ("fire_round", 6, 4, 1, 2)]
    [occ] = rows(seeded, m.Occurrence, m.table(m.Occurrence).c.key == "annual_report:2026:publikum")
    assert occ.completed_by == JONAS

    # the adviser gets it
    [told] = rows(seeded, m.OutboxMessage, m.table(m.OutboxMessage).c.kind == "done_notice")
    assert told.recipient_email == HANNE and "Godt år, men brannrundene" in texts(outbox_card(told))

    # pressed again: the same report, nothing stored twice
    twice = await press(bot, config, JONAS, submit, edited)
    assert "allerede" in texts(twice).lower() and len(rows(seeded, m.AnnualReport)) == 1

    # read back for the year
    code, out, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026", "--json",
                                         "--config", str(config_file))
    assert code == 0, err
    found = json.loads(out)
    by_section = {r["section"]: r for r in found["reports"]}
    assert set(by_section) == {"adm", "samling", "fornminne", "publikum"}
    assert [k for k, r in by_section.items() if r["submitted"]] == ["publikum"]
    public = by_section["publikum"]
    assert public["submitted_by_name"] == "Jonas Eide" and public["due"] == "2026-12-01"
    assert {p["key"]: p["text"] for p in public["parts"]}["comments"].startswith("Godt år")
    assert public["figures"]["deviations"] == 4


def test_the_digest_preview_in_english_and_without_preview(seeded: str, config_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = hms_bot(seeded, monkeypatch, capsys, "digest", "--preview", "--locale", "en", "--config",
                           str(config_file), "--now", DIGEST_NOW.isoformat())
    assert code == 0
    assert out.startswith("HMS status week 47\nDeadlines 16 November 2025 – 31 December 2026: ")
    assert "1 round done · 1 new deviation · 1 measure closed" in out and "Public programmes section" in out
    code, out, err = hms_bot(seeded, monkeypatch, capsys, "digest", "--config", str(config_file))
    assert code != 0 and "--preview" in err and "Traceback" not in err


async def test_a_report_marked_done_without_the_draft_is_not_offered_again(bot: HmsBot, seeded: str,
                                                                          config: HmsConfig) -> None:
    engine = db.create_engine(seeded)
    async with db.session_factory(engine)() as s:
        await _done(s, config, "annual_report:2026:adm", "marianne.berg@khm.uio.no", oslo(2026, 11, 12, 14))
    await engine.dispose()
    card = await say(bot, config, "marianne.berg@khm.uio.no", "årsrapport")
    assert "Årsrapporten er allerede levert av Marianne Berg" in texts(card)
    assert not execute_actions(card, "report.submit")
    assert rows(seeded, m.AnnualReport) == []


async def test_the_adviser_exports_every_sections_report_for_lamu_as_xlsx_and_pdf(
        bot: HmsBot, seeded: str, config: HmsConfig, config_file: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook
    from pypdf import PdfReader

    card = await say(bot, config, JONAS, "årsrapport")
    values = {n["id"]: n.get("value", "") for n in nodes(card) if n.get("type") == "Input.Text"}
    [submit] = execute_actions(card, "report.submit")
    edited = {**values, "part:comments": "Brannrundene i 2. etasje må følges opp – ansvar: seksjonsleder."}
    assert "Sendt inn av Jonas Eide" in texts(await press(bot, config, JONAS, submit, edited))

    xlsx, pdf = tmp_path / "lamu-2026.xlsx", tmp_path / "lamu-2026.pdf"
    for out in (xlsx, pdf):
        code, printed, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026",
                                                 "--out", str(out), "--config", str(config_file),
                                                 "--now", "2026-12-03T10:00")
        assert code == 0, err
        assert printed.strip() == f"wrote {out}: 1 of 4 sections' reports submitted"

    wb = load_workbook(xlsx)
    overview = wb.worksheets[0]
    assert overview.title == "Oversikt" and overview["A1"].value == "HMS-årsrapporter for 2026"
    assert overview["A2"].value == "Seksjonenes årsrapporter til LAMU, hentet fra boten 3. desember 2026 10:00."
    assert overview.freeze_panes == "A5"
    listed = {row[0]: row[1:] for row in overview.iter_rows(min_row=5, values_only=True)}
    assert len(listed) == 4
    public = next(v for k, v in listed.items() if k and "publikum" in k.lower())
    assert public[0] == "Jonas Eide" and public[1].date() == dt.date(2026, 12, 1)  # an Excel date
    assert str(public[2]).startswith("Levert av Jonas Eide 16. november 2026")
    waiting = [v for k, v in listed.items() if v is not public]
    assert len(waiting) == 3 and all(v[2] == "Ikke levert (frist 1. desember 2026)" for v in waiting)
    assert len(wb.worksheets) == 5
    [sheet] = [ws for ws in wb.worksheets[1:] if "publikum" in ws.title.lower()]
    parts = {row[0]: row[1] for row in sheet.iter_rows(min_row=5, values_only=True)}
    assert list(parts) == ["Vernerunde og brannvernrunder (utført av planlagt)", "Avvik og tiltak",
                           "Oppfølging av ARK-tiltak", "Medarbeidersamtaler", "Annet HMS-arbeid", "Bistand fra BHT",
                           "Kommentarer"]  # the labels, never the keys
    assert parts["Kommentarer"] == "Brannrundene i 2. etasje må følges opp – ansvar: seksjonsleder."
    assert parts["Vernerunde og brannvernrunder (utført av planlagt)"] == values["part:rounds"]
    others = [ws for ws in wb.worksheets[1:] if ws is not sheet]
    assert all(ws["A2"].value == "Ikke levert (frist 1. desember 2026)" and ws.max_row <= 4 for ws in others)

    reader = PdfReader(str(pdf))
    pages = [page.extract_text() for page in reader.pages]
    assert "HMS-årsrapporter for 2026" in pages[0] and pages[0].count("Ikke levert (frist 1. desember 2026)") == 3
    [mine] = [p for p in pages[1:] if "Levert av Jonas Eide" in p]
    assert "Kommentarer" in mine and "Brannrundene i 2. etasje må følges opp" in mine
    assert "Bistand fra BHT" in mine and "part:" not in mine
    assert sum("Ikke levert (frist 1. desember 2026)" in p for p in pages[1:]) == 3

    # an existing file is not overwritten without --force: a clear message, not a traceback
    code, _, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026",
                                       "--out", str(pdf), "--config", str(config_file))
    assert code != 0 and "finnes allerede; bruk --force" in err and "Traceback" not in err
    code, _, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026",
                                       "--out", str(pdf), "--force", "--config", str(config_file))
    assert code == 0, err
    code, _, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026",
                                       "--out", str(tmp_path / "lamu.docx"), "--config", str(config_file))
    assert code != 0 and "FILE.xlsx or FILE.pdf" in err
    missing = tmp_path / "missing" / "lamu.pdf"
    code, _, err = await hms_bot_async(seeded, monkeypatch, capsys, "annual-reports", "--year", "2026",
                                       "--out", str(missing), "--config", str(config_file))
    assert code != 0 and f"--out {missing}: No such file or directory" in err and "Traceback" not in err
