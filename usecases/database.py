"""Opening the database for one command: ready-check (migrations), one session, and closing it again."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import db


class DatabaseNotReady(Exception):
    """The database is not at the newest migration (run `hms-bot db upgrade`)."""


def prepare_database(url: str, now: dt.datetime | None = None) -> None:
    """Make an embedded SQLite database ready by migrating it; PostgreSQL must be migrated explicitly.

    With `now` (the programs that keep the wheel: `serve`, `local`, `plan`), `now` is recorded as when the database
    was first migrated unless a time is on record (`storage.db.record_first_migration`)."""
    if url.startswith("sqlite"):
        db.upgrade(url, now=now)
        return
    check_database(url)
    if now is not None:
        db.record_first_migration(url, now)


def check_database(url: str) -> None:
    """Raise DatabaseNotReady unless the database is at the newest migration; writes nothing (not even a new
    SQLite file)."""
    path = db.sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(f"there is no database at {path} yet: run `hms-bot db upgrade`")
    engine = db.create_sync_engine(url)
    try:
        with engine.connect() as conn:
            current = db.current_revision_sync(conn)
    finally:
        engine.dispose()
    if current != db.head_revision():
        raise DatabaseNotReady(f"the database is at {current or 'no version'}, the code needs "
                               f"{db.head_revision()}: run `hms-bot db upgrade`")


@asynccontextmanager
async def opened_engine(url: str, *, now: dt.datetime | None = None,
                        write: bool = True) -> AsyncIterator[AsyncEngine]:
    """An engine on a ready database, for a command that runs once; it is closed afterwards.

    `write=False` (a dry run) only checks that the database is ready: nothing is migrated or recorded. `now` is
    passed to `prepare_database` otherwise."""
    if write:
        prepare_database(url, now)
    else:
        check_database(url)
    engine = db.create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def opened(url: str, *, now: dt.datetime | None = None, write: bool = True) -> AsyncIterator[AsyncSession]:
    """One session on a ready database, for a command that runs once (see `opened_engine`)."""
    async with opened_engine(url, now=now, write=write) as engine, db.session_factory(engine)() as session:
        yield session
