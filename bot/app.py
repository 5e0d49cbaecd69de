"""The composition root: `create_app(settings)` builds everything the server needs, once, from validated settings.

HTTP routes: POST /api/messages (Bot Framework), GET /healthz (alive), GET /readyz (database reachable and
migrated), GET /metrics (Prometheus, bot/metrics.py). Bad requests are answered here, before any handler runs: 415
for another media type or content encoding, 413 for bodies over the limit, 408 for a body that does not arrive
within HMS_BODY_TIMEOUT, 400 for a body that does not decode, is not JSON or cannot be an activity (bot/activity.py
checks the shape of every field the bot reads), 401 for a bad token; never a stack trace. (Header deadline and
connection cap: bot/serving.py.) The turn code only ever sees an activity whose fields have the types it expects.
Activities from another tenant are dropped here with an empty 200, whatever their type. At most HMS_MAX_TURNS turns
run at once; the next wait up to HMS_QUEUE_TIMEOUT for one to end, then get 503 (bot/admission.py).

A PostgreSQL database that cannot be reached or is not migrated yet when the bot starts does not stop it: the
server listens, /healthz answers, /readyz and /api/messages answer 503 with the reason, and the start is tried
again with backoff (`Startup`), one log line per attempt, until the database is there; then the organisation is
imported and the listeners and the scheduler start, as at any start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bot import activity, logs, metrics
from bot.admission import RETRY_AFTER_SECONDS, Admission, ConnectionBudget
from bot.gateway import GatewayConfig, TeamsGateway, Unauthorized
from bot.serving import ACCEPT_LOG_INTERVAL, RateLimitedLog
from bot.settings import Settings
from bot.turns import HmsBot, tenant_of
from hms.clock import Clock, SystemClock
from hms.config import HmsConfig, load_config
from hms.i18n import t
from scheduler.jobs import build_scheduler
from storage import db, repo, sessions
from usecases import feeds, picture, planning, retention
from usecases.database import DatabaseNotReady, prepare_database
from usecases.delivery import Delivery, tenant_limiter
from usecases.desk import fetch_download

log = logging.getLogger("hms.http")

SETTINGS = web.AppKey("settings", Settings)
BOT = web.AppKey("bot", HmsBot)
GATEWAY = web.AppKey("gateway", TeamsGateway)
DELIVERY = web.AppKey("delivery", Delivery)
ADMISSION = web.AppKey("admission", Admission)
REFUSALS = web.AppKey("refusals", RateLimitedLog)
DEMO_WARNING = web.AppKey("demo_warning", str)
METRICS = web.AppKey("metrics", metrics.Metrics)
DECODED = frozenset({"identity", "gzip", "deflate"})  # aiohttp decodes these; anything else is refused (415)


@dataclass(frozen=True)
class Runtime:
    """Options the command line adds to the settings."""

    dev: bool = False
    dev_bot_id: str = ""
    dev_tenant_id: str = ""
    scheduler: bool = True
    plan_every: float = 300.0
    deliver_every: float = 5.0
    prune_every: float = 86400.0
    # `hms-bot serve` and `local`: make the database ready at start (migrate SQLite; check PostgreSQL's migrations
    # and record the first day), after claiming a SQLite file. Tests that prepared their database leave it off.
    prepare_database: bool = False
    # seconds before the first retry of a start that could not reach the database, doubled up to the most
    retry_first: float = 1.0
    retry_most: float = 30.0


class Startup:
    """Whether the start that needs the database has run; while not, why, for /readyz and /api/messages."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "starting"
        self.attempts = 0


STARTUP = web.AppKey("startup", Startup)


def startup_problem(exc: BaseException) -> str | None:
    """Why a start failed when it is worth trying again (the database unreachable or not migrated), else None."""
    if isinstance(exc, DatabaseNotReady):
        return str(exc)
    reason = db.unreachable(exc)
    return f"database unreachable: {reason}" if reason else None


def backoff(attempt: int, first: float, most: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling from `first` up to `most`,
    with up to a tenth of jitter so replicas started together do not knock at the same moment."""
    delay = min(most, first * 2 ** (attempt - 1))
    return delay * (1 + random.random() / 10)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def messages(request: web.Request) -> web.StreamResponse:
    """Bot Framework's endpoint: one activity per request."""
    started = time.perf_counter()
    fields = logs.begin_turn()
    bot = request.app[BOT]
    gateway = request.app[GATEWAY]
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "send the activity as application/json")
    settings = request.app[SETTINGS]
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in DECODED:
        log.warning("activity refused: Content-Encoding %s", logs.clean(encoding[:40]))
        return _error(415, "unsupported_encoding", "send the activity uncompressed, or gzip or deflate")
    try:
        # aiohttp has no body deadline of its own: without this a slow sender holds the connection for good
        async with asyncio.timeout(settings.body_timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning("activity refused: body over %d bytes", settings.max_body_bytes)
        return _error(413, "too_large", "the activity is larger than this bot accepts")
    except TimeoutError:
        log.info("activity refused: the body did not arrive within %g s", settings.body_timeout)
        late = _error(408, "request_timeout", "the body did not arrive in time")
        late.force_close()
        return late
    except RequestPayloadError:  # a compressed body that does not decompress, a broken chunked body
        log.warning("activity refused: the body could not be decoded (Content-Encoding %s)", encoding)
        return _error(400, "undecodable_body", f"the body could not be decoded ({encoding})")
    except ConnectionResetError:
        # the sender went away mid-body: nothing to answer, nothing wrong here (Teams retries a turn it cares for)
        log.info("client disconnected before its activity arrived")
        return web.Response(status=400)
    try:
        body = activity.parse(raw)
    except activity.BadActivity as exc:
        log.warning("activity refused: %s (%d bytes)", exc, len(raw))
        return _error(400, exc.code, str(exc))
    try:
        authenticated = await gateway.authenticate(request.headers.get("Authorization"), body)
    except Unauthorized as exc:
        log.warning("activity refused: unauthorized (%s)", str(exc)[:200])
        return _error(401, "unauthorized", "missing or invalid token")
    startup = request.app[STARTUP]
    if not startup.ready:
        # Teams retries a 503: the turn is handled once the database is there
        starting = _error(503, "starting", "the bot is starting; try again shortly")
        starting.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return starting
    tenant = tenant_of(body)
    if bot.tenant_id and tenant != bot.tenant_id:
        # dropped here, before any turn: the same empty 200 for every activity type (a turn that drops an
        # invoke leaves it unanswered, which botbuilder's contract makes a 501)
        log.warning("dropped an activity from another tenant (%s)", tenant or "none")
        return web.Response(status=200)
    admission = request.app[ADMISSION]
    if not await admission.enter():
        request.app[REFUSALS].event(admission.in_flight, admission.wait)
        request.app[METRICS].turn(body.get("type"), "busy", time.perf_counter() - started)
        busy = _error(503, "busy", "the bot is busy; try again shortly")
        busy.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return busy
    outcome = "ok"
    try:
        status, payload = await gateway.run(authenticated, body, bot.on_turn)
    except Exception:
        outcome = "error"
        log.exception("turn failed (activity type %s)", body.get("type"))
        return _error(500, "internal", "the bot could not handle this activity")
    finally:
        admission.leave()
        elapsed = time.perf_counter() - started
        request.app[METRICS].turn(body.get("type"), outcome, elapsed)
        log.info("turn", extra={"turn": {
            "type": body.get("type"), "name": body.get("name"), "outcome": outcome,
            "ms": round(elapsed * 1000, 1),
            "conversation_type": (body.get("conversation") or {}).get("conversationType"), **fields,
        }})
    if payload is None:
        return web.Response(status=status)
    return web.json_response(payload, status=status)


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus' text format; the outbox is counted here, at most once every few seconds."""
    body = await request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def demo_warning(path: Path) -> str:
    """What a bot facing Teams says, at start and on every readiness probe, when it serves invented people."""
    return (f"DEMO DATA: {path} is a demo organisation (unit.demo_data: true) whose people are invented. Set "
            "HMS_CONFIG to your unit's organisation file (check it first: hms-bot check-config FILE)")


async def readyz(request: web.Request) -> web.Response:
    startup = request.app[STARTUP]
    if not startup.ready:
        return web.json_response({"status": "starting", "reason": startup.reason, "attempts": startup.attempts},
                                 status=503)
    try:
        current = await db.migrations_current(request.app[BOT].engine)
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("not ready: database unreachable (%s)", type(exc).__name__)
        return web.json_response({"status": "database unreachable"}, status=503)
    if not current:
        return web.json_response({"status": "migrations pending: run hms-bot db upgrade"}, status=503)
    warning = request.app.get(DEMO_WARNING)
    return web.json_response({"status": "ready", "warning": warning} if warning else {"status": "ready"})


async def _behind_token(request: web.Request, serve: Callable[..., Awaitable[Any]]) -> Any:
    """What a link's token serves (None: expired, revoked or never made), read in a session of its own."""
    bot = request.app[BOT]
    async with bot.sessions() as s:
        return await serve(s, bot.config, request.match_info["token"], bot.clock.now())


def _gone(request: web.Request, text_key: str) -> web.Response:
    return web.Response(status=404, text=t(request.app[BOT].config.unit.locale, text_key), content_type="text/plain",
                        charset="utf-8")


async def files(request: web.Request) -> web.Response:
    """A file handed out by link (the inspection pack asked for in the chat), while its token lives."""
    found = await _behind_token(request, fetch_download)
    if found is None:
        return _gone(request, "pack.chat.expired")
    return web.Response(body=found.data, content_type=found.content_type, headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def _feed_route(serve: Callable[..., Awaitable[Any]], content_type: str, max_age: int,
                **headers: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A route serving what a feed token shows (the calendar, the wheel's picture) while it is not revoked."""
    async def handler(request: web.Request) -> web.Response:
        body = await _behind_token(request, serve)
        if body is None:
            return _gone(request, "feed.revoked")
        return web.Response(body=body.encode() if isinstance(body, str) else body, content_type=content_type,
                            charset="utf-8", headers={"Cache-Control": f"private, max-age={max_age}",
                                                      "Referrer-Policy": "no-referrer", **headers})
    return handler


# the wheel as an iCalendar feed of a person, a section or the unit, and as a picture of this year (SVG)
calendar_feed = _feed_route(feeds.serve_calendar, "text/calendar", 3600,
                            **{"Content-Disposition": 'inline; filename="hms-hjulet.ics"'})
wheel_picture = _feed_route(picture.serve_wheel, "image/svg+xml", 600,
                            **{"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def create_app(settings: Settings, *, config: HmsConfig | None = None, clock: Clock | None = None,
               runtime: Runtime = Runtime()) -> web.Application:
    """Build the web application and everything behind it; resources open and close with the app."""
    config = config or load_config(settings.config_path)
    clock = clock or SystemClock()
    gateway = TeamsGateway(GatewayConfig(
        app_id=settings.app_id, app_password=settings.app_password.get_secret_value(),
        app_type=settings.app_type, tenant_id=settings.app_tenant_id, dev_bot_id=runtime.dev_bot_id,
        openid_metadata_url=settings.openid_metadata_url, token_issuer=settings.token_issuer,
        token_endpoint=settings.token_endpoint,
    ))
    # every admitted turn has a connection of its own in this pool (see bot/admission.py)
    budget = ConnectionBudget(turns=settings.max_turns)
    engine = db.create_engine(settings.database_url, connections=budget.turns_pool)
    readers = sessions.Readers(settings.database_url, engine)
    bot = HmsBot(config=config, engine=engine, readers=readers, clock=clock,
                 tenant_id=settings.app_tenant_id or runtime.dev_tenant_id or None, bot_id=gateway.cfg.bot_id,
                 card_key=settings.card_key(), proactive=gateway,
                 public_url=settings.public_url or f"http://localhost:{settings.port}")

    logs.quiet_client_faults()
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[BOT] = bot
    app[GATEWAY] = gateway
    app[ADMISSION] = Admission(settings.max_turns, settings.queue_timeout)
    if config.unit.demo_data and not runtime.dev:
        app[DEMO_WARNING] = demo_warning(settings.config_path)
        log.warning("%s", app[DEMO_WARNING])
    app[REFUSALS] = RateLimitedLog(log, "refused a turn with 503: %d in flight (HMS_MAX_TURNS), none ended "
                                   "within %g s (HMS_QUEUE_TIMEOUT)", ACCEPT_LOG_INTERVAL)
    startup = app[STARTUP] = Startup()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/files/{token}", files)
    app.router.add_get(r"/calendar/{token:[A-Za-z0-9_-]+}.ics", calendar_feed)
    app.router.add_get(r"/wheel/{token:[A-Za-z0-9_-]+}.svg", wheel_picture)
    app.router.add_get("/metrics", metrics_page)

    # On PostgreSQL the scheduler's jobs get their own engine, so a batch of deliveries never queues behind, or
    # starves, the chat turns' pool. On SQLite they share the turns' one connection: SQLite has one writer, and
    # run inline (storage/inline_sqlite.py) a second connection's wait for the file lock would block the event
    # loop that the first needs to finish its transaction; one connection makes the wait a queue on the loop.
    jobs_engine = (engine if engine.dialect.name == "sqlite"
                   else db.create_engine(settings.database_url, connections=budget.jobs))
    jobs_sessions = db.session_factory(jobs_engine)

    async def outbox_depth() -> dict[str, int]:
        async with jobs_sessions() as s:
            return await repo.outbox_depth(s, clock.now())

    pools = {"turns": engine} if jobs_engine is engine else {"turns": engine, "jobs": jobs_engine}
    app[METRICS] = measured = metrics.Metrics(outbox=outbox_depth, readers=readers, pools=pools)
    delivery = Delivery(jobs_sessions, gateway, clock, config, send_timeout=settings.send_timeout,
                        lease=dt.timedelta(seconds=settings.delivery_lease),
                        limiter=tenant_limiter(jobs_engine, settings.tenant_rate),
                        concurrency=settings.send_concurrency, observe=measured.send)
    app[DELIVERY] = delivery

    async def plan() -> None:
        async with jobs_sessions() as s:
            await planning.plan(s, config, bot.rounds, clock.now(), public_url=bot.desk.public_url)

    async def prune() -> retention.PruneReport:
        # idempotent batches: every replica may prune, two at once only do nothing twice
        report = await retention.prune(jobs_engine, clock.now(), settings.retention())
        log.info("pruned %d retry-ledger rows and %d outbox payloads", report.ledger_deleted,
                 report.payloads_cleared)
        return report

    scheduler = None

    async def start() -> None:
        """What a start needs the database for; safe to run again after it failed part way."""
        nonlocal scheduler
        if runtime.prepare_database:
            await asyncio.to_thread(prepare_database, settings.database_url, clock.now())
        await bot.start()
        await readers.start()
        if runtime.scheduler and settings.scheduler:
            scheduler = build_scheduler(plan, delivery.drain, prune, plan_every=runtime.plan_every,
                                        deliver_every=runtime.deliver_every, prune_every=runtime.prune_every,
                                        observe=measured.job)
            scheduler.start()
        startup.ready, startup.reason = True, "ready"
        # What startup built (modules, the config, SQLAlchemy's and botbuilder's objects) lives as long as the
        # process: moved out of the garbage collector's sight, a full collection no longer walks it. Measured
        # at 50 concurrent users: these walks stalled every turn in flight for about 100 ms once a second.
        gc.collect()
        gc.freeze()

    async def attempt() -> float | None:
        """One try at the start: None when it ran, else the seconds until the next try (logged in one line)."""
        startup.attempts += 1
        try:
            await start()
        except Exception as exc:
            problem = startup_problem(exc)
            if problem is None or engine.dialect.name != "postgresql":
                raise  # a SQLite file is on this machine: waiting would not bring it; the error says what is wrong
            delay = backoff(startup.attempts, runtime.retry_first, runtime.retry_most)
            startup.reason = problem
            log.warning("not ready (attempt %d): %s at %s; trying again in %.0f s", startup.attempts, problem,
                        db.safe_url(settings.database_url), delay)
            return delay
        if startup.attempts > 1:
            log.info("database reachable after %d attempts: started", startup.attempts)
        return None

    async def keep_trying(delay: float) -> None:
        wait: float | None = delay
        try:
            while wait is not None:
                await asyncio.sleep(wait)
                wait = await attempt()
        except Exception:
            # the database answered but the start failed otherwise: not ready, and the log says why
            startup.reason = "the start failed: see the log"
            log.exception("the start failed (attempt %d)", startup.attempts)

    async def lifecycle(_app: web.Application) -> Any:
        claim = db.hold_sqlite(settings.database_url)  # SQLite: this process only (see storage/ledger.py)
        if engine.dialect.name == "postgresql":
            log.info("this replica opens %s", budget.describe())
        retrying = None
        try:
            delay = await attempt()
        except BaseException:
            if claim is not None:
                claim.close()
            raise
        if delay is not None:  # serve anyway: /healthz answers, /readyz says why it is not ready
            retrying = asyncio.get_running_loop().create_task(keep_trying(delay))
        yield
        if retrying is not None:
            retrying.cancel()
            await asyncio.gather(retrying, return_exceptions=True)
        if scheduler:
            scheduler.shutdown(wait=False)
        await gateway.close()
        await bot.ledger.close()
        await engine.dispose()
        await readers.dispose()
        if jobs_engine is not engine:
            await jobs_engine.dispose()
        if claim is not None:
            claim.close()

    app.cleanup_ctx.append(lifecycle)
    return app
