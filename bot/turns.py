"""The Teams edge's turn: from an inbound activity to the use cases that answer it.

Knows nothing of botbuilder: it gets a `TurnPort` (the activity as JSON plus reply operations) and a
`Proactive` port for opening chats. Order of work for every activity: drop other tenants (nothing stored),
drop retries of an activity already handled (a turn that failed is released, so Teams' retry runs it again;
see storage/ledger.py), refresh the conversation's coordinates, then route by type
through a table of handlers (`activities`, and `invokes` by invoke name); a type nobody registered is logged
and ignored, an invoke nobody registered is answered with an empty 200.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs
from cards.common import message
from cards.help import help_card
from hms.clock import Clock
from hms.config import HmsConfig
from storage import db, repo, sessions
from storage.ledger import ActivityLedger
from usecases.answers import Answerer, answer_locale
from usecases.cardactions import CardActions
from usecases.desk import Desk
from usecases.measures import evidence_files
from usecases.people import People, TeamInstall
from usecases.ports import Proactive
from usecases.rounds import Rounds
from usecases.routing import Router

log = logging.getLogger("hms.turns")

# Neither may scan past the next "<": with ".*?" or "[^>]+" every "<" of a message without a closing tag
# scanned to its end, so 120 KB of "<at>" or "<" took 40 s on the event loop. Mention names come HTML-escaped.
_MENTION = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]+>")


class TurnPort(Protocol):
    activity: dict[str, Any]

    async def send(self, activity: dict[str, Any]) -> str | None: ...

    async def update(self, activity_id: str, activity: dict[str, Any]) -> None: ...

    def respond(self, status: int, body: Any = None) -> None: ...

    async def member(self, user_id: str) -> dict[str, Any] | None: ...

    async def team_channels(self) -> list[dict[str, str]]: ...

    async def team_members(self) -> list[dict[str, Any]]: ...

    async def download(self, url: str, max_bytes: int) -> bytes: ...


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def tenant_of(activity: dict[str, Any]) -> str | None:
    return _get(activity, "conversation", "tenantId") or _get(activity, "channelData", "tenant", "id")


def locale_of(activity: dict[str, Any]) -> str | None:
    if isinstance(activity.get("locale"), str):
        return str(activity["locale"])
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "clientInfo" and entity.get("locale"):
            return str(entity["locale"])
    return None


def timezone_of(activity: dict[str, Any]) -> str | None:
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "clientInfo" and entity.get("timezone"):
            return str(entity["timezone"])
    return None


def clean_text(text: str) -> str:
    """The user's words without @mentions and markup."""
    return " ".join(_TAGS.sub(" ", _MENTION.sub(" ", text)).split())


KNOWN_TTL_SECONDS = 300


@dataclass(frozen=True)
class Turn:
    """One activity being handled: the port to answer through, the open session, and what the door learnt."""

    port: TurnPort
    session: Any
    email: str | None
    locale: str
    fresh: bool
    now: dt.datetime
    greeted: list[bool] = dataclasses.field(default_factory=list)  # the new chat's welcome went out in this turn

    @property
    def activity(self) -> dict[str, Any]:
        return self.port.activity


TurnHandler = Callable[[Turn], Awaitable[None]]


@dataclass(frozen=True)
class Known:
    """What the bot last stored for a conversation."""

    conversation_id: str
    conversation_type: str
    person_email: str | None
    locale: str | None
    signature: tuple[tuple[str, Any], ...]
    stamp: float


class HmsBot:
    """Handles every inbound activity for one organisation."""

    def __init__(self, *, config: HmsConfig, engine: AsyncEngine, clock: Clock, tenant_id: str | None,
                 bot_id: str, card_key: bytes, proactive: Proactive | None = None,
                 readers: Callable[[], Any] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 public_url: str = "http://localhost:3978"):
        self.config = config
        self.engine = engine
        self.sessions = db.session_factory(engine)
        # answers only read: on SQLite they read inline beside the single writer (see storage.sessions.Readers)
        self.read_sessions = readers or self.sessions
        self.ledger = ActivityLedger(engine)
        self.clock = clock
        self.tenant_id = tenant_id
        self.bot_id = bot_id
        self.proactive = proactive
        self.monotonic = monotonic  # ages what is known of conversations (injectable for tests)
        self.rounds = Rounds(config, card_key)
        self.cards = CardActions(card_key, self.rounds.router, self.rounds.measures.router)
        self.answerer = Answerer(config, self.rounds)
        self.people = People(config)
        self.desk = Desk(config, public_url)  # the adviser's requests and people's links (pack, calendar, wheel)
        self._known: dict[str, Known] = {}
        self._owed_welcome: set[str] = set()  # new chats whose first turn failed before greeting them
        self.activities: Router[TurnHandler] = Router("activity types")
        self.activities.register("message", self._on_message)
        self.activities.register("conversationUpdate", self._on_membership)
        self.activities.register("installationUpdate", self._on_membership)
        self.activities.register("invoke", self._on_invoke)
        self.invokes: Router[TurnHandler] = Router("invoke names")
        self.invokes.register("adaptiveCard/action", self._on_card_action)

    async def start(self) -> None:
        """Bring the organisation tables in line with the config file (idempotent)."""
        async with self.sessions() as s:
            report = await repo.import_org(s, self.config, self.clock.now())
        log.info("organisation loaded: %s", report.summary())
        await self.ledger.start(self.clock.now())

    async def on_turn(self, turn: TurnPort) -> None:
        act = turn.activity
        tenant = tenant_of(act)
        if self.tenant_id and tenant != self.tenant_id:
            log.warning("dropped an activity from another tenant (%s)", tenant or "none")
            return
        now = self.clock.now()
        key = f"{act.get('channelId')}|{_get(act, 'conversation', 'id')}|{act['id']}" if act.get("id") else None
        if key is not None and not await self.ledger.claim(key, now):
            logs.note(retry=True)  # a retry of an activity already handled
            if act.get("type") == "invoke":
                turn.respond(200, None)
            return
        try:
            await self._handle(turn, act, now)
        except BaseException:
            # the reply could not be sent, or the turn failed: the bot answers 500 and Teams' retry runs it again
            if key is not None:
                await asyncio.shield(self.ledger.release(key))
            raise
        if key is not None:
            # completed: every reply sent (or the invoke's answer set) and every write committed
            self.ledger.complete(key, self.clock.now())

    async def _handle(self, turn: TurnPort, act: dict[str, Any], now: dt.datetime) -> None:
        """Refresh what the bot knows of the conversation and its sender, then route the activity by type."""
        async with sessions.OnDemandSession(self.sessions) as s:
            ref, fresh = await self._refresh_conversation(s, act, now)
            email = await self._identify(s, turn, now)
            if email and ref.person_email != email and ref.conversation_type == "personal":
                # linked to its person: what waited for this chat goes out at the next delivery tick
                await repo.upsert_conversation(s, ref.conversation_id, now, person_email=email)
                self._known[ref.conversation_id] = dataclasses.replace(ref, person_email=email)
            locale = locale_of(act) or ref.locale or self.config.unit.locale
            handler = self.activities.route(act.get("type"))
            if handler is None:
                log.info("ignored activity of type %s", act.get("type"))
                return
            # a new chat is greeted once; when its first turn failed before the welcome went out, its retry (or
            # the next turn in this process) greets instead
            owed = ref.conversation_id in self._owed_welcome
            self._owed_welcome.discard(ref.conversation_id)  # this turn greets
            current = Turn(turn, s, email, locale, fresh or owed, now)
            try:
                await handler(current)
            except BaseException:
                if current.fresh and not current.greeted:
                    if len(self._owed_welcome) >= 10_000:
                        self._owed_welcome.clear()
                    self._owed_welcome.add(ref.conversation_id)
                raise

    async def _refresh_conversation(self, s: Any, act: dict[str, Any], now: dt.datetime) -> tuple[Known, bool]:
        """Store the conversation's coordinates when they are new or changed (the service URL can change).

        Coordinates seen in the last few minutes are not looked at again, and unchanged ones are never written: a
        chat turn costs no database work here. Every few minutes they are read again, so a conversation another
        replica or the delivery marked inactive is made active again by the person's next message.
        """
        coords = self._coordinates(act)
        key = coords.pop("conversation_id")
        signature = tuple(sorted((k, v) for k, v in coords.items() if v is not None))
        known = self._known.get(key)
        if known and known.signature == signature and self.monotonic() - known.stamp < KNOWN_TTL_SECONDS:
            return known, False
        row, fresh = await repo.upsert_conversation(s, key, now, **coords)
        known = Known(key, row.conversation_type, row.person_email, row.locale, signature, self.monotonic())
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[key] = known
        return known, fresh

    # -- handlers, by activity type --------------------------------------------------------------------------

    async def _on_message(self, turn: Turn) -> None:
        act, s, email, locale = turn.activity, turn.session, turn.email, turn.locale
        if email is None:
            await turn.port.send(self.people.unknown_user(locale))
            return
        if isinstance(act.get("value"), dict) and not clean_text(str(act.get("text") or "")):
            # Action.Submit (clients without Action.Execute): replace the pressed card when we know it
            result = await self.cards.handle(s, email, act["value"], turn.now, locale)
            logs.note(card=result.outcome, via="submit")
            reply = message(result.card, result.outcome)
            if act.get("replyToId"):
                try:
                    await turn.port.update(str(act["replyToId"]), reply)
                    return
                except Exception as exc:  # noqa: BLE001 - fall back to a new message
                    log.info("could not update the card: %s", type(exc).__name__)
            await turn.port.send(reply)
            return
        text = clean_text(str(act.get("text") or ""))
        # answer in the language of the question; words that fit both languages follow the Teams locale
        locale = answer_locale(text, locale)
        if turn.fresh and _get(act, "conversation", "conversationType") in (None, "personal"):
            await self._greet(turn, self.people.welcome(email, locale))
        files = evidence_files(act)
        if files and _get(act, "conversation", "conversationType") in (None, "personal"):
            # a photo or a PDF sent to the bot in the personal chat: evidence for a measure
            await turn.port.send(await self.rounds.measures.evidence_from_chat(
                s, email, text, files, turn.now, locale, turn.port.download))
            logs.note(intent="evidence")
            return
        if not text:
            await turn.port.send(help_card(locale))
            return
        desk = await self.desk.answer(s, text, email, turn.now, locale)
        if desk is not None:
            logs.note(intent="desk")
            await turn.port.send(desk)
            return
        await s.settle()  # the writer's connection is not needed for answering
        async with self.read_sessions() as reader:
            answer = await self.answerer.answer(reader, text, email, turn.now, locale)
        logs.note(intent=answer.understanding.intent)
        await turn.port.send(answer.activity)

    async def _on_membership(self, turn: Turn) -> None:
        act, s, now = turn.activity, turn.session, turn.now
        bot_id = _get(act, "recipient", "id")
        added = [m.get("id") for m in act.get("membersAdded") or [] if isinstance(m, dict)]
        removed = [m.get("id") for m in act.get("membersRemoved") or [] if isinstance(m, dict)]
        action = str(act.get("action") or "")
        conversation_id = str(_get(act, "conversation", "id"))
        if bot_id in removed or action.startswith("remove"):
            await repo.deactivate_conversation(s, conversation_id, now)
            self._known.pop(conversation_id, None)
            log.info("uninstalled from a %s conversation", _get(act, "conversation", "conversationType"))
            return
        installed = bot_id in added or action.startswith("add")
        if not installed:
            return
        team_id = _get(act, "channelData", "team", "id")
        if team_id:
            install = TeamInstall(str(team_id), str(act.get("serviceUrl")), tenant_of(act), bot_id,
                                  act.get("channelId") or "msteams")
            await self.people.learn_team(s, install, turn.port, self.proactive, now)
            return
        if not turn.fresh:
            return  # Teams sends both conversationUpdate and installationUpdate; greet once
        conversation_type = _get(act, "conversation", "conversationType") or "personal"
        if conversation_type != "personal":
            return
        await self._greet(turn, self.people.welcome(turn.email, turn.locale) if turn.email
                          else self.people.unknown_user(turn.locale))

    @staticmethod
    async def _greet(turn: Turn, card: dict[str, Any]) -> None:
        """Send the greeting of a new chat; once it went out, it is not owed even if the turn fails later."""
        await turn.port.send(card)
        turn.greeted.append(True)

    async def _on_invoke(self, turn: Turn) -> None:
        name = turn.activity.get("name")
        handler = self.invokes.route(name)
        if handler is None:
            log.info("ignored invoke %s", name)
            turn.port.respond(200, {})
            return
        await handler(turn)

    async def _on_card_action(self, turn: Turn) -> None:
        """Action.Execute: the card that replaces the pressed one goes back in the invoke response."""
        result = await self.cards.handle(turn.session, turn.email, turn.activity.get("value"), turn.now, turn.locale)
        logs.note(card=result.outcome, via="execute")
        turn.port.respond(200, {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive",
                                "value": result.card})

    # -- people --------------------------------------------------------------------------------------------

    async def _identify(self, s: Any, turn: TurnPort, now: dt.datetime) -> str | None:
        """The organisation's e-mail for the sender (see People.identify); None for the bot itself."""
        sender = turn.activity.get("from") or {}
        teams_id = sender.get("id")
        if not teams_id or teams_id == _get(turn.activity, "recipient", "id"):
            return None
        return await self.people.identify(s, teams_id, sender.get("aadObjectId"), lambda: turn.member(teams_id),
                                          now)

    def _coordinates(self, act: dict[str, Any]) -> dict[str, Any]:
        conv = act.get("conversation") or {}
        sender = act.get("from") or {}
        ctype = conv.get("conversationType") or ("groupChat" if conv.get("isGroup") else "personal")
        return {
            "conversation_id": str(conv.get("id")),
            "conversation_type": ctype,
            "service_url": act.get("serviceUrl"),
            "tenant_id": tenant_of(act),
            "channel_id": act.get("channelId") or "msteams",
            "team_id": _get(act, "channelData", "team", "id"),
            "teams_channel_id": _get(act, "channelData", "channel", "id"),
            "bot_id": _get(act, "recipient", "id"),
            "user_teams_id": sender.get("id") if ctype == "personal" else None,
            "user_aad_id": sender.get("aadObjectId") if ctype == "personal" else None,
            "locale": locale_of(act),
            "timezone": timezone_of(act),
        }
