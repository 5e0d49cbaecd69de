"""The first touch of a row with a unique key, raced: twenty first presses on a fresh round through the HTTP door,
two replicas importing the organisation at once, two replicas opening the same channel thread. On SQLite and
PostgreSQL: no 500, no IntegrityError, nothing lost, one row per key."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.app import BOT
from hms.config import HmsConfig
from hms.wheel import find_occurrence
from storage import db, models as m, repo
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, activity, auth_settings, door, peer, post  # noqa: F401 (peer is a fixture)

OCC = "fire_round:2026-Q4:hm-1"  # Fatima's floor; the door's clock is 26 November 2026
PRESSES = 20


def _page_one_press(card: dict[str, Any], khm: HmsConfig, answer: str) -> dict[str, Any]:
    """What Teams sends when the first page is filled in and "next" is pressed (Action.Execute)."""
    page = next(a for a in card["actions"] if a.get("verb") == "round.page")
    keys = [i.key for i in khm.checklist("fire_round").items][:9]
    data = {**page["data"], **{f"a:{k}": answer for k in keys}}
    return {"action": {"type": "Action.Execute", "verb": "round.page", "data": data}, "trigger": "manual"}


async def test_twenty_first_presses_on_a_fresh_round_all_keep_their_drafts(peer: BfPeer, db_url: str,  # noqa: F811
                                                                          khm: HmsConfig) -> None:
    """Twenty cards for one round that nobody has touched yet, pressed at the same moment: each press is
    answered with the next page and the round's draft holds the first page, one row per item, all from the same
    press (today's select-then-insert lost about a third on PostgreSQL with a 500)."""
    occ = find_occurrence(khm, OCC)
    assert occ is not None
    settings = auth_settings(peer, Path("unused"), database_url=db_url)
    async with door(settings, khm) as client:
        rounds = client.app[BOT].rounds
        token = peer.mint(APP_ID)
        bodies = []
        for i in range(PRESSES):
            # a different card (nonce) per press: twenty drafts to tell apart
            card = rounds.occurrence_card(occ, "nb-NO", nonce=f"press-{i:02d}")
            answer = "ok" if i % 2 else "ikke_relevant"
            bodies.append(activity(peer, id=f"press-{i}", type="invoke", text=None, name="adaptiveCard/action",
                                   value=_page_one_press(card, khm, answer)))
        responses = await asyncio.gather(*(post(client, body, token) for body in bodies))
        statuses = [r.status for r in responses]
        answers = [await r.json() for r in responses]
    print(f"\n[first touch] {PRESSES} first presses: statuses {dict(Counter(statuses))}")
    assert statuses == [200] * PRESSES, statuses
    for answer in answers:
        assert answer["type"] == "application/vnd.microsoft.card.adaptive"
        assert "Side 2 av 2" in str(answer["value"])  # each press moved on to the second page

    engine = db.create_engine(db_url)
    try:
        async with db.session_factory(engine)() as s:
            occurrences = (await s.exec(select(m.Occurrence).where(m.Occurrence.key == OCC))).all()
            assert len(occurrences) == 1
            drafts = (await s.exec(select(m.ChecklistDraft).where(
                m.ChecklistDraft.occurrence_id == occurrences[0].id))).all()
    finally:
        await engine.dispose()
    keys = [i.key for i in khm.checklist("fire_round").items][:9]
    assert sorted(d.item_key for d in drafts) == sorted(keys)
    assert {d.saved_by for d in drafts} == {"fatima.ali@khm.uio.no"}
    assert len({d.answer for d in drafts}) == 1  # one press's page, never a mix of two


async def _fresh(url: str) -> None:
    from tests.conftest import _clear

    _clear(url)


@pytest.mark.postgres
async def test_replicas_starting_together_import_the_organisation_once(postgres_url: str, khm: HmsConfig) -> None:
    """Every replica brings the organisation tables in line with the file at start; three starting at once on a
    fresh database all start (today the second and third died on a unique violation), and each person, section,
    floor and role is stored once."""
    await _fresh(postgres_url)
    engines = [db.create_engine(postgres_url) for _ in range(3)]
    try:
        async def start(engine: Any) -> repo.ImportReport:
            async with db.session_factory(engine)() as s:
                return await repo.import_org(s, khm, oslo(2027, 1, 4, 9))

        reports = await asyncio.gather(*(start(e) for e in engines))
        async with db.session_factory(engines[0])() as s:
            people = (await s.exec(select(m.Person.email))).all()
            roles = (await s.exec(select(m.RoleAssignment))).all()
            floors = (await s.exec(select(m.Floor.key))).all()
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(people) == sorted(p.email for p in khm.people)
    assert len(floors) == len(set(floors)) == len(list(khm.floors()))
    assert len(roles) == len({(r.role, r.scope_key, r.person_email) for r in roles})
    # each row was created by exactly one replica
    created = [c for r in reports for c in r.created if c.startswith("person ")]
    assert sorted(created) == sorted(f"person {p.email}" for p in khm.people)


class _Together:
    """Our Sender port around the real gateway; every channel root waits until `n` replicas are sending one,
    so all of them have looked for the thread before any has stored it."""

    def __init__(self, inner: Any, barrier: asyncio.Barrier):
        self.inner = inner
        self.barrier = barrier

    async def send_to(self, *args: Any) -> str | None:
        return await self.inner.send_to(*args)  # type: ignore[no-any-return]

    async def send_to_channel(self, *args: Any) -> tuple[str, str | None]:
        await self.barrier.wait()
        return await self.inner.send_to_channel(*args)  # type: ignore[no-any-return]


@pytest.mark.postgres
async def test_replicas_opening_the_same_channel_thread_store_it_once(postgres_url: str, peer: BfPeer,  # noqa: F811
                                                                     khm: HmsConfig) -> None:
    """Two replicas deliver the summaries of two floors of one quarter at once: both find no thread and start
    one; the thread is stored once (today the second replica's delivery failed on a unique violation) and both
    summaries are delivered, into the thread that was stored."""
    from bot.gateway import GatewayConfig, TeamsGateway
    from hms.clock import FixedClock
    from tests.test_delivery import card, delivery

    now = oslo(2027, 3, 10, 9)
    await _fresh(postgres_url)
    engines = [db.create_engine(postgres_url) for _ in range(2)]
    gateway = TeamsGateway(GatewayConfig(dev_bot_id="28:hms-bot"))
    try:
        async with db.session_factory(engines[0])() as s:
            await repo.import_org(s, khm, now)
            await repo.upsert_conversation(s, "19:lamu@thread", now, conversation_type="channel",
                                           service_url=peer.service_url, teams_channel_id="19:lamu@thread",
                                           team_id="19:team@thread")
            await repo.enqueue(s, [{"dedupe_key": f"fire_round:2027-Q1:{floor}|lamu-summary", "kind": "lamu_summary",
                                    "payload": json.dumps({"target": {"kind": "lamu", "thread": "fire_round:2027-Q1",
                                                                      "thread_title": "Brannvernrunde 2027-Q1"},
                                                           "activity": card(f"Brannvernrunde 2027-Q1 – {floor}")})}
                                   for floor in ("hm-1", "hm-2")], now)
        sender = _Together(gateway, asyncio.Barrier(2))
        replicas = [delivery(db.session_factory(e), sender, FixedClock(now), khm, batch=1) for e in engines]
        reports = await asyncio.wait_for(asyncio.gather(*(r.run_once() for r in replicas)), timeout=30)
        async with db.session_factory(engines[0])() as s:
            threads = (await s.exec(select(m.ChannelThread))).all()
            statuses = (await s.exec(select(m.OutboxMessage.status))).all()
    finally:
        await gateway.close()
        for e in engines:
            await e.dispose()
    assert [r.sent for r in reports] == [1, 1]
    assert statuses == ["sent", "sent"]
    assert len(threads) == 1
    replies = [c for c in peer.sent_activities() if c.conversation_id == threads[0].conversation_id]
    assert len(replies) == 2
