"""The crash window, measured: kill the real server under load, restart it, replay, count what is handled twice.

    .venv/bin/python -m bench.crash [--rounds 5] [--concurrency 50] [--load-seconds 4] [--replay-seconds 5]
                                    [--database-url URL] [--json out.json]

Each round starts `hms-bot serve --dev` (as the main benchmark's `ours` target: a fresh SQLite file unless
--database-url is given), greets its conversations, then puts it under load (every worker its own conversation,
each activity a new id, as fast as answers come back) and after `--load-seconds` sends it SIGKILL. It starts the
server again on the same database and replays, as Teams would retry them, every activity sent in the last
`--replay-seconds` before the kill: those answered before the kill, and those still in flight.

Counted per round:
- **doubled**: answered before the kill and answered again after the restart. The age of such a turn is the time
  from its answer reaching the mock connector to the kill: the bot records a turn as completed only after the
  connector accepted its answer, so this is an upper bound. The mock connector runs in a thread of its own
  (with a short GIL switch interval), so that the load generator's busy loop does not note arrivals late. The
  round's **window** is the oldest such age.
- **lost**: in flight at the kill (no answer) and still not answered when replayed.

Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.__main__ import ID_PREFIX, MockConnector, Server, Target, activity, frister_check, targets


class RecordingConnector(MockConnector):
    """The mock connector, also noting when each benchmark activity's answer (the due card) arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, list[float]] = {}

    async def _activity(self, request: web.Request) -> web.Response:
        reply_to = request.match_info.get("reply_to", "")
        arrived = time.monotonic()  # before the answer is acknowledged, so before the bot can record it
        try:
            body = await request.json()
        except ValueError:
            body = None
        if reply_to.startswith(ID_PREFIX) and isinstance(body, dict) and frister_check(body):
            self.answers.setdefault(reply_to, []).append(arrived)
        return await super()._activity(request)


@dataclass
class Round:
    sent: int = 0
    answered_before_kill: int = 0
    replayed: int = 0
    doubled_ages: list[float] = field(default_factory=list)  # answered this long before the kill, and again after
    lost: int = 0
    in_flight_replayed: int = 0
    replay_errors: int = 0

    @property
    def window(self) -> float:
        return max(self.doubled_ages, default=0.0)

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "answered_before_kill": self.answered_before_kill, "replayed": self.replayed,
                "doubled": len(self.doubled_ages), "window_s": round(self.window, 3),
                "in_flight_replayed": self.in_flight_replayed, "lost": self.lost,
                "replay_errors": self.replay_errors}


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> int | None:
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=30)) as r:
            await r.read()
            return r.status
    except (TimeoutError, aiohttp.ClientError):
        return None


async def load_until_killed(session: aiohttp.ClientSession, server: Server, target: Target, connector_url: str,
                            run: str, concurrency: int, seconds: float) -> tuple[dict[str, tuple[float, bytes]], float]:
    """Workers send new activities until the server is killed; returns {id: (sent at, body)} and the kill time."""
    url = server.base + "/api/messages"
    sent: dict[str, tuple[float, bytes]] = {}
    killed = asyncio.Event()

    async def worker(w: int) -> None:
        i = 0
        while not killed.is_set():
            activity_id = f"{ID_PREFIX}{run}-load-{w}-{i}"
            body = json.dumps(activity(target, connector_url, run, w, activity_id)).encode()
            sent[activity_id] = (time.monotonic(), body)
            i += 1
            if await post(session, url, body) is None:
                return  # the server is gone

    workers = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    await asyncio.sleep(seconds)
    assert server.proc is not None
    kill_at = time.monotonic()
    os.kill(server.proc.pid, signal.SIGKILL)
    killed.set()
    server.proc.wait(timeout=10)
    await asyncio.gather(*workers)
    return sent, kill_at


async def one_round(connector: RecordingConnector, tmp: Path, index: int, args: argparse.Namespace) -> Round:
    target = targets(tmp, args.database_url, connector.url)["ours"]
    run = f"crash{index}-{os.getpid()}-{int(time.time())}"
    result = Round()
    limit = aiohttp.TCPConnector(limit=args.concurrency + 5, limit_per_host=args.concurrency + 5)
    async with aiohttp.ClientSession(connector=limit) as session:
        server = Server(target, tmp / f"crash-{index}-a.log")
        server.start()
        try:
            await server.wait_ready(session, within=90)
            url = server.base + "/api/messages"
            greetings = [json.dumps(activity(target, connector.url, run, w, f"{ID_PREFIX}{run}-hello-{w}")).encode()
                         for w in range(args.concurrency)]
            await asyncio.gather(*(post(session, url, body) for body in greetings))
            sent, kill_at = await load_until_killed(session, server, target, connector.url, run, args.concurrency,
                                                    args.load_seconds)
        finally:
            server.stop()
        answered = {k: connector.answers[k][0] for k in sent if connector.answers.get(k)}
        result.sent, result.answered_before_kill = len(sent), len(answered)
        replay = {k: body for k, (at, body) in sent.items() if at >= kill_at - args.replay_seconds}

        again = Server(target, tmp / f"crash-{index}-b.log")
        again.start()
        try:
            await again.wait_ready(session, within=90)
            url = again.base + "/api/messages"
            queue = list(replay.items())

            async def replayer() -> None:
                while queue:
                    _, body = queue.pop()
                    if await post(session, url, body) != 200:
                        result.replay_errors += 1

            await asyncio.gather(*(replayer() for _ in range(args.concurrency)))
        finally:
            again.stop()
    result.replayed = len(replay)
    for key in replay:
        times = connector.answers.get(key, [])
        if key in answered:
            if len(times) > 1:
                result.doubled_ages.append(kill_at - answered[key])
        else:
            result.in_flight_replayed += 1
            if not times:
                result.lost += 1
    return result


def fresh_database(tmp: Path, database_url: str | None) -> None:
    """PostgreSQL migrated (it keeps earlier rounds' rows; ids never repeat), or no SQLite file: a new one."""
    if database_url:
        from storage import db

        db.upgrade(database_url)
    else:
        for stale in tmp.glob("bench.sqlite3*"):
            stale.unlink()


def keep_logs(tmp: Path, index: int, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for log in tmp.glob(f"crash-{index}-*.log"):
        shutil.copy(log, dest / log.name)


class ConnectorThread:
    """The recording connector, served from a thread and event loop of its own."""

    def __init__(self) -> None:
        self.connector = RecordingConnector()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mock-connector", daemon=True)

    def __enter__(self) -> RecordingConnector:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.connector.start(), self._loop).result(timeout=30)
        return self.connector

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.connector.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


async def measure(args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    sys.setswitchinterval(0.001)  # the connector's thread notes an arrival within a millisecond or so
    with ConnectorThread() as connector, tempfile.TemporaryDirectory(prefix="hms-crash-") as tmpdir:
        tmp = Path(tmpdir)
        for i in range(args.rounds):
            fresh_database(tmp, args.database_url)
            print(f"round {i + 1} of {args.rounds}: load for {args.load_seconds:g} s at "
                  f"C={args.concurrency}, kill -9, restart, replay ...", file=sys.stderr, flush=True)
            r = await one_round(connector, tmp, i, args)
            if args.logs:
                keep_logs(tmp, i, Path(args.logs))
            rounds.append(r)
            print(f"  {r.summary()}", file=sys.stderr, flush=True)
    return rounds


def report(rounds: list[Round], args: argparse.Namespace) -> dict[str, Any]:
    windows = [r.window for r in rounds]
    out = {"rounds": [r.summary() for r in rounds], "concurrency": args.concurrency,
           "load_seconds": args.load_seconds, "replay_seconds": args.replay_seconds,
           "database": "postgresql" if args.database_url else "sqlite",
           "window_median_s": round(statistics.median(windows), 3), "window_max_s": round(max(windows), 3),
           "doubled_total": sum(len(r.doubled_ages) for r in rounds), "lost_total": sum(r.lost for r in rounds)}
    print()
    print(f"{'round':>5} {'sent':>7} {'answered':>9} {'replayed':>9} {'doubled':>8} {'window s':>9} "
          f"{'in flight':>10} {'lost':>5}")
    for i, r in enumerate(rounds, 1):
        print(f"{i:>5} {r.sent:>7} {r.answered_before_kill:>9} {r.replayed:>9} {len(r.doubled_ages):>8} "
              f"{r.window:>9.3f} {r.in_flight_replayed:>10} {r.lost:>5}")
    print(f"\ncrash window (the oldest turn answered twice: from its answer to the kill): median "
          f"{out['window_median_s']:.3f} s, max {out['window_max_s']:.3f} s over {len(rounds)} rounds; "
          f"{out['doubled_total']} answered twice, {out['lost_total']} in-flight turns lost")
    if any(r.replay_errors for r in rounds):
        print(f"replays not answered 200: {sum(r.replay_errors for r in rounds)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kill-and-restart rounds (default 5)")
    parser.add_argument("--concurrency", "-c", type=int, default=50, help="concurrent users (default 50)")
    parser.add_argument("--load-seconds", type=float, default=4.0, help="load before the kill (default 4)")
    parser.add_argument("--replay-seconds", type=float, default=5.0,
                        help="replay what was sent this long before the kill (default 5)")
    parser.add_argument("--database-url", help="our bot's database (default: a fresh SQLite file per round)")
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument("--logs", help="keep the servers' logs in this folder")
    args = parser.parse_args()
    if args.rounds < 1 or args.concurrency < 1 or args.load_seconds <= 0 or args.replay_seconds <= 0:
        parser.error("--rounds, --concurrency, --load-seconds and --replay-seconds must be positive")
    out = report(asyncio.run(measure(args)), args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
