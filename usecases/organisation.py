"""The organisation on record: people, sections, floors and roles from the organisation file; who is away."""

from __future__ import annotations

import datetime as dt

from hms.config import HmsConfig
from storage import repo
from usecases.database import opened


async def import_org(url: str, config: HmsConfig, now: dt.datetime) -> repo.ImportReport:
    """Update people, sections, floors and roles in place from the organisation file."""
    async with opened(url) as session:
        return await repo.import_org(session, config, now)


async def set_away(url: str, config: HmsConfig, email: str, away: bool, now: dt.datetime) -> None:
    """Mark a person away (prompts go to their deputy) or back."""
    async with opened(url) as session:
        person = await repo.person_by_email(session, email)
        if person is None:
            await repo.import_org(session, config, now)
            person = await repo.person_by_email(session, email)
        assert person is not None
        person.away, person.updated_at = away, now
        await session.commit()
