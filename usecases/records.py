"""The record, read back: what an inspector asks for, and what the outbox could not deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import col, select

from storage import models as m, repo
from usecases.database import opened


async def outbox_listing(url: str, status: str, limit: int) -> list[dict[str, Any]]:
    """Outbox messages in one state, newest first (what the adviser checks for undelivered prompts)."""
    async with opened(url) as session:
        rows = (await session.exec(select(m.OutboxMessage).where(m.OutboxMessage.status == status)
                                   .order_by(col(m.OutboxMessage.id).desc()).limit(limit))).all()
    return [{"key": r.dedupe_key, "kind": r.kind, "recipient": r.recipient_email, "status": r.status,
             "attempts": r.attempts, "last_error": r.last_error, "created_at": r.created_at.isoformat(),
             "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]


async def export_records(url: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """What an inspector asks for: every round, answer, finding and measure (with who and when) in a period."""
    async with opened(url) as session:
        data = await repo.records(session, start, end)
    return {"period": {"start": start.isoformat(), "end": end.isoformat()}, **data}
