"""One command, one run: bare aiohttp vs the stock botbuilder echo bot vs HMS-hjulet answering a real question.

    .venv/bin/python -m bench [--n 2000] [--concurrency 50] [--json out.json]

Each target runs in its own subprocess on 127.0.0.1; this process is the load generator and the mock Bot
Connector (also on 127.0.0.1). Targets are measured one after another in the same run, each after a warm-up.
Per-turn latency is from sending POST /api/messages to receiving its HTTP response; every bot sends its reply
to the connector before that response returns, so the reply is included. Every reply is checked on the
connector side (the echo text, or for our bot an Adaptive Card titled "Frister ..."); a run with missing or
wrong replies, or any response other than 200/201, is reported as FAILED rather than fast.

Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.connector import ID_PREFIX, Identity, MockConnector, Tally
from bench.mixed import DEFAULT_POSTGRES, MIXED_TARGETS, measure as measure_mixed, print_line as print_mixed
from bench.servers import Server, cpu_seconds, percentile
from bench.soak import add_soak_arguments, run_soak
from bench.workload import DEFAULT_EXTRA_FLOORS, DEFAULT_MIX, Mix

QUESTION = "hva forfaller denne måneden?"
FATIMA = {"id": "29:fatima", "name": "Fatima Ali", "aadObjectId": "0a1b2c3d-000d-4000-8000-00000000000d"}
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
GOAL_RATIO = 0.40
GOAL_P99_MS = 100.0
GOAL_CONCURRENCY = 50


# -- targets ------------------------------------------------------------------------------------------------


def echo_check(body: dict[str, Any]) -> bool:
    return body.get("type") == "message" and str(body.get("text", "")).startswith("Echo: ")


def frister_check(body: dict[str, Any]) -> bool:
    """An Adaptive Card whose title (first TextBlock) contains "Frister": the due-this-month answer."""
    for attachment in body.get("attachments") or []:
        if attachment.get("contentType") != CARD_TYPE:
            continue
        blocks = (attachment.get("content") or {}).get("body") or []
        if blocks and blocks[0].get("type") == "TextBlock" and "Frister" in str(blocks[0].get("text", "")):
            return True
    return False


@dataclass
class Target:
    name: str
    label: str
    argv: Callable[[int], list[str]]
    ready_path: str
    check: Callable[[dict[str, Any]], bool]
    text: str
    greets_new_conversations: bool = False  # the first message in a new chat also gets a welcome card
    env: dict[str, str] = field(default_factory=dict)
    authenticated: bool = False  # requests carry a Bot Framework token the server validates


def targets(tmp: Path, database_url: str | None = None, connector_url: str = "") -> dict[str, Target]:
    py = sys.executable
    db_url = database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    auth_db_url = database_url or f"sqlite:///{tmp / 'bench-auth.sqlite3'}"
    hms_bot = str(Path(py).parent / "hms-bot")
    return {
        "bare": Target("bare", "bare aiohttp", lambda port: [py, "-m", "bench.bare", "--port", str(port)],
                       "/healthz", echo_check, "hello"),
        "stock": Target("stock", "stock botbuilder echo", lambda port: [py, "-m", "bench.stock", "--port", str(port)],
                        "/healthz", echo_check, "hello"),
        "ours": Target("ours", "HMS-hjulet (due card + DB)",
                       lambda port: [hms_bot, "serve", "--dev", "--port", str(port)],
                       "/readyz", frister_check, QUESTION, greets_new_conversations=True,
                       env={"DATABASE_URL": db_url, "LOG_LEVEL": "INFO"}),  # as deployed: a line per turn
        "ours-auth": Target("ours-auth", "HMS-hjulet, tokens checked",
                            lambda port: [hms_bot, "serve", "--port", str(port)],
                            "/readyz", frister_check, QUESTION, greets_new_conversations=True,
                            env={"DATABASE_URL": auth_db_url, "LOG_LEVEL": "INFO", "HMS_SCHEDULER": "false",
                                 **Identity.env(connector_url)}, authenticated=True),
    }


def dev_runtime() -> Any:
    """In-process tools: our app in local mode, without its background scheduler when it has one."""
    import dataclasses

    from bot.app import Runtime

    names = {f.name for f in dataclasses.fields(Runtime)}
    return Runtime(dev=True, **({"scheduler": False} if "scheduler" in names else {}))


def activity(target: Target, service_url: str, run: str, conversation: int, activity_id: str) -> dict[str, Any]:
    return {
        "type": "message", "id": activity_id, "timestamp": "2026-11-26T09:00:00.000Z", "channelId": "msteams",
        "serviceUrl": service_url, "locale": "nb-NO", "text": target.text,
        "from": dict(FATIMA), "recipient": {"id": "28:bench-bot", "name": "HMS-hjulet"},
        "conversation": {"id": f"a:bench-{run}-{conversation}", "conversationType": "personal",
                         "tenantId": "bench-tenant"},
        "channelData": {"tenant": {"id": "bench-tenant"}},
    }


# -- load ---------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    turns: int
    seconds: float
    latencies: list[float]
    starts: list[float]  # when each measured turn was sent, seconds from the phase start (same order)
    bad_status: dict[int, int]
    errors: list[str]
    server_cpu: float | None


async def drive(session: aiohttp.ClientSession, url: str, bodies: list[list[bytes]], deadline: float,
                pid: int | None, token: str | None = None) -> Phase:
    """Worker w sends bodies[w] one after another (its own conversation); all workers run concurrently."""
    latencies: list[float] = []
    starts: list[float] = []
    bad: dict[int, int] = {}
    errors: list[str] = []
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(mine: list[bytes]) -> None:
        for body in mine:
            if time.monotonic() > deadline:
                errors.append("phase deadline reached")
                return
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers, timeout=timeout) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            starts.append(t0 - phase_start)
            if status not in (200, 201):
                bad[status] = bad.get(status, 0) + 1

    cpu0 = cpu_seconds(pid) if pid else None
    phase_start = time.perf_counter()
    await asyncio.gather(*(worker(mine) for mine in bodies))
    seconds = time.perf_counter() - phase_start
    cpu1 = cpu_seconds(pid) if pid else None
    return Phase(sum(len(b) for b in bodies), seconds, latencies, starts, bad, errors,
                 (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None)


def plan(target: Target, service_url: str, run: str, n: int, concurrency: int, tag: str) -> list[list[bytes]]:
    """n activities split round-robin over `concurrency` workers, worker w always in conversation w."""
    per: list[list[bytes]] = [[] for _ in range(concurrency)]
    for i in range(n):
        w = i % concurrency
        per[w].append(json.dumps(activity(target, service_url, run, w, f"{ID_PREFIX}{run}-{tag}-{i}")).encode())
    return per


def verify(tally: Tally, phase: Phase, expected: int, extra: int = 0) -> list[str]:
    problems = []
    if phase.errors:
        problems.append(f"{len(phase.errors)} request errors (first: {phase.errors[0]})")
    if phase.bad_status:
        problems.append(f"non-200/201 responses: {phase.bad_status}")
    if tally.expected != expected:
        problems.append(f"connector got {tally.expected} expected replies, wanted {expected}")
    if tally.other != extra:
        problems.append(f"connector got {tally.other} other replies, wanted {extra}"
                        + (f" (first: {tally.other_samples[0]})" if tally.other_samples else ""))
    if tally.unexpected_calls:
        problems.append(f"{len(tally.unexpected_calls)} unexpected connector calls "
                        f"(first: {tally.unexpected_calls[0]})")
    return problems


async def measure(target: Target, connector: MockConnector, session: aiohttp.ClientSession, tmp: Path,
                  n: int, concurrency: int, warmup: int, max_seconds: float,
                  with_timeline: bool = False) -> dict[str, Any]:
    server = Server(target, tmp / f"{target.name}.log")
    run = f"{target.name}-{os.getpid()}-{int(time.time())}"
    result: dict[str, Any] = {"target": target.name, "label": target.label, "ok": False}
    started = time.monotonic()
    try:
        server.start()
        await server.wait_ready(session, within=90)
        result["startup_s"] = round(time.monotonic() - started, 2)
        url = server.base + "/api/messages"
        deadline = time.monotonic() + max_seconds
        token = connector.identity.mint(connector.url) if target.authenticated else None

        # warm-up: every conversation once (a new chat is greeted), then `warmup` ordinary turns
        problems: list[str] = []
        tally = connector.phase(target.check)
        phase = await drive(session, url, plan(target, connector.url, run, concurrency, concurrency, "hello"),
                            deadline, None, token)
        problems += verify(tally, phase, concurrency, concurrency if target.greets_new_conversations else 0)
        if warmup and not problems:
            tally = connector.phase(target.check)
            phase = await drive(session, url, plan(target, connector.url, run, warmup, concurrency, "warm"),
                                deadline, None, token)
            problems += verify(tally, phase, warmup)
        if problems:
            result["problems"] = ["warm-up: " + p for p in problems]
            return result

        tally = connector.phase(target.check)
        phase = await drive(session, url, plan(target, connector.url, run, n, concurrency, "run"), deadline,
                            server.proc.pid if server.proc else None, token)
        problems = verify(tally, phase, n)
        result.update({
            "turns": n,
            "seconds": round(phase.seconds, 3),
            "turns_per_s": round(n / phase.seconds, 1),
            "p50_ms": round(percentile(phase.latencies, 50) * 1000, 2),
            "p90_ms": round(percentile(phase.latencies, 90) * 1000, 2),
            "p99_ms": round(percentile(phase.latencies, 99) * 1000, 2),
            "max_ms": round(max(phase.latencies, default=float("nan")) * 1000, 2),
            "replies_checked": tally.expected,
            "proactive_messages": tally.proactive,
            "connector_tcp_connections": len(tally.peers),
            "slow_turns_over_100ms": sum(1 for x in phase.latencies if x > 0.1),
            "timeline": [[round(a, 4), round(b * 1000, 2)] for a, b in zip(phase.starts, phase.latencies, strict=True)]
            if with_timeline else None,
            "server_cpu_ms_per_turn": (round(phase.server_cpu * 1000 / n, 3)
                                       if phase.server_cpu is not None else None),
        })
        if problems:
            result["problems"] = problems
        else:
            result["ok"] = True
        return result
    except Exception as exc:  # noqa: BLE001 - reported as a failed target; the others still run
        result["problems"] = [f"{type(exc).__name__}: {exc}"]
        return result
    finally:
        server.stop()
        if not result.get("ok"):
            result["server_log_tail"] = server.log_tail()


# -- report -------------------------------------------------------------------------------------------------

JUDGED = ("mixed", "mixed-pg", "ours", "ours-auth")  # the targets whose goals are judged, headline first
HEADLINE = ("mixed", "mixed-pg")  # the goals that decide the exit status with --check-goals


def report(results: list[dict[str, Any]], n: int, concurrency: int) -> dict[str, Any]:
    """Print one round's lines at one concurrency; returns each judged target's goals."""
    bare = next((r for r in results if r["target"] == "bare" and r["ok"]), None)
    for r in results:
        r["ratio_vs_bare"] = (round(r["turns_per_s"] / bare["turns_per_s"], 3)
                              if bare and r.get("turns_per_s") else None)
    print()
    print(f"N={n} turns per target, concurrency C={concurrency}, {os.cpu_count()} CPUs, "
          f"latency = POST /api/messages round trip (reply to the mock connector included)")
    print("srv cpu = the server processes' user+system CPU per measured turn; conns = distinct TCP connections "
          "it opened to the connector while measured")
    head = (f"{'target':<32} {'turns/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'srv cpu ms/turn':>16}"
            f" {'conns':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        if r["target"] in MIXED_TARGETS:
            print_mixed(r)
            continue
        if not r.get("ok"):
            print(f"{r['label']:<32} FAILED: {'; '.join(r.get('problems', []))}")
            continue
        ratio = f"{r['ratio_vs_bare'] * 100:.1f}%" if r["ratio_vs_bare"] is not None else "n/a"
        cpu = f"{r['server_cpu_ms_per_turn']:.2f}" if r.get("server_cpu_ms_per_turn") is not None else "n/a"
        print(f"{r['label']:<32} {r['turns_per_s']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {ratio:>8} "
              f"{cpu:>16} {r['connector_tcp_connections']:>6}")
    for r in results:
        if r.get("proactive_messages"):
            print(f"({r['label']}: {r['proactive_messages']} proactive messages from its scheduler arrived during "
                  "the measurement; not counted as replies)")
    goals: dict[str, Any] = {}
    for name in JUDGED:
        judged: dict[str, Any] | None = next((x for x in results if x["target"] == name), None)
        if judged is None:
            continue
        g: dict[str, Any] = {"ratio": judged.get("ratio_vs_bare"), "p99_ms": judged.get("p99_ms"),
                             "http_500": judged.get("http_500", 0), "ok": bool(judged.get("ok"))}
        g["met"] = bool(judged.get("ok") and g["ratio"] is not None and g["ratio"] >= GOAL_RATIO
                        and g["p99_ms"] < GOAL_P99_MS)
        goals[name] = g
        if concurrency == GOAL_CONCURRENCY:
            print(f"goal {name} >= {GOAL_RATIO:.0%} of bare aiohttp and p99 < {GOAL_P99_MS:.0f} ms at "
                  f"C={concurrency}: {'MET' if g['met'] else 'NOT MET'} "
                  f"({_pct(g['ratio'])}, p99 {_ms(g['p99_ms'])}{'' if g['ok'] else ', run not valid'})")
    for r in results:
        if not r.get("ok") and r.get("server_log_tail"):
            print(f"\n--- last lines of the {r['target']} server log ---\n{r['server_log_tail']}")
    return goals


def _pct(x: float | None) -> str:
    return f"{x:.1%}" if x is not None else "n/a"


def _ms(x: float | None) -> str:
    return f"{x:.1f} ms" if x is not None else "n/a"


async def measure_all(args: argparse.Namespace) -> dict[int, list[dict[str, Any]]]:
    """One round: every target at every concurrency, in turn (a fresh server and database for each)."""
    connector = MockConnector()
    await connector.start()
    results: dict[int, list[dict[str, Any]]] = {}
    mix = Mix.parse(args.mix)
    try:
        with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmpdir:
            tmp = Path(tmpdir)
            if args.database_url and ("ours" in args.targets or "ours-auth" in args.targets):
                from storage import db

                db.upgrade(args.database_url)  # PostgreSQL must be migrated before `serve` starts
            all_targets = targets(tmp, args.database_url, connector.url)
            top = max(args.concurrency)
            limit = aiohttp.TCPConnector(limit=top + 5, limit_per_host=top + 5)
            async with aiohttp.ClientSession(connector=limit) as session:
                for concurrency in args.concurrency:
                    for name in args.targets:
                        label = MIXED_TARGETS[name].label if name in MIXED_TARGETS else all_targets[name].label
                        print(f"measuring {label}: {args.warmup} warm-up + {args.n} turns at C={concurrency} ...",
                              file=sys.stderr, flush=True)
                        if name in MIXED_TARGETS:
                            result = await measure_mixed(
                                MIXED_TARGETS[name], connector, session, tmp, args.n, concurrency, args.warmup,
                                args.max_seconds, args.database_url, mix, args.floors, args.seed, args.timeline)
                        else:
                            result = await measure(all_targets[name], connector, session, tmp, args.n,
                                                   concurrency, args.warmup, args.max_seconds, args.timeline)
                        result["concurrency"] = concurrency
                        results.setdefault(concurrency, []).append(result)
    finally:
        await connector.stop()
    return results


def summarise(rounds: list[dict[int, dict[str, Any]]], concurrencies: list[int]) -> dict[str, Any]:
    """Several rounds: per judged target, the median of each round's ratio (against bare aiohttp measured in that
    same round) and of its p99 at the goal's concurrency, and whether the goals hold for the medians; and the
    HTTP 500s at every concurrency."""
    import statistics

    at = GOAL_CONCURRENCY if GOAL_CONCURRENCY in concurrencies else concurrencies[0]
    summary: dict[str, Any] = {"rounds": len(rounds), "judged_at_concurrency": at, "targets": {}}
    print(f"\nover {len(rounds)} round(s), at C={at} (each ratio against bare aiohttp in the same round):")
    for name in JUDGED:
        goals = [r[at][name] for r in rounds if name in r.get(at, {})]
        if not goals:
            continue
        ratios = [g["ratio"] for g in goals if g["ratio"] is not None]
        p99s = [g["p99_ms"] for g in goals if g["p99_ms"] is not None]
        entry: dict[str, Any] = {"ratios": ratios, "p99_ms": p99s, "valid_runs": sum(g["ok"] for g in goals)}
        if ratios and p99s:
            entry.update(median_ratio=statistics.median(ratios), median_p99_ms=statistics.median(p99s))
            entry["met"] = (entry["median_ratio"] >= GOAL_RATIO and entry["median_p99_ms"] < GOAL_P99_MS
                            and entry["valid_runs"] == len(goals))
            print(f"  {name:<10} vs bare median {entry['median_ratio']:.1%} "
                  f"({', '.join(f'{x:.1%}' for x in ratios)}), p99 median {entry['median_p99_ms']:.1f} ms "
                  f"({', '.join(f'{x:.1f}' for x in p99s)}), valid runs {entry['valid_runs']}/{len(goals)}: "
                  f"goals {'MET' if entry['met'] else 'NOT MET'}")
        else:
            entry["met"] = False
            print(f"  {name:<10} no valid measurement: goals NOT MET")
        summary["targets"][name] = entry
    fives = {c: sum(g.get("http_500", 0) for r in rounds for g in r.get(c, {}).values()) for c in concurrencies}
    summary["http_500_by_concurrency"] = fives
    print(f"  HTTP 500 at C={', '.join(str(c) for c in concurrencies)}: "
          f"{', '.join(str(fives[c]) for c in concurrencies)}" + ("   !!! 500s !!!" if any(fives.values()) else ""))
    judged = [summary["targets"][n]["met"] for n in HEADLINE if n in summary["targets"]]
    summary["met"] = (all(judged) and not any(fives.values())) if judged else None
    return summary


def finish(args: argparse.Namespace, rounds: list[dict[int, list[dict[str, Any]]]]) -> int:
    reported: list[dict[int, dict[str, Any]]] = []
    for i, by_concurrency in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"\n== round {i} of {len(rounds)} ==")
        reported.append({c: report(results, args.n, c) for c, results in by_concurrency.items()})
    goals = summarise(reported, args.concurrency)
    if args.json:
        out = {"n": args.n, "concurrency": args.concurrency, "warmup": args.warmup, "cpus": os.cpu_count(),
               "mix": args.mix, "floors": args.floors, "seed": args.seed,
               "rounds": [{str(c): {"results": [{k: v for k, v in r.items() if k != "server_log_tail"}
                                                for r in results], "goals": reported[i][c]}
                           for c, results in by_concurrency.items()} for i, by_concurrency in enumerate(rounds)],
               "goals": goals}
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    if not all(r.get("ok") for by_c in rounds for results in by_c.values() for r in results):
        return 1
    if args.check_goals and goals.get("met") is False:
        return 3
    return 0


def _concurrencies(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a number, or numbers separated by commas (10,50,200)") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency must be positive")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="measured turns per target (default 2000)")
    parser.add_argument("--concurrency", "-c", type=_concurrencies, default=[GOAL_CONCURRENCY],
                        help="concurrent users, or a sweep: 10,50,200 (default 50)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up turns per target (default 100)")
    parser.add_argument("--targets", nargs="+", choices=["bare", "stock", "ours", "ours-auth", *MIXED_TARGETS],
                        default=["bare", "ours-auth", "mixed", "mixed-pg"],
                        help="which targets to run, in order (default: bare ours-auth mixed mixed-pg)")
    parser.add_argument("--max-seconds", type=float, default=180.0,
                        help="give up on a target's load after this long; the turns not sent are reported as "
                        "request errors (default 180)")
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument("--database-url", help="ours/ours-auth: our bot's database (default: a fresh SQLite "
                        "file), migrated first; mixed-pg and the soak: the PostgreSQL server to make a fresh "
                        f"database on for each measurement (default {DEFAULT_POSTGRES})")
    parser.add_argument("--mix", default=Mix(*DEFAULT_MIX).text(),
                        help="the mixed workload's shares: questions,page saves,round starts,submits "
                        "(default 80,10,5,5)")
    parser.add_argument("--floors", type=int, default=DEFAULT_EXTRA_FLOORS,
                        help="generated floors (each with its own floor contact) added to khm.yaml for the "
                        f"mixed workload's rounds (default {DEFAULT_EXTRA_FLOORS})")
    parser.add_argument("--seed", type=int, default=1, help="the mixed workload's random seed (default 1)")
    parser.add_argument("--timeline", action="store_true",
                        help="with --json: also write [sent at s, latency ms] for every measured turn")
    parser.add_argument("--rounds", type=int, default=1, help="measure every target this many times, in turn, "
                        "and judge the goals on the medians (this machine is noisy; default 1)")
    parser.add_argument("--check-goals", action="store_true", help="exit 3 when the goals are not met")
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="instead: the soak (see bench/soak.py) for this long per database (documented: 300)")
    add_soak_arguments(parser)
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 0 or args.rounds < 1 or args.floors < 0:
        parser.error("--n and --rounds must be positive, --warmup and --floors not negative")
    try:
        Mix.parse(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.soak is not None:
        return run_soak(args)
    return finish(args, [asyncio.run(measure_all(args)) for _ in range(args.rounds)])


if __name__ == "__main__":
    sys.exit(main())
