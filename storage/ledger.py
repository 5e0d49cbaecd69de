"""The ledger of inbound activities, so a Teams retry of a turn is handled once, and a turn that failed is not lost.

Every turn asks `claim(key)` before it does anything, and says how it ended: `complete(key)` once what the turn
owes is done (its reply sent, its writes committed), `release(key)` when it failed. Teams retries an activity
(same id) when the bot answered 5xx or did not answer in time, so:
- a retry of a completed activity is dropped;
- a retry of a released one (the reply could not be sent, the bot answered 500) runs the turn again;
- a retry that arrives while the same activity is still being handled in this process waits for that turn: it
  is dropped if the turn completes and runs the turn itself if it fails.

How the answer is found depends on the deployment:

- **PostgreSQL, one or more replicas** (a retry may reach another replica): the database is the judge. A claim
  is a row without `completed_at`; claims are written in groups (group commit): the claims that arrive while a
  write is in flight go together into the next one, as one INSERT .. ON CONFLICT .. RETURNING and one commit. A
  claim in progress lapses after `LEASE` unless renewed: the replica running the turn renews its claims every
  `RENEW_EVERY`, so a slow turn keeps its claim while a replica that died loses its claims within `LEASE`, and a
  retry after that runs the turn again (a retry that comes sooner is dropped, and that answer is lost).
  Completions are written in groups too, without making the turn wait.
- **SQLite, one process by design** (the embedded default): the process itself is the judge. Completed keys of
  the last `REMEMBER` are kept in memory (loaded from the table at start), claims in progress only in memory
  (a process that dies takes them along, so their retries run again), and completed keys are written behind, in
  groups, `FLUSH_DELAY` later, by a thread with a connection of its own (`WriteBehind`), so that the write
  neither queues behind the turns' writes nor waits for the busy event loop. A turn does not wait for the disk.
  The one window: a turn completed in the last moment before the process is killed is not on disk, so its Teams
  retry after a restart is handled again (measured by `python -m bench.crash`; see the README); a graceful stop
  writes everything first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import db, models as m

log = logging.getLogger("hms.ledger")

MAX_BATCH = 500  # rows per statement
REMEMBER = dt.timedelta(hours=1)  # Teams retries within seconds; an hour is far beyond that
MAX_REMEMBERED = 100_000  # keys kept in memory at most (SQLite)
FLUSH_DELAY = 0.05  # seconds a completed key waits in memory (SQLite), so that writes go out in groups
KEY_MAX = 500  # the column's length; a longer key (the door allows ids up to their own columns) is hashed
# PostgreSQL: a claim in progress lapses after LEASE unless the replica running it renews it (every RENEW_EVERY):
# short, because Teams retries within seconds, and a retry before the claim of a replica that died has lapsed is lost
LEASE = dt.timedelta(seconds=5)
RENEW_EVERY = 1.0  # seconds
WAIT_FOR_TURN = 60.0  # seconds a delivery waits for the same activity's turn in this process (a reply: 30 s at most)


def fit_key(key: str) -> str:
    """The key as stored: itself, or a digest of it when it is longer than the column."""
    return key if len(key) <= KEY_MAX else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _insert(conn: AsyncConnection) -> Any:
    return db.dialect_insert(conn.dialect.name)(m.table(m.ProcessedActivity))


async def record_claims(conn: AsyncConnection, rows: dict[str, dt.datetime]) -> set[str]:
    """Claim the keys not on record, and those whose claim lapsed (in progress since before `LEASE`); returns the
    keys claimed. No commit."""
    table = m.table(m.ProcessedActivity)
    stmt = _insert(conn)
    lapsed = min(rows.values()) - LEASE
    # one statement for any number of rows: compiled once, sent as multi-row VALUES ("insertmanyvalues")
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.activity_key], set_={"received_at": stmt.excluded.received_at},
        where=sa.and_(table.c.completed_at.is_(None), table.c.received_at < lapsed),
    ).returning(table.c.activity_key)
    params = [{"activity_key": k, "received_at": at} for k, at in rows.items()]
    return {row[0] for row in await conn.execute(stmt, params)}


def _completions(dialect: str, rows: dict[str, tuple[dt.datetime, dt.datetime]]) -> Any:
    """One statement recording keys as completed ({key: (claimed at, completed at)}), whether or not their claim
    is on record.

    All rows go in one multi-row VALUES, so the database is called once: from the SQLite write-behind thread,
    every call gives the interpreter lock to the busy event loop and waits up to a switch interval (5 ms) to get
    it back, and a statement executed once per row took a quarter of a second for fifty rows under load."""
    table = m.table(m.ProcessedActivity)
    stmt = db.dialect_insert(dialect)(table).values(
        [{"activity_key": k, "received_at": claimed, "completed_at": done} for k, (claimed, done) in rows.items()])
    return stmt.on_conflict_do_update(index_elements=[table.c.activity_key],
                                      set_={"completed_at": stmt.excluded.completed_at})


async def record_completions(conn: AsyncConnection, rows: dict[str, tuple[dt.datetime, dt.datetime]]) -> None:
    """Record keys as completed. No commit."""
    await conn.execute(_completions(conn.dialect.name, rows))


def record_completions_sync(conn: sa.Connection, rows: dict[str, tuple[dt.datetime, dt.datetime]]) -> None:
    """`record_completions` on a synchronous connection (the SQLite write-behind thread). No commit."""
    conn.execute(_completions(conn.dialect.name, rows))


def _take(waiting: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the oldest `MAX_BATCH` entries: one statement's worth."""
    return {k: waiting.pop(k) for k in list(itertools.islice(waiting, MAX_BATCH))}


class WriteBehind:
    """Writes completed keys to a SQLite file from a thread of its own, on a connection of its own, `delay`
    seconds after the first key of a group arrives.

    The event loop only appends to a queue. Measured with `python -m bench.crash` at 50 concurrent users: written
    from the event loop on the turns' only connection, the write waited seconds in that connection's queue; on a
    connection of its own but still from the loop, every round trip to aiosqlite's thread waited a turn of the
    busy loop, and keys waited up to 0.7 s. Here a key waits `delay` plus one short transaction.
    """

    def __init__(self, url: str, delay: float):
        self.delay = delay
        self.statements = 0
        self._engine = db.create_sync_engine(url, pool_size=1, max_overflow=0,
                                             connect_args={"check_same_thread": False})
        self._queue: deque[tuple[str, dt.datetime, dt.datetime]] = deque()
        self._lock = threading.Lock()  # one group at a time: the thread's, or flush()'s
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hms-ledger-writer", daemon=True)
        self._thread.start()

    def put(self, key: str, claimed: dt.datetime, completed: dt.datetime) -> None:
        self._queue.append((key, claimed, completed))
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._closed.wait(self.delay)  # let the group fill; a stop writes at once
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Write everything queued (in groups of `MAX_BATCH`); on failure keep it for the next group."""
        with self._lock:
            while self._queue:
                group = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                try:
                    with self._engine.begin() as conn:
                        record_completions_sync(conn, {k: (claimed, done) for k, claimed, done in group})
                except Exception as exc:  # noqa: BLE001 - kept; the next completion tries again
                    log.warning("could not record %d completed activities: %s", len(group), type(exc).__name__)
                    self._queue.extendleft(reversed(group))
                    return
                self.statements += 1

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.drain()
        self._engine.dispose()


class ActivityLedger:
    """Claims activity keys for turns; one instance per process and engine. See the module docstring."""

    def __init__(self, engine: AsyncEngine, flush_delay: float = FLUSH_DELAY,
                 monotonic: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.in_memory = engine.dialect.name == "sqlite"
        self.flush_delay = flush_delay
        database = engine.url.database
        self._behind = (WriteBehind(engine.url.render_as_string(hide_password=False), flush_delay)
                        if self.in_memory and database and database != ":memory:" else None)
        self._running: dict[str, tuple[dt.datetime, asyncio.Future[bool]]] = {}  # claimed here: True once completed
        self._pending: dict[str, tuple[dt.datetime, list[asyncio.Future[bool]]]] = {}  # claims for the database
        self._recent: dict[str, dt.datetime] = {}  # in-memory judge: completed key -> when (oldest first)
        self._unwritten: dict[str, tuple[dt.datetime, dt.datetime]] = {}  # completed, not on record yet
        self._since: dict[str, float] = {}  # claimed here: monotonic time of the claim (renewals count from it)
        self._monotonic = monotonic
        self._claimer: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._completer: asyncio.Task[None] | None = None
        self._statements = 0

    @property
    def statements(self) -> int:
        """Claims and completions written (for tests and the benchmark)."""
        return self._statements + (self._behind.statements if self._behind else 0)

    async def start(self, now: dt.datetime) -> None:
        """Load the keys completed in the last `REMEMBER` (in-memory mode); a no-op on PostgreSQL."""
        if not self.in_memory:
            return
        table = m.table(m.ProcessedActivity)
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(table.c.activity_key, table.c.received_at)
                                       .where(table.c.received_at >= now - REMEMBER, table.c.completed_at.is_not(None))
                                       .order_by(table.c.received_at))
            self._recent = {key: at for key, at in found}

    async def claim(self, key: str, now: dt.datetime) -> bool:
        """True when this delivery of `key` should run its turn: the first one, or a retry of a turn that failed.
        False for a retry of a completed turn, or of one in progress elsewhere."""
        key = fit_key(key)
        while (running := self._running.get(key)) is not None:
            # the same activity is being handled in this process: its outcome decides
            try:
                completed = await asyncio.wait_for(asyncio.shield(running[1]), WAIT_FOR_TURN)
            except TimeoutError:
                return False
            if completed:
                return False
        if self.in_memory:
            claimed = key not in self._recent
        else:
            claimed = await self._claim_in_database(key, now)
        if claimed:
            self._running[key] = (now, asyncio.get_running_loop().create_future())
            self._since[key] = self._monotonic()
            if not self.in_memory:
                self._renewer = self._ensure(self._renewer, self._renew_while_running)
        return claimed

    def complete(self, key: str, now: dt.datetime) -> None:
        """The turn of `key` did what it owes: retries are dropped from now on. Written behind; never waits."""
        key = fit_key(key)
        claimed_at, future = self._running.pop(key, (now, None))
        self._since.pop(key, None)
        if self.in_memory:
            self._recent[key] = claimed_at
            self._forget(now)
        if future is not None and not future.done():
            future.set_result(True)
        if self._behind is not None:
            self._behind.put(key, claimed_at, now)
            return
        self._unwritten[key] = (claimed_at, now)
        self._completer = self._ensure(self._completer, self._write_completions)

    async def release(self, key: str) -> None:
        """The turn of `key` failed: a retry runs it again (here, or on PostgreSQL on any replica)."""
        key = fit_key(key)
        _, future = self._running.pop(key, (None, None))
        self._since.pop(key, None)
        try:
            if not self.in_memory:
                async with self.engine.begin() as conn:
                    table = m.table(m.ProcessedActivity)
                    await conn.execute(sa.delete(table).where(table.c.activity_key == key,
                                                              table.c.completed_at.is_(None)))
        except Exception as exc:  # noqa: BLE001 - the claim then lapses after LEASE (it is no longer renewed)
            log.warning("could not release a claim: %s", type(exc).__name__)
        finally:
            if future is not None and not future.done():
                future.set_result(False)  # a retry waiting here runs the turn (after the row is gone)

    async def renew(self) -> None:
        """PostgreSQL: move the claims this process is running forward to their turns' clock now, so that they do
        not lapse while the turns run. A claim's time is its turn's `now` plus the time since, so every claim
        stays on the clock its turn was given."""
        now = self._monotonic()
        rows = [{"key": k, "at": at + dt.timedelta(seconds=now - self._since.get(k, now))}
                for k, (at, _) in self._running.items()]
        if not rows:
            return
        table = m.table(m.ProcessedActivity)
        stmt = (sa.update(table).where(table.c.activity_key == sa.bindparam("key"), table.c.completed_at.is_(None))
                .values(received_at=sa.bindparam("at")))
        try:
            async with self.engine.begin() as conn:
                await conn.execute(stmt, rows)
            self._statements += 1
        except Exception as exc:  # noqa: BLE001 - the next renewal tries again
            log.warning("could not renew %d claims: %s", len(rows), type(exc).__name__)

    async def _renew_while_running(self) -> None:
        while self._running:
            await asyncio.sleep(RENEW_EVERY)
            await self.renew()

    async def _claim_in_database(self, key: str, now: dt.datetime) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(key)
        if waiting is not None:
            waiting[1].append(future)  # the same activity twice in one group: only the first one counts
        else:
            self._pending[key] = (now, [future])
        self._claimer = self._ensure(self._claimer, self._write_claims)
        return await future

    def _forget(self, now: dt.datetime) -> None:
        """Drop keys older than `REMEMBER` (and the oldest beyond `MAX_REMEMBERED`): retries never come that
        late. Keys are in completion order, so only the oldest are looked at."""
        cutoff = now - REMEMBER
        while self._recent:
            key, at = next(iter(self._recent.items()))
            if at >= cutoff and len(self._recent) <= MAX_REMEMBERED:
                break
            del self._recent[key]

    @staticmethod
    def _ensure(task: asyncio.Task[None] | None, job: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(job())
        return task

    async def _write_claims(self) -> None:
        while self._pending:
            group = _take(self._pending)
            try:
                async with self.engine.begin() as conn:
                    new = await record_claims(conn, {k: at for k, (at, _) in group.items()})
                self._statements += 1
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

    async def _write_completions(self, delay: float | None = None) -> None:
        # PostgreSQL: at once, grouping what arrives while a write is in flight; an in-memory SQLite database
        # (no second connection for a WriteBehind): a moment later
        delay = (self.flush_delay if self.in_memory else 0) if delay is None else delay
        if delay:
            await asyncio.sleep(delay)
        while self._unwritten:
            group = _take(self._unwritten)
            try:
                async with self.engine.begin() as conn:
                    await record_completions(conn, group)
                self._statements += 1
            except Exception as exc:  # noqa: BLE001 - kept in memory; the next completion tries again
                log.warning("could not record %d completed activities: %s", len(group), type(exc).__name__)
                self._unwritten = {**group, **self._unwritten}
                return

    async def flush(self) -> None:
        """Wait for writes in flight and write what is still only in memory (at a graceful stop, and in tests
        that look at the table)."""
        await asyncio.gather(*(t for t in (self._claimer, self._completer) if t is not None), return_exceptions=True)
        if self._unwritten:
            await self._write_completions(delay=0)
        if self._behind is not None:
            await asyncio.to_thread(self._behind.drain)

    async def close(self) -> None:
        """Write what is only in memory, and stop the renewals and the write-behind thread."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self.flush()
        if self._behind is not None:
            await asyncio.to_thread(self._behind.close)
