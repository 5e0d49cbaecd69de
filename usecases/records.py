"""The record, read back: what an inspector asks for, and what the outbox could not deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import col, select

from hms.config import HmsConfig
from storage import models as m, repo
from usecases.database import opened
from usecases.due import tracking_starts


async def outbox_listing(url: str, status: str, limit: int) -> list[dict[str, Any]]:
    """Outbox messages in one state, newest first (what the adviser checks for undelivered prompts)."""
    async with opened(url) as session:
        rows = (await session.exec(select(m.OutboxMessage).where(m.OutboxMessage.status == status)
                                   .order_by(col(m.OutboxMessage.id).desc()).limit(limit))).all()
    return [{"key": r.dedupe_key, "kind": r.kind, "recipient": r.recipient_email, "status": r.status,
             "attempts": r.attempts, "last_error": r.last_error, "created_at": r.created_at.isoformat(),
             "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]


async def export_records(url: str, start: dt.date, end: dt.date, config: HmsConfig | None = None) -> dict[str, Any]:
    """What an inspector asks for: every round, answer, finding and measure (with who and when) in a period. With
    the organisation file, the day tracking started, and each round due before it marked (work on record for
    it was registered afterwards)."""
    async with opened(url) as session:
        data = await repo.records(session, start, end)
        starts = await tracking_starts(session, config) if config is not None else None
    if config is not None:
        for r in data["rounds"]:
            r["before_tracking_start"] = starts is not None and r["due"] < starts.isoformat()
    return {"period": {"start": start.isoformat(), "end": end.isoformat()},
            **({"tracking_starts": starts.isoformat() if starts else None} if config is not None else {}), **data}
