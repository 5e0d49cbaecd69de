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

import requests

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
    import sqlalchemy as sa
    from botbuilder.schema import Activity
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    from bot import logs, usecases
    from bot.app import BOT, create_app
    from bot.settings import Settings
    from hms import periods, wheel
    from storage import db, repo

    logs.configure("WARNING")
    url = f"sqlite:///{tmp / 'components.sqlite3'}"
    usecases.prepare_database(url)
    app = create_app(Settings(database_url=url, log_level="WARNING"), runtime=dev_runtime())
    bot = app[BOT]
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
        async with bot.sessions() as s:
            answer = await bot.answerer.answer(s, target.text, email, now, "nb-NO")
        card_activity = answer.activity
        outbound = Activity().deserialize(card_activity)
        client = ConnectorClient(MicrosoftAppCredentials.empty(), base_url=connector.url)

        rows.append(("Activity().deserialize(inbound activity)", timed(lambda: Activity().deserialize(inbound),
                                                                        repeat), "gateway: authenticate + run, 2x"))
        rows.append(("Activity().deserialize(due card reply)", timed(lambda: Activity().deserialize(card_activity),
                                                                      repeat), "gateway Turn.send"))
        rows.append(("msrest Serializer.body(reply, 'Activity')",
                     timed(lambda: client._serialize.body(outbound, "Activity"), repeat),
                     "connector reply_to_activity"))
        rows.append(("json.dumps(due card reply)", timed(lambda: json.dumps(card_activity), repeat),
                     "for comparison"))
        rows.append(("understand(question)", timed(lambda: bot.answerer.understand(target.text, now), repeat),
                     "hms.nlu"))
        rows.append(("wheel.due_items(month, no completions)",
                     timed(lambda: wheel.due_items(bot.config, month.start, month.end, now, {}), repeat),
                     "pure, same result every turn of the month"))
        n_occ = len(wheel.occurrences(bot.config, month.start, month.end))

        async def answer_once() -> None:
            async with bot.sessions() as s:
                await bot.answerer.answer(s, target.text, email, now, "nb-NO")
        rows.append(("Answerer.answer (DB query + wheel + card)", await atimed(answer_once, repeat),
                     f"{n_occ} occurrences in the month"))

        counter = iter(range(10**9))

        async def mark() -> None:
            async with bot.sessions() as s:
                await repo.mark_processed(s, f"msteams|c|comp-{next(counter)}", now)
        rows.append(("repo.mark_processed (INSERT + COMMIT)", await atimed(mark, repeat),
                     "SQLite, WAL, default synchronous"))

        coords = bot._coordinates(inbound)

        async def upsert() -> None:
            async with bot.sessions() as s:
                await repo.upsert_conversation(s, **coords, now=bot.clock.now())
        rows.append(("repo.upsert_conversation (SELECT + UPDATE + COMMIT)", await atimed(upsert, repeat), ""))

        # the same INSERT+COMMIT with synchronous=NORMAL (an experiment on a separate engine, same file)
        engine = db.create_engine(url)
        sa.event.listen(engine.sync_engine, "connect",
                        lambda c, _r: c.cursor().execute("PRAGMA synchronous=NORMAL"))
        factory = db.session_factory(engine)

        async def mark_normal() -> None:
            async with factory() as s:
                await repo.mark_processed(s, f"msteams|c|norm-{next(counter)}", now)
        rows.append(("  same with PRAGMA synchronous=NORMAL", await atimed(mark_normal, repeat), "experiment"))
        await engine.dispose()

        async def empty_session() -> None:
            async with bot.sessions() as s:
                await s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
        rows.append(("session + SELECT 1 (aiosqlite thread round trip)", await atimed(empty_session, repeat),
                     ""))

        # outbound delivery, the way msrest does it (requests in a thread) vs aiohttp
        reply_url = f"{connector.url}/v3/conversations/a%3Ax/activities/1"
        body = json.dumps(card_activity).encode()
        http = requests.Session()
        loop = asyncio.get_running_loop()

        async def via_requests() -> None:
            await loop.run_in_executor(None, lambda: http.post(reply_url, data=body,
                                                               headers={"Content-Type": "application/json"}))
        rows.append(("reply POST via requests in executor (msrest)", await atimed(via_requests, repeat),
                     "keep-alive requests.Session"))

        import aiohttp

        async with aiohttp.ClientSession() as session:
            async def via_aiohttp() -> None:
                async with session.post(reply_url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
            rows.append(("reply POST via aiohttp (keep-alive)", await atimed(via_aiohttp, repeat), ""))

        async def send_via_gateway_client() -> None:
            await client.conversations.reply_to_activity("a:x", "1", outbound)
        await client.__aenter__()
        rows.append(("ConnectorClient.reply_to_activity (pooled)", await atimed(send_via_gateway_client, repeat),
                     "serialize + requests + deserialize"))
        await client.__aexit__(None, None, None)
        http.close()
    finally:
        await connector.stop()
        await bot.engine.dispose()
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
