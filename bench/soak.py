"""The soak: people keep using the bot while its scheduler fans out a thousand prompts to a connector that
throttles like Teams.

    scripts/bench --soak 300 [--soak-targets mixed mixed-pg] [--soak-users 50] [--soak-prompts 1000]

For each database (SQLite, one process; PostgreSQL, two replicas with their schedulers on):
1. bare aiohttp is measured first with the same users and think time (`--soak-bare-seconds`), for the chat's
   p50/p99 to compare with (the same run, the same machine, the same load shape);
2. a fresh database gets a personal chat for each of `--soak-prompts` recipients, then the bot starts (scheduler
   on: its delivery tick runs every 5 s), everyone who takes part says hello, and the server's RSS is read;
3. the prompts are put in the outbox through the bot's own code (`Rounds.prompt_activity`, the fire round's
   fillable card, `outbox_row`, `repo.enqueue`), one per recipient, and at the same moment `--soak-users` users
   start the mixed workload with exponential think times (mean `--soak-think` s) for SECONDS;
4. the connector answers every proactive message after `--soak-latency` s, refusing a seeded share with 429 and
   Retry-After, 502 or 504 (replies to chat turns are answered at once, so the chat's percentiles show the bot,
   not the mock); after the users stop it waits at most `--soak-drain` s for the rest of the prompts.

Reported: the chat's p50/p99 against bare aiohttp's, the HTTP status histogram (any 500 loudly), the prompts
accepted per recipient (every one exactly once: none missing, none twice), the achieved send rate against the
configured limit, and the RSS of every replica at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.connector import ID_PREFIX, MockConnector, Throttle
from bench.mixed import MIXED_TARGETS, Driver, MixedTarget, Replicas, _Spec, fresh_database, summary, warm_up
from bench.servers import Server, percentile
from bench.workload import CARD_SECRET, Mix, Workload, organisation, write_organisation

SOAK_CONVERSATION = "a:soak-"


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("soak (with --soak SECONDS)")
    group.add_argument("--soak-targets", nargs="+", choices=list(MIXED_TARGETS), default=list(MIXED_TARGETS),
                       help="databases to soak (default: mixed mixed-pg)")
    group.add_argument("--soak-users", type=int, default=50, help="chat users (default 50)")
    group.add_argument("--soak-think", type=float, default=0.5,
                       help="mean seconds a user waits between turns (exponential; default 0.5)")
    group.add_argument("--soak-prompts", type=int, default=1000, help="prompts fanned out (default 1000)")
    group.add_argument("--soak-latency", type=float, default=0.25,
                       help="seconds the connector takes for a proactive message (default 0.25)")
    group.add_argument("--soak-429", type=float, default=0.05, help="share refused with 429 (default 0.05)")
    group.add_argument("--soak-retry-after", type=float, default=1.0, help="its Retry-After, s (default 1)")
    group.add_argument("--soak-502", type=float, default=0.01, help="share refused with 502 (default 0.01)")
    group.add_argument("--soak-504", type=float, default=0.01, help="share refused with 504 (default 0.01)")
    group.add_argument("--soak-bare-seconds", type=float,
                       help="how long bare aiohttp is measured first (default: SECONDS, at most 60)")
    group.add_argument("--soak-drain", type=float, default=180.0,
                       help="after the users stop, wait at most this long for the prompts (default 180)")


# -- bare aiohttp under the same users --------------------------------------------------------------------------


async def bare_paced(connector: MockConnector, session: aiohttp.ClientSession, tmp: Path, users: int,
                     think: float, seconds: float) -> dict[str, Any]:
    """bare aiohttp echoing, with the soak's users and think times."""
    server = Server(_Spec("bare", [sys.executable, "-m", "bench.bare"], {}), tmp / "soak-bare.log")
    server.target.ready_path = "/healthz"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    try:
        server.start()
        await server.wait_ready(session, within=60)
        connector.phase(lambda b: str(b.get("text", "")).startswith("Echo: "))
        stop = time.monotonic() + seconds
        ids = iter(range(10**9))

        async def user(w: int, rng: random.Random) -> None:
            await asyncio.sleep(rng.random() * think)
            while time.monotonic() < stop:
                body = {"type": "message", "id": f"{ID_PREFIX}soak-bare-{next(ids)}", "channelId": "msteams",
                        "serviceUrl": connector.url, "text": "hei", "from": {"id": f"29:u{w}"},
                        "recipient": {"id": "28:bench-bot"}, "conversation": {"id": f"a:bare-{w}"}}
                t0 = time.perf_counter()
                try:
                    async with session.post(server.base + "/api/messages", json=body,
                                            timeout=aiohttp.ClientTimeout(total=30)) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                except (TimeoutError, aiohttp.ClientError):
                    statuses[-1] = statuses.get(-1, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)

        started = time.perf_counter()
        await asyncio.gather(*(user(w, random.Random(w)) for w in range(users)))
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    return {"turns": len(latencies), "turns_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2), "statuses": statuses}


# -- the prompts --------------------------------------------------------------------------------------------


async def seed_recipients(url: str, connector_url: str, prompts: int) -> list[str]:
    """A personal chat with the bot for each recipient (as after the bot was installed for them)."""
    from storage import db, repo

    engine = db.create_engine(url)
    now = dt.datetime.now(dt.UTC)
    emails = [f"soak.{i:05d}@khm.uio.no" for i in range(prompts)]
    try:
        async with db.session_factory(engine)() as s:
            for i, email in enumerate(emails):
                await repo.upsert_conversation(
                    s, f"{SOAK_CONVERSATION}{i:05d}", now, conversation_type="personal", service_url=connector_url,
                    tenant_id="bench-tenant", channel_id="msteams", bot_id="28:bench-bot",
                    user_teams_id=f"29:soak-{i:05d}", person_email=email, locale="nb-NO")
    finally:
        await engine.dispose()
    return emails


async def enqueue_prompts(url: str, doc: dict[str, Any], emails: list[str]) -> int:
    """One fire-round prompt per recipient, written to the outbox by the bot's own code."""
    from hms import wheel
    from hms.config import HmsConfig
    from storage import db, repo
    from usecases.outbox import outbox_row, person_target
    from usecases.rounds import Rounds

    config = HmsConfig.model_validate(doc)
    rounds = Rounds(config, CARD_SECRET.encode())
    now = dt.datetime.now(config.tz)
    today = now.date()
    fire = [o for o in wheel.occurrences(config, today, today) if o.task == "fire_round"]
    rows = [outbox_row(f"soak|{i}|{email}", "prompt", person_target(email),
                       rounds.prompt_activity(fire[i % len(fire)], "prompt", "prompt", "nb-NO"))
            for i, email in enumerate(emails)]
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as s:
            return await repo.enqueue(s, rows, now)
    finally:
        await engine.dispose()


def configured_rate() -> float:
    """The delivery's send-rate limit for the tenant, all replicas together (HMS_TENANT_RATE, which the replicas
    inherit from this environment)."""
    from bot.settings import Settings

    return float(Settings().tenant_rate)


# -- one soak -----------------------------------------------------------------------------------------------


async def soak_one(target: MixedTarget, args: argparse.Namespace, connector: MockConnector,
                   session: aiohttp.ClientSession, tmp: Path) -> dict[str, Any]:
    seconds, users, think = float(args.soak), args.soak_users, args.soak_think
    result: dict[str, Any] = {"target": target.name, "label": target.label, "seconds": seconds, "users": users,
                              "think_s": think, "prompts": args.soak_prompts, "replicas": target.replicas}
    connector.throttle = None
    bare_seconds = args.soak_bare_seconds if args.soak_bare_seconds is not None else min(seconds, 60.0)
    print(f"soak {target.label}: bare aiohttp for {bare_seconds:.0f} s ...", file=sys.stderr, flush=True)
    result["bare"] = await bare_paced(connector, session, tmp, users, think, bare_seconds)

    extra = args.floors
    config_path = write_organisation(tmp / f"soak-org-{extra}.yaml", extra)
    doc = organisation(extra)
    workload = Workload(doc, Mix.parse(args.mix), args.seed)
    connector.directory = workload.directory()
    connector.keep_replies = True
    replicas: Replicas | None = None
    try:
        async with fresh_database(target, tmp, args.database_url) as url:
            emails = await seed_recipients(url, connector.url, args.soak_prompts)
            replicas = Replicas(replace(target, scheduler=True), url, config_path, connector.url, tmp)
            try:
                await replicas.start(session)
                driver = Driver(session, replicas.urls, connector, connector.identity.mint(connector.url),
                                f"soak-{uuid.uuid4().hex[:8]}", workload, args.seed)
                connector.phase(lambda _b: True)
                warm = await warm_up(driver, workload, args.warmup, time.monotonic() + 120)
                if summary(warm, 0).get("problems"):
                    result["problems"] = ["warm-up: " + p for p in summary(warm, 0)["problems"]]
                    return result
                result["rss_start_mb"] = _mb(replicas.rss())
                connector.throttle = Throttle(args.soak_latency, args.soak_429, args.soak_retry_after,
                                              args.soak_502, args.soak_504, seed=args.seed)
                connector.deliveries = type(connector.deliveries)()
                tally = connector.phase(lambda _b: True)
                print(f"soak {target.label}: {args.soak_prompts} prompts and {users} users for {seconds:.0f} s ...",
                      file=sys.stderr, flush=True)
                enqueued_at = time.monotonic()
                result["prompts_enqueued"] = await enqueue_prompts(url, doc, emails)
                cpu0 = replicas.cpu()
                phase = await driver.run_paced([workload.stream(w) for w in range(users)], seconds, think)
                cpu1 = replicas.cpu()
                chat_end = time.monotonic()
                result["rss_end_of_load_mb"] = _mb(replicas.rss())
                drain_deadline = time.monotonic() + args.soak_drain
                while time.monotonic() < drain_deadline and _delivered(connector) < len(emails):  # noqa: ASYNC110
                    await asyncio.sleep(0.5)  # polls the connector's count; nothing to wait on
                result["rss_end_mb"] = _mb(replicas.rss())
                result["chat"] = summary(phase, 0)
                if cpu0 is not None and cpu1 is not None and phase.latencies:
                    result["chat"]["server_cpu_ms_per_turn"] = round((cpu1 - cpu0) * 1000 / len(phase.latencies), 3)
                result["delivery"] = _delivery_report(connector, len(emails), enqueued_at, chat_end,
                                                      target.replicas)
                result["member_lookups"] = tally.member_lookups
                result["server_errors"] = replicas.errors()
                problems = list(result["chat"].get("problems", []))
                d = result["delivery"]
                if d["missing"] or d["duplicated"]:
                    problems.append(f"prompts: {d['missing']} not delivered by the end, "
                                    f"{d['duplicated']} sent more than once")
                if problems:
                    result["problems"] = problems
                return result
            finally:
                replicas.stop()
    except Exception as exc:  # noqa: BLE001 - reported; the other database still runs
        result.setdefault("problems", []).append(f"{type(exc).__name__}: {exc}")
        return result
    finally:
        connector.throttle = None
        connector.keep_replies = False
        if result.get("problems") and replicas is not None:
            result["server_log_tail"] = replicas.log_tail()


def _mb(values: list[int | None]) -> list[float | None]:
    return [round(v / 2**20, 1) if v else None for v in values]


def _delivered(connector: MockConnector) -> int:
    return sum(1 for c in connector.deliveries.accepted if c.startswith(SOAK_CONVERSATION))


def _delivery_report(connector: MockConnector, prompts: int, enqueued_at: float, chat_end: float,
                     replicas: int) -> dict[str, Any]:
    accepted = {c: n for c, n in connector.deliveries.accepted.items() if c.startswith(SOAK_CONVERSATION)}
    times = sorted(t for c, ts in connector.deliveries.accepted_at.items() if c.startswith(SOAK_CONVERSATION)
                   for t in ts)
    limit = configured_rate()
    out: dict[str, Any] = {
        "delivered_once": sum(1 for n in accepted.values() if n == 1),
        "missing": prompts - len(accepted),
        "duplicated": sum(1 for n in accepted.values() if n > 1),
        "refused": {str(k): v for k, v in sorted(connector.deliveries.refused.items())},
        "configured_limit_per_s": limit, "replicas": replicas,
    }
    if times:
        span = times[-1] - enqueued_at
        out.update(first_after_s=round(times[0] - enqueued_at, 2), last_after_s=round(span, 2),
                   achieved_per_s=round(len(times) / span, 2) if span > 0 else None,
                   done_before_users_stopped=times[-1] <= chat_end)
        out["achieved_vs_limit"] = round(out["achieved_per_s"] / limit, 3) if out["achieved_per_s"] else None
    return out


def print_soak(r: dict[str, Any]) -> None:
    print(f"\n{r['label']}: {r['users']} users (think {r['think_s']} s) for {r['seconds']:.0f} s, "
          f"{r['prompts']} prompts, {r['replicas']} replica(s)")
    bare = r.get("bare", {})
    chat = r.get("chat")
    if bare:
        print(f"  bare aiohttp    {bare['turns']:>7} turns {bare['turns_per_s']:>7.1f}/s  p50 {bare['p50_ms']:>7.1f} ms"
              f"  p99 {bare['p99_ms']:>7.1f} ms  statuses {bare['statuses']}")
    if chat:
        ratio50 = chat["p50_ms"] / bare["p50_ms"] if bare.get("p50_ms") else float("nan")
        ratio99 = chat["p99_ms"] / bare["p99_ms"] if bare.get("p99_ms") else float("nan")
        print(f"  HMS-hjulet chat {chat['turns']:>7} turns {chat['turns_per_s']:>7.1f}/s  p50 {chat['p50_ms']:>7.1f} ms"
              f"  p99 {chat['p99_ms']:>7.1f} ms  (x{ratio50:.1f} / x{ratio99:.1f} bare)  statuses {chat['statuses']}")
        kinds = ", ".join(f"{k} p50 {v['p50_ms']:.0f} / p99 {v['p99_ms']:.0f} ms" for k, v in chat["by_kind"].items())
        print(f"    {kinds}")
        print(f"    outcomes {chat['outcomes']}")
        if chat.get("http_500"):
            print(f"    !!! {chat['http_500']} x HTTP 500 !!!")
    d = r.get("delivery")
    if d:
        rate = (f"{d['achieved_per_s']:.2f}/s = {d['achieved_vs_limit']:.0%} of the configured "
                f"{d['configured_limit_per_s']:g}/s for the tenant" if d.get("achieved_per_s") else "n/a")
        print(f"  prompts: {d['delivered_once']} exactly once, {d['missing']} not delivered by the end, "
              f"{d['duplicated']} twice or more; connector refused {d['refused']}")
        if d.get("last_after_s") is not None:
            print(f"    first after {d['first_after_s']} s, last after {d['last_after_s']} s"
                  f" ({'before' if d['done_before_users_stopped'] else 'after'} the users stopped); send rate {rate}")
    print(f"  RSS MB per replica: start {r.get('rss_start_mb')}, users stopped {r.get('rss_end_of_load_mb')}, "
          f"end {r.get('rss_end_mb')}")
    for error in r.get("server_errors", []):
        print(f"  server logged: {error}")
    for p in r.get("problems", []):
        print(f"  FAILED: {p}")
    for sample in (chat or {}).get("problem_samples", [])[:3]:
        print(f"    e.g. {sample}")
    if r.get("server_log_tail"):
        print(f"  --- server log ---\n{r['server_log_tail']}")


async def _soak_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    import tempfile

    connector = MockConnector()
    await connector.start()
    out = []
    try:
        with tempfile.TemporaryDirectory(prefix="hms-soak-") as tmpdir:
            limit = aiohttp.TCPConnector(limit=args.soak_users + 10, limit_per_host=args.soak_users + 10)
            async with aiohttp.ClientSession(connector=limit) as session:
                for name in args.soak_targets:
                    out.append(await soak_one(MIXED_TARGETS[name], args, connector, session, Path(tmpdir)))
    finally:
        await connector.stop()
    return out


def run_soak(args: argparse.Namespace) -> int:
    """`--soak SECONDS`: soak every database in --soak-targets, print and optionally write the results."""
    results = asyncio.run(_soak_all(args))
    for r in results:
        print_soak(r)
    if args.json:
        Path(args.json).write_text(json.dumps({"soak": [{k: v for k, v in r.items() if k != "server_log_tail"}
                                                        for r in results]}, indent=2, ensure_ascii=False) + "\n")
    return 1 if any(r.get("problems") for r in results) else 0
