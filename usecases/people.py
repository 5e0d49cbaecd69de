"""People and the bot: who is writing (the organisation's e-mail for a Teams user), the welcome with their HMS
roles, the refusal for someone the unit does not know, and what the bot learns when it is added to a team (the
LAMU channel, and personal chats with the members it knows)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cards.unknown_user import UnknownUserView, unknown_user_card
from cards.welcome import WelcomeView, welcome_card
from hms import i18n
from hms.config import HmsConfig
from hms.i18n import t
from storage import repo
from usecases.ports import Proactive, TeamDirectory

log = logging.getLogger("hms.turns")


@dataclass(frozen=True)
class TeamInstall:
    """Where the bot was added: the team, and the coordinates its conversations share."""

    team_id: str
    service_url: str
    tenant_id: str | None
    bot_id: str | None
    channel_id: str


class People:
    """Knows the organisation's people by their Teams identities and greets them by their roles.

    Most people are found by the Teams user id the bot learned for them, not by an Entra object id in the file.
    What was learned is kept in memory (`_learned`), so a person's every turn after the first is as cheap as for
    someone in the file: no database, and on SQLite no wait for the single writer. That is safe on several
    replicas because a Teams user id names one user for good; a link is only ever added or moved by
    `remember_teams_user`, and a replica that has not seen it reads it once. Whether the person still belongs to
    the unit is checked against the organisation file in memory on every turn, the same file the Entra-id path
    and every role decision use (`import_org` makes the table's `active` match it when the bot starts).
    """

    LEARNED_MAX = 10_000  # Teams ids kept; more people than this start over (each is read again once)

    def __init__(self, config: HmsConfig):
        self.config = config
        self._learned: dict[str, str] = {}

    async def identify(self, s: Any, teams_id: str, aad_id: str | None,
                       member: Callable[[], Awaitable[dict[str, Any] | None]], now: dt.datetime) -> str | None:
        """The organisation's e-mail for a sender: by Entra object id, then a Teams id learned before (in memory,
        else stored), then the UPN/e-mail Teams gives for the member (`member`, a network call made only when the
        others do not tell)."""
        if aad_id:
            person = self.config.person_by_entra_id(aad_id)
            if person:
                return person.email
        learned = self._learned.get(teams_id)
        if learned and self.config.person(learned):
            return learned
        known = await repo.person_by_teams_id(s, teams_id)
        if known and known.active and self.config.person(known.email):
            self.learn(teams_id, known.email)
            return known.email
        await s.settle()  # no connection held during the network call
        found = await member()
        for key in ("email", "userPrincipalName"):
            value = (found or {}).get(key)
            if value and self.config.person(value):
                email = value.lower()
                await repo.remember_teams_user(s, email, teams_id, aad_id or (found or {}).get("aadObjectId"), now)
                self.learn(teams_id, email)
                return email
        return None

    def learn(self, teams_id: str, email: str) -> None:
        """Remember whose Teams id this is (after it was stored or read)."""
        if len(self._learned) >= self.LEARNED_MAX and teams_id not in self._learned:
            self._learned.clear()
        self._learned[teams_id] = email

    def welcome(self, email: str, locale: str) -> dict[str, Any]:
        """The welcome card: the person's roles and what the bot will send them."""
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
            elif scope and (bld := self.config.building(scope)):
                scope_name = bld.name.get(lang)
            declared = self.config.declared_role(role)
            if declared is not None:  # a role the unit declared: its own title, and the tasks that name it
                roles.append(t(locale, "role.declared_for" if scope_name else "role.declared",
                               title=declared.title.get(lang), scope=scope_name))
                text = t(locale, "sends.declared")
            else:
                roles.append(t(locale, f"role.{role}", scope=scope_name, unit=unit))
                text = t(locale, f"sends.{role}")
            if text not in sends:
                sends.append(text)
        first = (person.name if person else email).split()[0]
        return welcome_card(WelcomeView(first, unit, tuple(roles), tuple(sends)), locale)

    def unknown_user(self, locale: str) -> dict[str, Any]:
        """The refusal for someone not in the organisation file, naming the adviser to ask."""
        adviser = self.config.person(self.config.roles.hmsb_adviser)
        view = UnknownUserView(self.config.unit.name.get(i18n.lang(locale)),
                               adviser.name if adviser else self.config.roles.hmsb_adviser,
                               self.config.roles.hmsb_adviser)
        return unknown_user_card(view, locale)

    async def learn_team(self, s: Any, install: TeamInstall, team: TeamDirectory, proactive: Proactive | None,
                         now: dt.datetime) -> None:
        """Added to a team: find the LAMU channel, and open personal chats with members the bot can reach."""
        lamu = self.config.roles.lamu
        try:
            channels = await team.team_channels()
        except Exception as exc:  # noqa: BLE001 - the team is still usable without its channel list
            log.warning("could not list the team's channels: %s", type(exc).__name__)
            channels = []
        wanted = (lamu.channel_id or "").lower(), lamu.channel_name.lower()
        for channel in channels:
            if channel["id"].lower() == wanted[0] or channel["name"].lower() == wanted[1]:
                await repo.upsert_conversation(
                    s, channel["id"], now, conversation_type="channel", service_url=install.service_url,
                    tenant_id=install.tenant_id, team_id=install.team_id, teams_channel_id=channel["id"],
                    bot_id=install.bot_id, channel_id=install.channel_id)
                log.info("found the LAMU channel in the team")
                break
        else:
            log.warning("the LAMU channel %r was not found in the team", lamu.channel_name)
        if proactive is None:
            return
        try:
            members = await team.team_members()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not list the team's members: %s", type(exc).__name__)
            return
        for member in members:
            email = next((v.lower() for v in (member.get("email"), member.get("userPrincipalName"))
                          if v and self.config.person(v)), None)
            if email is None or await repo.personal_conversation(s, email):
                continue
            try:
                conversation_id = await proactive.create_personal_conversation(
                    install.service_url, install.tenant_id, str(member["id"]))
            except Exception as exc:  # noqa: BLE001 - one unreachable member must not stop the rest
                log.warning("could not open a chat with a team member: %s", type(exc).__name__)
                continue
            await repo.upsert_conversation(
                s, conversation_id, now, conversation_type="personal", service_url=install.service_url,
                tenant_id=install.tenant_id, bot_id=install.bot_id, user_teams_id=str(member["id"]),
                user_aad_id=member.get("aadObjectId"), person_email=email)
            await repo.remember_teams_user(s, email, str(member["id"]), member.get("aadObjectId"), now)
            self.learn(str(member["id"]), email)
