"""Sessions for the chat's turns: the writer's opened on demand, and readers that cost as little as the database
allows (inline on SQLite, a plain connection on PostgreSQL).

A turn that only answers a question never opens the writer's session; its reads go through `Readers`. Plain-row
queries (`rows()`) skip the ORM's per-query work; entity queries still get an ORM session, opened on first use.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import create_sync_engine, query_only

log = logging.getLogger("hms.readers")

T = TypeVar("T")


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
        token, found = self._readers.recall(statement, params)
        if found is not None:
            return found
        return self._readers.keep(token, self._connection().execute(statement, params).all())

    async def exec(self, statement: Any, **kwargs: Any) -> Any:
        """AsyncSession.exec, for entity queries (the only ORM call the read paths make)."""
        return self._orm().exec(statement, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsyncReadSession:
    """Reads on PostgreSQL over one connection, opened on first use: plain rows straight from it (no ORM work
    per query), and entity queries through an ORM session bound to the same connection.

    One connection, never two: when rows and entities each took their own, ten turns reading at once each held
    one of the pool's ten and waited for a second, until the pool's timeout failed them all (30 s, then 500).
    """

    def __init__(self, engine: AsyncEngine, readers: Readers | None = None):
        self._engine = engine
        self._readers = readers
        self._conn: AsyncConnection | None = None
        self._session: AsyncSession | None = None
        self.bind = engine

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def rows(self, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
        token, found = self._readers.recall(statement, params) if self._readers else (None, None)
        if found is not None:
            return found
        rows = (await (await self._connection()).execute(statement, params)).all()
        return self._readers.keep(token, rows) if self._readers else rows

    async def exec(self, statement: Any, **kwargs: Any) -> Any:
        """AsyncSession.exec, for entity queries (the only ORM call the read paths make)."""
        if self._session is None:
            self._session = AsyncSession(bind=await self._connection(), expire_on_commit=False)
        return await self._session.exec(statement, **kwargs)

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


async def kept(session: Any, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
    """A value computed from what the database holds, kept like `rows()` until the data changes (through our
    readers; computed every time through any other session). `key` must name everything else the value
    depends on (a period, a day); callers must not change what is returned."""
    readers = session._readers if isinstance(session, InlineReadSession | AsyncReadSession) else None
    if readers is None:
        return await make()
    token, found = readers.recall_key(("kept", *key))
    if found is not None:
        return found  # type: ignore[no-any-return]
    value = await make()
    readers.keep_value(token, value)
    return value


class Readers:
    """Sessions for reading only: inline on SQLite (`InlineReadSession`), a plain async connection on PostgreSQL
    (`AsyncReadSession`).

    Plain-row reads (`rows()`) are kept until the data changes, so a chat answer usually costs a version check
    instead of a query. What tells that the data changed:
    - SQLite: `PRAGMA data_version` on a connection of our own; it moves whenever any other connection, in this
      process or another, commits.
    - PostgreSQL: a connection that LISTENs on `hms_changes`, which statement triggers on every table but the
      retry ledger NOTIFY after each change (migration 0003), from any replica or program; and every commit
      of an ORM session in this process that wrote rows (so a person who just submitted a round never sees it
      as open; a commit that only ends a read keeps what is kept).
      While that connection is down nothing is kept.
    The version is taken before the rows are read, and rows are kept only if it has not moved meanwhile, so
    what is kept is never older than the version it is kept under.
    """

    CACHE_SIZE = 256
    PROBE_EVERY = 60.0  # seconds between checks that notifications arrive
    PROBE_WAIT = 10.0

    def __init__(self, url: str, writer: AsyncEngine, size: int = 4):
        self.inline = writer.dialect.name == "sqlite"
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._cache_version: int | None = None
        self.hits = self.misses = 0
        if self.inline:
            self._sync = create_sync_engine(url, pool_size=size + 1, max_overflow=0, pool_timeout=60)
            event.listen(self._sync, "connect", query_only)
            self._probe: Any = None  # a pooled connection kept for PRAGMA data_version
        else:
            self._writer = writer
            self._listen_url = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            self._listener: asyncio.Task[None] | None = None
            self.listening = False
            self.version = 0  # moves on every change notification and every local commit
            self.notified = 0  # change notifications received
            self.failures = 0  # listening attempts that failed
            self._changed = asyncio.Event()
            _POSTGRES_READERS.add(self)

    def __call__(self) -> Any:
        """An async context manager giving a session with AsyncSession's read API and `rows()`."""
        return InlineReadSession(self._sync, self) if self.inline else AsyncReadSession(self._writer, self)

    async def start(self) -> None:
        """Start listening for changes (PostgreSQL); until then nothing is kept. On SQLite, take the connection
        that reads `PRAGMA data_version` now, for the process, instead of in whichever turn reads first."""
        if self.inline:
            self.data_version()
        elif self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    def data_version(self) -> int:
        if self._probe is None:
            self._probe = self._sync.raw_connection()
        return int(self._probe.driver_connection.execute("PRAGMA data_version").fetchone()[0])

    # -- what is kept ----------------------------------------------------------------------------------------

    def recall(self, statement: Any, params: dict[str, Any]) -> tuple[Any, Sequence[Any] | None]:
        """A token for `keep()`, and the rows kept for this query at the current version (or None)."""
        return self.recall_key((statement, *sorted(params.items())))

    def recall_key(self, key: tuple[Any, ...]) -> tuple[Any, Any]:
        """A token for `keep()`/`keep_value()`, and what is kept under `key` at the current version (or None)."""
        version = self.data_version() if self.inline else (self.version if self.listening else None)
        if version is None:
            return None, None
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        found = self._cache.get(key)
        if found is not None:
            self.hits += 1
        return (version, key), found

    def keep(self, token: Any, rows: Sequence[Any]) -> Sequence[Any]:
        """Keep rows read after `recall()` gave `token`, unless the data changed meanwhile."""
        rows = tuple(rows)
        self.keep_value(token, rows)
        return rows

    def keep_value(self, token: Any, value: Any) -> None:
        """Keep a value computed after `recall_key()` gave `token`, unless the data changed meanwhile."""
        if token is None:
            return
        version, key = token
        self.misses += 1
        still = self.inline or (self.listening and self.version == version)
        if still and version == self._cache_version:
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value

    # -- PostgreSQL change notifications ---------------------------------------------------------------------

    def bump(self) -> None:
        """The data may have changed: nothing kept so far is used again."""
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_change(self, since: int) -> None:
        """Wait until the version moves past `since` (for tests and tools; the caller bounds the wait)."""
        while self.version == since:
            await self._changed.wait()

    async def _listen(self) -> None:
        """Listen, and prove every `PROBE_EVERY` seconds that notifications really arrive: a probe sent from
        another connection must come back within `PROBE_WAIT` (behind a connection pooler in transaction mode
        LISTEN silently hears nothing; then nothing is kept, and the log says why)."""
        delay = 1.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._listen_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    while True:
                        probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
                        async with self._writer.begin() as other:
                            await other.execute(sa.text("SELECT pg_notify(:channel, :probe)"),
                                                {"channel": CHANGES_CHANNEL, "probe": probe})
                        if not await self._hear(conn, self.PROBE_WAIT, until=probe):
                            raise LookupError("change notifications do not arrive (is a pooler in transaction "
                                              "mode between the bot and PostgreSQL?)")
                        if not self.listening:
                            self.bump()  # whatever happened before we listened
                            self.listening, delay = True, 1.0
                        await self._hear(conn, self.PROBE_EVERY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reads go uncached until the listener is back
                log.warning("not listening for changes (%s: %s); reads are not kept until it is back",
                            type(exc).__name__, exc)
                self.failures += 1
                self.bump()
            finally:
                if self.listening:
                    self.listening = False
                    self.bump()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _hear(self, conn: psycopg.AsyncConnection[Any], seconds: float, until: str | None = None) -> bool:
        """Take notifications for up to `seconds`; True as soon as the one with payload `until` arrives."""
        async for note in conn.notifies(timeout=seconds):
            if note.payload == until:
                return True
            if not note.payload.startswith(PROBE_PREFIX):  # other replicas' probes change nothing
                self.notified += 1
                self.bump()
        return False

    async def dispose(self) -> None:
        if self.inline:
            if self._probe is not None:
                self._probe.close()
                self._probe = None
            self._sync.dispose()
        elif self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None


CHANGES_CHANNEL = "hms_changes"  # NOTIFY'd by the triggers of migration 0003
PROBE_PREFIX = "probe:"
_POSTGRES_READERS: weakref.WeakSet[Readers] = weakref.WeakSet()


# Which ORM sessions of this process wrote in their transaction. Only such a commit empties the readers' cache: the
# commit that ends a read (identifying a person, a card press that changes nothing) leaves it, so PostgreSQL keeps
# what it read across turns. Over-counting is safe (an extra invalidation), under-counting is not, so any statement
# that is not a SELECT counts as a write; a flush counts unless every object it would touch is unchanged.
_WROTE = "hms_wrote"


@event.listens_for(Session, "do_orm_execute")
def _executed_here(state: ORMExecuteState) -> None:
    """INSERT, UPDATE, DELETE or text through a session (a locking SELECT changes nothing by itself)."""
    if not state.is_select:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_flush")
def _flushed_here(session: Session, _context: Any) -> None:
    """The unit of work wrote rows: new, deleted, or changed objects (the lists still hold what was flushed)."""
    if session.new or session.deleted or any(session.is_modified(row) for row in session.dirty):
        session.info[_WROTE] = True


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back_here(session: Session, previous: SessionTransaction) -> None:
    """What the transaction wrote is gone (a savepoint's rollback keeps what its parent wrote)."""
    if previous.parent is None:
        session.info.pop(_WROTE, None)


@event.listens_for(Session, "after_commit")
def _committed_here(session: Session) -> None:
    """A writing commit in this process: drop what PostgreSQL readers keep at once, before the notification
    arrives (so a person who just submitted a round never sees it as open)."""
    if session.info.pop(_WROTE, False):
        for readers in list(_POSTGRES_READERS):
            readers.bump()
