"""End-to-end harness: the bot in-process on loopback, the real Microsoft 365 Agents Playground in front of it,
and WebSocket clients that collect what the bot sent.

Everything listens on and talks to 127.0.0.1 only. The Playground is started through `playground.launcher.start`
(the loopback guard `playground/guard.cjs` preloaded, telemetry off); the bot runs without app id or password,
so botbuilder never asks for a token. The bot's clock is a `FixedClock` the test moves by hand; the scheduler is
off, so nothing is planned or delivered unless the test calls `plan()` / `drain()`.

Usage (see tests/test_e2e_playground.py):

    async with running(tmp_path, config, now) as env:
        await env.install(env.personal_chat)
        frame = await env.wait_for(lambda f: "Hi, Fatima!" in card_text(f))
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from sqlmodel import SQLModel, select

from bot.app import BOT, DELIVERY, Runtime, create_app
from bot.settings import Settings
from bot.turns import HmsBot
from hms.clock import FixedClock
from hms.config import HmsConfig
from playground import launcher as playground, local
from storage import db
from tests.cardtext import texts
from usecases import planning as planner
from usecases.delivery import Delivery, DeliveryReport, RateLimiter

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]

CARD = "application/vnd.microsoft.card.adaptive"


# -- small helpers -------------------------------------------------------------------------------------------


def free_port(taken: set[int] | None = None) -> int:
    """A TCP port nobody listens on at 127.0.0.1 (and not in `taken`), checked with playground.port_is_free."""
    taken = taken or set()
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and playground.port_is_free(port):
            return port
    raise RuntimeError("no free loopback port found")


def cards_of(frame: Frame) -> list[dict[str, Any]]:
    """The Adaptive Cards a chat-stream frame (createMessage / updateMessage) carries."""
    message = frame.get("message") or {}
    return [a["content"] for a in message.get("attachments") or []
            if isinstance(a, dict) and a.get("contentType") == CARD and isinstance(a.get("content"), dict)]


def frame_text(frame: Frame) -> str:
    """The visible text of a chat-stream frame: its message text plus the text of its cards."""
    message = frame.get("message") or {}
    return "\n".join(filter(None, [str(message.get("text") or ""), *(texts(c) for c in cards_of(frame))]))


def execute_actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["verb"]: a for a in card.get("actions") or [] if a.get("type") == "Action.Execute"}


def press(card: dict[str, Any], verb: str, inputs: dict[str, str]) -> dict[str, Any]:
    """The invoke value Teams sends for an Action.Execute: the action's data merged with the card's inputs."""
    data = dict(execute_actions(card)[verb]["data"])
    data.update(inputs)
    return {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}


class _Collector:
    """Reads one Playground WebSocket in the background and keeps every JSON frame."""

    def __init__(self, session: aiohttp.ClientSession, url: str):
        self.session, self.url = session, url
        self.frames: list[Frame] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await self.session.ws_connect(self.url, heartbeat=None, autoping=True)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    frame = json.loads(msg.data)
                    if isinstance(frame, dict):
                        self.frames.append(frame)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                break

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


# -- the environment ------------------------------------------------------------------------------------------


@dataclass
class E2E:
    """A running bot + Playground pair, with the Playground's chat and log streams collected."""

    config: HmsConfig
    clock: FixedClock
    app: web.Application
    db_url: str
    bot_port: int
    pg_port: int
    workdir: Path
    mock: dict[str, Any]
    http: aiohttp.ClientSession
    chat: _Collector
    log: _Collector
    proc: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    # -- identities from the mock data -----------------------------------------------------------------------

    @property
    def bot(self) -> HmsBot:
        return self.app[BOT]

    @property
    def delivery(self) -> Delivery:
        return self.app[DELIVERY]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.pg_port}"

    @property
    def personal_chat(self) -> str:
        return str(self.mock["personalChat"]["id"])

    @property
    def team_id(self) -> str:
        return str(self.mock["team"]["id"])

    @property
    def current_user(self) -> dict[str, Any]:
        return dict(self.mock["currentUser"])

    def user(self, name: str) -> dict[str, Any]:
        """A mock user (current user or one of the five others) by display name."""
        for u in [self.mock["currentUser"], *self.mock["users"]]:
            if u["name"] == name:
                return dict(u)
        raise KeyError(name)

    # -- the Playground's HTTP API ---------------------------------------------------------------------------

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base + path) as resp:
            body = await resp.text()
            assert resp.status == 200, f"GET {path}: {resp.status} {body[:500]}"
            return json.loads(body) if body else None

    async def post(self, path: str, body: Any, *, expect: int = 200) -> Any:
        async with self.http.post(self.base + path, json=body) as resp:
            text = await resp.text()
            assert resp.status == expect, f"POST {path}: {resp.status} {text[:1000]}"
            return json.loads(text) if text else None

    async def install(self, conversation_id: str) -> None:
        """Install the bot in a conversation (installationUpdate + conversationUpdate reach the bot)."""
        await self.post(f"/_debug/conversation/{quote(conversation_id, safe='')}/installation", {})

    async def say(self, text: str, conversation_id: str | None = None) -> dict[str, Any]:
        """The current user writes `text` (always sent as the current user; see docs/playground-api.md §5)."""
        conversation_id = conversation_id or self.personal_chat
        body = {"from": {"id": self.current_user["id"]}, "text": text, "textFormat": "plain"}
        return dict(await self.post(f"/_conversation/v1/conversations/{quote(conversation_id, safe='')}/messages",
                                    body))

    async def custom(self, conversation_id: str, **overrides: Any) -> dict[str, Any]:
        """Post a raw activity (the Playground's template for the conversation, with `overrides`) to the bot."""
        template = await self.get(f"/_internal/v1/customActivities/template?conversationId="
                                   f"{quote(conversation_id, safe='')}")
        activity = {**template, **overrides}
        await self.post("/_internal/v1/customActivities", activity)
        return dict(activity)

    async def invoke(self, reply_to: str, value: dict[str, Any], *, conversation_id: str | None = None,
                     from_id: str | None = None) -> dict[str, Any]:
        """Press an Action.Execute button; returns the Playground's answer ({"type", "value": <card>})."""
        body = {"name": "adaptiveCard/action", "conversation": {"id": conversation_id or self.personal_chat},
                "from": {"id": from_id or self.current_user["id"]}, "replyToId": reply_to, "value": value}
        return dict(await self.post("/_conversation/v1/invoke", body))

    # -- waiting for frames ----------------------------------------------------------------------------------

    async def wait_for(self, predicate: Predicate, timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline
                       *, stream: str = "chat") -> Frame:
        """The first collected frame (chat stream, or `stream="log"`) matching `predicate`; polls until `timeout`."""
        collector = self.chat if stream == "chat" else self.log
        deadline = time.monotonic() + timeout
        while True:
            for frame in list(collector.frames):
                if predicate(frame):
                    return frame
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {stream} frame matched within {timeout}s; got {len(collector.frames)}: "
                                     + "; ".join(_describe(f) for f in collector.frames[-15:]))
            await asyncio.sleep(0.05)

    def matching(self, predicate: Predicate, *, stream: str = "chat") -> list[Frame]:
        return [f for f in (self.chat if stream == "chat" else self.log).frames if predicate(f)]

    async def settle(self, quiet: float = 0.3, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no new frame arrived for `quiet` seconds (both streams), at most `timeout`."""
        deadline = time.monotonic() + timeout
        last = (len(self.chat.frames), len(self.log.frames))
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = (len(self.chat.frames), len(self.log.frames))
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return

    # -- the bot's clock and background work -----------------------------------------------------------------

    def set_clock(self, moment: dt.datetime) -> None:
        assert moment.tzinfo is not None
        self.clock.current = moment

    async def plan(self) -> planner.PlanReport:
        async with self.bot.sessions() as s:
            return await planner.plan(s, self.config, self.bot.rounds, self.clock.now(),
                                      public_url=self.bot.desk.public_url)

    async def drain(self) -> DeliveryReport:
        return await self.delivery.drain()

    async def rows(self, model: type[SQLModel], *where: Any) -> list[Any]:
        async with self.bot.sessions() as s:
            return list((await s.exec(select(model).where(*where))).all())


def _describe(frame: Frame) -> str:
    if "logAction" in frame:
        log = frame.get("log") or {}
        return f"log[{log.get('type')}/{log.get('activityName')} {log.get('conversationId')}]"
    text = frame_text(frame).replace("\n", " | ")
    return f"{frame.get('action')}[{frame.get('actionConversationId')}] {text[:120]!r}"


@contextlib.asynccontextmanager
async def running(tmp_path: Path, config: HmsConfig, now: dt.datetime, *,
                  fast_delivery: bool = True, current: str | None = None) -> AsyncIterator[E2E]:
    """Start a migrated SQLite database, the bot on loopback and the Playground with the demo mock data (`current`:
    the e-mail of the Playground's current user; the 1st floor's contact by default).

    `fast_delivery` replaces the outbox's real-time rate limiter (1 message a second per conversation) by one
    that never waits, so a test can drain dozens of messages at once; nothing else about delivery changes.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    db_url = f"sqlite:///{tmp_path / 'hms.sqlite3'}"
    await asyncio.to_thread(db.upgrade, db_url)
    timings["migrate"] = time.perf_counter() - t0

    bot_port = free_port()
    pg_port = free_port({bot_port})
    clock = FixedClock(now)
    settings = Settings(database_url=db_url, log_level="WARNING", app_id="", app_password="")
    app = create_app(settings, config=config, clock=clock,
                     runtime=Runtime(dev=True, dev_bot_id=local.BOT["id"], dev_tenant_id=local.TENANT_ID,
                                     scheduler=False))
    if fast_delivery:

        async def no_wait(_seconds: float) -> None:
            return None

        app[DELIVERY].limiter = RateLimiter(rate=1000.0, sleep=no_wait)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    proc = None
    passed = False
    http: aiohttp.ClientSession | None = None
    collectors: list[_Collector] = []
    try:
        await web.TCPSite(runner, "127.0.0.1", bot_port).start()
        workdir = tmp_path / "playground"
        mock = local.mock_config(config, current)
        mock_path = playground.write_document(workdir / "playground.yml", mock)
        t1 = time.perf_counter()
        proc = playground.start(f"http://127.0.0.1:{bot_port}/api/messages", port=pg_port, config_path=mock_path,
                                env={"TZ": "Europe/Oslo"}, service_url=f"http://127.0.0.1:{pg_port}/_connector")
        await asyncio.to_thread(playground.wait_ready, pg_port, 30.0, proc=proc)
        timings["playground_start"] = time.perf_counter() - t1
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), trust_env=False)
        chat = _Collector(http, f"ws://127.0.0.1:{pg_port}/_ws_conversation/v1/conversations/stream")
        log = _Collector(http, f"ws://127.0.0.1:{pg_port}/_ws/log/stream")
        for c in (chat, log):
            await c.start()
            collectors.append(c)
        env = E2E(config=config, clock=clock, app=app, db_url=db_url, bot_port=bot_port, pg_port=pg_port,
                  workdir=workdir, mock=mock, http=http, chat=chat, log=log, proc=proc, timings=timings)
        config_seen = (await env.get("/_internal/v1/testConfig"))["config"]
        assert config_seen["personalChat"]["id"] == env.personal_chat, config_seen
        yield env
        passed = True
    finally:
        for c in collectors:
            await c.close()
        if http is not None:
            await http.close()
        if proc is not None:
            await asyncio.to_thread(playground.stop, proc)
        await runner.cleanup()
    # the Playground's guard writes "[guard] refused connect to HOST:PORT" for every attempt to leave loopback
    out = tmp_path / "playground" / "playground.out"
    lines = out.read_text(errors="replace").splitlines() if out.exists() else []
    refused = [ln for ln in lines if "[guard] refused" in ln]
    assert passed and not refused, f"the Playground tried to reach a non-loopback address: {refused[:5]}"


async def eventually(check: Callable[[], Any], timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline
                     what: str = "condition") -> Any:
    """Poll an async `check()` until it returns something truthy (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.05)
