"""The bot served on a real socket (bot/serving.py), driven by raw socket clients: slow headers and slow bodies
are cut off at their deadlines while other requests are served, the connection cap answers 503, and running out
of file descriptors is one log line per interval, not a traceback per failed accept.

Timeouts are injected (a fraction of a second to a second); nothing waits for a wall clock beyond them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Runtime, create_app
from bot.serving import AcceptErrors, LimitedSite, serving
from bot.settings import Settings
from hms.clock import FixedClock
from hms.config import HmsConfig
from tests.conftest import ROOT, oslo


@asynccontextmanager
async def served(db_path: Path, khm: HmsConfig, **limits: Any) -> AsyncIterator[LimitedSite]:
    """The whole bot (local mode, SQLite) behind the production serving path, on an ephemeral loopback port."""
    settings = Settings(app_id="", app_password="", app_tenant_id="", database_url=f"sqlite:///{db_path}",
                        **limits)
    app = create_app(settings, config=khm, clock=FixedClock(oslo(2026, 11, 26, 10)),
                     runtime=Runtime(dev=True, scheduler=False))
    async with serving(app, settings, "127.0.0.1", 0) as site:
        yield site


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """A slow sender: one byte at a time, until everything is sent or the server hangs up."""
    with suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(every)


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (read as it arrives: a reset, which a client
    still sending to a closed socket gets, makes the reader drop what it buffered)."""
    received = b""
    with suppress(ConnectionError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def healthz(port: int) -> int:
    """A separate client on a fresh connection: is the bot still serving?"""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http, \
            http.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (bounded) for the server's side of a connection change to be seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)


HEAD = b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


async def test_slow_headers_are_cut_off_at_the_header_deadline(db_path: Path, khm: HmsConfig) -> None:
    loop = asyncio.get_running_loop()
    async with served(db_path, khm, header_timeout=1.0, body_timeout=30.0) as site:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        opened = loop.time()
        sending = asyncio.create_task(trickle(writer, HEAD + b"X-Padding: " + b"a" * 2000 + b"\r\n\r\n", 0.02))
        closed = asyncio.create_task(until_closed(reader))
        # meanwhile the bot serves everyone else
        assert await healthz(site.bound_port) == 200
        assert not closed.done(), "the slow connection was closed before the deadline"
        answer = await asyncio.wait_for(closed, timeout=10)
        held = loop.time() - opened
        await sending
        writer.close()
    assert answer == b""  # closed without an answer: there was no request yet
    assert 0.9 <= held < 5.0, held  # at the deadline (1 s), not an hour later (aiohttp's default 3630 s)


async def test_a_slow_body_gets_408_at_the_body_deadline(db_path: Path, khm: HmsConfig) -> None:
    loop = asyncio.get_running_loop()
    async with served(db_path, khm, header_timeout=30.0, body_timeout=1.0) as site:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        writer.write(HEAD + b"Content-Length: 1000\r\n\r\n")
        await writer.drain()
        started = loop.time()
        sending = asyncio.create_task(trickle(writer, b'{"type": "message", "text": "' + b"a" * 1000, 0.02))
        closed = asyncio.create_task(until_closed(reader))
        assert await healthz(site.bound_port) == 200
        assert not closed.done(), "the slow body was cut off before the deadline"
        answer = await asyncio.wait_for(closed, timeout=10)
        held = loop.time() - started
        sending.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    # the answer at the deadline; the socket closed once the short linger (at most the body timeout) is over
    assert 0.9 <= held < 6.0, held


async def test_connections_over_the_cap_get_503_and_the_cap_frees_up(db_path: Path, khm: HmsConfig,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hms.http")
    async with served(db_path, khm, header_timeout=30.0, max_connections=3) as site:
        held = [await asyncio.open_connection("127.0.0.1", site.bound_port) for _ in range(3)]
        await eventually(lambda: site.open_connections == 3)
        refused = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
            refused.append(await asyncio.wait_for(until_closed(reader), timeout=10))
            writer.close()
        assert all(r.startswith(b"HTTP/1.1 503") for r in refused), refused
        assert site.open_connections == 3
        # one slot frees: the next client is served
        held[0][1].close()
        await eventually(lambda: site.open_connections == 2)
        assert await healthz(site.bound_port) == 200
        for _, writer in held[1:]:
            writer.close()
    lines = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
    assert len(lines) == 1, lines  # four refusals, one line per interval


async def test_accept_errors_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """What asyncio does when accept() fails for want of descriptors: calls the loop's exception handler, with a
    traceback by default. 12,000 such calls over 12 (simulated) seconds: one line per 5 s interval."""
    caplog.set_level(logging.WARNING)
    now = [0.0]
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    handler = AcceptErrors(previous, interval=5.0, monotonic=lambda: now[0])
    loop.set_exception_handler(handler)
    try:
        for i in range(12_000):
            now[0] = i / 1000
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(errno.EMFILE, "Too many open files")})
        # anything else still reaches asyncio's own handler
        loop.call_exception_handler({"message": "something else", "exception": RuntimeError("boom")})
    finally:
        loop.set_exception_handler(previous)
    lines = [r for r in caplog.records if r.name == "hms.http"]
    assert [r.levelname for r in lines] == ["WARNING"] * 3
    assert "EMFILE" in lines[0].getMessage() and "more" not in lines[0].getMessage()
    assert "(4999 more in the last 5 s)" in lines[1].getMessage()
    assert handler.log.total == 12_000
    others = [r for r in caplog.records if r.name == "asyncio"]
    assert len(others) == 1 and "something else" in others[0].getMessage()


CHILD = textwrap.dedent("""
    import asyncio, logging, resource, sys
    from aiohttp import web
    from bot.serving import AcceptErrors, serving
    from bot.settings import Settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

    async def hello(_request):
        return web.Response(text="hello")

    async def main():
        app = web.Application()
        app.router.add_get("/", hello)
        settings = Settings(app_id="", max_connections=100_000, header_timeout=60.0)
        loop = asyncio.get_running_loop()
        errors = AcceptErrors(loop.get_exception_handler())
        async with serving(app, settings, "127.0.0.1", 0, accept_errors=errors) as site:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (site.open_connections + 40, hard))
            print(site.bound_port, flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)  # until the test says stop
            print(errors.log.total, site.open_connections, flush=True)

    asyncio.run(main())
""")


async def test_running_out_of_descriptors_logs_one_line_not_a_traceback_per_accept() -> None:
    """A real EMFILE: a server whose open-files limit is a few dozen above what it holds, and 120 clients."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None and child.stderr is not None and child.stdin is not None
    clients = []
    try:
        port = int(await asyncio.wait_for(child.stdout.readline(), timeout=60))
        for _ in range(120):
            clients.append(await asyncio.open_connection("127.0.0.1", port))
        first = await asyncio.wait_for(child.stderr.readline(), timeout=30)
        assert b"cannot accept connections: EMFILE" in first, first
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        total, _open = map(int, (await asyncio.wait_for(child.stdout.readline(), timeout=30)).split())
    finally:
        for _, writer in clients:
            writer.close()
        with suppress(ProcessLookupError):
            child.kill()
        rest = await asyncio.wait_for(child.stderr.read(), timeout=30)
        await child.wait()
    assert total >= 1
    assert b"Traceback" not in rest and b"ERROR" not in rest, rest[:2000]
    assert rest.count(b"cannot accept connections") == 0  # the first line was the only one
    print(f"\n[serving] failed accepts={total}, log lines=1")
