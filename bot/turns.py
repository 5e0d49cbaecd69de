"""The bot's behaviour per inbound activity: who may talk to it, installs, and answering questions.

Knows nothing of botbuilder: it gets a `TurnPort` (the activity as JSON plus reply operations) and a
`Proactive` port for opening chats. Order of work for every activity: drop other tenants (nothing stored),
drop retries of an activity already handled, refresh the conversation's coordinates, then route by type.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs
from bot.answers import Answerer, answer_locale
from bot.rounds import Rounds
from cards.common import message
from cards.help import help_card
from cards.unknown_user import UnknownUserView, unknown_user_card
from cards.welcome import WelcomeView, welcome_card
from hms import i18n
from hms.clock import Clock
from hms.config import HmsConfig
from hms.i18n import t
from storage import db, repo, sessions
from storage.ledger import ActivityLedger

log = logging.getLogger("hms.turns")

_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


class TurnPort(Protocol):
    activity: dict[str, Any]

    async def send(self, activity: dict[str, Any]) -> str | None: ...

    async def update(self, activity_id: str, activity: dict[str, Any]) -> None: ...

    def respond(self, status: int, body: Any = None) -> None: ...

    async def member(self, user_id: str) -> dict[str, Any] | None: ...

    async def team_channels(self) -> list[dict[str, str]]: ...

    async def team_members(self) -> list[dict[str, Any]]: ...


class Proactive(Protocol):
    async def create_personal_conversation(self, service_url: str, tenant_id: str | None, user_id: str,
                                           activity: dict[str, Any] | None = None) -> str: ...


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
                 readers: Callable[[], Any] | None = None):
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
        self.rounds = Rounds(config, card_key)
        self.answerer = Answerer(config, self.rounds)
        self._known: dict[str, Known] = {}

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
        if act.get("id") and not await self.ledger.claim(
                f"{act.get('channelId')}|{_get(act, 'conversation', 'id')}|{act['id']}", now):
            logs.note(retry=True)  # a retry of an activity already handled
            if act.get("type") == "invoke":
                turn.respond(200, None)
            return
        async with sessions.OnDemandSession(self.sessions) as s:
            ref, fresh = await self._refresh_conversation(s, act, now)
            email = await self._identify(s, turn, now)
            if email and ref.person_email != email and ref.conversation_type == "personal":
                await repo.upsert_conversation(s, ref.conversation_id, now, person_email=email)
                self._known.pop(ref.conversation_id, None)
                # prompts that waited for this person's chat go out at the next delivery tick
                await repo.release_waiting(s, email, now)
            locale = locale_of(act) or ref.locale or self.config.unit.locale
            kind = act.get("type")
            if kind == "message":
                await self._on_message(s, turn, email, locale, fresh, now)
            elif kind in ("conversationUpdate", "installationUpdate"):
                await self._on_membership(s, turn, email, locale, fresh, now)
            elif kind == "invoke":
                await self._on_invoke(s, turn, email, locale, now)
            else:
                log.info("ignored activity of type %s", kind)

    async def _refresh_conversation(self, s: Any, act: dict[str, Any], now: dt.datetime) -> tuple[Known, bool]:
        """Store the conversation's coordinates when they are new or changed (the service URL can change).

        Unchanged coordinates seen in the last few minutes are not written again: a chat turn then costs one
        database write (the retry record) instead of two.
        """
        coords = self._coordinates(act)
        key = coords.pop("conversation_id")
        signature = tuple(sorted((k, v) for k, v in coords.items() if v is not None))
        known = self._known.get(key)
        if known and known.signature == signature and time.monotonic() - known.stamp < KNOWN_TTL_SECONDS:
            return known, False
        row, fresh = await repo.upsert_conversation(s, key, now, **coords)
        known = Known(key, row.conversation_type, row.person_email, row.locale, signature, time.monotonic())
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[key] = known
        return known, fresh

    # -- routing -------------------------------------------------------------------------------------------

    async def _on_message(self, s: Any, turn: TurnPort, email: str | None, locale: str, fresh: bool,
                          now: dt.datetime) -> None:
        act = turn.activity
        if email is None:
            await turn.send(self._unknown_user(locale))
            return
        if isinstance(act.get("value"), dict) and not clean_text(str(act.get("text") or "")):
            # Action.Submit (clients without Action.Execute): replace the pressed card when we know it
            result = await self.rounds.handle(s, email, act["value"], now, locale)
            logs.note(card=result.outcome, via="submit")
            reply = message(result.card, result.outcome)
            if act.get("replyToId"):
                try:
                    await turn.update(str(act["replyToId"]), reply)
                    return
                except Exception as exc:  # noqa: BLE001 - fall back to a new message
                    log.info("could not update the card: %s", type(exc).__name__)
            await turn.send(reply)
            return
        text = clean_text(str(act.get("text") or ""))
        # answer in the language of the question; words that fit both languages follow the Teams locale
        locale = answer_locale(text, locale)
        if fresh and _get(act, "conversation", "conversationType") in (None, "personal"):
            await turn.send(self._welcome(email, locale))
        if not text:
            await turn.send(help_card(locale))
            return
        await s.settle()  # the writer's connection is not needed for answering
        async with self.read_sessions() as reader:
            answer = await self.answerer.answer(reader, text, email, now, locale)
        logs.note(intent=answer.understanding.intent)
        await turn.send(answer.activity)

    async def _on_membership(self, s: Any, turn: TurnPort, email: str | None, locale: str, fresh: bool,
                             now: dt.datetime) -> None:
        act = turn.activity
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
            await self._learn_team(s, turn, str(team_id), now)
            return
        if not fresh:
            return  # Teams sends both conversationUpdate and installationUpdate; greet once
        conversation_type = _get(act, "conversation", "conversationType") or "personal"
        if conversation_type != "personal":
            return
        await turn.send(self._welcome(email, locale) if email else self._unknown_user(locale))

    async def _on_invoke(self, s: Any, turn: TurnPort, email: str | None, locale: str, now: dt.datetime) -> None:
        name = turn.activity.get("name")
        if name == "adaptiveCard/action":
            result = await self.rounds.handle(s, email, turn.activity.get("value"), now, locale)
            logs.note(card=result.outcome, via="execute")
            turn.respond(200, {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive",
                               "value": result.card})
            return
        log.info("ignored invoke %s", name)
        turn.respond(200, {})

    # -- people --------------------------------------------------------------------------------------------

    async def _identify(self, s: Any, turn: TurnPort, now: dt.datetime) -> str | None:
        """The organisation's e-mail for the sender: by Entra object id, then a known Teams id, then UPN/email."""
        sender = turn.activity.get("from") or {}
        teams_id = sender.get("id")
        if not teams_id or teams_id == _get(turn.activity, "recipient", "id"):
            return None
        aad = sender.get("aadObjectId")
        if aad:
            person = self.config.person_by_entra_id(aad)
            if person:
                return person.email
        known = await repo.person_by_teams_id(s, teams_id)
        if known and known.active and self.config.person(known.email):
            return known.email
        await s.settle()  # no connection held during the network call
        member = await turn.member(teams_id)
        for key in ("email", "userPrincipalName"):
            value = (member or {}).get(key)
            if value and self.config.person(value):
                email = value.lower()
                await repo.remember_teams_user(s, email, teams_id, aad or (member or {}).get("aadObjectId"), now)
                return email
        return None

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

    def _welcome(self, email: str, locale: str) -> dict[str, Any]:
        person = self.config.person(email)
        lang = i18n.lang(locale)
        unit = self.config.unit.name.get(lang)
        roles, sends = [], []
        for role, scope in self.config.roles_of(email):
            scope_name = ""
            if scope and (sec := self.config.section(scope)):
                scope_name = sec.name.get(lang)
            elif scope and (flr := self.config.floor(scope)):
                scope_name = flr.name.get(lang)
            roles.append(t(locale, f"role.{role}", scope=scope_name, unit=unit))
            text = t(locale, f"sends.{role}")
            if text not in sends:
                sends.append(text)
        first = (person.name if person else email).split()[0]
        return welcome_card(WelcomeView(first, unit, tuple(roles), tuple(sends)), locale)

    def _unknown_user(self, locale: str) -> dict[str, Any]:
        adviser = self.config.person(self.config.roles.hmsb_adviser)
        view = UnknownUserView(self.config.unit.name.get(i18n.lang(locale)),
                               adviser.name if adviser else self.config.roles.hmsb_adviser,
                               self.config.roles.hmsb_adviser)
        return unknown_user_card(view, locale)

    # -- teams -----------------------------------------------------------------------------------------------

    async def _learn_team(self, s: Any, turn: TurnPort, team_id: str, now: dt.datetime) -> None:
        """Added to a team: find the LAMU channel, and open personal chats with members the bot can reach."""
        act = turn.activity
        lamu = self.config.roles.lamu
        try:
            channels = await turn.team_channels()
        except Exception as exc:  # noqa: BLE001 - the team is still usable without its channel list
            log.warning("could not list the team's channels: %s", type(exc).__name__)
            channels = []
        wanted = (lamu.channel_id or "").lower(), lamu.channel_name.lower()
        for channel in channels:
            if channel["id"].lower() == wanted[0] or channel["name"].lower() == wanted[1]:
                await repo.upsert_conversation(
                    s, channel["id"], now, conversation_type="channel", service_url=act.get("serviceUrl"),
                    tenant_id=tenant_of(act), team_id=team_id, teams_channel_id=channel["id"],
                    bot_id=_get(act, "recipient", "id"), channel_id=act.get("channelId") or "msteams")
                log.info("found the LAMU channel in the team")
                break
        else:
            log.warning("the LAMU channel %r was not found in the team", lamu.channel_name)
        if self.proactive is None:
            return
        try:
            members = await turn.team_members()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not list the team's members: %s", type(exc).__name__)
            return
        for member in members:
            email = next((v.lower() for v in (member.get("email"), member.get("userPrincipalName"))
                          if v and self.config.person(v)), None)
            if email is None or await repo.personal_conversation(s, email):
                continue
            try:
                conversation_id = await self.proactive.create_personal_conversation(
                    str(act.get("serviceUrl")), tenant_of(act), str(member["id"]))
            except Exception as exc:  # noqa: BLE001 - one unreachable member must not stop the rest
                log.warning("could not open a chat with a team member: %s", type(exc).__name__)
                continue
            await repo.upsert_conversation(
                s, conversation_id, now, conversation_type="personal", service_url=act.get("serviceUrl"),
                tenant_id=tenant_of(act), bot_id=_get(act, "recipient", "id"), user_teams_id=str(member["id"]),
                user_aad_id=member.get("aadObjectId"), person_email=email)
            await repo.remember_teams_user(s, email, str(member["id"]), member.get("aadObjectId"), now)
