"""Profile our bot's turn in one process: the app (local mode) and a mock connector on 127.0.0.1, under cProfile.

    .venv/bin/python -m bench.profile_turn [--n 1000] [--concurrency 10] [--profiler cprofile|pyinstrument]

The load generator shares the process, so absolute numbers are lower than `python -m bench`; what matters is
where the server's time goes per turn (the listing divides by the number of measured turns).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bench.__main__ import MockConnector, activity, dev_runtime, frister_check, targets
from bench._common import LOOPBACK

BREAKDOWN = [  # (module, attribute path) of the awaitables timed by --breakdown
    ("bot.turns", "HmsBot.on_turn"),
    ("storage.ledger", "ActivityLedger.claim"),
    ("storage.repo", "upsert_conversation"),
    ("usecases.answers", "Answerer.answer"),
    ("usecases.due", "due_items"),
    ("bot.gateway", "Turn.send"),
    ("bot.gateway", "TeamsGateway.authenticate"),
]


def instrument(samples: dict[str, list[float]]) -> None:
    """Wrap the BREAKDOWN coroutines so that each call's wall time (including waits) is recorded."""
    import functools
    import importlib

    for module_name, path in BREAKDOWN:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)
        bucket = samples.setdefault(path, [])

        def wrap(fn: Any, bucket: list[float]) -> Any:
            @functools.wraps(fn)
            async def timed(*a: Any, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*a, **k)
                finally:
                    bucket.append(time.perf_counter() - t0)
            return timed

        setattr(owner, name, wrap(original, bucket))


def breakdown(samples: dict[str, list[float]], turns: int) -> None:
    from bench.__main__ import percentile

    print(f"wall time per call (includes waiting for the pool, SQLite locks and the loop), {turns} turns")
    print(f"{'awaitable':<28} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'sum s':>7}")
    for name, values in samples.items():
        if values:
            print(f"{name:<28} {len(values):>6} {percentile(values, 50) * 1e3:>8.1f} "
                  f"{percentile(values, 90) * 1e3:>8.1f} {percentile(values, 99) * 1e3:>8.1f} "
                  f"{max(values) * 1e3:>8.1f} {sum(values):>7.2f}")


def experiment_engine(kwargs: dict[str, Any], pragmas: list[str]) -> None:
    """What-if, for this process only: extra create_async_engine arguments and SQLite PRAGMAs per connection."""
    import sqlalchemy as sa

    from storage import db

    original = db.create_async_engine

    def create(url: str, **kw: Any) -> Any:
        engine = original(url, **{**kw, **kwargs})
        if pragmas:
            def on_connect(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                for pragma in pragmas:
                    cursor.execute(f"PRAGMA {pragma}")
                cursor.close()
            sa.event.listen(engine.sync_engine, "connect", on_connect)
        return engine

    db.create_async_engine = create


async def run(args: argparse.Namespace, tmp: Path) -> tuple[Any, float]:
    from bot import logs
    from bot.app import create_app
    from bot.settings import Settings
    from usecases.database import prepare_database

    if args.engine_kwargs or args.pragma:
        experiment_engine(json.loads(args.engine_kwargs or "{}"), args.pragma or [])
    url = f"sqlite:///{tmp / 'profile.sqlite3'}"
    logs.configure("WARNING")
    prepare_database(url)
    settings = Settings(database_url=url, log_level="WARNING")
    app = create_app(settings, runtime=dev_runtime())
    connector = MockConnector()
    await connector.start()
    target = targets(tmp)["ours"]
    server = TestServer(app, host=LOOPBACK)
    await server.start_server()
    try:
        endpoint = f"http://{LOOPBACK}:{server.port}/api/messages"
        async with aiohttp.ClientSession() as session:
            async def send(k: int, tag: str, i: int) -> None:
                body = json.dumps(activity(target, connector.url, "prof", k, f"bench-prof-{tag}-{i}")).encode()
                async with session.post(endpoint, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status in (200, 201), r.status

            async def load(n: int, tag: str) -> None:
                async def worker(w: int) -> None:
                    for i in range(w, n, args.concurrency):
                        await send(w, tag, i)
                await asyncio.gather(*(worker(w) for w in range(args.concurrency)))

            tally = connector.phase(frister_check)
            await load(args.concurrency + 50, "warm")
            tally = connector.phase(frister_check)
            if args.profiler == "breakdown":
                samples: dict[str, list[float]] = {}
                instrument(samples)
                t0 = time.perf_counter()
                await load(args.n, "run")
                profiler = samples
            elif args.profiler == "pyinstrument":
                from pyinstrument import Profiler  # optional: pip install pyinstrument

                profiler: Any = Profiler(interval=0.0005, async_mode="disabled")
                t0 = time.perf_counter()
                profiler.start()
                await load(args.n, "run")
                profiler.stop()
            else:
                profiler = cProfile.Profile()
                t0 = time.perf_counter()
                profiler.enable()
                await load(args.n, "run")
                profiler.disable()
            seconds = time.perf_counter() - t0
            assert tally.expected == args.n, (tally.expected, args.n)
    finally:
        await server.close()
        await connector.stop()
    return profiler, seconds


def show(args: argparse.Namespace, profiler: Any, seconds: float) -> None:
    print(f"{args.n} turns at C={args.concurrency} in {seconds:.2f} s under {args.profiler} "
          f"({args.n / seconds:.0f} turns/s incl. profiler and load generator)")
    if args.profiler == "breakdown":
        breakdown(profiler, args.n)
        return
    if args.profiler == "pyinstrument":
        print(profiler.output_text(unicode=False, color=False, show_all=args.show_all, short_mode=False))
        if args.out:
            Path(args.out).write_text(profiler.output_html())
        return
    if args.out:
        profiler.dump_stats(args.out)
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(stream.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--profiler", choices=["cprofile", "pyinstrument", "breakdown"],
                        default="cprofile", help="cProfile (default), pyinstrument (sampling, if installed) or "
                        "breakdown (wall time per call of the main steps of a turn, no profiler)")
    parser.add_argument("--engine-kwargs", help='what-if: extra create_async_engine arguments as JSON, e.g. '
                        '\'{"pool_size": 1, "max_overflow": 0}\'')
    parser.add_argument("--pragma", action="append", help="what-if: an SQLite PRAGMA per connection, e.g. "
                        "synchronous=NORMAL (repeatable)")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--show-all", action="store_true", help="pyinstrument: show library frames too")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", help="write the raw pstats (cProfile) or an HTML report (pyinstrument) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hms-profile-") as tmp:
        profiler, seconds = asyncio.run(run(args, Path(tmp)))
    show(args, profiler, seconds)


if __name__ == "__main__":
    main()
