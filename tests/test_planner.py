"""The planning tick against the database (SQLite and PostgreSQL): what is planned when, idempotence, catching
up once, deputies, measures, and a cost bounded by what is open."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from hms.config import HmsConfig
from hms.wheel import find_occurrence
from storage import db, models as m, repo
from tests.cardtext import texts
from tests.conftest import oslo
from usecases.planning import plan
from usecases.rounds import Rounds


@pytest.fixture
async def s(db_url: str, khm: HmsConfig) -> AsyncIterator[AsyncSession]:
    engine = db.create_engine(db_url)
    async with db.session_factory(engine)() as session:
        await repo.import_org(session, khm, oslo(2027, 1, 4, 9))
        yield session
    await engine.dispose()


@pytest.fixture
def rounds(khm: HmsConfig) -> Rounds:
    return Rounds(khm, b"test-key")


async def outbox(s: AsyncSession) -> list[m.OutboxMessage]:
    return list((await s.exec(select(m.OutboxMessage).order_by(m.OutboxMessage.id))).all())


def fire(rows: list[m.OutboxMessage], floor: str = "hm-1") -> list[str]:
    return [r.dedupe_key for r in rows if r.dedupe_key.startswith(f"fire_round:2027-Q1:{floor}|")]


async def test_prompt_at_nine_on_the_day_and_not_before(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await plan(s, khm, rounds, oslo(2027, 3, 10, 8, 59))
    assert fire(await outbox(s)) == []
    report = await plan(s, khm, rounds, oslo(2027, 3, 10, 9, 0))
    assert fire(await outbox(s)) == ["fire_round:2027-Q1:hm-1|prompt|fatima.ali@khm.uio.no"]
    assert report.planned >= 5  # one per floor
    prompt = next(r for r in await outbox(s) if r.dedupe_key.startswith("fire_round:2027-Q1:hm-1|prompt"))
    payload = json.loads(prompt.payload)
    assert payload["target"] == {"kind": "person", "email": "fatima.ali@khm.uio.no"}
    card = payload["activity"]["attachments"][0]["content"]
    assert card["actions"][0]["verb"] == "round.page"  # the checklist itself, ready to fill in


async def test_second_tick_and_second_replica_plan_nothing_new(s: AsyncSession, khm: HmsConfig,
                                                              rounds: Rounds) -> None:
    first = await plan(s, khm, rounds, oslo(2027, 3, 10, 9, 5))
    again = await plan(s, khm, rounds, oslo(2027, 3, 10, 9, 10))
    assert first.planned > 0 and again.planned == 0
    assert len(await outbox(s)) == first.planned


async def test_catch_up_after_downtime_sends_one_message(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await plan(s, khm, rounds, oslo(2027, 4, 2, 12))  # the bot was down from February to 2 April
    assert fire(await outbox(s)) == ["fire_round:2027-Q1:hm-1|overdue|fatima.ali@khm.uio.no",
                                     "fire_round:2027-Q1:hm-1|deputy|lars.bakke@khm.uio.no"]


async def test_done_rounds_get_nothing_and_reacting_stops_the_deputy(s: AsyncSession, khm: HmsConfig,
                                                                      rounds: Rounds) -> None:
    occ = find_occurrence(khm, "fire_round:2027-Q1:hm-1")
    await repo.record_completion(s, occ, "fatima.ali@khm.uio.no", oslo(2027, 3, 12, 10))
    occ2 = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
    row = await repo.ensure_occurrence(s, occ2, oslo(2027, 3, 12, 10))
    await repo.save_draft(s, row.id, "fire_round", 1, {"escape_routes": ("ok", None)}, "eirik.haugen@khm.uio.no",
                          oslo(2027, 3, 12, 10))
    await s.commit()
    await plan(s, khm, rounds, oslo(2027, 3, 16, 9))
    rows = await outbox(s)
    assert fire(rows, "hm-1") == []
    assert fire(rows, "hm-2") == ["fire_round:2027-Q1:hm-2|prompt|eirik.haugen@khm.uio.no"]  # no deputy
    assert "fire_round:2027-Q1:hm-3|deputy|sindre.fjeld@khm.uio.no" in fire(rows, "hm-3")


async def test_away_contact_prompts_the_deputy(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    person = await repo.person_by_email(s, "fatima.ali@khm.uio.no")
    person.away = True
    await s.commit()
    await plan(s, khm, rounds, oslo(2027, 3, 10, 9))
    assert fire(await outbox(s)) == ["fire_round:2027-Q1:hm-1|prompt|lars.bakke@khm.uio.no"]


async def test_escalations_reach_section_leader_then_adviser(s: AsyncSession, khm: HmsConfig,
                                                              rounds: Rounds) -> None:
    await plan(s, khm, rounds, oslo(2027, 4, 6, 9))
    keys = fire(await outbox(s))
    assert "fire_round:2027-Q1:hm-1|escalation-section_leader|jonas.eide@khm.uio.no" in keys
    assert not any("hmsb_adviser" in k for k in keys)
    await plan(s, khm, rounds, oslo(2027, 4, 15, 9))
    assert "fire_round:2027-Q1:hm-1|escalation-hmsb_adviser|hanne.solberg@khm.uio.no" in fire(await outbox(s))


async def test_open_measures_are_reminded_and_escalated(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    occ = find_occurrence(khm, "fire_round:2027-Q1:hm-1")
    row = await repo.record_completion(s, occ, "fatima.ali@khm.uio.no", oslo(2027, 3, 3, 9))
    finding = m.Finding(occurrence_id=row.id, item_key="fire_doors", description="Dør på kile",
                        created_by="fatima.ali@khm.uio.no", created_at=oslo(2027, 3, 3, 9))
    s.add(finding)
    await s.flush()
    measure = m.Measure(finding_id=finding.id, owner_email="jonas.eide@khm.uio.no", deadline=dt.date(2027, 4, 2),
                        created_at=oslo(2027, 3, 3, 9))
    s.add(measure)
    await s.commit()
    await plan(s, khm, rounds, oslo(2027, 3, 23, 9))
    keys = [r.dedupe_key for r in await outbox(s) if r.dedupe_key.startswith("measure:")]
    assert keys == [f"measure:{measure.id}@2027-04-02|reminder-7|jonas.eide@khm.uio.no"]
    await plan(s, khm, rounds, oslo(2027, 4, 20, 9))
    keys = [r.dedupe_key for r in await outbox(s) if r.dedupe_key.startswith("measure:")]
    assert f"measure:{measure.id}@2027-04-02|escalation-hmsb_adviser|hanne.solberg@khm.uio.no" in keys
    measure.status = "closed"
    await s.commit()
    before = len(await outbox(s))
    await plan(s, khm, rounds, oslo(2027, 6, 1, 9))
    assert not [r for r in (await outbox(s))[before:] if r.dedupe_key.startswith("measure:")]


async def test_cost_is_bounded_by_what_is_open(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    near = await plan(s, khm, rounds, oslo(2027, 3, 10, 9))
    far = await plan(s, khm, rounds, oslo(2045, 3, 10, 9))  # twenty years later: same amount of work
    assert abs(near.considered - far.considered) <= 10


def digests(rows: list[m.OutboxMessage]) -> list[str]:
    return [r.dedupe_key for r in rows if r.kind == "digest"]


async def test_weekly_digest_for_the_adviser(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await plan(s, khm, rounds, oslo(2027, 4, 5, 8, 59))  # Monday, before nine
    assert digests(await outbox(s)) == []
    await plan(s, khm, rounds, oslo(2027, 4, 5, 9, 0))
    await plan(s, khm, rounds, oslo(2027, 4, 7, 12, 0))  # later that week: not again
    rows = await outbox(s)
    assert digests(rows) == ["digest|2027-W14|hanne.solberg@khm.uio.no"]
    digest = next(r for r in rows if r.kind == "digest")
    body = json.loads(digest.payload)["activity"]["attachments"][0]["content"]
    text = texts(body)  # the whole card: "Vis alle" holds the overdue items past the first eight
    assert "HMS-status uke 14" in text
    assert "Brannvernrunde – Historisk museum, 1. etasje (31. mars 2027, Fatima Ali)" in text  # Q1 is overdue
    assert digest.recipient_email == "hanne.solberg@khm.uio.no"


async def test_digest_waits_for_the_first_working_day(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await plan(s, khm, rounds, oslo(2027, 3, 29, 10))  # Easter Monday
    assert digests(await outbox(s)) == []
    await plan(s, khm, rounds, oslo(2027, 3, 30, 9))
    assert digests(await outbox(s)) == ["digest|2027-W13|hanne.solberg@khm.uio.no"]
