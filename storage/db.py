"""Database engines and migrations: SQLite by default, PostgreSQL through DATABASE_URL.

URLs may be given in their plain form (sqlite:///file.db, postgresql://user@host/db); the async driver
(SQLite run inline, `storage.inline_sqlite`; psycopg) is chosen here so the rest of the code never sees driver
names.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import inline_sqlite, models as m

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Seconds to open a PostgreSQL connection: a server behind a firewall that drops packets would otherwise keep a
# command (or the bot's start) waiting for the operating system's TCP timeout, minutes, before saying anything.
CONNECT_TIMEOUT = 10


def _split(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r} (expected sqlite:///FILE or postgresql://...)")
    return scheme.split("+")[0], rest


_DRIVERS = {"sync": {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"},
            "async": {"sqlite": inline_sqlite.DRIVER, "postgresql": "postgresql+psycopg"}}


def _with_driver(url: str, mode: str) -> str:
    kind, rest = _split(url)
    kind = "postgresql" if kind == "postgres" else kind
    if kind not in _DRIVERS[mode]:
        raise ValueError(f"unsupported database {kind!r}: use sqlite or postgresql")
    return f"{_DRIVERS[mode][kind]}://{rest}"


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT construct (it has ON CONFLICT DO NOTHING)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def sync_url(url: str) -> str:
    """The URL with the driver used for migrations and one-off commands."""
    return _with_driver(url, "sync")


def async_url(url: str) -> str:
    """The URL with the asyncio driver the bot uses."""
    return _with_driver(url, "async")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # WAL with synchronous=NORMAL: a commit never waits for the disk (the WAL is synced at checkpoints). Nothing
    # committed is lost when the bot or its machine's processes crash, and the file is never corrupted; a power
    # cut or an OS crash can undo the last moments' commits. The bot commits on its event loop
    # (storage/inline_sqlite.py), where a sync per commit stalled every turn in flight. PostgreSQL, for
    # deployments that need more, keeps its own durable commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, *, connections: int = 10) -> AsyncEngine:
    """An async engine for `url`; SQLite gets foreign keys, WAL and a busy timeout.

    SQLite has one writer: the engine keeps one connection per process, so work queues in the process instead
    of fighting over the file lock (measured: p99 at 50 concurrent users fell from about 2 s to well under 1 s).
    Reads for answers go through `storage.sessions.Readers` instead. On PostgreSQL it is a fixed pool of
    `connections`: the caller sizes it for the work it admits (see bot/admission.py), so nobody waits for one.
    """
    # An SQL error's text then never carries the values (people's ids, names, the tenant) into the log.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if url.startswith("postgres"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        # a fixed pool: connections opened beyond it would be closed on return, and a PostgreSQL connection is
        # a new server process each time (measured: most of the CPU of a turn at 50 users went to reconnecting)
        kwargs.update(pool_size=connections, max_overflow=0, pool_timeout=30, pool_pre_ping=True)
    else:
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
    engine = create_async_engine(async_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def create_sync_engine(url: str, **kwargs: Any) -> sa.Engine:
    """A synchronous engine (migrations, the command line); SQL errors never show their values."""
    if url.startswith("postgres"):
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT})
    engine = sa.create_engine(sync_url(url), **{"hide_parameters": True, **kwargs})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def safe_url(url: str) -> str:
    """The URL as it may be shown and logged: without its password (in the authority or as a query parameter)."""
    scheme, sep, rest = url.partition("://")
    head, query_sep, query = rest.partition("?")
    if "@" in head:
        cred, _, host = head.rpartition("@")
        head = f"{cred.split(':')[0]}:***@{host}" if ":" in cred else head
    if query:
        query = "&".join("password=***" if part.lower().startswith("password=") else part
                         for part in query.split("&"))
    return f"{scheme}{sep}{head}{query_sep}{query}"


def unreachable(exc: BaseException) -> str | None:
    """Why the database could not be reached or opened, in one line, when `exc` says so (a refused or timed-out
    connection, an unknown host, a wrong password, a database that does not exist, a SQLite file that cannot be
    opened); None for any other error. The line names no password, and no host but for one that does not resolve
    (the caller names the database)."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    text = str(exc.orig if exc.orig is not None else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: Connection refused'
    reason = line.rpartition("failed: ")[2] if "failed: " in line else line
    return " ".join(reason.replace("FATAL:", "").split()) or type(exc).__name__


class DatabaseInUse(Exception):
    """Another bot process already serves this SQLite file."""


def hold_sqlite(url: str) -> IO[str] | None:
    """Claim a SQLite file for this bot process (an exclusive lock on FILE.lock, released when the returned
    handle is closed or the process ends). SQLite serves one bot process: the retry ledger and the caches
    count on it. Several replicas need PostgreSQL. None for PostgreSQL and in-memory databases."""
    path = ensure_sqlite_dir(url)
    if path is None:
        return None
    handle = open(f"{path}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseInUse(f"another hms-bot process is serving {path}; SQLite serves one process "
                            "(use PostgreSQL, DATABASE_URL=postgresql://..., for several replicas)") from None
    return handle


def ensure_sqlite_dir(url: str) -> Path | None:
    """Create the folder of a SQLite file so a fresh checkout needs no manual step; returns the file's path
    (None for PostgreSQL and in-memory databases)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory databases)."""
    kind, rest = _split(url)
    if kind != "sqlite" or not rest.startswith("/") or rest == "/:memory:":
        return None
    return Path(rest[1:])


def upgrade(url: str, revision: str = "head", *, now: dt.datetime | None = None) -> None:
    """Run the migrations up to `revision`; with `now`, record it as when the database was first migrated unless
    a time is on record already (see `record_first_migration`)."""
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)
    if now is not None:
        record_first_migration(url, now)


def record_first_migration(url: str, now: dt.datetime) -> bool:
    """Record `now` as when the database was first migrated, unless a time is on record already (the first one
    stays; replicas starting at once race safely: insert-if-absent). The programs that make a database ready for
    the bot call it with their clock (`hms-bot db upgrade`, `serve`, `local`, `plan`); commands that only read do
    not, so asking "as of" another day never moves the first day. True when this call recorded it."""
    engine = create_sync_engine(url)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("database_info"):
                return False  # migrated to a revision before the table existed
            table = m.table(m.DatabaseInfo)
            stmt = dialect_insert(engine.dialect.name)(table).values(id=1, first_migrated_at=now)
            return conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)).first() \
                is not None
    finally:
        engine.dispose()


@functools.cache  # the migration scripts do not change while the process runs
def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision_sync(connection: sa.Connection) -> str | None:
    """The database's migration revision, read from Alembic's table (quietly: readiness probes call this
    every few seconds, and Alembic's own context logs two lines each time)."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return str(found) if found is not None else None


async def migrations_current(engine: AsyncEngine) -> bool:
    """True when the database is reachable and at the newest migration."""
    async with engine.connect() as conn:
        current = await conn.run_sync(current_revision_sync)
    return current == head_revision()
