"""Retention: prune what only served delivery or retries, keep the record.

Two tables grow with every prompt and every inbound activity and were never pruned (ten simulated years of a
2,000-person unit: outbox card payloads 285 MB, retry ledger 174 MB):

- **The retry ledger** (`processed_activity`) only exists so that a Teams retry of an activity is handled once.
  Teams retries within seconds to minutes; a row older than the ledger retention (default 7 days) can no longer
  meet its retry, so it is deleted, whether completed or a claim that lapsed long ago. The SQLite in-memory judge
  (storage/ledger.py) only ever remembers the last `REMEMBER` (an hour), far inside any allowed retention.
- **The outbox** row is the record of a prompt: who (recipient), what (kind, dedupe_key), when (created_at,
  sent_at) and the outcome (status, attempts, last_error). That row stays for good, so the planner's idempotency
  by dedupe_key holds for ever. Only its `payload` (the rendered card, most of the row's size) is cleared
  (to '') once the row has been sent or dead for longer than the outbox retention (default 90 days). Rows still
  to send (pending, retry, claimed) are never touched.

Work goes in batches of `BATCH` rows, each its own short transaction, so a first run on a large table never
holds a lock for long. Every statement is idempotent: two replicas pruning at once only do nothing twice (on
PostgreSQL a batch skips rows another replica has locked). On SQLite the freed pages are reused by new rows, so
the file stops growing; it does not shrink without a VACUUM (see `_rewrite` for why SQLite rewrites the rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import models as m
from usecases.database import opened_engine

BATCH = 1000  # rows per statement
CLEARED = ""  # the payload of a row whose card is no longer kept


@dataclass(frozen=True)
class Retention:
    """How long delivery and retry data is kept."""

    ledger: dt.timedelta = dt.timedelta(days=7)
    outbox: dt.timedelta = dt.timedelta(days=90)


@dataclass
class PruneReport:
    """What one run removed (or, in a dry run, would remove)."""

    ledger_deleted: int = 0
    payloads_cleared: int = 0
    batches: int = 0
    downloads_deleted: int = 0  # files handed out by link whose token expired (a handful a day at most)


def _outbox_done_before(cutoff: dt.datetime) -> Any:
    """Outbox rows sent or dead before `cutoff` that still carry a payload. A dead row has no sent_at: its last
    attempt was scheduled at not_before, which is when it died."""
    t = m.table(m.OutboxMessage)
    return sa.and_(t.c.status.in_(("sent", "dead")), t.c.payload != CLEARED,
                   sa.func.coalesce(t.c.sent_at, t.c.not_before) < cutoff)


def _ledger_before(cutoff: dt.datetime) -> Any:
    return m.table(m.ProcessedActivity).c.received_at < cutoff


async def _count(engine: AsyncEngine, table: sa.Table, where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(where))).scalar_one())


async def _clear(conn: AsyncConnection, ids: list[int], where: Any) -> int:
    """PostgreSQL: clear the payloads in place (the old versions and their TOAST go to autovacuum, whose space
    new rows reuse). The condition again: sent and dead are final and the rows are locked, but the statement says
    exactly what it may touch."""
    outbox = m.table(m.OutboxMessage)
    return (await conn.execute(sa.update(outbox).where(outbox.c.id.in_(ids), where)
                               .values(payload=CLEARED))).rowcount or 0


async def _rewrite(conn: AsyncConnection, ids: list[int], where: Any) -> int:
    """SQLite: delete the rows and insert them again (same ids, same record) without their payloads.

    An UPDATE that shrinks a row leaves it where it was: measured on 10,000 sent rows with 1 KB cards, clearing
    the payloads in place freed not one of the outbox's 3,343 pages (13.7 MB, then 86 % empty), and new rows
    (appended at the end of the table) never reuse that space, so the file kept growing as before. A DELETE
    merges pages that fall below a third full and frees the rest, and the rows inserted again fill their pages;
    the freed pages are then reused by new rows."""
    outbox = m.table(m.OutboxMessage)
    # the DELETE reads the rows it removes (under the write lock, so another pruner's rewrite is seen)
    rows = [dict(r) for r in (await conn.execute(
        sa.delete(outbox).where(outbox.c.id.in_(ids), where).returning(*outbox.c))).mappings()]
    if rows:
        await conn.execute(sa.insert(outbox), [{**r, "payload": CLEARED} for r in rows])
    return len(rows)


async def prune(engine: AsyncEngine, now: dt.datetime, retention: Retention = Retention(), *,
                batch: int = BATCH, dry_run: bool = False) -> PruneReport:
    """Delete retry-ledger rows older than `retention.ledger` and clear the payloads of outbox rows sent or dead
    longer than `retention.outbox` ago, in batches; with `dry_run`, only count them."""
    report = PruneReport()
    ledger, outbox = m.table(m.ProcessedActivity), m.table(m.OutboxMessage)
    downloads = m.table(m.Download)
    ledger_where = _ledger_before(now - retention.ledger)
    outbox_where = _outbox_done_before(now - retention.outbox)
    if dry_run:
        report.ledger_deleted = await _count(engine, ledger, ledger_where)
        report.payloads_cleared = await _count(engine, outbox, outbox_where)
        report.downloads_deleted = await _count(engine, downloads, downloads.c.expires_at <= now)
        return report
    postgres = engine.dialect.name == "postgresql"

    def chosen(key: sa.Column[Any], where: Any) -> Any:
        pick = sa.select(key).where(where).limit(batch)
        # another replica pruning the same rows: skip what it holds rather than wait for it
        return pick.with_for_update(skip_locked=True) if postgres else pick

    while True:
        async with engine.begin() as conn:
            done = (await conn.execute(sa.delete(ledger).where(
                ledger.c.activity_key.in_(chosen(ledger.c.activity_key, ledger_where))))).rowcount or 0
        report.batches += 1
        report.ledger_deleted += done
        if done < batch:
            break
    last_id = 0
    while True:
        # walk the outbox by id, so that each batch starts where the last one ended instead of scanning again
        async with engine.begin() as conn:
            ids = [row[0] for row in await conn.execute(
                chosen(outbox.c.id, sa.and_(outbox_where, outbox.c.id > last_id)).order_by(outbox.c.id))]
            if ids:
                report.payloads_cleared += await (_clear(conn, ids, outbox_where) if postgres
                                                  else _rewrite(conn, ids, outbox_where))
        report.batches += 1
        if len(ids) < batch:
            break
        last_id = ids[-1]
    async with engine.begin() as conn:
        report.downloads_deleted = (await conn.execute(
            sa.delete(downloads).where(downloads.c.expires_at <= now))).rowcount or 0
    return report


async def prune_database(url: str, now: dt.datetime, retention: Retention = Retention(), *,
                         dry_run: bool = False) -> PruneReport:
    """`prune` for one command: on a ready database, with an engine of its own."""
    async with opened_engine(url) as engine:
        return await prune(engine, now, retention, dry_run=dry_run)
