"""Sessions for the chat's turns: the writer's opened on demand, and readers that cost as little as the database
allows (inline on SQLite, a plain connection on PostgreSQL).

A turn that only answers a question never opens the writer's session; its reads go through `Readers`. Plain-row
queries (`rows()`) skip the ORM's per-query work; entity queries still get an ORM session, opened on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import create_sync_engine, query_only


class OnDemandSession:
    """An AsyncSession that is opened on first use: a turn that only reads never opens the writer's session."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]):
        self._factory = factory
        self._session: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._factory()
        return getattr(self._session, name)

    @property
    def opened(self) -> bool:
        return self._session is not None

    async def settle(self) -> None:
        """Commit what is pending and give the connection back (no-op when never opened)."""
        if self._session is not None and self._session.in_transaction():
            await self._session.commit()

    async def __aenter__(self) -> Any:  # used where an AsyncSession is expected (its attributes are forwarded)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()


class InlineReadSession:
    """The read part of AsyncSession's API over a synchronous, read-only SQLite connection, run on the
    caller's thread.

    A short indexed read from SQLite in WAL mode takes tens of microseconds, and WAL readers never wait for
    the writer; the round trip to aiosqlite's worker thread and back costs about ten times more. The chat's
    answers are such reads, so on SQLite they run inline (measured: a session with one query fell from about
    730 µs of CPU to about 90 µs; `rows()` without the ORM's per-query work, 33 µs). Writes keep the async
    writer engine. The connection and the ORM session are opened on first use.
    """

    def __init__(self, engine: sa.Engine, readers: Readers | None = None):
        self._engine = engine
        self._readers = readers
        self._conn: sa.Connection | None = None
        self._session: Session | None = None
        self.bind = engine

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _orm(self) -> Session:
        if self._session is None:
            self._session = Session(bind=self._connection(), expire_on_commit=False)
        return self._session

    async def __aenter__(self) -> InlineReadSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def rows(self, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
        """The rows of a column-only SELECT (no ORM entities), straight from the connection, or kept from an
        earlier read while the database has not changed (see `Readers`)."""
        if self._readers is None:
            return self._connection().execute(statement, params).all()
        return self._readers.cached_rows(statement, params,
                                         lambda: self._connection().execute(statement, params).all())

    async def exec(self, statement: Any, **kwargs: Any) -> Any:
        return self._orm().exec(statement, **kwargs)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self._orm().execute(statement, *args, **kwargs)

    async def get(self, entity: Any, ident: Any, **kwargs: Any) -> Any:
        return self._orm().get(entity, ident, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self._orm().scalar(statement, *args, **kwargs)

    async def commit(self) -> None:
        if self._session is not None:
            self._session.commit()

    async def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsyncReadSession:
    """Reads on PostgreSQL: plain rows through a Core connection (no ORM work per query), and AsyncSession's
    API for entity queries, each opened on first use."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._session: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = AsyncSession(self._engine, expire_on_commit=False)
        return getattr(self._session, name)

    async def rows(self, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return (await self._conn.execute(statement, params)).all()

    async def __aenter__(self) -> AsyncReadSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._conn is not None:
            await self._conn.close()


async def rows(session: Any, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
    """The rows of a column-only SELECT through any session: our readers' fast path, or a plain AsyncSession."""
    if isinstance(session, InlineReadSession | AsyncReadSession):
        return await session.rows(statement, params)
    return (await session.exec(statement, params=params)).all()  # type: ignore[no-any-return]


class Readers:
    """Sessions for reading only: inline on SQLite (`InlineReadSession`), the async pool on PostgreSQL.

    On SQLite, plain-row reads (`rows()`) are also kept until the database changes: SQLite's `PRAGMA
    data_version` on a connection of our own moves whenever any other connection, in this process or another,
    commits. The version is read before the rows, so what is kept is never older than the version it is kept
    under. A chat answer then costs a version check instead of a query, except just after a write.
    """

    CACHE_SIZE = 256

    def __init__(self, url: str, writer: AsyncEngine, size: int = 4):
        self.inline = writer.dialect.name == "sqlite"
        if self.inline:
            self._sync = create_sync_engine(url, pool_size=size + 1, max_overflow=0, pool_timeout=60)
            event.listen(self._sync, "connect", query_only)
            self._probe: Any = None  # a pooled connection kept for PRAGMA data_version
            self._version: int | None = None
            self._cache: dict[tuple[Any, ...], Sequence[Any]] = {}
            self.hits = self.misses = 0
        else:
            self._writer = writer

    def __call__(self) -> Any:
        """An async context manager giving a session with AsyncSession's read API and `rows()`."""
        return InlineReadSession(self._sync, self) if self.inline else AsyncReadSession(self._writer)

    def data_version(self) -> int:
        if self._probe is None:
            self._probe = self._sync.raw_connection()
        return int(self._probe.driver_connection.execute("PRAGMA data_version").fetchone()[0])

    def cached_rows(self, statement: Any, params: dict[str, Any],
                    load: Callable[[], Sequence[Any]]) -> Sequence[Any]:
        version = self.data_version()
        if version != self._version:
            self._cache.clear()
            self._version = version
        key = (statement, *sorted(params.items()))
        found = self._cache.get(key)
        if found is None:
            self.misses += 1
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            found = self._cache[key] = tuple(load())
        else:
            self.hits += 1
        return found

    async def dispose(self) -> None:
        if self.inline:
            if self._probe is not None:
                self._probe.close()
                self._probe = None
            self._sync.dispose()
