"""The ledger of inbound activities already handled, so a Teams retry of a turn is handled once.

Every turn asks `claim(key)` before it does anything. How the answer is found depends on the deployment:

- **PostgreSQL, one or more replicas** (a retry may reach another replica): the database is the judge. Claims
  are written in groups (group commit): the claims that arrive while a write is in flight go together into the
  next one, as one INSERT .. ON CONFLICT DO NOTHING RETURNING and one commit. A lone claim is written at once;
  under load, fifty concurrent turns cost a handful of statements instead of fifty.
- **SQLite, one process by design** (the embedded default): the process itself is the judge. Keys seen in the
  last `REMEMBER` are kept in memory (loaded from the table at start), and new keys are written behind, in
  groups, a moment later. A turn does not wait for the disk. The one window: keys of turns handled in the last
  `FLUSH_DELAY` before the process is killed are not on disk, so a Teams retry of such a turn after a restart
  is handled again; a graceful stop writes them first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import db, models as m

log = logging.getLogger("hms.ledger")

MAX_BATCH = 500  # rows per statement
REMEMBER = dt.timedelta(hours=1)  # Teams retries within seconds; an hour is far beyond that
MAX_REMEMBERED = 100_000  # keys kept in memory at most (SQLite)
FLUSH_DELAY = 0.1  # seconds a new key waits in memory (SQLite), so that writes go out in groups
KEY_MAX = 500  # the column's length; a longer key (the door allows ids up to their own columns) is hashed


def fit_key(key: str) -> str:
    """The key as stored: itself, or a digest of it when it is longer than the column."""
    return key if len(key) <= KEY_MAX else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def record(conn: AsyncConnection, rows: dict[str, dt.datetime]) -> set[str]:
    """Insert the keys not yet on record; returns those that were new. No commit."""
    table = m.table(m.ProcessedActivity)
    # one statement for any number of rows: compiled once, sent as multi-row VALUES ("insertmanyvalues")
    stmt = db.dialect_insert(conn.dialect.name)(table).on_conflict_do_nothing().returning(table.c.activity_key)
    params = [{"activity_key": k, "received_at": at} for k, at in rows.items()]
    return {row[0] for row in await conn.execute(stmt, params)}


def _take(waiting: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the oldest `MAX_BATCH` entries: one statement's worth."""
    return {k: waiting.pop(k) for k in list(itertools.islice(waiting, MAX_BATCH))}


class ActivityLedger:
    """Claims activity keys; one instance per process and engine. See the module docstring."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.in_memory = engine.dialect.name == "sqlite"
        self._pending: dict[str, tuple[dt.datetime, list[asyncio.Future[bool]]]] = {}  # database-judged
        self._recent: dict[str, dt.datetime] = {}  # in-memory judge: key -> when it was claimed (oldest first)
        self._unwritten: dict[str, dt.datetime] = {}
        self._writer: asyncio.Task[None] | None = None
        self.statements = 0  # INSERTs written (for tests and the benchmark)

    async def start(self, now: dt.datetime) -> None:
        """Load the keys of the last `REMEMBER` (in-memory mode); a no-op on PostgreSQL."""
        if not self.in_memory:
            return
        table = m.table(m.ProcessedActivity)
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(table.c.activity_key, table.c.received_at)
                                       .where(table.c.received_at >= now - REMEMBER)
                                       .order_by(table.c.received_at))
            self._recent = {key: at for key, at in found}

    async def claim(self, key: str, now: dt.datetime) -> bool:
        """True the first time `key` is claimed, False for a retry."""
        key = fit_key(key)
        if self.in_memory:
            return self._claim_in_memory(key, now)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(key)
        if waiting is not None:
            waiting[1].append(future)  # the same activity twice in one group: only the first one counts
        else:
            self._pending[key] = (now, [future])
        self._ensure_writer(self._write_claims)
        return await future

    def _claim_in_memory(self, key: str, now: dt.datetime) -> bool:
        if key in self._recent:
            return False
        self._recent[key] = now
        self._unwritten[key] = now
        self._forget(now)
        self._ensure_writer(self._write_behind)
        return True

    def _forget(self, now: dt.datetime) -> None:
        """Drop keys older than `REMEMBER` (and the oldest beyond `MAX_REMEMBERED`): retries never come that
        late. Keys are in claim order, so only the oldest are looked at."""
        cutoff = now - REMEMBER
        while self._recent:
            key, at = next(iter(self._recent.items()))
            if at >= cutoff and len(self._recent) <= MAX_REMEMBERED:
                break
            del self._recent[key]

    def _ensure_writer(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(job())

    async def _write_claims(self) -> None:
        while self._pending:
            group = _take(self._pending)
            try:
                async with self.engine.begin() as conn:
                    new = await record(conn, {k: at for k, (at, _) in group.items()})
                self.statements += 1
            except Exception as exc:  # noqa: BLE001 - every waiting turn gets the error; the next group retries
                log.warning("could not record %d activities: %s", len(group), type(exc).__name__)
                for _, futures in group.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                continue
            for key, (_, futures) in group.items():
                for i, f in enumerate(futures):
                    if not f.done():  # a turn that was cancelled meanwhile no longer waits
                        f.set_result(i == 0 and key in new)

    async def _write_behind(self, delay: float = FLUSH_DELAY) -> None:
        if delay:
            await asyncio.sleep(delay)
        while self._unwritten:
            group = _take(self._unwritten)
            try:
                async with self.engine.begin() as conn:
                    await record(conn, group)
                self.statements += 1
            except Exception as exc:  # noqa: BLE001 - kept in memory; the next claim tries again
                log.warning("could not record %d activities: %s", len(group), type(exc).__name__)
                self._unwritten = {**group, **self._unwritten}
                return

    async def flush(self) -> None:
        """Wait for writes in flight and write what is still only in memory (at a graceful stop, and in tests
        that look at the table)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._unwritten:
            await self._write_behind(delay=0)

    close = flush
