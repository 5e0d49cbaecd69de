"""The SQLite writer run on the loop's thread (storage/inline_sqlite.py), and values kept until the data changes
(`storage.sessions.kept`): what they promise, on SQLite and where it applies on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from hms.config import HmsConfig
from hms.periods import Period
from hms.wheel import find_occurrence
from storage import db, inline_sqlite, models as m, repo, sessions
from tests.conftest import oslo
from usecases.due import due_items

NOW = oslo(2027, 3, 10, 9)
Q1 = Period(dt.date(2027, 1, 1), dt.date(2027, 3, 31))


@pytest.fixture
async def sqlite_url(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path}/hms.sqlite3"
    db.upgrade(url)
    return url


async def test_statements_and_commits_run_on_the_loops_thread_without_waiting_for_the_disk(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker-thread round trip per statement or commit, and a commit that does not sync the disk (WAL with
    synchronous=NORMAL): a write holds the one connection only for SQLite's own work."""
    engine = db.create_engine(sqlite_url)
    statements: list[int] = []
    commits: list[int] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *_a: statements.append(threading.get_ident()))

    def commit(connection: sqlite3.Connection) -> None:
        commits.append(threading.get_ident())
        sqlite3.Connection.commit(connection)

    monkeypatch.setattr(inline_sqlite._Connection, "commit", commit)
    try:
        async with db.session_factory(engine)() as s:
            s.add(m.Person(email="a@khm.uio.no", name="A", updated_at=NOW))
            await s.commit()
        async with db.session_factory(engine)() as s:
            found = (await s.exec(sa.select(m.Person.email))).all()  # type: ignore[call-overload]
            synchronous = (await s.exec(sa.text("PRAGMA synchronous"))).one()  # type: ignore[call-overload]
            journal = (await s.exec(sa.text("PRAGMA journal_mode"))).one()  # type: ignore[call-overload]
        assert found == [("a@khm.uio.no",)]
        assert statements and set(statements) == {threading.get_ident()}
        assert commits and set(commits) == {threading.get_ident()}
        assert (synchronous, journal) == ((1,), ("wal",))  # NORMAL
    finally:
        await engine.dispose()


async def test_a_writer_waiting_for_the_connection_never_blocks_the_loop(sqlite_url: str) -> None:
    """SQLite has one writer connection per process: a second session waits on the loop (other work goes on), and
    gets the connection when the first commits; both writes land."""
    engine = db.create_engine(sqlite_url)
    factory = db.session_factory(engine)
    first_holds = asyncio.Event()
    release_first = asyncio.Event()
    ticks = 0

    async def first() -> None:
        async with factory() as s:
            s.add(m.Person(email="first@khm.uio.no", name="First", updated_at=NOW))
            await s.flush()  # the write lock and the connection are held from here
            first_holds.set()
            await release_first.wait()
            await s.commit()

    async def second() -> None:
        await first_holds.wait()
        async with factory() as s:
            s.add(m.Person(email="second@khm.uio.no", name="Second", updated_at=NOW))
            await s.commit()

    async def ticker() -> None:
        nonlocal ticks
        while not release_first.is_set():
            ticks += 1
            await asyncio.sleep(0)

    try:
        tasks = [asyncio.create_task(first()), asyncio.create_task(second()), asyncio.create_task(ticker())]
        async with asyncio.timeout(10):  # a failure fails, never hangs
            await asyncio.wait([asyncio.create_task(first_holds.wait()), tasks[0]],
                               return_when=asyncio.FIRST_COMPLETED)
        assert first_holds.is_set(), tasks[0].exception()
        for _ in range(50):
            await asyncio.sleep(0)
        assert ticks >= 40  # the loop went on while the second writer waited
        assert not tasks[1].done()
        release_first.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        async with factory() as s:
            emails = (await s.exec(sa.select(m.Person.email).order_by(m.Person.email))).all()  # type: ignore[call-overload]
        assert [e for (e,) in emails] == ["first@khm.uio.no", "second@khm.uio.no"]
    finally:
        await engine.dispose()


async def test_fifty_concurrent_writers_all_land_beside_another_program(sqlite_url: str) -> None:
    """Fifty turns writing at once, while another program (an hms-bot command) writes the same file: every write
    lands, none fails with 'database is locked'."""
    engine = db.create_engine(sqlite_url)
    factory = db.session_factory(engine)

    async def write(i: int) -> None:
        async with factory() as s:
            s.add(m.Person(email=f"p{i}@khm.uio.no", name=f"P{i}", updated_at=NOW))
            await asyncio.sleep(0)
            await s.commit()

    def other_program() -> None:
        other = db.create_sync_engine(sqlite_url)
        with other.begin() as conn:
            conn.execute(sa.insert(m.table(m.Person)).values(
                email="cli@khm.uio.no", name="CLI", demo=False, active=True, away=False, updated_at=NOW))
        other.dispose()

    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(write(i) for i in range(50)), asyncio.to_thread(other_program))
        async with factory() as s:
            count = (await s.exec(sa.select(sa.func.count()).select_from(m.table(m.Person)))).one()  # type: ignore[call-overload]
        assert count == (51,)
    finally:
        await engine.dispose()


async def test_kept_values_last_until_the_data_changes(db_url: str, khm: HmsConfig) -> None:
    """What is worked out from the records (here the quarter's due items) is kept between reads, and worked out
    again after any write: this process's, or another program's."""
    from tests.conftest import _clear

    if db_url.startswith("postgres"):
        _clear(db_url)
    writer = db.create_engine(db_url)
    readers = sessions.Readers(db_url, writer)
    made = 0

    async def counted(r: Any) -> Any:
        nonlocal made
        made += 1
        return await due_items(r, khm, Q1, NOW)

    async def statuses() -> dict[str, str]:
        async with readers() as r:
            items = await sessions.kept(r, ("test-due",), lambda: counted(r))
        return {i.occurrence.key: i.status for i in items}

    try:
        await readers.start()
        if readers.inline is False:
            async with asyncio.timeout(10):
                while not readers.listening:
                    await readers.wait_for_change(readers.version)
        before = await statuses()
        assert before["fire_round:2027-Q1:hm-2"] == "open"
        assert await statuses() == before
        assert made == 1  # kept

        occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
        assert occ is not None
        async with db.session_factory(writer)() as s:  # this process writes
            await repo.record_completion(s, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 1, 10))
        after = await statuses()
        assert after["fire_round:2027-Q1:hm-2"] == "done"
        assert made == 2

        other = db.create_sync_engine(db_url)  # another program or replica writes
        with other.begin() as conn:
            conn.execute(sa.update(m.table(m.Occurrence)).where(m.table(m.Occurrence).c.key == occ.key)
                         .values(completed_at=None, completed_by=None))
        other.dispose()
        async with asyncio.timeout(10):
            while (await statuses())["fire_round:2027-Q1:hm-2"] != "open":  # PostgreSQL: once notified
                if not readers.inline:
                    await readers.wait_for_change(readers.version)
        assert made >= 3
    finally:
        await readers.dispose()
        await writer.dispose()


async def test_kept_through_a_plain_session_works_every_time(db_url: str, khm: HmsConfig) -> None:
    """Through the writer's own session (the scheduler, the command line) nothing is kept: always fresh."""
    writer = db.create_engine(db_url)
    made = 0

    async def make() -> int:
        nonlocal made
        made += 1
        return made

    try:
        async with db.session_factory(writer)() as s:
            assert await sessions.kept(s, ("n",), make) == 1
            assert await sessions.kept(s, ("n",), make) == 2
    finally:
        await writer.dispose()
