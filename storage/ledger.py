"""The ledger of inbound activities already handled, so a Teams retry of a turn is handled once.

Every turn asks `claim(key)` before it does anything. Claims are written in groups (group commit): the claims
that arrive while a write is in flight go together into the next one, as one INSERT .. ON CONFLICT DO NOTHING
RETURNING and one commit. A lone claim is written at once (no added delay); under load, fifty concurrent turns
cost a handful of statements instead of fifty. The database stays the judge, so several instances of the bot
on one PostgreSQL database still handle a retried activity once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import models as m

log = logging.getLogger("hms.ledger")

MAX_BATCH = 200  # rows per statement (2 parameters each; far below SQLite's and PostgreSQL's limits)


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


async def record(conn: sa.ext.asyncio.AsyncConnection, rows: dict[str, dt.datetime]) -> set[str]:
    """Insert the keys not yet on record; returns those that were new. No commit."""
    table = m.ProcessedActivity.__table__
    # one statement for any number of rows: compiled once, sent as multi-row VALUES ("insertmanyvalues")
    stmt = _insert(conn.dialect.name)(table).on_conflict_do_nothing().returning(table.c.activity_key)
    params = [{"activity_key": k, "received_at": at} for k, at in rows.items()]
    return {row[0] for row in await conn.execute(stmt, params)}


class ActivityLedger:
    """Claims activity keys on the database in groups; one instance per process and engine."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._pending: dict[str, tuple[dt.datetime, list[asyncio.Future[bool]]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self.statements = 0  # how many INSERTs were written (for tests and the benchmark)

    async def claim(self, key: str, now: dt.datetime) -> bool:
        """True the first time `key` is claimed (by any process on this database), False for a retry."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(key)
        if waiting is not None:
            waiting[1].append(future)  # the same activity twice in one group: only the first one counts
        else:
            self._pending[key] = (now, [future])
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._pending:
            keys = list(self._pending)[:MAX_BATCH]
            group = {k: self._pending.pop(k) for k in keys}
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

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
