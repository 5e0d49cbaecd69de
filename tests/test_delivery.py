"""Delivery through the real gateway to a local mock Bot Connector, on SQLite and PostgreSQL: retries, dead
letters, 403/404, rate limits, and a restart in the middle of a 300-prompt fan-out with throttling."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.gateway import GatewayConfig, TeamsGateway
from cards.common import message
from cards.notices import NoticeView, notice
from hms.clock import FixedClock
from hms.config import HmsConfig
from storage import db, models as m, repo
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.fakes.virtual_time import VirtualTime
from usecases.delivery import Delivery, RateLimiter
from usecases.ports import Coordinates

NOW = oslo(2027, 3, 10, 9)


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the code may catch it)."""


class CrashingSender:
    """Our Sender port around the real gateway: dies right after the connector accepted message number N."""

    def __init__(self, inner: TeamsGateway, crash_after: int):
        self.inner = inner
        self.crash_after = crash_after
        self.accepted = 0

    async def send_to(self, coords: Coordinates, activity: dict[str, Any]) -> str | None:
        result = await self.inner.send_to(coords, activity)
        self.accepted += 1
        if self.accepted == self.crash_after:
            raise Crash
        return result

    async def send_to_channel(self, *args: Any) -> tuple[str, str | None]:
        return await self.inner.send_to_channel(*args)


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer() as p:
        yield p


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    engine = db.create_engine(db_url)
    yield db.session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def gateway() -> AsyncIterator[TeamsGateway]:
    gw = TeamsGateway(GatewayConfig(dev_bot_id="28:hms-bot"))
    yield gw
    await gw.close()


def card(text: str) -> dict[str, Any]:
    return message(notice(NoticeView(text, ())), text)


async def add_people(s: AsyncSession, peer: BfPeer, n: int) -> list[str]:
    emails = [f"p{i:03d}@khm.uio.no" for i in range(n)]
    for i, email in enumerate(emails):
        await repo.upsert_conversation(s, f"a:chat-{i:03d}", NOW, conversation_type="personal",
                                       service_url=peer.service_url, tenant_id="t", person_email=email,
                                       bot_id="28:hms-bot")
    return emails


def row(email: str, key: str, text: str = "Brannvernrunde") -> dict[str, object]:
    return {"dedupe_key": key, "kind": "prompt", "recipient_email": email,
            "payload": json.dumps({"target": {"kind": "person", "email": email}, "activity": card(text)})}


def delivery(sessions: Any, sender: Any, clock: FixedClock, khm: HmsConfig, **kwargs: Any) -> Delivery:
    fake = VirtualTime()
    return Delivery(sessions, sender, clock, khm, limiter=RateLimiter(rate=20, per_conversation=1.0,
                                                                        sleep=fake.sleep, now=fake.monotonic),
                    jitter=lambda: 0.5, **kwargs)


def received(peer: BfPeer) -> Counter[str]:
    return Counter(c.conversation_id for c in peer.sent_activities())


async def test_fan_out_of_300_survives_a_restart_and_throttling(sessions: Any, gateway: TeamsGateway,
                                                                peer: BfPeer, khm: HmsConfig) -> None:
    peer.throttle_every = 5  # one request in five answers 429 with Retry-After
    clock = FixedClock(NOW)
    async with sessions() as s:
        emails = await add_people(s, peer, 300)
        assert await repo.enqueue(s, [row(e, f"prompt|{e}") for e in emails], NOW) == 300
        # planning the same fan-out again (a second tick, a second replica) adds nothing
        assert await repo.enqueue(s, [row(e, f"prompt|{e}") for e in emails], NOW) == 0

    crashing = CrashingSender(gateway, crash_after=120)
    first = delivery(sessions, crashing, clock, khm)
    with pytest.raises(Crash):
        await first.drain()

    # restart: a new process (new Delivery, new rate limiter); leases run out; retries come due
    second = delivery(sessions, gateway, clock, khm)
    for _ in range(40):
        clock.advance(dt.timedelta(minutes=5))
        await second.drain()
        async with sessions() as s:
            counts = await repo.outbox_counts(s)
        if set(counts) == {"sent"}:
            break
    assert counts == {"sent": 300}, counts
    got = received(peer)
    assert set(got) == {f"a:chat-{i:03d}" for i in range(300)}  # everyone got their prompt
    duplicates = {c: n for c, n in got.items() if n > 1}
    # the only duplicates allowed: messages Teams accepted that the dead process had not yet marked, at most one
    # per message in flight (its senders work concurrently)
    assert len(duplicates) <= first.concurrency and all(n == 2 for n in duplicates.values())
    print(f"\nfan-out: 300 recipients, {len(peer.rejected)} throttled requests retried, "
          f"{len(duplicates)} duplicate(s) from the crash window")
    assert len(peer.rejected) >= 300 // 5


async def test_retry_after_and_backoff_then_dead_letter(sessions: Any, gateway: TeamsGateway, peer: BfPeer,
                                                        khm: HmsConfig) -> None:
    peer.throttle_every = 1  # always 429
    peer.retry_after = "30"
    clock = FixedClock(NOW)
    async with sessions() as s:
        [email] = await add_people(s, peer, 1)
        await repo.enqueue(s, [row(email, "k1")], NOW)
    d = delivery(sessions, gateway, clock, khm, max_attempts=3, base_backoff=2.0)
    report = await d.run_once()
    assert report.retried == 1
    async with sessions() as s:
        msg = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.dedupe_key == "k1"))).one()
    assert msg.status == "retry" and msg.not_before == NOW + dt.timedelta(seconds=30)  # Retry-After honoured
    assert msg.last_error == "HTTP 429 (Retry-After 30.0s)"
    assert (await d.run_once()).sent == 0  # not due yet
    for _ in range(2):
        clock.advance(dt.timedelta(minutes=10))
        await d.run_once()
    async with sessions() as s:
        msg = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.dedupe_key == "k1"))).one()
        adviser_notes = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.kind == "undeliverable"))).all()
    assert (msg.status, msg.attempts) == ("dead", 3)
    assert [n.recipient_email for n in adviser_notes] == ["hanne.solberg@khm.uio.no"]


async def test_403_marks_the_conversation_inactive_and_tells_the_adviser(
        sessions: Any, gateway: TeamsGateway, peer: BfPeer, khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        await repo.upsert_conversation(s, "a:fatima", NOW, conversation_type="personal",
                                       service_url=peer.service_url, person_email="fatima.ali@khm.uio.no")
        await repo.enqueue(s, [row("fatima.ali@khm.uio.no", "k403")], NOW)
    peer.forbidden_conversations = {"a:fatima"}
    report = await delivery(sessions, gateway, clock, khm).run_once()
    assert report.dead == 1
    async with sessions() as s:
        ref = (await s.exec(select(m.ConversationRef))).one()
        [note] = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.kind == "undeliverable"))).all()
    assert ref.active is False
    assert "Fatima Ali" in json.loads(note.payload)["activity"]["summary"]


async def test_no_conversation_waits_and_tells_the_adviser_once(sessions: Any, gateway: TeamsGateway,
                                                                peer: BfPeer, khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        await repo.enqueue(s, [row("ola.strand@khm.uio.no", "a"), row("ola.strand@khm.uio.no", "b", "x")], NOW)
    report = await delivery(sessions, gateway, clock, khm).run_once()
    assert report.waiting == 2
    async with sessions() as s:
        notes = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.kind == "undeliverable"))).all()
        # once the bot can reach Ola (installed later), the waiting prompts go out
        await repo.upsert_conversation(s, "a:ola", NOW, conversation_type="personal", service_url=peer.service_url,
                                       person_email="ola.strand@khm.uio.no")
    assert len(notes) == 1
    clock.advance(dt.timedelta(hours=7))
    await delivery(sessions, gateway, clock, khm).drain()
    assert received(peer)["a:ola"] == 2


async def test_one_message_a_second_per_conversation(sessions: Any, gateway: TeamsGateway, peer: BfPeer,
                                                     khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    fake = VirtualTime()
    async with sessions() as s:
        [email] = await add_people(s, peer, 1)
        await repo.enqueue(s, [row(email, f"k{i}", f"melding {i}") for i in range(3)], NOW)
    d = Delivery(sessions, gateway, clock, khm,
                 limiter=RateLimiter(rate=20, per_conversation=1.0, sleep=fake.sleep, now=fake.monotonic))
    assert (await d.run_once()).sent == 3
    assert fake.slept == [1.0, 1.0]


async def test_app_wide_rate_holds_in_every_second_from_the_first() -> None:
    fake = VirtualTime()
    limiter = RateLimiter(rate=20, per_conversation=1.0, sleep=fake.sleep, now=fake.monotonic)
    times = []
    for i in range(100):
        await limiter.acquire(f"c{i}")
        times.append(fake.t)
    # the busiest one-second window (closed at both ends) starts at some send
    busiest = max(sum(1 for u in times if t <= u <= t + 1.0) for t in times)
    assert busiest == 20  # a bucket that started full let 40 out in the first second
    # and evenly, at the rate less its margin: the 100th slot 99 spacings after the first
    assert times[-1] == pytest.approx(99 * 1.05 / 20)


class StallingSender:
    """The real gateway, but after Teams accepted message number N this process stalls (a paused VM, a long
    garbage collection) for `stall` of the clock, during which another replica runs `meanwhile`."""

    def __init__(self, inner: TeamsGateway, clock: FixedClock, stall: dt.timedelta, after: int = 1) -> None:
        self.inner, self.clock, self.stall, self.after = inner, clock, stall, after
        self.meanwhile: Any = None
        self.sent = 0

    async def send_to(self, coords: Coordinates, activity: dict[str, Any]) -> str | None:
        result = await self.inner.send_to(coords, activity)
        self.sent += 1
        if self.sent >= self.after:
            self.clock.advance(self.stall)
            if self.meanwhile is not None:
                await self.meanwhile()
        return result

    async def send_to_channel(self, *args: Any) -> tuple[str, str | None]:
        return await self.inner.send_to_channel(*args)


async def outbox_rows(sessions: Any) -> list[m.OutboxMessage]:
    async with sessions() as s:
        return list((await s.exec(select(m.OutboxMessage).order_by(m.OutboxMessage.id))).all())


async def test_a_sender_whose_claim_was_taken_over_neither_sends_nor_marks(
        sessions: Any, gateway: TeamsGateway, peer: BfPeer, khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        emails = await add_people(s, peer, 3)
        await repo.enqueue(s, [row(e, f"prompt|{e}") for e in emails], NOW)
    stalling = StallingSender(gateway, clock, stall=dt.timedelta(minutes=3))  # longer than the lease
    # one sender: the messages it has not started when the pause comes must not go out (those in flight at once
    # when a process pauses, like those in flight when it dies, may go twice)
    first = delivery(sessions, stalling, clock, khm, concurrency=1)
    second = delivery(sessions, gateway, clock, khm)
    reports = []

    async def second_replica() -> None:
        stalling.meanwhile = None
        reports.append(await second.run_once())  # the first one's lease has run out: it takes the rows over

    stalling.meanwhile = second_replica
    lost = await first.run_once()

    # the message the stalled replica had sent before its lease ran out goes twice (like a crash after Teams
    # accepted it); nothing else does
    assert received(peer) == {"a:chat-000": 2, "a:chat-001": 1, "a:chat-002": 1}
    assert reports[0].sent == 3
    assert (lost.sent, lost.lost) == (0, 3)  # the stalled replica's mark is refused; the rest it does not send
    rows = await outbox_rows(sessions)
    assert [(r.status, r.attempts, r.claim_token, r.claimed_until) for r in rows] == [("sent", 1, None, None)] * 3
    # the stalled replica's send was accepted first (sent-1); the ids on record are the new claimant's
    assert [r.activity_id for r in rows] == ["sent-2", "sent-3", "sent-4"]


async def test_a_claim_is_renewed_when_its_lease_runs_low(sessions: Any, gateway: TeamsGateway, peer: BfPeer,
                                                         khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        emails = await add_people(s, peer, 3)
        await repo.enqueue(s, [row(e, f"prompt|{e}") for e in emails], NOW)
    # sends are slow (45 s of the clock each): the third starts with less than half the 120 s lease left
    slow = StallingSender(gateway, clock, stall=dt.timedelta(seconds=45))
    first = delivery(sessions, slow, clock, khm, concurrency=1)
    second = delivery(sessions, gateway, clock, khm)
    reports = []

    async def second_replica() -> None:
        if slow.sent == 3:  # during the third send, 135 s after the claim: it was renewed, so nothing to take
            reports.append(await second.run_once())

    slow.meanwhile = second_replica
    report = await first.run_once()
    assert received(peer) == {f"a:chat-{i:03d}": 1 for i in range(3)}
    assert (report.sent, report.lost) == (3, 0)
    assert reports[0].sent == 0


async def test_a_claim_takes_only_what_can_be_sent_within_its_lease(sessions: Any, gateway: TeamsGateway,
                                                                    peer: BfPeer, khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        emails = await add_people(s, peer, 10)
        await repo.enqueue(s, [row(e, f"prompt|{e}") for e in emails], NOW)
    # a 120 s lease, and each send may take up to the 30 s timeout after a second's wait: three per sender
    d = delivery(sessions, gateway, clock, khm, lease=dt.timedelta(seconds=120), send_timeout=30.0, concurrency=1)
    assert d.claim_size() == 3
    assert delivery(sessions, gateway, clock, khm, concurrency=4).claim_size() == 12
    assert delivery(sessions, gateway, clock, khm, concurrency=40).claim_size() == 50  # at most a batch
    assert (await d.run_once()).sent == 3
    assert (await d.drain()).sent == 7
    tokens = [r.claim_token for r in await outbox_rows(sessions)]
    assert tokens == [None] * 10  # every claim released with its outcome


async def test_lamu_summary_starts_a_thread_then_replies(sessions: Any, gateway: TeamsGateway, peer: BfPeer,
                                                         khm: HmsConfig) -> None:
    clock = FixedClock(NOW)
    async with sessions() as s:
        await repo.import_org(s, khm, NOW)
        await repo.upsert_conversation(s, "19:lamu@thread", NOW, conversation_type="channel",
                                       service_url=peer.service_url, teams_channel_id="19:lamu@thread",
                                       team_id="19:team@thread")
        await repo.remember_teams_user(s, "jonas.eide@khm.uio.no", "29:jonas", None, NOW)
        rows = []
        for floor in ("hm-1", "hm-2"):
            activity = card(f"Brannvernrunde 2027-Q1 – {floor}")
            activity["attachments"][0]["content"]["body"].append(
                {"type": "TextBlock", "text": "Ansvarlig: <at>Jonas Eide</at>"})
            activity["mention"] = {"email": "jonas.eide@khm.uio.no", "name": "Jonas Eide"}
            rows.append({"dedupe_key": f"fire_round:2027-Q1:{floor}|lamu-summary", "kind": "lamu_summary",
                         "payload": json.dumps({"target": {"kind": "lamu", "thread": "fire_round:2027-Q1",
                                                           "thread_title": "Brannvernrunde 2027-Q1"},
                                                "activity": activity})})
        await repo.enqueue(s, rows, NOW)
    await delivery(sessions, gateway, clock, khm).drain()
    creates = [c for c in peer.calls if c.path == "/v3/conversations"]
    assert len(creates) == 1 and creates[0].body["channelData"]["channel"]["id"] == "19:lamu@thread"
    replies = [c for c in peer.sent_activities() if c.conversation_id == "a:new"]
    assert len(replies) == 2
    entities = replies[0].body["attachments"][0]["content"]["msteams"]["entities"]
    assert entities == [{"type": "mention", "text": "<at>Jonas Eide</at>",
                         "mentioned": {"id": "29:jonas", "name": "Jonas Eide"}}]
    assert "mention" not in replies[0].body  # our marker never reaches Teams
