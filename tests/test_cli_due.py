"""`hms-bot due`: the done-when listing for 2027, filters, statuses from the database, and bad arguments."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from cli.main import main
from hms.config import HmsConfig
from hms.wheel import find_occurrence
from storage import db, repo
from tests.conftest import oslo


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    return url


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    assert main(["due", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_due_2027_json(sqlite_env: str, capsys: pytest.CaptureFixture[str], khm: HmsConfig) -> None:
    rows = run_json(capsys, "--from", "2027-01-01", "--to", "2027-12-31", "--now", "2026-11-26T10:00")
    by_task = Counter(r["task"] for r in rows)
    assert by_task["fire_round"] == 5 * 4
    fire_dues = sorted({r["due"] for r in rows if r["task"] == "fire_round"})
    assert fire_dues == ["2027-03-31", "2027-06-30", "2027-09-30", "2027-12-31"]
    assert {(r["section"], r["due"]) for r in rows if r["task"] == "vernerunde"} == {
        (s.key, "2027-07-01") for s in khm.sections}
    assert {r["due"] for r in rows if r["task"] == "action_plan_input"} == {"2027-09-15"}
    assert by_task["action_plan_input"] == 4 and by_task["annual_report"] == 4
    assert [r["due"] for r in rows if r["task"] == "action_plan"] == ["2027-10-01"]
    assert {r["due"] for r in rows if r["task"] == "annual_report"} == {"2027-12-01"}
    assert [(r["window_start"], r["window_end"]) for r in rows if r["task"] == "management_review"] == [
        ("2027-10-01", "2027-11-30")]
    # deadlines in the period only: the focus areas' window opening 1 December 2027 is due in 2028
    assert [(r["window_start"], r["window_end"]) for r in rows if r["task"] == "focus_areas"] == [
        ("2026-12-01", "2027-01-31")]
    assert {r["group"] for r in rows} == {"due"}
    assert by_task["ros"] == 1 and "ark_survey" not in by_task
    required = {"task", "title", "section", "floor", "assignee", "due", "window_start", "window_end", "status"}
    assert all(required <= set(r) for r in rows)
    hm2 = next(r for r in rows if r["occurrence"] == "fire_round:2027-Q1:hm-2")
    assert (hm2["title"], hm2["floor"], hm2["section"], hm2["assignee"], hm2["status"]) == (
        "Brannvernrunde", "hm-2", "publikum", "eirik.haugen@khm.uio.no", "upcoming")
    assert [r["due"] for r in rows] == sorted(r["due"] for r in rows)


def test_open_windows_are_a_group_of_their_own(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    """"Due in March" means the deadline is in March (it listed 18 rows, 13 of them due in June or July): the
    windows open in March with a later deadline come only with --open, marked as their own group."""
    due = run_json(capsys, "--month", "2027-03", "--now", "2027-03-10T09:00")
    assert due and all("2027-03-01" <= r["due"] <= "2027-03-31" and r["group"] == "due" for r in due)
    assert {r["task"] for r in due} == {"fire_round"}
    both = run_json(capsys, "--month", "2027-03", "--open", "--now", "2027-03-10T09:00")
    assert [r for r in both if r["group"] == "due"] == due
    later = [r for r in both if r["group"] == "open"]
    assert {r["task"] for r in later} == {"vernerunde", "appraisals", "ros", "section_risk_assessment"}
    assert len(due) + len(later) == 18 and len(later) == 13
    assert all(r["due"] > "2027-03-31" and r["window_start"] <= "2027-03-31" for r in later)
    assert main(["due", "--month", "2027-03", "--open", "--now", "2027-03-10T09:00"]) == 0
    out = capsys.readouterr().out
    assert out.index("Mars 2027") < out.index("Åpent nå, frist senere") < out.index("Vernerunde")
    assert "frist 1. juli 2027" in out
    assert main(["due", "--month", "2027-03", "--now", "2027-03-10T09:00"]) == 0
    assert "Vernerunde" not in capsys.readouterr().out


def test_filters(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "--month", "2027-03", "--section", "samling", "--now", "2027-03-10T09:00")
    assert rows and all(r["section"] == "samling" for r in rows)
    assert {r["floor"] for r in rows if r["task"] == "fire_round"} == {"hm-u", "okern-mag"}
    assert {r["status"] for r in rows if r["task"] == "fire_round"} == {"open"}
    mine = run_json(capsys, "--month", "2027-03", "--person", "Fatima.Ali@khm.uio.no", "--now", "2027-03-10")
    assert [r["occurrence"] for r in mine] == ["fire_round:2027-Q1:hm-1"]


def test_status_comes_from_the_database(sqlite_env: str, capsys: pytest.CaptureFixture[str],
                                        khm: HmsConfig) -> None:
    db.upgrade(sqlite_env)

    async def complete() -> None:
        engine = db.create_engine(sqlite_env)
        async with db.session_factory(engine)() as s:
            occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
            assert occ is not None
            await repo.record_completion(s, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 3, 9, 12))
        await engine.dispose()

    asyncio.run(complete())
    rows = run_json(capsys, "--from", "2027-03-01", "--to", "2027-03-31", "--now", "2027-04-02T09:00")
    status = {r["occurrence"]: r["status"] for r in rows if r["task"] == "fire_round"}
    assert status["fire_round:2027-Q1:hm-2"] == "done"
    assert status["fire_round:2027-Q1:hm-1"] == "overdue"
    done = next(r for r in rows if r["occurrence"] == "fire_round:2027-Q1:hm-2")
    assert done["completed_by"] == "eirik.haugen@khm.uio.no"


def test_text_output_grouped_by_month(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["due", "--from", "2027-06-01", "--to", "2027-07-31", "--now", "2027-06-10T09:00"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Frister 1. juni – 31. juli 2027")
    assert "Juni 2027" in out and "Juli 2027" in out
    assert out.index("Juni 2027") < out.index("\n  30. juni") < out.index("Juli 2027") < out.index("\n  1. juli")
    assert "Vernerunde · Seksjon for samlingsforvaltning · Tor Arne Nilsen  [åpen]" in out
    assert main(["due", "--month", "2027-10", "--locale", "en", "--open", "--now", "2027-10-02T09:00"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deadlines October 2027") and "Open now, due later" in out
    assert "due 30 November 2027" in out.split("Open now, due later")[1]  # the management review's window


def test_default_is_this_month(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "--now", "2026-11-26T10:00")
    assert {r["task"] for r in rows} == {"management_review"}  # due 30 November
    assert all("2026-11-01" <= r["due"] <= "2026-11-30" for r in rows)
    rows = run_json(capsys, "--open", "--now", "2026-11-26T10:00")
    assert {r["task"] for r in rows if r["group"] == "open"} >= {"annual_report", "fire_round"}


@pytest.mark.parametrize("args", [
    ["--month", "2027-13"],
    ["--month", "2027-01", "--from", "2027-01-01", "--to", "2027-01-31"],
    ["--from", "2027-01-01"],
    ["--from", "2027-02-01", "--to", "2027-01-01"],
    ["--section", "nope"],
    ["--now", "yesterday"],
])
def test_bad_arguments_exit_2(sqlite_env: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(["due", *args])
        raise SystemExit(code)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_broken_config_refused(sqlite_env: str, tmp_path: Path, khm_text: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(khm_text.replace("timezone: Europe/Oslo", "timezone: Europe/Osloo"), encoding="utf-8")
    assert main(["due", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "unknown time zone" in err


def test_person_away_and_outbox_listing(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["person", "away", "Fatima.Ali@khm.uio.no"]) == 0
    assert "away" in capsys.readouterr().out

    async def away() -> bool:
        engine = db.create_engine(sqlite_env)
        async with db.session_factory(engine)() as s:
            person = await repo.person_by_email(s, "fatima.ali@khm.uio.no")
        await engine.dispose()
        return bool(person and person.away)

    assert asyncio.run(away()) is True
    assert main(["person", "away", "fatima.ali@khm.uio.no", "--back"]) == 0
    assert asyncio.run(away()) is False
    assert main(["person", "away", "nobody@khm.uio.no"]) == 2
    capsys.readouterr()
    assert main(["outbox", "--status", "dead", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_serve_refuses_without_an_app_id(sqlite_env: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppTenantId"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "MicrosoftAppId is not set" in err and "hms-bot serve --dev" in err
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("MicrosoftAppPassword", "secret")
    assert main(["serve"]) == 2
    assert "MicrosoftAppTenantId is required" in capsys.readouterr().err
    assert main(["serve", "--now", "2027-03-10T08:55"]) == 2
    assert "--now is only for local mode" in capsys.readouterr().err


def test_a_managed_identity_without_a_card_secret_refuses_to_start(sqlite_env: str, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A managed identity has no app password to derive the card-signing key from; without HMS_CARD_SECRET
    the cards were signed with the local-mode key printed in this source, so anyone could forge a card."""
    from pydantic import ValidationError

    from bot.settings import Settings

    for name in ("MicrosoftAppPassword", "HMS_CARD_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("MicrosoftAppTenantId", "5b0c9a31-8e7d-4c2b-b1a0-9d8e7f6a5b4c")
    monkeypatch.setenv("MicrosoftAppType", "UserAssignedMSI")
    with pytest.raises(ValidationError, match="HMS_CARD_SECRET"):
        Settings()
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "UserAssignedMSI" in err and "set HMS_CARD_SECRET" in err and "Traceback" not in err
    # a password-less app of another type is told which variable is missing too
    with pytest.raises(ValidationError, match="MicrosoftAppPassword is not set"):
        Settings(app_type="SingleTenant")
    monkeypatch.setenv("HMS_CARD_SECRET", "a long random secret shared by the replicas")
    settings = Settings()
    assert settings.card_key() == b"a long random secret shared by the replicas"
    # local mode (no app id) still starts with its fixed key: its cards only ever reach the loopback bot
    monkeypatch.delenv("HMS_CARD_SECRET")
    assert len(Settings(app_id="").card_key()) == 32


def test_manifest_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    out = tmp_path / "app.zip"
    assert main(["manifest", "--app-id", "11111111-2222-3333-4444-555555555555", "--out", str(out)]) == 0
    assert set(zipfile.ZipFile(out).namelist()) == {"manifest.json", "color.png", "outline.png", "en.json"}
    assert main(["manifest", "--app-id", "not-a-guid"]) == 2
    assert "GUID" in capsys.readouterr().err


def test_ask_one_question_and_stdin_lines(sqlite_env: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import io

    assert main(["ask", "hva forfaller denne måneden?", "--now", "2027-03-10T09:00", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["intent"], answer["period"], answer["as"]) == (
        "due", {"start": "2027-03-01", "end": "2027-03-31"}, "hanne.solberg@khm.uio.no")
    assert answer["answer"]["count"] >= 5  # the adviser sees every floor's fire round
    monkeypatch.setattr("sys.stdin", io.StringIO("mine oppgaver\n\nstart brannvernrunde 2. etasje\nwhat's overdue?\n"))
    assert main(["ask", "-", "--json", "--as", "eirik.haugen@khm.uio.no", "--now", "2027-03-10T09:00"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["intent"] for x in lines] == ["my_tasks", "start_round", "overdue"]
    # as in the chat, the answer is in the language of the question
    titles = [x["answer"]["card"]["attachments"][0]["content"]["body"][0]["text"] for x in lines]
    assert (titles[0], titles[2]) == ("Dine oppgaver", "Overdue")
    assert lines[1]["round"] == "fire" and lines[1]["floor"] == "hm-2"
    assert lines[1]["answer"]["occurrence"] == "fire_round:2027-Q1:hm-2"
    assert main(["ask", "status", "--as", "nobody@example.org"]) == 2
    capsys.readouterr()
    assert main(["ask", "help", "--locale", "en"]) == 0
    assert "Here is what I can help with" in capsys.readouterr().out


def test_ask_a_huge_word_gets_the_help_card(sqlite_env: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io

    # took 10 s before the understanding was bounded (hms/nlu.py, tests/test_nlu.py measure the work)
    monkeypatch.setattr("sys.stdin", io.StringIO("a" * 100_000 + "\nhva er forsinket?\n"))
    assert main(["ask", "-", "--json", "--now", "2027-03-10T09:00"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["intent"] for x in lines] == ["unknown", "overdue"]
    assert "Det forsto jeg ikke helt" in json.dumps(lines[0]["answer"]["card"], ensure_ascii=False)


def test_export_command(sqlite_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "records.json"
    assert main(["export", "--from", "2027-01-01", "--to", "2027-12-31", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["period"] == {"start": "2027-01-01", "end": "2027-12-31"}
    assert main(["export", "--from", "2027-01-01", "--to", "2027-12-31", "--out", str(tmp_path / "pack.csv")]) == 0
    assert sorted(p.name for p in tmp_path.glob("pack*.csv")) == [
        "pack-history.csv", "pack-index.csv", "pack-measures.csv", "pack-responsibilities.csv", "pack-rounds.csv",
        "pack.csv"]
    assert main(["export", "--from", "2027-02-01", "--to", "2027-01-01", "--out", str(tmp_path / "x.json")]) == 2
