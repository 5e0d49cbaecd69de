"""Time the pieces of our bot's turn one by one, without a profiler: µs per call, on this machine.

    .venv/bin/python -m bench.components [--repeat 300]

Uses the real app objects (create_app in local mode, a migrated SQLite file in a temporary directory) and a
mock connector on 127.0.0.1. Each line is the median of `repeat` timed calls after a few untimed ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.__main__ import MockConnector, activity, dev_runtime, targets

Rows = list[tuple[str, float, str]]


def timed(fn: Callable[[], Any], repeat: int) -> float:
    for _ in range(min(20, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


async def atimed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    for _ in range(min(20, repeat)):
        await fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


async def run(repeat: int, tmp: Path) -> Rows:
    import itertools

    import aiohttp
    import sqlalchemy as sa
    from botbuilder.schema import Activity

    from bot import logs
    from bot.activity import parse as parse_activity
    from bot.app import BOT, GATEWAY, create_app
    from bot.settings import Settings
    from hms import nlu, periods, wheel
    from storage import db, repo
    from storage.ledger import ActivityLedger
    from usecases.database import prepare_database

    logs.configure("WARNING")
    url = f"sqlite:///{tmp / 'components.sqlite3'}"
    prepare_database(url)
    app = create_app(Settings(database_url=url, log_level="WARNING"), runtime=dev_runtime())
    bot, gateway = app[BOT], app[GATEWAY]
    await bot.start()
    connector = MockConnector()
    await connector.start()
    rows: Rows = []
    try:
        target = targets(tmp)["ours"]
        inbound = activity(target, connector.url, "comp", 0, "comp-0")
        now = bot.clock.now()
        today = wheel.local_date(now, bot.config)
        month = periods.month(today.year, today.month)
        email = _fatima(bot)
        async with bot.read_sessions() as r:
            answer = await bot.answerer.answer(r, target.text, email, now, "nb-NO")
        card_activity = answer.activity

        # -- what a question-and-answer turn does, in order ------------------------------------------------
        raw = json.dumps(inbound).encode()
        rows.append(("activity.parse (the door: JSON and shape)", timed(lambda: parse_activity(raw), repeat),
                     "every field the bot reads checked"))
        rows.append(("  for comparison: json.loads", timed(lambda: json.loads(raw), repeat),
                     "what the door did before"))
        rows.append(("gateway.authenticate (local mode)", await atimed(
            lambda: gateway.authenticate(None, inbound), repeat), "the few fields token validation reads"))
        rows.append(("  for comparison: Activity().deserialize", timed(lambda: Activity().deserialize(inbound),
                                                                      repeat), "what the stock path does, twice"))
        keys = itertools.count()
        async def claimed_and_completed() -> None:
            key = f"msteams|c|{next(keys)}"
            await bot.ledger.claim(key, now)
            bot.ledger.complete(key, now)

        rows.append(("ledger.claim + complete (SQLite: in memory, written behind)", await atimed(
            claimed_and_completed, repeat), ""))
        rows.append(("HmsBot._coordinates + unchanged check", timed(lambda: bot._coordinates(inbound), repeat), ""))
        rows.append(("nlu.text_language (first time)", timed(lambda: (nlu._text_language.cache_clear(),
                                                                      nlu.text_language(target.text)), repeat), ""))
        vocab = bot.answerer.vocab
        rows.append(("nlu.understand (first time)", timed(lambda: nlu.understand(target.text, today, vocab), repeat),
                     "memoised per words and date in Answerer"))

        async def inline_read() -> None:
            async with bot.read_sessions() as r:
                await repo.completions(r, month.start, month.end)
        rows.append(("completions, inline SQLite, kept (no write since)", await atimed(inline_read, repeat),
                     "PRAGMA data_version + lookup"))

        async def inline_read_fresh() -> None:
            bot.read_sessions._version = None  # as after a write
            await inline_read()
        rows.append(("completions, inline SQLite, read", await atimed(inline_read_fresh, repeat), ""))

        async def async_read() -> None:
            async with db.session_factory(bot.engine)() as s:
                await repo.completions(s, month.start, month.end)
        rows.append(("  for comparison: the same through aiosqlite", await atimed(async_read, repeat),
                     "worker-thread round trips"))
        rows.append(("wheel.due_items (month, cached occurrences)", timed(
            lambda: wheel.due_items(bot.config, month.start, month.end, now, {}, bot.answerer.cache), repeat), ""))

        async def answer_once() -> None:
            async with bot.read_sessions() as r:
                await bot.answerer.answer(r, target.text, email, now, "nb-NO")
        rows.append(("Answerer.answer (all memos warm)", await atimed(answer_once, repeat), ""))
        rows.append(("json.dumps(due card reply)", timed(lambda: json.dumps(card_activity, ensure_ascii=False),
                                                        repeat), ""))
        reply_url = f"{connector.url}/v3/conversations/a%3Ax/activities/1"
        body = json.dumps(card_activity).encode()
        async with aiohttp.ClientSession() as session:
            async def via_aiohttp() -> None:
                async with session.post(reply_url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
            rows.append(("reply POST via aiohttp (keep-alive)", await atimed(via_aiohttp, repeat),
                         "wall time, the mock connector's share included"))

        # -- the PostgreSQL way of judging retries, here on the SQLite file -------------------------------
        judged = ActivityLedger(bot.engine)
        judged.in_memory = False

        async def group_of_50() -> None:
            await asyncio.gather(*(judged.claim(f"msteams|g|{next(keys)}", now) for _ in range(50)))
        rows.append(("ledger, database-judged: 50 concurrent claims", await atimed(group_of_50, max(10, repeat // 10)),
                     "one group commit"))

        async def select_1() -> None:
            async with db.session_factory(bot.engine)() as s:
                await s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
        rows.append(("aiosqlite session + SELECT 1", await atimed(select_1, repeat), "one round trip, for scale"))
    finally:
        await connector.stop()
        await bot.ledger.close()
        await bot.engine.dispose()
        await bot.read_sessions.dispose()
    return rows


def _fatima(bot: Any) -> str:
    aad = "0a1b2c3d-000d-4000-8000-00000000000d"
    return next(p.email for p in bot.config.people if (p.entra_object_id or "").lower() == aad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hms-components-") as tmp:
        rows = asyncio.run(run(args.repeat, Path(tmp)))
    width = max(len(r[0]) for r in rows)
    print(f"{'component':<{width}} {'median µs':>10}  note")
    for name, us, note in rows:
        print(f"{name:<{width}} {us:>10.0f}  {note}")


if __name__ == "__main__":
    main()
