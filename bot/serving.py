"""Serving the web application on a socket, with the limits a public endpoint needs.

aiohttp's defaults suit a server behind a careful proxy; the bot may face the internet directly:
- **Headers in time.** A connection must deliver a whole request head within `header_timeout` seconds of being
  opened or answered. aiohttp's keep-alive timer is that deadline: when it fires while the connection waits for
  a request (idle, or its headers still trickling in), the connection is closed. Idle keep-alive connections
  are therefore closed after the same time (default 3630 s: a slow sender held its socket for an hour).
- **A body in time.** `/api/messages` reads its body within `body_timeout` (see `bot.app.messages`), else
  it answers 408 and closes; what is still arriving after an answer is read for at most `LINGER_SECONDS`.
- **A cap on connections.** At most `max_connections` at once; one more is answered 503 and closed at once,
  so a flood of sockets meets a refusal instead of running the process out of file descriptors.
- **Accept errors once per interval.** When the process has run out of file descriptors anyway, asyncio reports
  every failed accept through the loop's exception handler, with a traceback, and Python 3.11 tries the accept
  again up to the listen backlog each time (a tester saw 189,000 tracebacks in 10 s; 120 clients against a
  server out of descriptors gave 973 in 3 s here). One line per interval instead.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from bot.settings import Settings

log = logging.getLogger("hms.http")

LINGER_SECONDS = 2.0  # after an answer, unread body bytes are read and dropped this long before closing
ACCEPT_LOG_INTERVAL = 60.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class RateLimitedLog:
    """Logs the first of a kind of event at once, then at most one line per interval, with how many more
    happened since the last line."""

    def __init__(self, logger: logging.Logger, message: str, interval: float,
                 monotonic: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.message = message
        self.interval = interval
        self.monotonic = monotonic
        self.total = 0
        self._since_line = 0
        self._last_line: float | None = None

    def event(self, *args: object) -> None:
        """Count one event; log a line when none was logged in the last interval."""
        self.total += 1
        self._since_line += 1
        now = self.monotonic()
        if self._last_line is not None and now - self._last_line < self.interval:
            return
        more = self._since_line - 1
        suffix = f" ({more} more in the last {self.interval:g} s)" if more else ""
        self.logger.warning(self.message + suffix, *args)
        self._last_line, self._since_line = now, 0


class AcceptErrors:
    """A loop exception handler: failed accepts for want of file descriptors or memory become one log line
    per interval; everything else goes to the handler that was there before (or asyncio's default)."""

    def __init__(self, previous: Any = None, interval: float = ACCEPT_LOG_INTERVAL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.previous = previous
        self.log = RateLimitedLog(log, "cannot accept connections: %s; the listener retries every second "
                                  "(raise the open-files limit, or lower HMS_MAX_CONNECTIONS)", interval, monotonic)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES
                and "accept" in str(context.get("message", ""))):
            self.log.event(f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({os.strerror(exc.errno or 0)})")
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


_BUSY_BODY = b'{"error": {"code": "busy", "message": "too many connections; try again shortly"}}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _Busy(asyncio.Protocol):
    """A connection over the cap: a 503, then closed (nothing of the request is read)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted while its socket is open."""

    __slots__ = ("_inner", "_site")

    def __init__(self, inner: asyncio.Protocol, site: LimitedSite):
        self._inner = inner
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._site.open_connections -= 1
        self._inner.connection_lost(exc)


class LimitedSite(web.BaseSite):
    """A TCP site that holds at most `max_connections` connections at once.

    Counted from the protocol factory to the socket's close (not from aiohttp's own list of connections, which
    a burst of accepts outruns: their handlers register a loop iteration later). Should asyncio fail to build
    the transport after the factory ran, that slot stays taken; asyncio does not tell the protocol."""

    __slots__ = ("_host", "_port", "_sock", "bound_port", "max_connections", "open_connections", "refused")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 refusals: RateLimitedLog | None = None, sock: socket.socket | None = None):
        super().__init__(runner)
        self._host = host
        self._port = port
        self._sock = sock
        self.bound_port = sock.getsockname()[1] if sock is not None else port
        self.max_connections = max_connections
        self.open_connections = 0
        self.refused = refusals or RateLimitedLog(
            log, "refused a connection: %d open, the most HMS_MAX_CONNECTIONS allows", ACCEPT_LOG_INTERVAL)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.bound_port}"

    def _protocol(self) -> asyncio.Protocol:
        if self.open_connections >= self.max_connections:
            self.refused.event(self.open_connections)
            return _Busy()
        server = self._runner.server
        assert server is not None
        self.open_connections += 1
        return _Counted(server(), self)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(self._protocol, sock=self._sock, backlog=self._backlog)
        else:
            try:
                self._server = await loop.create_server(self._protocol, self._host, self._port,
                                                        backlog=self._backlog, reuse_address=True)
            except OSError as exc:
                raise cannot_listen(exc, self._host, self._port) from None
        if self._server.sockets:
            self.bound_port = self._server.sockets[0].getsockname()[1]


class CannotListen(Exception):
    """The socket could not be bound: the message says which address and what to do."""


_BIND_HINTS = {
    errno.EADDRINUSE: "the port is in use (another hms-bot, or another program); choose another with --port N or "
                      "HMS_PORT=N",
    errno.EACCES: "not allowed (ports below 1024 need privileges); choose another with --port N or HMS_PORT=N",
    errno.EADDRNOTAVAIL: "this machine has no such address (HMS_HOST)",
}


def cannot_listen(exc: OSError, host: str, port: int) -> CannotListen:
    """A bind error as one line a person can act on."""
    hint = _BIND_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return CannotListen(f"cannot listen on {host}:{port}: {hint}")


def bind(host: str, port: int) -> socket.socket:
    """The listening address claimed before the app starts: a port in use is refused before the start does any
    work (migrations, the organisation, the scheduler's first jobs), and says so in one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise cannot_listen(exc, host, port) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise cannot_listen(exc, host, port) from None
    sock.setblocking(False)
    return sock


def server_options(settings: Settings) -> dict[str, Any]:
    """aiohttp's per-connection options that carry the settings' timeouts (see the module's docstring)."""
    return {"keepalive_timeout": settings.header_timeout,
            "lingering_time": min(LINGER_SECONDS, settings.body_timeout)}


@asynccontextmanager
async def serving(app: web.Application, settings: Settings, host: str, port: int, *,
                  accept_errors: AcceptErrors | None = None) -> AsyncIterator[LimitedSite]:
    """Run `app` on host:port with the settings' timeouts and connection cap until the block ends."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(accept_errors or AcceptErrors(previous))
    sock = bind(host, port)
    runner = web.AppRunner(app, access_log=None, **server_options(settings))
    try:
        await runner.setup()
        site = LimitedSite(runner, host, port, max_connections=settings.max_connections, sock=sock)
        await site.start()
        yield site
    finally:
        await runner.cleanup()
        sock.close()
        loop.set_exception_handler(previous)


def run(app: web.Application, settings: Settings, host: str, port: int, *,
        listening: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (what `web.run_app` does, with our site and limits); `listening` is called
    with the address once the socket is bound (never before: a start that is refused says only why)."""

    async def until_stopped() -> None:
        # a signal ends the block normally, so the app's cleanup runs while its tasks are still alive
        # (asyncio.run would cancel every task at once when an exception escaped the loop)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serving(app, settings, host, port) as site:
            log.info("listening on %s", site.name)
            if listening is not None:
                listening(site.name)
            await stop.wait()

    asyncio.run(until_stopped())
