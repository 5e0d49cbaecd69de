"""Delivery at the connector's latency, within the tenant's limit: a fan-out of prompts through real `hms-bot serve`
processes (one, or several replicas on one PostgreSQL database) to a mock Bot Connector that takes `--latency`
seconds per message (issue 10.5).

    .venv/bin/python -m bench.fanout [--n 1000] [--latency 0.25] [--rate 40] [--concurrency 20]
                                     [--setups sqlite:1 postgres:1 postgres:3] [--database-url URL] [--json FILE]

For each setup: a fresh database (a SQLite file, or a throw-away database on the PostgreSQL server of
--database-url), migrated by the `hms-bot` under test; its replicas started with the scheduler on; then N people
with a personal chat and a prompt each, due now. It reports the rate the connector saw from the first message to
the last against the configured tenant rate (goal: at least 90% of it), the busiest one-second window of arrivals
(the senders keep the rate when they start a request; the way to the connector can add a message or two to a
window on a busy machine, as the network does on the way to Teams), the time from writing the prompts to the last
one arriving (which includes waiting for the next delivery tick, every 5 s), and whether every conversation got
exactly one message (the database must say "sent" for each, too).

`--hms-bot PATH` runs another build's console script (e.g. an older checkout's .venv/bin/hms-bot) for a
before/after comparison; settings it does not know are ignored by it. Nothing here talks to any address but
127.0.0.1: the replicas run the tests' network guard.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bench._common import LOOPBACK

ROOT = Path(__file__).resolve().parent.parent
GUARD = "from tests import netguard\nnetguard.install()\n"
GOAL = 0.90


class Connector:
    """A Bot Connector on 127.0.0.1 in a thread of its own: every activity POST takes `latency` seconds and is
    recorded with the time it arrived."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.arrivals: list[tuple[float, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="connector", daemon=True)

    async def _activity(self, request: web.Request) -> web.Response:
        self.arrivals.append((time.monotonic(), request.match_info["cid"]))
        await request.read()
        await asyncio.sleep(self.latency)
        return web.json_response({"id": f"sent-{len(self.arrivals)}"})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3/conversations/{cid}/activities", self._activity)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind((LOOPBACK, 0))
        sock.listen(256)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    def __enter__(self) -> Connector:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def service_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Result:
    setup: str
    n: int
    latency: float
    rate: float
    concurrency: int
    received: int
    exactly_once: bool
    sent_on_record: int
    kept_rate: float  # messages per second from the first arrival to the last
    of_configured: float
    busiest_second: int
    enqueue_to_last: float
    goal_met: bool


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int


def _replica(hms_bot: str, index: int, url: str, folder: Path, args: argparse.Namespace) -> Replica:
    env = {**os.environ, "DATABASE_URL": url, "HMS_SCHEDULER": "true", "LOG_LEVEL": args.log_level,
           "HMS_TENANT_RATE": f"{args.rate:g}", "HMS_SEND_CONCURRENCY": str(args.concurrency),
           "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = (folder / f"replica-{index}.log").open("wb")
    port = _free_port()
    process = subprocess.Popen([hms_bot, "serve", "--dev", "--port", str(port), "--bot-id", "28:hms-bot"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    return Replica(process, port)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the environment


def _ready(replicas: list[Replica], folder: Path, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    for index, replica in enumerate(replicas):
        url = f"http://{LOOPBACK}:{replica.port}/readyz"
        while True:
            if replica.process.poll() is not None:
                raise SystemExit(f"replica {index} exited:\n{(folder / f'replica-{index}.log').read_text()[-2000:]}")
            try:
                with _DIRECT.open(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"replica {index} not ready after {within:g} s")
            time.sleep(0.2)


def _database(kind: str, admin_url: str, folder: Path) -> tuple[str, Any]:
    """A fresh database URL, and how to drop it afterwards."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'fanout.sqlite3'}", lambda: None
    from storage import db

    name = f"hms_fanout_{uuid.uuid4().hex[:8]}"
    admin = db.create_sync_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"{admin_url.rpartition('/')[0]}/{name}", drop


def _enqueue(url: str, n: int, service_url: str) -> list[str]:
    """N people with a personal chat each and a prompt for each, due now, in one transaction."""
    from storage import db, models as m

    now = dt.datetime.now(dt.UTC)
    conversations = [f"a:fanout-{i:05d}" for i in range(n)]
    emails = [f"fanout{i:05d}@khm.uio.no" for i in range(n)]
    card = {"type": "message", "text": "Brannvernrunde", "summary": "Brannvernrunde"}
    engine = db.create_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(m.table(m.ConversationRef)), [
            {"conversation_id": c, "conversation_type": "personal", "service_url": service_url, "tenant_id": "t",
             "channel_id": "msteams", "bot_id": "28:hms-bot", "person_email": e, "active": True,
             "created_at": now, "updated_at": now} for c, e in zip(conversations, emails, strict=True)])
        conn.execute(sa.insert(m.table(m.OutboxMessage)), [
            {"dedupe_key": f"fanout|{e}", "recipient_email": e, "kind": "prompt", "status": "pending",
             "attempts": 0, "not_before": now, "created_at": now,
             "payload": json.dumps({"target": {"kind": "person", "email": e}, "activity": card})} for e in emails])
    engine.dispose()
    return conversations


def _sent_on_record(url: str) -> int:
    from storage import db

    engine = db.create_sync_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE dedupe_key LIKE 'fanout|%' AND status = 'sent'")).scalar()
    engine.dispose()
    return int(found or 0)


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any closed one-second window."""
    ordered, most, j = sorted(times), 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j + 1 < len(ordered) and ordered[j + 1] <= start + 1.0:
            j += 1
        most = max(most, j - i + 1)
    return most


def run_setup(setup: str, args: argparse.Namespace) -> Result:
    kind, _, count = setup.partition(":")
    replicas = int(count or 1)
    if kind == "sqlite" and replicas != 1:
        raise SystemExit("SQLite serves one process: use sqlite:1")
    with tempfile.TemporaryDirectory(prefix="hms-fanout-") as tmp, Connector(args.latency) as connector:
        folder = Path(tmp)
        (folder / "sitecustomize.py").write_text(GUARD)
        url, drop = _database(kind, args.database_url, folder)
        processes: list[Replica] = []
        try:
            subprocess.run([args.hms_bot, "db", "upgrade"], env={**os.environ, "DATABASE_URL": url}, check=True,
                           cwd=folder, capture_output=True)
            # the first replica loads the organisation before the others start (they would race on it)
            processes.append(_replica(args.hms_bot, 0, url, folder, args))
            _ready(processes, folder)
            processes += [_replica(args.hms_bot, i, url, folder, args) for i in range(1, replicas)]
            _ready(processes, folder)
            wanted = set(_enqueue(url, args.n, connector.service_url))
            enqueued = time.monotonic()
            deadline = enqueued + 30 + args.n / min(args.rate, 1 / args.latency) * 1.5
            while sum(1 for _, c in connector.arrivals if c in wanted) < args.n or _sent_on_record(url) < args.n:
                if time.monotonic() > deadline:
                    print(f"  {setup}: not done by the deadline", file=sys.stderr)
                    break
                time.sleep(0.5)
            time.sleep(2 * args.latency + 1)  # anything sent twice would arrive now
        finally:
            for replica in processes:
                replica.process.terminate()
            for replica in processes:
                try:
                    replica.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    replica.process.kill()
        sent = _sent_on_record(url)
        drop()
        if args.keep:
            for log in folder.glob("replica-*.log"):
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                (Path(args.keep) / f"{setup.replace(':', '-')}-{log.name}").write_bytes(log.read_bytes())
    arrivals = [(t, c) for t, c in connector.arrivals if c in wanted]
    times = [t for t, _ in arrivals]
    counts = Counter(c for _, c in arrivals)
    kept = (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0
    return Result(setup=setup, n=args.n, latency=args.latency, rate=args.rate, concurrency=args.concurrency,
                  received=len(arrivals), exactly_once=set(counts) == wanted and set(counts.values()) == {1},
                  sent_on_record=sent, kept_rate=round(kept, 2), of_configured=round(kept / args.rate, 3),
                  busiest_second=busiest_second(times),
                  enqueue_to_last=round(max(times) - enqueued, 1) if times else float("nan"),
                  goal_met=kept >= GOAL * args.rate and set(counts.values()) == {1} and sent == args.n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="prompts, one per conversation (default 1000)")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the connector takes per message")
    parser.add_argument("--rate", type=float, default=40.0, help="HMS_TENANT_RATE for the replicas (default 40)")
    parser.add_argument("--concurrency", type=int, default=20, help="HMS_SEND_CONCURRENCY (default 20)")
    parser.add_argument("--setups", nargs="+", default=["sqlite:1", "postgres:1", "postgres:3"],
                        help="DATABASE:REPLICAS, e.g. sqlite:1 postgres:3")
    parser.add_argument("--database-url", default=os.environ.get(
        "HMS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server (its database is used to create throw-away ones)")
    parser.add_argument("--hms-bot", default=str(Path(sys.executable).parent / "hms-bot"),
                        help="the console script to run (default: this environment's)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--keep", help="copy the replicas' logs into this folder")
    parser.add_argument("--log-level", default="WARNING", help="the replicas' LOG_LEVEL (DEBUG shows late slots)")
    args = parser.parse_args()
    results = []
    print(f"fan-out of {args.n} prompts, connector {args.latency:g} s, HMS_TENANT_RATE={args.rate:g}, "
          f"HMS_SEND_CONCURRENCY={args.concurrency}, {args.hms_bot}")
    print(f"{'setup':<12} {'rate kept':>10} {'of limit':>9} {'busiest s':>10} {'to last':>8} {'once':>5} "
          f"{'on record':>10}  goal")
    for setup in args.setups:
        r = run_setup(setup, args)
        results.append(r)
        print(f"{r.setup:<12} {r.kept_rate:>8.1f}/s {r.of_configured:>8.0%} {r.busiest_second:>10} "
              f"{r.enqueue_to_last:>7.1f}s {'yes' if r.exactly_once else 'NO':>5} {r.sent_on_record:>10}  "
              f"{'met' if r.goal_met else 'NOT MET'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
