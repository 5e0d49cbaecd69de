"""Plain types shared between the gateway and the code that sends through it (no botbuilder here)."""

from __future__ import annotations

from dataclasses import dataclass


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
