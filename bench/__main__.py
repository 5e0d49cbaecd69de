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
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench._common import LOOPBACK

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "hva forfaller denne måneden?"
FATIMA = {"id": "29:fatima", "name": "Fatima Ali", "aadObjectId": "0a1b2c3d-000d-4000-8000-00000000000d"}
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ID_PREFIX = "bench-"  # every activity the load generator sends has an id starting with this
GOAL_RATIO = 0.40
GOAL_P99_MS = 100.0
GOAL_CONCURRENCY = 50


# -- the mock Bot Connector --------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the connector received during one phase."""

    replies: int = 0
    expected: int = 0  # replies that passed the target's check
    other: int = 0  # well-formed replies that are not the expected answer (e.g. a welcome card)
    proactive: int = 0  # messages not in reply to an activity (our bot's scheduler); reported, not checked
    unexpected_calls: list[str] = field(default_factory=list)
    other_samples: list[str] = field(default_factory=list)  # the first few unexpected replies, for the report
    peers: set[Any] = field(default_factory=set)  # distinct TCP connections the target reached the connector on


class Identity:
    """Bot Framework's side of authentication, on loopback: an RSA key published as OpenID metadata + JWKS by the
    mock connector, one channel-to-bot token minted for the whole run, and a token endpoint for the bot's
    outbound calls. Used by the `ours-auth` target (the production path: every request's token validated)."""

    APP_ID = "00000000-0000-4000-8000-00000000b0b0"
    TENANT = "bench-tenant"
    ISSUER = "https://api.botframework.com"
    KID = "bench-key"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.token = ""

    def jwk(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.KID, "use": "sig", "alg": "RS256", "endorsements": ["msteams"]}

    def mint(self, service_url: str) -> str:
        import jwt

        now = int(time.time())
        self.token = jwt.encode({"iss": self.ISSUER, "aud": self.APP_ID, "serviceurl": service_url,
                                 "nbf": now - 60, "iat": now - 60, "exp": now + 3 * 3600},
                                self.key, algorithm="RS256", headers={"kid": self.KID})
        return self.token

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"MicrosoftAppId": cls.APP_ID, "MicrosoftAppPassword": "bench-secret",
                "MicrosoftAppTenantId": cls.TENANT, "HMS_HOST": LOOPBACK,
                "HMS_OPENID_METADATA_URL": f"{base_url}/.well-known/openidconfiguration",
                "HMS_TOKEN_ISSUER": cls.ISSUER, "HMS_TOKEN_ENDPOINT": f"{base_url}/token"}


class MockConnector:
    """POST /v3/conversations/{id}/activities[/{replyTo}] -> {"id": ...}; anything else is recorded as unexpected.

    Replies to the benchmark's activities (the path names one of their ids) are checked and counted; anything
    else posted to a conversation (proactive reminders from our bot's scheduler, sent with or without a
    replyTo of their own) is only counted.
    """

    def __init__(self) -> None:
        self.tally = Tally()
        self.identity = Identity()
        self.check: Callable[[dict[str, Any]], bool] = lambda _body: True
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def phase(self, check: Callable[[dict[str, Any]], bool]) -> Tally:
        self.tally = Tally()
        self.check = check
        return self.tally

    async def _activity(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            self.tally.unexpected_calls.append(f"{request.method} {request.path} (bad JSON)")
            return web.json_response({"error": "bad json"}, status=400)
        self.tally.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if not request.match_info.get("reply_to", "").startswith(ID_PREFIX):
            self.tally.proactive += 1
            return web.json_response({"id": f"mock-{next(self._ids)}"})
        self.tally.replies += 1
        if self.check(body):
            self.tally.expected += 1
        else:
            self.tally.other += 1
            if len(self.tally.other_samples) < 3:
                self.tally.other_samples.append(f"{request.path}: {json.dumps(body, ensure_ascii=False)[:400]}")
        return web.json_response({"id": f"mock-{next(self._ids)}"})

    async def _metadata(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": Identity.ISSUER, "jwks_uri": f"{self.url}/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _keys(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.identity.jwk()]})

    async def _token(self, _request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench-outbound-token", "expires_in": 3600,
                                  "token_type": "Bearer"})

    async def _anything_else(self, request: web.Request) -> web.Response:
        self.tally.unexpected_calls.append(f"{request.method} {request.path}")
        return web.json_response({"error": "not mocked"}, status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._activity)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self._activity)
        app.router.add_get("/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/keys", self._keys)
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{LOOPBACK}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


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


# -- the server subprocess ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_PROXY="*", no_proxy="*", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to tell a busy server from a waiting one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Server:
    def __init__(self, target: Target, log_path: Path):
        self.target = target
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.target.argv(self.port), cwd=ROOT, env=child_env(self.target.env),
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, session: aiohttp.ClientSession, within: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.proc.returncode} before it was ready")
            try:
                async with session.get(self.base + self.target.ready_path,
                                       timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.target.name} was not ready after {within:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


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


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


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


def report(results: list[dict[str, Any]], n: int, concurrency: int) -> dict[str, Any]:
    bare = next((r for r in results if r["target"] == "bare" and r["ok"]), None)
    for r in results:
        r["ratio_vs_bare"] = (round(r["turns_per_s"] / bare["turns_per_s"], 3)
                              if bare and r.get("ok") else None)
    ours = next((r for r in results if r["target"] == "ours"), None)
    goals: dict[str, Any] = {"ratio_min": GOAL_RATIO, "p99_max_ms": GOAL_P99_MS,
                             "goal_concurrency": GOAL_CONCURRENCY, "measured_concurrency": concurrency}
    if ours and ours.get("ok"):
        goals["ratio_met"] = ours["ratio_vs_bare"] is not None and ours["ratio_vs_bare"] >= GOAL_RATIO
        goals["p99_met"] = ours["p99_ms"] < GOAL_P99_MS
        goals["met"] = bool(goals["ratio_met"] and goals["p99_met"])
    else:
        goals["met"] = None

    print()
    print(f"N={n} turns per target, concurrency C={concurrency}, {os.cpu_count()} CPUs, "
          f"latency = POST /api/messages round trip (reply to the mock connector included)")
    print("srv cpu = the server process's user+system CPU per measured turn; conns = distinct TCP connections "
          "it opened to the connector while measured")
    head = (f"{'target':<28} {'turns/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'srv cpu ms/turn':>16}"
            f" {'conns':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        if not r.get("ok"):
            print(f"{r['label']:<28} FAILED: {'; '.join(r.get('problems', []))}")
            continue
        ratio = f"{r['ratio_vs_bare'] * 100:.1f}%" if r["ratio_vs_bare"] is not None else "n/a"
        cpu = f"{r['server_cpu_ms_per_turn']:.2f}" if r.get("server_cpu_ms_per_turn") is not None else "n/a"
        print(f"{r['label']:<28} {r['turns_per_s']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {ratio:>8} "
              f"{cpu:>16} {r['connector_tcp_connections']:>6}")
    for r in results:
        if r.get("proactive_messages"):
            print(f"({r['label']}: {r['proactive_messages']} proactive messages from its scheduler arrived during "
                  "the measurement; not counted as replies)")
    print()
    if goals["met"] is None:
        print("goals: not evaluated (our bot did not complete a valid run)")
    else:
        note = "" if concurrency == GOAL_CONCURRENCY else f" (goal is stated at C={GOAL_CONCURRENCY})"
        print(f"goal ours >= {GOAL_RATIO:.0%} of bare aiohttp: {'MET' if goals['ratio_met'] else 'NOT MET'} "
              f"({ours['ratio_vs_bare']:.1%})" if ours["ratio_vs_bare"] is not None else
              "goal ratio: n/a (bare aiohttp did not run)")
        print(f"goal ours p99 < {GOAL_P99_MS:.0f} ms at C={concurrency}: "
              f"{'MET' if goals['p99_met'] else 'NOT MET'} ({ours['p99_ms']:.1f} ms){note}")
    for r in results:
        if not r.get("ok") and r.get("server_log_tail"):
            print(f"\n--- last lines of the {r['target']} server log ---\n{r['server_log_tail']}")
    return goals


async def measure_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    connector = MockConnector()
    await connector.start()
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmpdir:
            tmp = Path(tmpdir)
            if args.database_url:
                from storage import db

                db.upgrade(args.database_url)  # PostgreSQL must be migrated before `serve` starts
            all_targets = targets(tmp, args.database_url, connector.url)
            limit = aiohttp.TCPConnector(limit=args.concurrency + 5, limit_per_host=args.concurrency + 5)
            async with aiohttp.ClientSession(connector=limit) as session:
                for name in args.targets:
                    target = all_targets[name]
                    print(f"measuring {target.label}: {args.warmup} warm-up + {args.n} turns at C={args.concurrency}"
                          " ...", file=sys.stderr, flush=True)
                    results.append(await measure(target, connector, session, tmp, args.n, args.concurrency,
                                                 args.warmup, args.max_seconds, args.timeline))
    finally:
        await connector.stop()
    return results


def summarise(rounds: list[tuple[list[dict[str, Any]], dict[str, Any]]]) -> dict[str, Any]:
    """Several rounds: the median of each round's ratio and p99 for our bot (each ratio is against bare
    aiohttp measured in that same round), and whether the goals hold for the medians."""
    import statistics

    ours = [next((r for r in results if r["target"] == "ours" and r.get("ok")), None) for results, _ in rounds]
    ratios = [r["ratio_vs_bare"] for r in ours if r and r.get("ratio_vs_bare") is not None]
    p99s = [r["p99_ms"] for r in ours if r]
    summary: dict[str, Any] = {"rounds": len(rounds), "ratios": ratios, "p99_ms": p99s}
    if ratios and p99s and len(p99s) == len(rounds):
        summary.update(median_ratio=statistics.median(ratios), median_p99_ms=statistics.median(p99s))
        summary["met"] = summary["median_ratio"] >= GOAL_RATIO and summary["median_p99_ms"] < GOAL_P99_MS
        print(f"\nover {len(rounds)} rounds: ours/bare median {summary['median_ratio']:.1%} "
              f"({', '.join(f'{x:.1%}' for x in ratios)}), p99 median {summary['median_p99_ms']:.1f} ms "
              f"({', '.join(f'{x:.1f}' for x in p99s)}): goals {'MET' if summary['met'] else 'NOT MET'}")
    else:
        summary["met"] = None
    return summary


def finish(args: argparse.Namespace, rounds: list[list[dict[str, Any]]]) -> int:
    reported = []
    for i, results in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"\n== round {i} of {len(rounds)} ==")
        reported.append((results, report(results, args.n, args.concurrency)))
    goals = summarise(reported) if len(rounds) > 1 else reported[0][1]
    if args.json:
        out = {"n": args.n, "concurrency": args.concurrency, "warmup": args.warmup, "cpus": os.cpu_count(),
               "rounds": [{"results": [{k: v for k, v in r.items() if k != "server_log_tail"} for r in results],
                           "goals": round_goals} for results, round_goals in reported],
               "goals": goals}
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    if not all(r.get("ok") for results in rounds for r in results):
        return 1
    if args.check_goals and goals.get("met") is False:
        return 3
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="measured turns per target (default 2000)")
    parser.add_argument("--concurrency", "-c", type=int, default=50, help="concurrent users (default 50)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up turns per target (default 100)")
    parser.add_argument("--targets", nargs="+", choices=["bare", "stock", "ours", "ours-auth"],
                        default=["bare", "stock", "ours", "ours-auth"],
                        help="which targets to run, in order (default: all four)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="give up on a target's load after this long (default 60)")
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument("--database-url", help="our bot's database (default: a fresh SQLite file); e.g. "
                        "postgresql://postgres@127.0.0.1:5432/hms_bench (it is migrated first)")
    parser.add_argument("--timeline", action="store_true",
                        help="with --json: also write [sent at s, latency ms] for every measured turn")
    parser.add_argument("--rounds", type=int, default=1, help="measure every target this many times, in turn, "
                        "and judge the goals on the medians (this machine is noisy; default 1)")
    parser.add_argument("--check-goals", action="store_true", help="exit 3 when the goals are not met")
    args = parser.parse_args()
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--n, --concurrency and --rounds must be positive, --warmup not negative")
    return finish(args, [asyncio.run(measure_all(args)) for _ in range(args.rounds)])


if __name__ == "__main__":
    sys.exit(main())
