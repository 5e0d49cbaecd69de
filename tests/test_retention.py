"""Retention (usecases/retention.py): old retry-ledger rows go, old card payloads go, the record stays."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from bot.settings import Settings
from cli.main import main
from scheduler.jobs import PRUNE_JOB, build_scheduler
from storage import db, models as m, repo
from storage.ledger import ActivityLedger
from tests.conftest import oslo
from usecases.records import outbox_listing
from usecases.retention import Retention, prune

NOW = oslo(2026, 11, 26, 10)
DAY = dt.timedelta(days=1)
CARD = '{"target": {"kind": "person", "email": "a@uni.no"}, "activity": {"summary": "x"}}'


def outbox_row(key: str, status: str, *, created: dt.datetime, sent: dt.datetime | None = None,
               token: str | None = None) -> dict[str, object]:
    return {"dedupe_key": key, "kind": "reminder", "recipient_email": "a@uni.no", "payload": CARD, "status": status,
            "attempts": 3 if status == "dead" else 1, "not_before": created, "created_at": created, "sent_at": sent,
            "claim_token": token, "claimed_until": created + dt.timedelta(minutes=2) if token else None,
            "last_error": "gone" if status == "dead" else None}


ROWS = [
    outbox_row("old-sent", "sent", created=NOW - 200 * DAY, sent=NOW - 100 * DAY),
    outbox_row("old-dead", "dead", created=NOW - 120 * DAY),
    outbox_row("recent-sent", "sent", created=NOW - 100 * DAY, sent=NOW - 10 * DAY),  # waited long, sent lately
    outbox_row("recent-dead", "dead", created=NOW - 5 * DAY),
    outbox_row("old-pending", "pending", created=NOW - 200 * DAY),
    outbox_row("old-retry", "retry", created=NOW - 200 * DAY),
    outbox_row("old-claimed", "pending", created=NOW - 200 * DAY, token="t" * 32),
]


def table_rows(url: str, table: str, key: str) -> dict[str, dict[str, object]]:
    engine = db.create_sync_engine(url)
    try:
        with engine.connect() as conn:
            return {r[key]: dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings()}
    finally:
        engine.dispose()


async def insert(url: str, table: sa.Table, rows: list[dict[str, object]]) -> None:
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(table), rows)
    await engine.dispose()


async def test_old_sent_and_dead_payloads_are_cleared_and_the_record_kept(db_url: str) -> None:
    await insert(db_url, m.table(m.OutboxMessage), ROWS)
    before = table_rows(db_url, "outbox", "dedupe_key")
    engine = db.create_engine(db_url)
    report = await prune(engine, NOW, Retention(outbox=90 * DAY), batch=1)  # batch=1: the walk goes row by row
    assert report.payloads_cleared == 2
    after = table_rows(db_url, "outbox", "dedupe_key")
    assert set(after) == set(before)  # no row is deleted
    assert {k for k, r in after.items() if r["payload"] != CARD} == {"old-sent", "old-dead"}
    assert after["old-sent"]["payload"] == ""
    for key, row in after.items():  # the record: who was prompted when, and the outcome
        assert {c: v for c, v in row.items() if c != "payload"} == {
            c: v for c, v in before[key].items() if c != "payload"}
    # the planner's idempotency by dedupe_key still holds for a cleared row
    async with db.session_factory(engine)() as s:
        assert await repo.enqueue(s, [{"dedupe_key": "old-sent", "kind": "reminder", "payload": CARD}], NOW) == 0
    # a second run (or a second replica) finds nothing more to do
    assert (await prune(engine, NOW, Retention(outbox=90 * DAY))).payloads_cleared == 0
    await engine.dispose()
    listed = await outbox_listing(db_url, "dead", 10)  # the adviser's listing reads cleared rows fine
    assert {r["key"] for r in listed} == {"old-dead", "recent-dead"}


def used_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        size, pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_size", "page_count", "freelist_count"))
    finally:
        conn.close()
    return int(size * (pages - free))


async def test_sqlite_gives_the_space_of_cleared_payloads_back_for_new_rows(tmp_path: Path) -> None:
    # an UPDATE that shrinks rows leaves their pages almost empty, and new rows never reuse that space
    url = f"sqlite:///{tmp_path / 'space.sqlite3'}"
    db.upgrade(url)
    card = json.dumps({"activity": {"text": "x" * 1500}})
    await insert(url, m.table(m.OutboxMessage), [
        {**outbox_row(f"sent-{i}", "sent", created=NOW - 200 * DAY, sent=NOW - 100 * DAY), "payload": card}
        for i in range(1000)])
    before = used_bytes(tmp_path / "space.sqlite3")
    engine = db.create_engine(url)
    assert (await prune(engine, NOW, batch=300)).payloads_cleared == 1000
    await engine.dispose()
    assert used_bytes(tmp_path / "space.sqlite3") < before / 4


async def test_a_dry_run_counts_and_changes_nothing(db_url: str) -> None:
    await insert(db_url, m.table(m.OutboxMessage), ROWS)
    await insert(db_url, m.table(m.ProcessedActivity), [
        {"activity_key": "old", "received_at": NOW - 30 * DAY, "completed_at": NOW - 30 * DAY}])
    before = (table_rows(db_url, "outbox", "dedupe_key"), table_rows(db_url, "processed_activity", "activity_key"))
    engine = db.create_engine(db_url)
    report = await prune(engine, NOW, dry_run=True)
    await engine.dispose()
    assert (report.ledger_deleted, report.payloads_cleared) == (1, 2)
    assert (table_rows(db_url, "outbox", "dedupe_key"),
            table_rows(db_url, "processed_activity", "activity_key")) == before


async def test_old_ledger_rows_are_deleted_and_a_retry_of_a_recent_activity_still_dropped(db_url: str) -> None:
    old = NOW - 8 * DAY
    await insert(db_url, m.table(m.ProcessedActivity), [
        {"activity_key": "old-completed", "received_at": old, "completed_at": old},
        {"activity_key": "old-lapsed-claim", "received_at": old, "completed_at": None},
        {"activity_key": "last-week", "received_at": NOW - 6 * DAY, "completed_at": NOW - 6 * DAY},
    ])
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    assert await ledger.claim("recent", NOW) is True
    ledger.complete("recent", NOW)
    await ledger.close()

    report = await prune(engine, NOW + dt.timedelta(minutes=1), Retention(ledger=7 * DAY), batch=1)
    assert report.ledger_deleted == 2
    assert sorted(table_rows(db_url, "processed_activity", "activity_key")) == ["last-week", "recent"]

    later = NOW + dt.timedelta(minutes=2)  # a new process: the retry of the recent activity is still a retry
    again = ActivityLedger(engine)
    await again.start(later)
    assert await again.claim("recent", later) is False
    await again.close()
    await engine.dispose()


async def test_two_replicas_pruning_at_once_do_the_work_once(db_url: str) -> None:
    rows = [outbox_row(f"sent-{i}", "sent", created=NOW - 200 * DAY, sent=NOW - 100 * DAY) for i in range(50)]
    await insert(db_url, m.table(m.OutboxMessage), rows)
    await insert(db_url, m.table(m.ProcessedActivity), [
        {"activity_key": f"k{i}", "received_at": NOW - 30 * DAY, "completed_at": NOW - 30 * DAY} for i in range(50)])
    engines = [db.create_engine(db_url), db.create_engine(db_url)]
    reports = await asyncio.gather(*(prune(e, NOW, batch=7) for e in engines))
    for e in engines:
        await e.dispose()
    assert sum(r.payloads_cleared for r in reports) == 50
    assert sum(r.ledger_deleted for r in reports) == 50
    assert all(r["payload"] == "" for r in table_rows(db_url, "outbox", "dedupe_key").values())
    assert table_rows(db_url, "processed_activity", "activity_key") == {}


def test_the_prune_job_is_a_persistent_style_job() -> None:
    async def noop() -> None:
        return None

    scheduler = build_scheduler(noop, noop, noop, prune_every=86400.0)
    job = next(j for j in scheduler.get_jobs() if j.id == PRUNE_JOB)
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time >= 86400
    assert job.trigger.interval == dt.timedelta(days=1)


def test_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().retention() == Retention(ledger=7 * DAY, outbox=90 * DAY)
    monkeypatch.setenv("HMS_LEDGER_RETENTION_DAYS", "2")
    monkeypatch.setenv("HMS_OUTBOX_RETENTION_DAYS", "365")
    assert Settings().retention() == Retention(ledger=2 * DAY, outbox=365 * DAY)
    monkeypatch.setenv("HMS_LEDGER_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError, match=r"HMS_LEDGER_RETENTION_DAYS|ledger_retention_days"):
        Settings()


def test_the_prune_command_counts_then_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    db.upgrade(url)
    asyncio.run(insert(url, m.table(m.OutboxMessage), ROWS))
    now = ["--now", NOW.isoformat()]
    assert main(["prune", "--dry-run", *now]) == 0
    assert "would clear 2 outbox card payloads" in capsys.readouterr().out
    assert all(r["payload"] == CARD for r in table_rows(url, "outbox", "dedupe_key").values())
    assert main(["prune", *now]) == 0
    assert "cleared 2 outbox card payloads" in capsys.readouterr().out
    assert main(["prune", "--now", "not-a-date"]) == 2
    assert "--now" in capsys.readouterr().err
