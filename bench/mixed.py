"""The mixed workload against the real server: many people, varied questions, round starts, checklist page saves
and submits (see bench/workload.py), with every request's token validated, on SQLite (one process) or on
PostgreSQL (two replicas of `hms-bot serve`, requests alternated between them).

Every turn is checked: a question gets exactly one card in the chat, and not the unknown-person card; a round
start gets the checklist (or, once its floor's round was submitted, the submitted card); a page save gets the
next page back in the invoke response; a submit gets the read-only submitted card. Any HTTP status but 200 is
counted in the status histogram; a 500 fails the run loudly.

Each measurement gets a fresh database (a new SQLite file; on PostgreSQL a new database on the server of
--database-url, dropped afterwards), so rounds of the benchmark start from the same state.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.connector import ID_PREFIX, Identity, MockConnector
from bench.servers import Server, cpu_seconds, percentile, rss_bytes
from bench.workload import (
    CARD_SECRET,
    START_TEXTS,
    Episode,
    Mix,
    Op,
    Workload,
    answers,
    card_of,
    card_texts,
    execute_actions,
    organisation,
    write_organisation,
)

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("question", "start", "page", "submit")


@dataclass
class MixedTarget:
    """A way to serve the mixed workload: the database and how many replicas."""

    name: str
    label: str
    replicas: int
    postgres: bool
    scheduler: bool = False  # the soak turns the scheduler on; the mixed measurement leaves it off


MIXED_TARGETS = {
    "mixed": MixedTarget("mixed", "mixed workload, SQLite", 1, False),
    "mixed-pg": MixedTarget("mixed-pg", "mixed workload, PostgreSQL x2", 2, True),
}


class _Spec:
    """What `Server` needs to start one replica."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name = name
        self._argv = argv
        self.env = env
        self.ready_path = "/readyz"

    def argv(self, port: int) -> list[str]:
        return [*self._argv, "--port", str(port)]


# -- databases ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def fresh_database(target: MixedTarget, tmp: Path, base_url: str | None) -> AsyncIterator[str]:
    """A migrated, empty database for one measurement; PostgreSQL's is dropped afterwards."""
    from storage import db

    if not target.postgres:
        url = f"sqlite:///{tmp / f'{target.name}-{uuid.uuid4().hex[:8]}.sqlite3'}"
        db.upgrade(url)
        yield url
        return
    import sqlalchemy as sa

    admin_url = base_url or DEFAULT_POSTGRES
    name = f"hms_bench_{uuid.uuid4().hex[:10]}"
    admin = db.create_sync_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    try:
        db.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Replicas:
    """One or more `hms-bot serve` processes on one database, each on its own port."""

    def __init__(self, target: MixedTarget, database_url: str, config_path: Path, connector_url: str, tmp: Path):
        hms_bot = str(Path(sys.executable).parent / "hms-bot")
        env = {"DATABASE_URL": database_url, "LOG_LEVEL": "INFO", "HMS_CONFIG": str(config_path),
               "HMS_SCHEDULER": "true" if target.scheduler else "false", "HMS_CARD_SECRET": CARD_SECRET,
               **Identity.env(connector_url)}
        self.servers = [Server(_Spec(f"{target.name}-{i + 1}", [hms_bot, "serve"], env),
                               tmp / f"{target.name}-{uuid.uuid4().hex[:6]}-{i + 1}.log")
                        for i in range(target.replicas)]
        self.urls = [s.base + "/api/messages" for s in self.servers]

    async def start(self, session: aiohttp.ClientSession) -> None:
        for server in self.servers:  # one after another: PostgreSQL's LISTEN and the org import settle first
            server.start()
            await server.wait_ready(session, within=120)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.servers if s.proc is not None]

    def cpu(self) -> float | None:
        values = [cpu_seconds(pid) for pid in self.pids()]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    def rss(self) -> list[int | None]:
        return [rss_bytes(pid) for pid in self.pids()]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def errors(self) -> list[str]:
        return [f"[{s.target.name}] {e}" for s in self.servers for e in s.errors()]

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"[{s.target.name}]\n{s.log_tail(lines)}" for s in self.servers)


# -- the turns ------------------------------------------------------------------------------------------------


class Markers:
    """Texts that tell the bot's cards apart, in both languages (from the bot's own catalogs)."""

    def __init__(self) -> None:
        from hms.i18n import t

        locales = ("nb-NO", "en-US")
        self.all_answers = {t(loc, "checklist.all_answers") for loc in locales}
        self.unknown_user = {t(loc, "unknown_user.title") for loc in locales}
        self.already_submitted = {t(loc, "card.already_submitted") for loc in locales}

    def kind(self, card: dict[str, Any] | None) -> str:
        """checklist, submitted, unknown_user or notice."""
        if card is None:
            return "no card"
        texts = card_texts(card)
        if execute_actions(card).keys() & {"round.page", "round.submit"}:
            return "checklist"
        if any(m in texts for m in self.all_answers):
            return "submitted"
        if any(m in texts for m in self.unknown_user):
            return "unknown_user"
        return "notice"


@dataclass
class Phase:
    """What one run of the workload measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    skipped: int = 0
    server_cpu: float | None = None

    def problem(self, what: str, sample: str = "") -> None:
        self.problems[what] += 1
        if sample and len(self.samples) < 5:
            self.samples.append(f"{what}: {sample[:300]}")


class Driver:
    """Sends the workload's turns to the replicas (alternating) and checks every answer."""

    def __init__(self, session: aiohttp.ClientSession, urls: list[str], connector: MockConnector, token: str,
                 run: str, workload: Workload, seed: int = 1):
        self.session = session
        self.urls = urls
        self.connector = connector
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.run = run
        self.workload = workload
        self.markers = Markers()
        self.rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._next_url = itertools.cycle(range(len(urls)))
        self._conversations = {p.email: f"a:bench-{run}-{i}" for i, p in enumerate(workload.everyone)}
        self.timeout = aiohttp.ClientTimeout(total=30)

    # -- activities --------------------------------------------------------------------------------------------

    def _base(self, op: Op, kind: str) -> dict[str, Any]:
        return {"type": kind, "id": f"{ID_PREFIX}{self.run}-{next(self._ids)}",
                "timestamp": "2026-11-26T09:00:00.000Z", "channelId": "msteams",
                "serviceUrl": self.connector.url, "locale": op.person.locale, "from": op.person.account(),
                "recipient": {"id": "28:bench-bot", "name": "HMS-hjulet"},
                "conversation": {"id": self._conversations[op.person.email], "conversationType": "personal",
                                 "tenantId": Identity.TENANT},
                "channelData": {"tenant": {"id": Identity.TENANT}}}

    def _message(self, op: Op, text: str) -> dict[str, Any]:
        return {**self._base(op, "message"), "text": text}

    def _invoke(self, op: Op, episode: Episode, action: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
        data = {**action["data"], **inputs}  # Teams merges the card's inputs into the action's data
        return {**self._base(op, "invoke"), "name": "adaptiveCard/action", "replyToId": episode.card_message_id,
                "value": {"action": {"type": "Action.Execute", "verb": action["verb"], "data": data},
                          "trigger": "manual"}}

    def build(self, op: Op) -> dict[str, Any] | None:
        """The activity for `op`, or None when its episode cannot go on (no card to press)."""
        if op.kind in ("question", "hello"):
            return self._message(op, op.text or "hei")
        episode = op.episode
        assert episode is not None
        if op.kind == "start":
            return self._message(op, self.rng.choice(START_TEXTS[op.person.locale[:2]]))
        if episode.broken or episode.card is None:
            return None
        actions = execute_actions(episode.card)
        if op.kind == "page":
            if "round.submit" in actions:  # on page 2: back to page 1 with some of this page answered
                return self._invoke(op, episode, actions["round.page"], answers(episode.card, self.rng, 0.5))
            return self._invoke(op, episode, actions["round.page"], answers(episode.card, self.rng))
        if episode.page2 is None:
            return None
        return self._invoke(op, episode, execute_actions(episode.page2)["round.submit"],
                            answers(episode.page2, self.rng))

    # -- one turn ----------------------------------------------------------------------------------------------

    async def turn(self, op: Op, phase: Phase, phase_start: float, timeline: list[tuple[float, float, str]] | None,
                   ) -> None:
        body = self.build(op)
        if body is None:
            phase.skipped += 1
            phase.outcomes[f"{op.kind}:skipped ({op.episode.broken if op.episode else ''})"] += 1
            return
        url = self.urls[next(self._next_url)]
        t0 = time.perf_counter()
        try:
            async with self.session.post(url, data=json.dumps(body).encode(), headers=self.headers,
                                         timeout=self.timeout) as r:
                raw = await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            phase.errors.append(f"{type(exc).__name__}: {exc}")
            phase.statuses[-1] += 1
            if op.episode:
                op.episode.broken = "request failed"
            return
        latency = time.perf_counter() - t0
        if op.kind != "hello":
            phase.latencies.append(latency)
            phase.by_kind[op.kind].append(latency)
            if timeline is not None:
                timeline.append((t0 - phase_start, latency, op.kind))
        phase.statuses[status] += 1
        if status != 200:
            phase.problem(f"HTTP {status} on {op.kind}", raw.decode(errors="replace"))
            if op.episode:
                op.episode.broken = f"HTTP {status}"
            return
        self.check(op, body, raw, phase)

    def check(self, op: Op, body: dict[str, Any], raw: bytes, phase: Phase) -> None:
        replies = self.connector.replies.pop(body["id"], [])
        if op.kind in ("question", "hello", "start"):
            if op.kind == "hello":
                if not replies:
                    phase.problem("no reply to a greeting")
                return
            if len(replies) != 1:
                phase.problem(f"{op.kind}: {len(replies)} replies, wanted 1",
                              json.dumps(replies, ensure_ascii=False)[:300])
                if op.episode:
                    op.episode.broken = "no checklist"
                return
            card = card_of(replies[0])
            kind = self.markers.kind(card)
            if kind in ("unknown_user", "no card"):
                phase.problem(f"{op.kind}: {kind}", json.dumps(replies[0], ensure_ascii=False)[:300])
            if op.kind == "question":
                phase.outcomes["question:answered"] += 1
                return
            episode = op.episode
            assert episode is not None
            phase.outcomes[f"start:{kind}"] += 1
            if kind == "checklist":
                episode.card, episode.card_message_id = card, body["id"]
            else:
                episode.broken = "round submitted before" if kind == "submitted" else f"start gave {kind}"
                if kind != "submitted":
                    phase.problem(f"start: {kind}", card_texts(card or {})[:200])
            return
        # invokes: the new card is in the response
        episode = op.episode
        assert episode is not None
        try:
            response = json.loads(raw)
            card = response.get("value") if isinstance(response.get("value"), dict) else None
        except (ValueError, AttributeError):
            card = None
        kind = self.markers.kind(card)
        if op.kind == "page":
            if kind == "checklist" and card is not None:
                errors = "attention" in json.dumps(card.get("body"))
                phase.outcomes["page:invalid" if errors else "page:saved"] += 1
                if errors:
                    phase.problem("page save answered with errors", card_texts(card)[:200])
                episode.card = card
                if "round.submit" in execute_actions(card):
                    episode.page2 = card
            else:
                phase.outcomes[f"page:{kind}"] += 1
                episode.broken = f"page save gave {kind}"
                if kind != "submitted":
                    phase.problem(f"page save: {kind}", card_texts(card or {})[:200])
            return
        if kind == "submitted" and card is not None:
            duplicate = any(m in card_texts(card) for m in self.markers.already_submitted)
            phase.outcomes["submit:duplicate" if duplicate else "submit:submitted"] += 1
            episode.broken = "submitted"
        else:
            phase.outcomes[f"submit:{kind}"] += 1
            phase.problem(f"submit: {kind}", card_texts(card or {})[:200])

    # -- lanes -------------------------------------------------------------------------------------------------

    async def run_lanes(self, lanes: list[list[Op]], deadline: float, cpu: Any = None,
                        timeline: list[tuple[float, float, str]] | None = None) -> Phase:
        """Lane by lane concurrently, each lane's turns one after another (a closed loop, no think time)."""
        phase = Phase()
        start = time.perf_counter()

        async def lane(ops: list[Op]) -> None:
            for op in ops:
                if time.monotonic() > deadline:
                    phase.errors.append("phase deadline reached")
                    return
                await self.turn(op, phase, start, timeline)

        cpu0 = cpu() if cpu else None
        await asyncio.gather(*(lane(ops) for ops in lanes))
        phase.seconds = time.perf_counter() - start
        cpu1 = cpu() if cpu else None
        phase.server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return phase

    async def run_paced(self, streams: list[Iterator[Op]], seconds: float, think: float,
                        timeline: list[tuple[float, float, str]] | None = None) -> Phase:
        """Each user sends a turn, reads the answer, thinks (exponential, mean `think` s), for `seconds`."""
        phase = Phase()
        start = time.perf_counter()
        stop = time.monotonic() + seconds

        async def user(ops: Iterator[Op], rng: random.Random) -> None:
            await asyncio.sleep(rng.random() * think)  # users do not all start in the same millisecond
            while time.monotonic() < stop:
                await self.turn(next(ops), phase, start, timeline)
                await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)

        await asyncio.gather(*(user(s, random.Random(i)) for i, s in enumerate(streams)))
        phase.seconds = time.perf_counter() - start
        return phase


# -- one measurement ------------------------------------------------------------------------------------------


async def warm_up(driver: Driver, workload: Workload, warmup: int, deadline: float) -> Phase:
    """Everyone who takes part says hello once (a new chat is greeted; people are identified, the ones without
    an Entra id in the file through Teams' member lookup), then `warmup` questions."""
    hello = [Op("hello", p, "hei") for p in dict.fromkeys([*workload.askers, *workload.round_people()])]
    lanes: list[list[Op]] = [hello[i::20] for i in range(20)]
    phase = await driver.run_lanes(lanes, deadline)
    rng = random.Random(99)
    questions = [workload.question(rng) for _ in range(warmup)]
    more = await driver.run_lanes([questions[i::20] for i in range(20)], deadline)
    phase.statuses.update(more.statuses)
    phase.problems.update(more.problems)
    phase.errors += more.errors
    phase.samples += more.samples
    return phase


def summary(phase: Phase, turns_planned: int) -> dict[str, Any]:
    turns = len(phase.latencies)
    out: dict[str, Any] = {
        "turns": turns, "turns_planned": turns_planned, "skipped": phase.skipped,
        "seconds": round(phase.seconds, 3),
        "turns_per_s": round(turns / phase.seconds, 1) if phase.seconds else 0.0,
        "p50_ms": round(percentile(phase.latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(phase.latencies, 99) * 1000, 2),
        "max_ms": round(max(phase.latencies, default=float("nan")) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(phase.statuses.items())},
        "http_500": phase.statuses.get(500, 0),
        "http_5xx": sum(v for k, v in phase.statuses.items() if k >= 500),
        "request_errors": len(phase.errors),
        "by_kind": {k: {"turns": len(v), "p50_ms": round(percentile(v, 50) * 1000, 2),
                        "p99_ms": round(percentile(v, 99) * 1000, 2)} for k, v in phase.by_kind.items() if v},
        "outcomes": dict(sorted(phase.outcomes.items())),
    }
    if phase.server_cpu is not None and turns:
        out["server_cpu_ms_per_turn"] = round(phase.server_cpu * 1000 / turns, 3)
    problems = [f"{v} x {k}" for k, v in phase.problems.most_common()]
    if phase.errors:
        problems.insert(0, f"{len(phase.errors)} request errors (first: {phase.errors[0]})")
    if problems:
        out["problems"] = problems
        out["problem_samples"] = phase.samples
    return out


async def measure(target: MixedTarget, connector: MockConnector, session: aiohttp.ClientSession, tmp: Path,
                  n: int, concurrency: int, warmup: int, max_seconds: float, database_url: str | None,
                  mix: Mix, extra_floors: int, seed: int, with_timeline: bool = False) -> dict[str, Any]:
    """One measurement of the mixed workload on a fresh database: start the replicas, warm up, run n turns."""
    result: dict[str, Any] = {"target": target.name, "label": target.label, "ok": False,
                              "concurrency": concurrency, "replicas": target.replicas, "mix": mix.text()}
    config_path = write_organisation(tmp / f"org-{extra_floors}.yaml", extra_floors)
    workload = Workload(organisation(extra_floors), mix, seed)
    connector.directory = workload.directory()
    connector.keep_replies = True
    started = time.monotonic()
    replicas: Replicas | None = None
    try:
        async with fresh_database(target, tmp, database_url) as url:
            replicas = Replicas(target, url, config_path, connector.url, tmp)
            try:
                await replicas.start(session)
                result["startup_s"] = round(time.monotonic() - started, 2)
                run = f"{target.name}-{uuid.uuid4().hex[:8]}"
                driver = Driver(session, replicas.urls, connector, connector.identity.mint(connector.url), run,
                                workload, seed)
                deadline = time.monotonic() + max_seconds
                tally = connector.phase(lambda _b: True)
                warm = await warm_up(driver, workload, warmup, deadline)
                result["warmup_member_lookups"] = tally.member_lookups
                bad_warm = summary(warm, 0).get("problems")
                if bad_warm:
                    result["problems"] = ["warm-up: " + p for p in bad_warm]
                    return result
                tally = connector.phase(lambda _b: True)
                lanes = workload.plan(n, concurrency)
                timeline: list[tuple[float, float, str]] | None = [] if with_timeline else None
                phase = await driver.run_lanes(lanes, time.monotonic() + max_seconds, replicas.cpu, timeline)
                result.update(summary(phase, n))
                result["member_lookups"] = tally.member_lookups
                result["server_errors"] = replicas.errors()
                result["rss_mb"] = [round(r / 2**20, 1) if r else None for r in replicas.rss()]
                if tally.unexpected_calls:
                    result.setdefault("problems", []).append(
                        f"{len(tally.unexpected_calls)} unexpected connector calls "
                        f"(first: {tally.unexpected_calls[0]})")
                if timeline is not None:
                    result["timeline"] = [[round(a, 4), round(b * 1000, 2), k] for a, b, k in timeline]
                result["ok"] = not result.get("problems")
                return result
            finally:
                replicas.stop()
    except Exception as exc:  # noqa: BLE001 - reported as a failed target; the others still run
        result.setdefault("problems", []).append(f"{type(exc).__name__}: {exc}")
        return result
    finally:
        connector.keep_replies = False
        if not result.get("ok") and replicas is not None:
            result["server_log_tail"] = replicas.log_tail()


def print_line(r: dict[str, Any], width: int = 32) -> None:
    """One mixed-workload line of the report, with its status histogram and where its time went."""
    if "turns_per_s" not in r:
        print(f"{r['label']:<{width}} FAILED: {'; '.join(r.get('problems', []))}")
        return
    ratio = f"{r['ratio_vs_bare'] * 100:.1f}%" if r.get("ratio_vs_bare") is not None else "n/a"
    cpu = f"{r['server_cpu_ms_per_turn']:.2f}" if r.get("server_cpu_ms_per_turn") is not None else "n/a"
    print(f"{r['label']:<{width}} {r['turns_per_s']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {ratio:>8} "
          f"{cpu:>16}")
    kinds = ", ".join(f"{k} {v['turns']}: p50 {v['p50_ms']:.0f} / p99 {v['p99_ms']:.0f} ms"
                      for k, v in r["by_kind"].items())
    print(f"{'':<{width}}   {kinds}")
    print(f"{'':<{width}}   HTTP statuses {r['statuses']}; {r['turns']} of {r['turns_planned']} turns done"
          f" ({r['skipped']} skipped); member lookups {r.get('member_lookups', 0)}")
    print(f"{'':<{width}}   outcomes {r['outcomes']}")
    if r.get("http_500"):
        print(f"{'':<{width}}   !!! {r['http_500']} x HTTP 500 !!!")
    for error in r.get("server_errors", []):
        print(f"{'':<{width}}   server logged: {error}")
    if r.get("problems"):
        print(f"{'':<{width}}   FAILED: {'; '.join(r['problems'])}")
        for sample in r.get("problem_samples", [])[:3]:
            print(f"{'':<{width}}     e.g. {sample}")


