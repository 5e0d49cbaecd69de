"""SQLite for the asyncio engine, run on the caller's thread: SQLAlchemy's AsyncEngine and AsyncSession over the
standard library's `sqlite3`, with no worker thread.

Why: through aiosqlite every statement is a round trip to a worker thread and back, and each return waits its
turn on the event loop behind every other turn in flight. A checklist page save makes about a dozen of them,
and SQLite has one writer, so at 50 busy users each write held the single connection for tens of milliseconds
of queueing, not of work, and page saves waited 300-400 ms behind each other (`scripts/bench`, the mixed
workload). Run inline, a statement costs what SQLite costs (microseconds), and the connection is held only for
that. Commits do not wait for the disk either (WAL with synchronous=NORMAL, see `storage.db`): with a commit on a
thread of its own, each write held the connection for one more turn of the busy loop (page saves p99 700 ms
against 150-200 ms with the commit inline, `scripts/bench --targets bare mixed`).

How: a dialect that is pysqlite with `is_async` set. The AsyncEngine runs the ORM in a greenlet as always; the
statements simply never suspend (each awaits an already finished coroutine, which the asyncio extension
requires and which costs a greenlet switch, not a turn of the loop). The pool is SQLAlchemy's asyncio queue
pool, so a turn waiting for the writer's one connection waits on the loop, never blocking it. What still
blocks the loop is SQLite itself: a statement, a commit, a checkpoint now and then, and a wait for the file lock
while another program writes (`busy_timeout`; the bot is the database's only writer but for its own retry-ledger
thread, whose commits are short, and occasional commands such as `hms-bot done`).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import await_

DRIVER = "sqlite+hmsinline"


async def _finished() -> None:
    return None


class _Cursor(sqlite3.Cursor):
    """A cursor that fetches a SELECT's rows when it runs, as SQLAlchemy's asyncio adapters do (so the result
    never goes back to SQLite after the statement, and tests can count what a statement returned)."""

    _rows: deque[Any]

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        super().execute(sql, parameters)
        self._rows = deque(super().fetchall() if self.description else ())
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        super().executemany(sql, seq_of_parameters)
        self._rows = deque()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows, self._rows = list(self._rows), deque()
        return rows

    async def _async_soft_close(self) -> None:  # the asyncio result's hook: the rows are already here
        return None


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, accepted by the asyncio extension and run on the caller's thread."""

    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: Any) -> Any:
        return AsyncAdaptedQueuePool

    def create_connect_args(self, url: Any) -> Any:
        args, kwargs = super().create_connect_args(url)
        # the pool may hand the connection to any task of the loop; our cursors know the async result's hook
        kwargs.update(factory=_Connection, check_same_thread=False)
        return args, kwargs

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        await_(_finished())
        super().do_execute(cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        await_(_finished())
        super().do_execute_no_params(cursor, statement, context)

    def do_executemany(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        await_(_finished())
        super().do_executemany(cursor, statement, parameters, context)


registry.register("sqlite.hmsinline", __name__, "InlineSQLiteDialect")
