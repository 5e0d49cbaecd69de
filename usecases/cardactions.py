"""A pressed card button, from the signed payload to the room that handles its verb.

Every submitted card is checked before anything is read from it: a signed payload of a known version (tampered
or forged cards are refused) and a known sender. Then the verb routes to the room that registered it
(`Rounds`: round.* and task.done; `Measures`: measure.*); a verb nobody registered gets the same answer as an
unreadable card, and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import BadAction, CardAction, inputs, unpack
from cards.notices import NoticeView, notice
from hms.i18n import t
from usecases.routing import Router

log = logging.getLogger("hms.rounds")


@dataclass(frozen=True)
class ActionResult:
    """The card that replaces the one the user pressed, and a short outcome for the log."""

    card: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class CardPress:
    """One checked button press: the session to work in, who pressed, the signed action, the card's inputs."""

    session: AsyncSession
    email: str
    action: CardAction
    values: dict[str, str]
    now: dt.datetime
    locale: str


CardHandler = Callable[[CardPress], Awaitable[ActionResult]]


def refusal(locale: str, key: str, outcome: str, **kwargs: Any) -> ActionResult:
    """A card saying why nothing happened."""
    return ActionResult(notice(NoticeView(t(locale, key, **kwargs), ())), outcome)


class CardActions:
    """Checks a pressed button and hands it to the handler registered for its verb."""

    def __init__(self, secret: bytes, *rooms: Router[CardHandler]):
        self.secret = secret
        self.router: Router[CardHandler] = Router("card verbs")
        for room in rooms:
            self.router.include(room)

    async def handle(self, s: AsyncSession, email: str | None, value: Any, now: dt.datetime,
                     locale: str) -> ActionResult:
        """Handle a pressed card button (Action.Execute value or Action.Submit data); returns the new card."""
        data = value.get("action", {}).get("data") if isinstance(value, dict) and isinstance(
            value.get("action"), dict) else value
        try:
            action = unpack(data, self.secret, verbs=self.router.keys())
        except BadAction as exc:
            log.warning("card action refused: %s", exc)
            return ActionResult(notice(NoticeView(t(locale, "card.tampered"), (), None)), "tampered")
        if email is None:
            return refusal(locale, "card.unknown_user", "unknown_user")
        handler = self.router.route(action.verb)
        assert handler is not None  # unpack refused every verb the router does not know
        return await handler(CardPress(s, email, action, inputs(data), now, locale))
