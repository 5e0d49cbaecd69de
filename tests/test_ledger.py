"""The ledger of handled activities: a retried activity is handled once, and a turn that failed is run again by its
retry, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import sqlalchemy as sa

from storage import db
from storage.ledger import KEY_MAX, LEASE, REMEMBER, ActivityLedger, fit_key
from tests.conftest import oslo

NOW = oslo(2026, 11, 26, 10)


def stored(url: str) -> list[str]:
    engine = db.create_sync_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.text("SELECT activity_key FROM processed_activity")))
    finally:
        engine.dispose()


async def test_a_key_is_claimed_once_and_survives_a_restart(db_url: str) -> None:
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    assert await ledger.claim("msteams|a:1|x", NOW) is True
    ledger.complete("msteams|a:1|x", NOW)
    assert await ledger.claim("msteams|a:1|x", NOW) is False
    assert await ledger.claim("msteams|a:1|y", NOW) is True
    ledger.complete("msteams|a:1|y", NOW)
    await ledger.close()
    await engine.dispose()
    assert stored(db_url) == ["msteams|a:1|x", "msteams|a:1|y"]

    engine = db.create_engine(db_url)  # a new process: the retry still counts as a retry
    again = ActivityLedger(engine)
    await again.start(NOW.replace(minute=5))
    assert await again.claim("msteams|a:1|x", NOW.replace(minute=5)) is False
    assert await again.claim("msteams|a:1|z", NOW.replace(minute=5)) is True
    await again.close()
    await engine.dispose()


async def test_a_key_longer_than_its_column_is_kept_as_a_digest(db_url: str) -> None:
    """The door lets ids through up to their own columns: channel, conversation and activity id together can be
    longer than the ledger's key (on PostgreSQL that failed the whole group of claims)."""
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    long_key = f"msteams|{'c' * 400}|{'i' * 200}"
    other = f"msteams|{'c' * 400}|{'i' * 199}j"
    assert await ledger.claim(long_key, NOW) is True
    ledger.complete(long_key, NOW)
    assert [await ledger.claim(k, NOW) for k in (long_key, other)] == [False, True]
    await ledger.release(other)  # released and completed under the same digest as claimed
    assert await ledger.claim(other, NOW) is True
    ledger.complete(other, NOW)
    await ledger.close()
    await engine.dispose()
    assert sorted(stored(db_url)) == sorted([fit_key(long_key), fit_key(other)])
    assert all(len(k) <= KEY_MAX for k in stored(db_url))


async def test_fifty_concurrent_turns_with_five_retries_each_are_handled_fifty_times(db_url: str) -> None:
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    keys = [f"msteams|a:{i}|act" for i in range(50)]

    async def turn(key: str) -> bool:
        handled = await ledger.claim(key, NOW)
        if handled:
            await asyncio.sleep(0)  # the turn's work; retries of it arrive meanwhile
            ledger.complete(key, NOW)
        return handled

    results = await asyncio.gather(*(turn(k) for k in keys * 5))
    await ledger.close()
    await engine.dispose()
    assert sum(results) == 50
    assert all(results[:50]) and not any(results[50:])  # the first of each, whatever the grouping
    assert len(stored(db_url)) == 50
    assert ledger.statements < 50 * 2  # claims and completions written in groups, not statements per turn


@pytest.mark.postgres
async def test_postgresql_replicas_share_the_judgement(postgres_url: str) -> None:
    """Two replicas on one PostgreSQL database: a retry that reaches the other replica is still dropped."""
    from tests.conftest import _clear

    _clear(postgres_url)
    a_engine, b_engine = db.create_engine(postgres_url), db.create_engine(postgres_url)
    a, b = ActivityLedger(a_engine), ActivityLedger(b_engine)
    assert not a.in_memory
    results = await asyncio.gather(*(ledger.claim(f"msteams|c|{i}", NOW) for i in range(30) for ledger in (a, b)))
    assert sum(results) == 30
    assert await b.claim("msteams|c|0", NOW) is False  # in progress on one of them
    (a if results[0] else b).complete("msteams|c|0", NOW)
    await a.flush()
    await b.flush()
    assert await b.claim("msteams|c|0", NOW + LEASE * 2) is False  # completed: never again
    for ledger, engine in ((a, a_engine), (b, b_engine)):
        await ledger.close()
        await engine.dispose()


async def test_sqlite_claims_do_not_wait_for_the_disk_and_old_keys_are_forgotten(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/hms.sqlite3"
    db.upgrade(url)
    engine = db.create_engine(url)
    ledger = ActivityLedger(engine, flush_delay=60)  # nothing is written until flush() in this test
    assert ledger.in_memory
    await ledger.start(NOW)
    assert await ledger.claim("k1", NOW) is True
    ledger.complete("k1", NOW)
    assert stored(url) == []  # written behind, a moment later
    await ledger.flush()
    assert stored(url) == ["k1"]
    # an hour on, old keys leave memory (Teams retries within seconds); the table keeps them
    later = NOW + REMEMBER + REMEMBER
    assert await ledger.claim("k2", later) is True
    ledger.complete("k2", later)
    assert "k1" not in ledger._recent
    await ledger.close()
    await engine.dispose()
    assert stored(url) == ["k1", "k2"]


async def test_a_turn_that_failed_is_run_again_by_its_retry(db_url: str) -> None:
    """Claimed, then released (the reply could not be sent): the retry is handled; completed: never again. A claim
    still in progress is not on record as handled, so after a restart its retry is handled too."""
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    assert await ledger.claim("msteams|a:1|failed", NOW) is True
    await ledger.release("msteams|a:1|failed")
    assert await ledger.claim("msteams|a:1|failed", NOW) is True  # Teams' retry
    ledger.complete("msteams|a:1|failed", NOW)
    assert await ledger.claim("msteams|a:1|failed", NOW) is False
    assert await ledger.claim("msteams|a:1|running", NOW) is True
    await ledger.flush()
    await engine.dispose()
    assert stored(db_url) == ["msteams|a:1|failed"] + (["msteams|a:1|running"] if not ledger.in_memory else [])

    engine = db.create_engine(db_url)  # the process died while the second turn ran
    again = ActivityLedger(engine)
    await again.start(NOW)
    assert await again.claim("msteams|a:1|failed", NOW) is False
    if again.in_memory:
        assert await again.claim("msteams|a:1|running", NOW) is True
    else:  # another replica may still be running it: its claim lapses after the lease
        assert await again.claim("msteams|a:1|running", NOW + LEASE / 2) is False
        assert await again.claim("msteams|a:1|running", NOW + LEASE * 2) is True
    await again.close()
    await engine.dispose()


async def test_a_retry_during_the_turn_waits_for_its_outcome(db_url: str) -> None:
    """Two deliveries of one activity at once (a Teams retry while the first is still running) are handled once:
    the second waits; it is dropped when the first completes, and runs the turn when the first fails."""
    engine = db.create_engine(db_url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    for outcome in ("completed", "failed"):
        key = f"msteams|a:1|{outcome}"
        assert await ledger.claim(key, NOW) is True
        retry = asyncio.create_task(ledger.claim(key, NOW))
        await asyncio.sleep(0.01)
        assert not retry.done()
        if outcome == "completed":
            ledger.complete(key, NOW)
        else:
            await ledger.release(key)
        async with asyncio.timeout(5):
            assert await retry is (outcome == "failed")
    await ledger.close()
    await engine.dispose()


async def test_sqlite_writes_behind_on_its_own_connection(tmp_path: object) -> None:
    """The turns' engine has one connection on SQLite; turns that write queue for it. The write-behind must not
    queue behind them (under load it fell seconds behind the 0.1 s it promises): it has a connection of its own."""
    url = f"sqlite:///{tmp_path}/hms.sqlite3"
    db.upgrade(url)
    engine = db.create_engine(url)
    ledger = ActivityLedger(engine)
    await ledger.start(NOW)
    async with engine.connect():  # a turn holds the turns' only connection
        assert await ledger.claim("k1", NOW) is True
        ledger.complete("k1", NOW)
        async with asyncio.timeout(5):
            await ledger.flush()
        assert stored(url) == ["k1"]
    await ledger.close()
    await engine.dispose()


async def test_sqlite_write_behind_does_not_wait_for_a_busy_event_loop(tmp_path: object) -> None:
    """Under load every turn of the event loop is long; a write-behind that needs the loop for each round trip to
    the database falls behind (measured: 0.7 s at 50 users). Its thread writes while the loop is busy."""
    url = f"sqlite:///{tmp_path}/hms.sqlite3"
    db.upgrade(url)
    engine = db.create_engine(url)
    ledger = ActivityLedger(engine, flush_delay=0.01)
    await ledger.start(NOW)
    assert await ledger.claim("k1", NOW) is True
    ledger.complete("k1", NOW)
    deadline = time.monotonic() + 10
    while not stored(url) and time.monotonic() < deadline:  # the loop is kept busy: nothing else runs on it
        pass
    assert stored(url) == ["k1"]
    await ledger.close()
    await engine.dispose()


@pytest.mark.postgres
async def test_postgresql_a_running_turn_keeps_its_claim_and_a_dead_replicas_claim_lapses(postgres_url: str) -> None:
    """The lease is short (Teams retries within seconds), so the replica running a turn renews its claim: another
    replica runs a retry only once the claim is neither completed nor renewed for `LEASE`."""
    from tests.conftest import _clear

    _clear(postgres_url)
    a_engine, b_engine = db.create_engine(postgres_url), db.create_engine(postgres_url)
    clock = [0.0]
    a, b = ActivityLedger(a_engine, monotonic=lambda: clock[0]), ActivityLedger(b_engine)
    assert await a.claim("msteams|c|slow", NOW) is True
    minute = dt.timedelta(minutes=1)
    clock[0] += minute.total_seconds()  # the turn on `a` takes a minute; `a` renews meanwhile
    await a.renew()
    assert await b.claim("msteams|c|slow", NOW + minute) is False  # still running on `a`
    # `a` dies: no more renewals; once LEASE has passed, the retry is run by `b`
    assert await b.claim("msteams|c|slow", NOW + minute + LEASE / 2) is False
    assert await b.claim("msteams|c|slow", NOW + minute + LEASE * 2) is True
    for ledger, engine in ((a, a_engine), (b, b_engine)):
        await ledger.close()
        await engine.dispose()
