"""The organisation file, not the code (issue 11.6): another unit changes the file. The faculty example
(`hms/orgfiles/examples/faculty.yaml`: three buildings, a floor two sections share, a lab-safety round with its own
checklist, a fire drill per building, a 1 March annual report on the previous year, roles of its own) passes
`check-config`, and the command line and the chat's turns work on it as they do on KHM's file, on SQLite and
PostgreSQL. `check-config` reports every problem at once; the Teams app package takes its names from the file."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.turns import HmsBot
from cli.main import main
from hms.clock import FixedClock
from hms.config import DEFAULT_CONFIG_PATH, ConfigError, HmsConfig, load_config, parse_config
from storage import db, models as m
from tests.cardtext import texts
from tests.conftest import oslo
from tests.test_first_day import scalar
from tests.test_turns import BOT, TENANT, FakeProactive, FakeTurn, activity

FACULTY = DEFAULT_CONFIG_PATH.parent / "examples" / "faculty.yaml"
DOMAIN = "@realfak.example.no"
GRETA, STIAN, RANDI, PETTER, INGRID = (f"{n}{DOMAIN}" for n in (
    "greta.lunde", "stian.hove", "randi.moen", "petter.kvam", "ingrid.saether"))
APP_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.fixture(scope="module")
def faculty() -> HmsConfig:
    return load_config(FACULTY)


def hms_bot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fac_db(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """A database first migrated on 1 June 2027: the faculty keeps its wheel from that day."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    code, _, err = hms_bot(capsys, "db", "upgrade", "--now", "2027-06-01T08:00")
    assert code == 0, err
    return db_url


def due_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, err = hms_bot(capsys, "due", "--config", str(FACULTY), "--json", *args)
    assert code == 0, err
    return list(json.loads(out))


# -- check-config -----------------------------------------------------------------------------------------------


def test_the_faculty_example_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(capsys, "check-config", str(FACULTY))
    assert code == 0, err
    assert "OK (18 people, 3 sections, 3 buildings, 4 floors, 3 declared roles, 6 tasks, 3 checklists)" in out


def test_every_problem_at_once_a_bad_date_hides_no_reference_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = FACULTY.read_text(encoding="utf-8")
    text = text.replace('opens: "09-01", due: "10-31"', 'opens: "09-01", due: "10-32"', 1)  # fire_drill: bad date
    text = text.replace("    responsible: lab_manager\n", "    responsible: lab_boss\n", 1)  # undeclared role
    text = text.replace("        biologibygget: randi.moen@", "        biologibygget: randi.moe@", 1)  # nobody
    text = text.replace("    checklist: vernerunde\n", "    checklist: vernerunden\n", 1)  # after the bad date
    bad = tmp_path / "faculty.yaml"
    bad.write_text(text, encoding="utf-8")
    lines = text.splitlines()

    def at(needle: str, occurrence: int = 0) -> tuple[int, int]:
        hits = [(n + 1, line.index(needle.strip()) + 1) for n, line in enumerate(lines) if needle in line]
        return hits[occurrence]

    code, _, err = hms_bot(capsys, "check-config", str(bad))
    assert code == 2 and "4 problem(s)" in err, err
    problems = [line.strip() for line in err.splitlines()[1:]]
    expected = [(at("biologibygget: randi.moe@"), "randi.moe@realfak.example.no is referenced here"),
                (at("responsible: lab_boss"), "unknown role 'lab_boss': declare it under roles.declared"),
                (at('due: "10-32"'), "there is no day 32 in month 10"),
                (at("checklist: vernerunden"), "unknown checklist 'vernerunden'")]
    assert len(problems) == len(expected)
    for problem, ((line, _col), message) in zip(problems, expected, strict=True):
        assert problem.startswith(f"{bad}:{line}:") and message in problem, (problem, line, message)
    # the column is the value's or the key's, as the file has it
    role = next(p for p in problems if "lab_boss" in p)
    assert role.startswith(f"{bad}:{at('responsible: lab_boss')[0]}:5:")


def test_a_task_may_name_only_a_declared_role_its_scope_can_resolve(khm_text: str) -> None:
    text = khm_text.replace("  lamu:\n    team_name: LAMU KHM", "  declared:\n"
                            "    - {key: brannvernleder, title: {nb: Brannvernleder, en: Fire safety manager},\n"
                            "       scope: building, holders: {hm: bjorn.tangen@khm.uio.no}}\n"
                            "  lamu:\n    team_name: LAMU KHM", 1)
    fine = text.replace("    responsible: floor_contact\n    accountable: section_leader\n",
                        "    responsible: floor_contact\n    accountable: brannvernleder\n", 1)
    config = parse_config(fine, "khm.yaml")
    assert config.task("fire_round").accountable == "brannvernleder"  # type: ignore[union-attr]
    section_task = fine.replace("    kind: safety_round\n    responsible: section_leader\n",
                                "    kind: safety_round\n    responsible: brannvernleder\n", 1)
    with pytest.raises(ConfigError) as exc:
        parse_config(section_task, "khm.yaml")
    [problem] = exc.value.problems
    assert problem.path == "tasks[2].responsible" and problem.line and problem.column
    assert "'brannvernleder' cannot be resolved for a task of scope 'section'" in problem.message


def test_a_round_kind_needs_a_checklist_and_a_built_in_role_cannot_be_declared(khm_text: str) -> None:
    text = khm_text.replace("    checklist: vernerunde\n", "", 1)
    text = text.replace("  lamu:\n    team_name: LAMU KHM", "  declared:\n"
                        "    - {key: safety_rep, title: {nb: Verneombud, en: Safety rep}, holders: []}\n"
                        "  lamu:\n    team_name: LAMU KHM", 1)
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "khm.yaml")
    messages = [p.message for p in exc.value.problems]
    assert any("'safety_rep' is a built-in role" in msg for msg in messages)
    assert any("kind 'safety_round' needs a checklist" in msg for msg in messages)


# -- the wheel on the command line ----------------------------------------------------------------------------------


def test_due_json_on_the_faculty(fac_db: str, capsys: pytest.CaptureFixture[str], faculty: HmsConfig) -> None:
    rows = due_json(capsys, "--from", "2028-01-01", "--to", "2028-12-31", "--now", "2028-01-20T10:00")
    by_task = Counter(r["task"] for r in rows)
    assert by_task == {"lab_round": 12, "fire_round": 16, "fire_drill": 3, "vernerunde": 3, "annual_report": 3}
    drills = {r["building"]: r for r in rows if r["task"] == "fire_drill"}
    assert {b: (r["occurrence"], r["scope"], r["due"], r["assignees"], r["sections"]) for b, r in drills.items()} == {
        "kjemibygget": ("fire_drill:2028:kjemibygget", "building", "2028-10-31", [PETTER], ["kjemi", "biologi"]),
        "biologibygget": ("fire_drill:2028:biologibygget", "building", "2028-10-31", [RANDI], ["biologi"]),
        "fysikkbygget": ("fire_drill:2028:fysikkbygget", "building", "2028-10-31", [PETTER], ["fysikk"]),
    }
    reports = [r for r in rows if r["task"] == "annual_report"]
    assert {(r["due"], r["reporting_year"], r["kind"], r["status"]) for r in reports} == {
        ("2028-03-01", 2027, "report", "open")}
    # the quarter's deadline is the 15th of its second month, the window the whole quarter
    assert sorted({(r["window_start"], r["due"]) for r in rows if r["task"] == "lab_round"}) == [
        ("2028-01-01", "2028-02-15"), ("2028-04-01", "2028-05-15"), ("2028-07-01", "2028-08-15"),
        ("2028-10-01", "2028-11-15")]
    assert {r["assignee"] for r in rows if r["task"] == "lab_round" and r["section"] == "kjemi"} == {STIAN}
    # the floor chemistry shares with biosciences is in both sections' lists; chemistry owns it
    biologi = due_json(capsys, "--month", "2028-03", "--section", "biologi", "--now", "2028-03-01T10:00")
    assert {r["floor"] for r in biologi if r["task"] == "fire_round"} == {"bio-1", "kj-2"}
    assert next(r for r in biologi if r["floor"] == "kj-2")["section"] == "kjemi"


def test_a_building_task_registered_done_from_the_command_line(fac_db: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(capsys, "done", "fire_drill", "--building", "kjemibygget", "--date", "2028-10-12",
                             "--by", PETTER, "--now", "2028-10-13T10:00", "--json", "--config", str(FACULTY))
    assert code == 0, err
    record = json.loads(out)
    assert (record["occurrence"], record["building"], record["section"]) == ("fire_drill:2028:kjemibygget",
                                                                          "kjemibygget", None)
    assert scalar(fac_db, sa.select(m.table(m.Occurrence).c.building_key)) == "kjemibygget"
    rows = due_json(capsys, "--month", "2028-10", "--now", "2028-10-13T10:00")
    assert {r["building"]: r["status"] for r in rows if r["task"] == "fire_drill"} == {
        "kjemibygget": "done", "biologibygget": "open", "fysikkbygget": "open"}
    code, _, err = hms_bot(capsys, "done", "fire_drill", "--section", "kjemi", "--date", "2028-10-12",
                           "--config", str(FACULTY))
    assert code == 2 and "fire_drill is done per building: give --building" in err


def test_plan_dry_run_on_the_faculty(fac_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(capsys, "plan", "--config", str(FACULTY), "--now", "2028-10-10T09:05", "--dry-run",
                             "--json")
    assert code == 0, err
    planned = json.loads(out)
    drills = sorted((p["recipient"], p["occurrence"]) for p in planned if p["task"] == "fire_drill")
    assert drills == [(PETTER, "fire_drill:2028:fysikkbygget"), (PETTER, "fire_drill:2028:kjemibygget"),
                      (RANDI, "fire_drill:2028:biologibygget")]
    assert {p["kind"] for p in planned if p["task"] == "fire_drill"} == {"prompt"}
    # the lab manager's round of the third quarter is late: the head of department it is accountable to hears of it
    lab = [(p["kind"], p["recipient"]) for p in planned if p["occurrence"] == "lab_round:2028-Q3:kjemi"]
    assert ("escalation", INGRID) in lab and ("overdue", STIAN) in lab
    assert scalar(fac_db, sa.select(sa.func.count()).select_from(m.table(m.OutboxMessage))) == 0


def test_ask_the_annual_report_reports_the_previous_year(fac_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hms_bot(capsys, "ask", "årsrapport", "--config", str(FACULTY), "--now", "2028-02-01T10:00",
                             "--json")
    assert code == 0, err
    answer = json.loads(out)["answer"]
    assert (answer["year"], answer["due"]) == (2027, "2028-03-01")
    body = texts(answer["card"])
    assert "HMS-årsrapport 2027" in body and "1. mars 2028" in body
    assert "Kjemisk institutt: laboratorierunde 0/2, brannvernrunde 0/6, vernerunde nei" in body
    code, out, err = hms_bot(capsys, "ask", "status", "--config", str(FACULTY), "--now", "2028-02-01T10:00",
                             "--json")
    assert code == 0, err
    # the rounds counted are the faculty's checklist rounds, named as the file names them
    assert "Laboratorierunde, Brannvernrunde: 0 av 7 utført hittil i år" in texts(json.loads(out)["answer"]["card"])


# -- the chat ---------------------------------------------------------------------------------------------------


def person_turn(email: str, n: int, text: str | None = None, kind: str = "message", **extra: Any) -> FakeTurn:
    """A turn from someone the bot knows by the e-mail Teams' member lookup gives (no Entra id in the file)."""
    user = "29:" + email.split("@")[0]
    return FakeTurn(activity(kind, id=f"{user}-{n}", text=text, aad=None, user=user, conversation=f"a:{user}",
                             **extra),
                    members={user: {"email": email, "userPrincipalName": email}})


@pytest.fixture
async def fac_bot(fac_db: str, faculty: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(fac_db)
    bot = HmsBot(config=faculty, engine=engine, clock=FixedClock(oslo(2028, 2, 1, 10)), tenant_id=TENANT,
                 bot_id=BOT, card_key=b"test-key", proactive=FakeProactive())
    await bot.start()
    yield bot
    await bot.ledger.close()
    await engine.dispose()


async def test_declared_roles_greet_by_their_title(fac_bot: HmsBot) -> None:
    turn = person_turn(f"oda.hegge{DOMAIN}", 1, kind="conversationUpdate",
                       membersAdded=[{"id": BOT}, {"id": "29:oda.hegge"}])
    await fac_bot.on_turn(turn)
    assert "Hovedverneombud" in texts(turn.sent[-1])
    turn = person_turn(PETTER, 1, kind="conversationUpdate", membersAdded=[{"id": BOT}, {"id": "29:petter.kvam"}])
    await fac_bot.on_turn(turn)
    body = texts(turn.sent[-1])
    assert "Brannvernleder for Kjemibygningen" in body and "Brannvernleder for Fysikkbygningen" in body


async def test_the_fire_safety_manager_sees_the_drill_of_his_buildings(fac_bot: HmsBot) -> None:
    turn = person_turn(RANDI, 1, "hva forfaller i oktober?")
    await fac_bot.on_turn(turn)
    body = texts(turn.sent[-1])
    assert "Brannøvelse" in body and "Biologibygningen" in body
    assert "Kjemibygningen" not in body and "Laboratorierunde" not in body


async def test_the_lab_manager_does_the_lab_round_in_the_chat(fac_bot: HmsBot, faculty: HmsConfig,
                                                             fac_db: str) -> None:
    start = person_turn(STIAN, 1, "start runde")
    await fac_bot.on_turn(start)
    assert "Laboratorierunde" in texts(start.sent[-1]) and "Kjemisk institutt" in texts(start.sent[-1])
    form = start.sent[-1]["attachments"][0]["content"]
    checklist = faculty.checklist("lab_safety")
    assert checklist is not None
    answers = {f"a:{i.key}": "ok" for i in checklist.items} | {"a:gas": "avvik", "c:gas": "Gassflaske ikke festet"}
    submit = next(a for a in form["actions"] if a["verb"] == "round.submit")
    done = person_turn(STIAN, 2, kind="invoke", name="adaptiveCard/action",
                       value={"action": {"type": "Action.Execute", "verb": "round.submit",
                                         "data": {**submit["data"], **answers}}})
    await fac_bot.on_turn(done)
    status, body = done.invoke  # type: ignore[misc]
    assert status == 200
    assert "Levert av Stian Hove 1. februar kl. 10.00 – 1 avvik" in texts({"attachments": [{"content": body["value"]}]})
    # the deviation is the head of department's measure (the section's leader), not the lab manager's
    assert scalar(fac_db, sa.select(m.table(m.Measure).c.owner_email)) == INGRID


# -- the Teams app package --------------------------------------------------------------------------------------


def test_the_app_package_is_named_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "faculty.zip"
    code, _, err = hms_bot(capsys, "manifest", "--app-id", APP_ID, "--out", str(out), "--config", str(FACULTY))
    assert code == 0, err
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        english = json.loads(archive.read("en.json"))
    assert manifest["name"] == {"short": "HMS-hjulet Realfag",
                                "full": "HMS-hjulet – årshjulet for HMS ved Eksempelfakultetet for realfag"}
    assert (english["name.short"], english["name.full"]) == (
        "HMS wheel Science", "The HMS wheel – health, safety and environment at the Example Faculty of Science")
    assert manifest["developer"] == {"name": "Eksempelfakultetet", "websiteUrl": "https://realfak.example.no/",
                                     "privacyUrl": "https://realfak.example.no/personvern/",
                                     "termsOfUseUrl": "https://realfak.example.no/hms-hjulet/vilkar/"}
    assert "Eksempelfakultetet for realfag" in manifest["description"]["full"]  # no description given: the unit's
    assert "Kulturhistorisk" not in json.dumps(manifest) + json.dumps(english)


def test_app_names_over_the_teams_limits_are_refused_with_their_place(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    text = FACULTY.read_text(encoding="utf-8").replace(
        "name_short: {nb: HMS-hjulet Realfag, en: HMS wheel Science}",
        "name_short: {nb: HMS-hjulet for Eksempelfakultetet, en: HMS wheel Science}", 1)
    text = text.replace("  developer: Eksempelfakultetet\n", "  developer: Eksempelfakultetet for realfag, UiO\n", 1)
    text = text.replace("  privacy_url: https://", "  privacy_url: http://", 1)
    bad = tmp_path / "faculty.yaml"
    bad.write_text(text, encoding="utf-8")
    code, _, err = hms_bot(capsys, "check-config", str(bad))
    assert code == 2 and "3 problem(s)" in err
    assert "app.name_short" in err and "nb is 33 characters; Teams allows at most 30" in err
    assert "app.developer" in err and "app.privacy_url" in err
    code, _, err = hms_bot(capsys, "manifest", "--app-id", APP_ID, "--out", str(tmp_path / "x.zip"),
                           "--config", str(bad))
    assert code == 2 and not (tmp_path / "x.zip").exists()


async def test_a_shared_floor_is_seen_by_both_sections(fac_bot: HmsBot) -> None:
    """The safety representative of biosciences sees the chemistry floor her section shares, not chemistry's own."""
    turn = person_turn(f"mona.gran{DOMAIN}", 1, "hva forfaller i mars?")
    await fac_bot.on_turn(turn)
    body = texts(turn.sent[-1])
    assert "Kjemibygningen, 2. etasje" in body and "Biologibygningen, 1. etasje" in body
    assert "Kjemibygningen, 1. etasje" not in body


def test_a_quarter_day_past_the_month_end_is_the_month_end(khm_text: str) -> None:
    from hms import wheel

    text = khm_text.replace("    recurrence: {kind: quarterly}\n",
                            "    recurrence: {kind: quarterly, due_month: 2, due_day: 31}\n", 1)
    config = parse_config(text, "khm.yaml")
    dues = [o.due.isoformat() for o in wheel.task_occurrences(config, "fire_round", 2028, 2028) if o.floor == "hm-1"]
    assert dues == ["2028-02-29", "2028-05-31", "2028-08-31", "2028-11-30"]
    with pytest.raises(ConfigError) as exc:
        parse_config(text.replace("due_day: 31", "due_day: 32"), "khm.yaml")
    assert "1-31" in str(exc.value) and "tasks[3].recurrence.due_day" in str(exc.value)


def test_declared_roles_are_on_record_after_an_import(fac_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = hms_bot(capsys, "org", "import", str(FACULTY))
    assert code == 0, err
    engine = db.create_sync_engine(fac_db)
    try:
        with engine.connect() as conn:
            table = m.table(m.RoleAssignment)
            rows = {(r.role, r.scope_key, r.person_email) for r in conn.execute(sa.select(table)).all()}
            floors = {(f.key, f.section_key, f.building_key) for f in conn.execute(sa.select(m.table(m.Floor)))}
    finally:
        engine.dispose()
    assert {("hovedverneombud", "", f"oda.hegge{DOMAIN}"), ("brannvernleder", "kjemibygget", PETTER),
            ("brannvernleder", "fysikkbygget", PETTER), ("brannvernleder", "biologibygget", RANDI),
            ("lab_manager", "kjemi", STIAN)} <= rows
    assert ("kj-2", "kjemi", "kjemibygget") in floors


def test_a_building_prompt_names_the_building(fac_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = hms_bot(capsys, "plan", "--config", str(FACULTY), "--now", "2028-10-10T09:05")
    assert code == 0, err
    engine = db.create_sync_engine(fac_db)
    try:
        with engine.connect() as conn:
            table = m.table(m.OutboxMessage)
            payload = conn.execute(sa.select(table.c.payload).where(
                table.c.dedupe_key == f"fire_drill:2028:biologibygget|prompt|{RANDI}")).scalar_one()
    finally:
        engine.dispose()
    body = texts(json.loads(payload))
    assert "Brannøvelse" in body and "Biologibygningen" in body and "31. oktober 2028" in body
