"""The ports the use cases reach the outside world through, as plain types and protocols; the Teams gateway
(`bot.gateway`) implements them, tests fake them. No botbuilder here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Coordinates:
    """Where to reach a conversation: the plain columns stored for it."""

    conversation_id: str
    service_url: str
    tenant_id: str | None = None
    conversation_type: str | None = None
    channel_id: str = "msteams"
    bot_id: str | None = None


class DeliveryError(Exception):
    """The connector refused an outbound call; `status` is its HTTP status (0 when unreachable)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.retry_after = retry_after


class TeamDirectory(Protocol):
    """What Teams tells about the team the bot was just added to."""

    async def team_channels(self) -> list[dict[str, str]]: ...

    async def team_members(self) -> list[dict[str, Any]]: ...


class Proactive(Protocol):
    """Opening a personal chat with someone who has not written to the bot."""

    async def create_personal_conversation(self, service_url: str, tenant_id: str | None, user_id: str,
                                           activity: dict[str, Any] | None = None) -> str: ...


class FileTooLarge(Exception):
    """A file sent to the bot is larger than what it stores."""


class Download(Protocol):
    """Fetching a file someone sent to the bot in the chat: at most `max_bytes`, else FileTooLarge; any other
    failure (refused, unreachable) raises DeliveryError."""

    async def __call__(self, url: str, max_bytes: int) -> bytes: ...
