"""Opening the database for one command: ready-check (migrations), one session, and closing it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import db


class DatabaseNotReady(Exception):
    """The database is not at the newest migration (run `hms-bot db upgrade`)."""


def prepare_database(url: str) -> None:
    """Make an embedded SQLite database ready by migrating it; PostgreSQL must be migrated explicitly."""
    if url.startswith("sqlite"):
        db.upgrade(url)
        return
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
async def opened(url: str) -> AsyncIterator[AsyncSession]:
    """One session on a ready database, for a command that runs once; the engine is closed afterwards."""
    prepare_database(url)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()
