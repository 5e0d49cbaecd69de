"""Metrics and logs for operations: GET /metrics read with prometheus-client's own parser after turns through the
bot's door and deliveries to the local Bot Framework peer; the outbox's depth on SQLite and PostgreSQL; the
scheduler's ticks; and LOG_FORMAT=json, each line of a real `hms-bot serve` parsed as JSON."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col

from bot import logs
from bot.app import ADMISSION, BOT, DELIVERY, Runtime, create_app
from bot.metrics import Metrics
from bot.settings import Settings
from hms.clock import FixedClock
from hms.config import HmsConfig
from storage import db, models as m, repo
from tests.conftest import ROOT, oslo
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, ISSUER, TENANT, activity, auth_settings, door, peer, post  # noqa: F401
from usecases.delivery import RateLimiter
from usecases.outbox import outbox_row, person_target

FATIMA = "fatima.ali@khm.uio.no"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels, through prometheus-client's own parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(client: TestClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


async def no_wait(_seconds: float) -> None:
    return None


async def enqueue_and_drain(app: Any, key: str) -> None:
    async with db.session_factory(app[BOT].engine)() as s:
        await repo.enqueue(s, [outbox_row(key, "notice", person_target(FATIMA),
                                          {"type": "message", "text": "påminnelse"})], oslo(2026, 11, 26, 10))
    await app[DELIVERY].drain()


async def test_metrics_count_turns_sends_the_outbox_the_read_cache_and_the_pool(peer: BfPeer,  # noqa: F811
                                                                              db_path: Path, khm: HmsConfig) -> None:
    async with door(auth_settings(peer, db_path), khm) as client:
        app = client.server.app
        texts = ["hva forfaller denne måneden?", "hva forfaller denne måneden?", "hjelp"]
        for i, text in enumerate(texts):
            response = await post(client, activity(peer, id=f"act-{i}", text=text), peer.mint(APP_ID))
            assert response.status == 200, await response.text()

        app[DELIVERY].limiter = RateLimiter(rate=1000.0, sleep=no_wait)
        await enqueue_and_drain(app, "metrics-sent")  # Fatima's chat is known from her turns: sent
        peer.activity_status = 429
        await enqueue_and_drain(app, "metrics-throttled")  # retried later
        peer.activity_status = 404
        await enqueue_and_drain(app, "metrics-gone")  # the conversation is gone: dead
        assert peer.rejected == [(429, "a:fatima-personal"), (404, "a:fatima-personal")]

        samples = await scrape(client)

    assert value(samples, "hms_turns_total", type="message", outcome="ok") == 3
    assert value(samples, "hms_turn_seconds_count", type="message") == 3
    assert value(samples, "hms_turn_seconds_bucket", type="message", le="+Inf") == 3
    assert 0 < value(samples, "hms_turn_seconds_sum", type="message") < 60
    assert value(samples, "hms_sends_total", outcome="sent", status="200") == 1
    assert value(samples, "hms_sends_total", outcome="retried", status="429") == 1
    assert value(samples, "hms_sends_total", outcome="dead", status="404") == 1
    # the adviser is told of the gone conversation; she has no chat with the bot here: her notice waits
    assert value(samples, "hms_sends_total", outcome="waiting", status="none") == 1
    assert {k[1]: v for k, v in samples.items() if k[0] == "hms_outbox_messages"} == {
        frozenset({("state", "pending")}): 0, frozenset({("state", "retry")}): 2,
        frozenset({("state", "waiting")}): 1, frozenset({("state", "claimed")}): 0,
        frozenset({("state", "dead")}): 1}
    readers = app[BOT].read_sessions
    hits, misses = value(samples, "hms_read_cache_hits_total"), value(samples, "hms_read_cache_misses_total")
    assert (hits, misses) == (readers.hits, readers.misses)
    assert hits > 0  # the second asking of the same question was answered from the cache
    assert value(samples, "hms_read_cache_hit_ratio") == pytest.approx(hits / (hits + misses))
    assert value(samples, "hms_db_pool_connections", pool="turns") == 1  # SQLite: one connection, one writer
    assert value(samples, "hms_db_pool_checked_out", pool="turns") == 0

    # no personal data in any label: every value is from a closed set
    label_values = {v for (_name, labels) in samples for _k, v in labels}
    for personal in ("fatima", "@", "a:fatima-personal", TENANT, "29:"):
        assert not any(personal in v.lower() for v in label_values), (personal, label_values)


async def test_a_refused_turn_is_counted_as_busy(peer: BfPeer, db_path: Path, khm: HmsConfig) -> None:  # noqa: F811
    async with door(auth_settings(peer, db_path, max_turns=1, queue_timeout=0), khm) as client:
        admission = client.server.app[ADMISSION]
        assert await admission.enter()  # a turn in flight holds the only place
        try:
            response = await post(client, activity(peer, type="weird-type"), peer.mint(APP_ID))
            assert response.status == 503
        finally:
            admission.leave()
        samples = await scrape(client)
    assert value(samples, "hms_turns_total", type="other", outcome="busy") == 1  # the type from outside: "other"


async def test_the_outbox_is_counted_once_per_few_seconds_however_often_it_is_scraped() -> None:
    queries = 0
    now = [100.0]

    async def outbox() -> dict[str, int]:
        nonlocal queries
        queries += 1
        return {"pending": queries}

    metrics = Metrics(outbox=outbox, monotonic=lambda: now[0])
    for _ in range(3):
        first = parse((await metrics.exposition()).decode())
    assert queries == 1 and value(first, "hms_outbox_messages", state="pending") == 1
    now[0] += 5.0
    again = parse((await metrics.exposition()).decode())
    assert queries == 2 and value(again, "hms_outbox_messages", state="pending") == 2


async def test_an_unreachable_database_leaves_the_outbox_out_and_the_rest_is_served(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]

    async def outbox() -> dict[str, int]:
        raise OSError("connection refused")

    metrics = Metrics(outbox=outbox, monotonic=lambda: now[0])
    metrics.turn("message", "ok", 0.02)
    samples = parse((await metrics.exposition()).decode())
    assert not any(name == "hms_outbox_messages" for name, _ in samples)
    assert value(samples, "hms_outbox_count_failures_total") == 1
    assert value(samples, "hms_turns_total", type="message", outcome="ok") == 1
    assert caplog.text.count("the outbox could not be counted (OSError)") == 1


async def test_outbox_depth_by_state(session: Any) -> None:
    now = oslo(2027, 3, 1, 9)
    rows = [outbox_row(f"k{i}", "notice", person_target(f"p{i}@example.org"), {"type": "message"}) for i in range(8)]
    await repo.enqueue(session, rows, now)
    states = {"k0": ("pending", None), "k1": ("pending", now + dt.timedelta(minutes=1)),  # claimed
              "k2": ("retry", None), "k3": ("retry", now - dt.timedelta(minutes=5)),  # a lapsed claim
              "k7": ("retry", None),  # waiting for a chat with its recipient
              "k4": ("dead", None), "k5": ("sent", None), "k6": ("sent", None)}
    for key, (status, claimed_until) in states.items():
        await session.exec(sa.update(m.OutboxMessage).where(col(m.OutboxMessage.dedupe_key) == key)
                           .values(status=status, claimed_until=claimed_until,
                                   last_error=repo.WAITING if key == "k7" else "HTTP 429"))
    await session.commit()
    assert await repo.outbox_depth(session, now) == {"pending": 2, "retry": 3, "waiting": 1, "claimed": 1,
                                                     "dead": 1}


async def test_the_scheduler_ticks_are_timed_with_their_lag(db_path: Path, khm: HmsConfig) -> None:
    settings = Settings(database_url=f"sqlite:///{db_path}", app_id="", app_password="")
    app = create_app(settings, config=khm, clock=FixedClock(oslo(2026, 11, 26, 10)),
                     runtime=Runtime(dev=True, plan_every=3600, deliver_every=3600, prune_every=86400))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        async with asyncio.timeout(60):  # the first ticks run at start; wait until they have
            while True:
                samples = await scrape(client)
                done = {dict(k[1])["job"] for k in samples if k[0] == "hms_job_last_success_timestamp_seconds"}
                if {"hms-plan", "hms-deliver", "hms-prune"} <= done:
                    break
                await asyncio.sleep(0.05)
    for job in ("hms-plan", "hms-deliver", "hms-prune"):
        assert value(samples, "hms_job_seconds_count", job=job) == 1
        assert value(samples, "hms_job_lag_seconds_count", job=job) == 1
        assert 0 <= value(samples, "hms_job_lag_seconds_sum", job=job) < 60
        assert abs(value(samples, "hms_job_last_success_timestamp_seconds", job=job) - time.time()) < 120


def test_json_log_lines_carry_the_readable_lines_fields_and_stay_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("hms.test-json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("turn", extra={"turn": {"type": "message", "outcome": "ok", "ms": 1.5}})
        log.warning("activity refused: type %s", "a\nforged\u2028line\x85\ud800")
        try:
            raise sa.exc.IntegrityError("INSERT ...", {}, Exception(
                "duplicate key\nDETAIL: Key (email)=(fatima.ali@khm.uio.no) already exists."))
        except sa.exc.IntegrityError:
            log.exception("turn failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    turn, refused, failed = (json.loads(line) for line in lines)
    assert turn["turn"] == {"type": "message", "outcome": "ok", "ms": 1.5}
    assert {"time", "level", "logger", "message"} <= set(turn) and turn["level"] == "INFO"
    assert refused["message"] == "activity refused: type a\nforged\u2028line\x85\ud800"  # escaped, not lost
    assert "Traceback" in failed["exception"] and "IntegrityError" in failed["exception"]
    assert "fatima" not in lines[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_with_log_format_json_writes_one_json_object_per_line(peer: BfPeer,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MicrosoftAppId": APP_ID, "MicrosoftAppPassword": "secret",
           "MicrosoftAppTenantId": TENANT, "DATABASE_URL": f"sqlite:///{tmp_path / 'hms.sqlite3'}",
           "HMS_OPENID_METADATA_URL": peer.metadata_url, "HMS_TOKEN_ISSUER": ISSUER,
           "HMS_TOKEN_ENDPOINT": peer.token_url, "PORT": str(port), "HMS_HOST": "127.0.0.1",
           "HMS_SCHEDULER": "false", "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cli.main", "serve", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        async with http.get(f"{base}/readyz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    assert proc.returncode is None, "hms-bot serve ended"
                    await asyncio.sleep(0.1)
            headers = {"Authorization": f"Bearer {peer.mint(APP_ID)}"}
            async with http.post(f"{base}/api/messages", json=activity(peer), headers=headers) as r:
                assert r.status == 200
            async with http.post(f"{base}/api/messages", json=activity(peer, id="x"),
                                 headers={"Authorization": "Bearer forged"}) as r:
                assert r.status == 401
            async with http.get(f"{base}/metrics") as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    turns = [r["turn"] for r in records if r["message"] == "turn"]
    assert len(turns) == 1
    assert turns[0]["type"] == "message" and turns[0]["outcome"] == "ok"
    assert turns[0]["conversation_type"] == "personal" and isinstance(turns[0]["ms"], float)
    assert any(r["level"] == "WARNING" and "unauthorized" in r["message"] for r in records)
