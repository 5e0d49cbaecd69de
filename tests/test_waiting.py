"""Messages that wait for a conversation the bot does not have yet go out at the next delivery tick once it is
known, not hours later: the adviser's digest once she writes to the bot (or installs it again in a chat she had
removed it from), a floor contact's prompt once a team install opens their chat, the LAMU summary once the bot
is added to the team with the LAMU channel. Through the
HTTP door against the local Bot Framework peer, on the bot's own clock; SQLite and PostgreSQL, and two replicas
on PostgreSQL (one learns the chat, the other sends; both learn it at once and it is sent once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import col, select

from bot.app import BOT, DELIVERY, Runtime, create_app
from hms.clock import FixedClock
from hms.config import HmsConfig
from storage import db, models as m, repo
from tests.conftest import oslo
from tests.fakes.bf_peer import BfPeer
from tests.fakes.virtual_time import VirtualTime
from tests.test_door import APP_ID, TENANT, activity, auth_settings, peer, post  # noqa: F401 (peer is a fixture)
from usecases import planning
from usecases.delivery import RateLimiter

HANNE = "hanne.solberg@khm.uio.no"  # the HMSB adviser
HANNE_AAD = "0a1b2c3d-0001-4000-8000-000000000001"
HANNE_FROM = {"id": "29:hanne", "name": "Hanne Solberg", "aadObjectId": HANNE_AAD}
HANNE_CHAT = "a:hanne-personal"
TICK = dt.timedelta(seconds=5)  # the delivery job's interval (Runtime.deliver_every)
TEAM = "19:general@thread.tacv2"
LAMU = "19:lamu@thread.tacv2"


@asynccontextmanager
async def replica(bf: BfPeer, url: str, khm: HmsConfig, clock: FixedClock) -> AsyncIterator[TestClient]:
    """The bot (`create_app`) on `url` and `clock`, the scheduler off: the test fires its ticks. Its limiter runs
    on virtual time, so a person's messages a second apart take no real seconds."""
    app = create_app(auth_settings(bf, Path("unused"), database_url=url), config=khm, clock=clock,
                     runtime=Runtime(scheduler=False))
    fake = VirtualTime()
    app[DELIVERY].limiter = RateLimiter(rate=40, sleep=fake.sleep, now=fake.monotonic)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def plan_tick(client: TestClient) -> None:
    """What the scheduler's planning job does."""
    bot = client.app[BOT]
    async with bot.sessions() as s:
        await planning.plan(s, bot.config, bot.rounds, bot.clock.now())


async def deliver_tick(client: TestClient) -> None:
    """What the scheduler's delivery job does."""
    await client.app[DELIVERY].drain()


async def say(client: TestClient, bf: BfPeer, id: str, **fields: Any) -> Any:
    """An activity through the door, with a valid token; the HTTP status must be 200."""
    response = await post(client, activity(bf, id=id, **fields), bf.mint(APP_ID))
    assert response.status == 200, await response.text()
    body = await response.text()
    return json.loads(body) if body else None


async def outbox(url: str, *where: Any) -> list[m.OutboxMessage]:
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as s:
            return list((await s.exec(select(m.OutboxMessage).where(*where).order_by(col(m.OutboxMessage.id)))).all())
    finally:
        await engine.dispose()


def posted_to(bf: BfPeer, conversation: str) -> list[dict[str, Any]]:
    """The cards the bot posted into a conversation."""
    return [c.body["attachments"][0]["content"] for c in bf.sent_activities()
            if c.conversation_id == conversation and c.body.get("attachments")]


def card_of(row: m.OutboxMessage) -> dict[str, Any]:
    return json.loads(row.payload)["activity"]["attachments"][0]["content"]  # type: ignore[no-any-return]


def team_install(bf: BfPeer, members: list[tuple[str, str]]) -> dict[str, Any]:
    """The bot is added to the LAMU team (General and LAMU channels) whose members are `members` (Teams id,
    e-mail); the conversationUpdate Teams sends for it comes from the adviser, who added it."""
    bf.team_channels = [{"id": TEAM}, {"id": LAMU, "name": "LAMU"}]
    bf.team_members = [{"id": tid, "name": email, "aadObjectId": None, "email": email, "userPrincipalName": email}
                         for tid, email in members]
    bf.chat_per_member = True
    return {"type": "conversationUpdate", "text": None, "conversation_id": TEAM, "from": HANNE_FROM,
            "membersAdded": [{"id": f"28:{APP_ID}"}],
            "conversation": {"id": TEAM, "conversationType": "channel", "tenantId": TENANT},
            "channelData": {"tenant": {"id": TENANT}, "team": {"id": TEAM}, "channel": {"id": TEAM}}}


async def learned_then_tick(learner: TestClient, sender: TestClient, bf: BfPeer, clock: FixedClock, id: str,
                            **fields: Any) -> dt.datetime:
    """20 s on, a conversation is learned from an activity at `learner`'s door; one delivery tick later `sender`
    delivers. Returns when the conversation was learned."""
    clock.advance(dt.timedelta(seconds=20))
    await say(learner, bf, id, **fields)
    learned = clock.now()
    clock.advance(TICK)
    await deliver_tick(sender)
    return learned


HANNE_WRITES = {"text": "hei", "conversation_id": HANNE_CHAT, "from": HANNE_FROM}


def start_fresh(url: str, first_day: dt.datetime) -> None:
    """The database's first day on record, as `hms-bot db upgrade` leaves it (the demo's 30 November 2026)."""
    assert db.record_first_migration(url, first_day)


async def test_the_advisers_digest_goes_out_at_the_next_tick_after_she_first_writes(peer: BfPeer, db_url: str,  # noqa: F811
                                                                                   khm: HmsConfig) -> None:
    start_fresh(db_url, oslo(2026, 11, 30, 9))
    monday = oslo(2026, 12, 7, 9)  # the digest's day
    clock = FixedClock(monday)
    async with replica(peer, db_url, khm, clock) as bot:
        await plan_tick(bot)
        await deliver_tick(bot)
        digest, = await outbox(db_url, m.OutboxMessage.kind == "digest")
        assert (digest.recipient_email, digest.status, digest.last_error) == (HANNE, "retry", repo.WAITING)
        assert digest.not_before >= monday + dt.timedelta(hours=1)  # waiting: no chat with her yet

        learned = await learned_then_tick(bot, bot, peer, clock, "hanne-1", **HANNE_WRITES)

    digest, = await outbox(db_url, m.OutboxMessage.kind == "digest")
    assert digest.status == "sent"
    assert digest.sent_at == learned + TICK  # the next tick after the chat was learned, not hours later
    assert card_of(digest) in posted_to(peer, HANNE_CHAT)
    # what waited for her (the digest, the notices about people the bot cannot reach) went out; others still wait
    assert not await outbox(db_url, m.OutboxMessage.recipient_email == HANNE, m.OutboxMessage.status != "sent")
    others = await outbox(db_url, m.OutboxMessage.recipient_email != HANNE)
    assert others and all(r.status == "retry" and r.not_before > learned + dt.timedelta(hours=1) for r in others)


async def test_a_chat_that_comes_back_releases_what_waited_for_it(peer: BfPeer, db_url: str,  # noqa: F811
                                                                   khm: HmsConfig) -> None:
    """The adviser had a chat with the bot and removed the app; the digest waits. She installs it again in the
    same conversation (known to the bot, linked to her already): the digest goes out at the next tick."""
    start_fresh(db_url, oslo(2026, 11, 30, 9))
    clock = FixedClock(oslo(2026, 12, 4, 15))
    async with replica(peer, db_url, khm, clock) as bot:
        await say(bot, peer, "hanne-1", **HANNE_WRITES)
        await say(bot, peer, "hanne-2", type="installationUpdate", text=None, action="remove",
                  conversation_id=HANNE_CHAT, **{"from": HANNE_FROM})
        clock.current = oslo(2026, 12, 7, 9)
        await plan_tick(bot)
        await deliver_tick(bot)
        digest, = await outbox(db_url, m.OutboxMessage.kind == "digest")
        assert (digest.status, digest.last_error) == ("retry", repo.WAITING)
        learned = await learned_then_tick(bot, bot, peer, clock, "hanne-3", type="installationUpdate", text=None,
                                          action="add", conversation_id=HANNE_CHAT, **{"from": HANNE_FROM})
    digest, = await outbox(db_url, m.OutboxMessage.kind == "digest")
    assert (digest.status, digest.sent_at) == ("sent", learned + TICK)
    assert card_of(digest) in posted_to(peer, HANNE_CHAT)


def _press(card: dict[str, Any], verb: str, answers: dict[str, str]) -> dict[str, Any]:
    action = next(a for a in card["actions"] if a.get("verb") == verb)
    return {"action": {"type": "Action.Execute", "verb": verb, "data": {**action["data"], **answers}},
            "trigger": "manual"}


async def test_a_team_install_releases_the_lamu_summary_and_the_chats_it_opens(peer: BfPeer, db_url: str,  # noqa: F811
                                                                              khm: HmsConfig) -> None:
    """The fire round is prompted on 10 December; no floor contact has a chat with the bot. Fatima writes to it:
    her prompt goes out at the next tick. She submits her round: the LAMU summary waits for the team, the
    adviser's copy for her chat. The bot is added to the LAMU team (the adviser and Ola Strand are members): the
    summary, the adviser's copy and Ola's prompt go out at the next tick; Lars, in no team, still waits."""
    start_fresh(db_url, oslo(2026, 11, 30, 9))
    prompted = oslo(2026, 12, 10, 9)
    clock = FixedClock(prompted)
    ola_prompt = m.OutboxMessage.dedupe_key.startswith("fire_round:2026-Q4:hm-u|")  # type: ignore[attr-defined]
    async with replica(peer, db_url, khm, clock) as bot:
        await plan_tick(bot)
        await deliver_tick(bot)
        prompts = await outbox(db_url, m.OutboxMessage.kind == "prompt")
        assert {"fatima.ali@khm.uio.no", "ola.strand@khm.uio.no"} <= {p.recipient_email for p in prompts}
        assert all(p.status == "retry" and p.last_error == repo.WAITING for p in prompts)

        # Fatima writes: her chat is known, her prompt goes out at the next tick
        learned = await learned_then_tick(bot, bot, peer, clock, "fatima-1", text="start brannvernrunde")
        fatima, = await outbox(db_url, m.OutboxMessage.kind == "prompt",
                               m.OutboxMessage.recipient_email == "fatima.ali@khm.uio.no")
        assert (fatima.status, fatima.sent_at) == ("sent", learned + TICK)

        # she submits the round: the summary and the adviser's copy have nowhere to go yet
        form = next(c for c in posted_to(peer, "a:fatima-personal")
                    if any(a.get("verb") == "round.page" for a in c.get("actions", [])))
        answers = {f"a:{i.key}": "ok" for i in khm.checklist("fire_round").items}
        page = await say(bot, peer, "fatima-2", type="invoke", text=None, name="adaptiveCard/action",
                         value=_press(form, "round.page", answers))
        done = await say(bot, peer, "fatima-3", type="invoke", text=None, name="adaptiveCard/action",
                         value=_press(page["value"], "round.submit", answers))
        assert "actions" not in done["value"]  # the read-only card: submitted
        clock.advance(TICK)
        await deliver_tick(bot)
        summary, = await outbox(db_url, m.OutboxMessage.kind == "lamu_summary")
        copy, = await outbox(db_url, m.OutboxMessage.kind == "documentation")
        assert summary.status == copy.status == "retry"

        # the bot is added to the LAMU team: the LAMU channel and chats with its members are learned
        members = [("29:hanne", HANNE), ("29:ola", "ola.strand@khm.uio.no")]
        installed = await learned_then_tick(bot, bot, peer, clock, "team-1", **team_install(peer, members))

    summary, = await outbox(db_url, m.OutboxMessage.kind == "lamu_summary")
    copy, = await outbox(db_url, m.OutboxMessage.kind == "documentation")
    ola, = await outbox(db_url, ola_prompt, m.OutboxMessage.kind == "prompt")
    for row in (summary, copy, ola):
        assert (row.status, row.sent_at) == ("sent", installed + TICK), row.dedupe_key
    assert card_of(copy) in posted_to(peer, "a:29:hanne")
    assert card_of(ola) in posted_to(peer, "a:29:ola")
    thread = [c for c in peer.calls if c.path == "/v3/conversations" and (c.body.get("channelData") or {}).get(
        "channel", {}).get("id") == LAMU]
    assert len(thread) == 1  # the summary's thread was started in the LAMU channel, not General
    lars = await outbox(db_url, m.OutboxMessage.recipient_email == "lars.bakke@khm.uio.no")
    assert all(r.status == "retry" and r.not_before > installed + dt.timedelta(hours=1) for r in lars)


async def test_a_chat_learned_while_the_delivery_finds_none_is_not_left_waiting(
        peer: BfPeer, db_url: str, khm: HmsConfig, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The delivery claims the digest and finds no chat with the adviser; before it records the waits, her first
    message is handled (the chat is stored, and there is nothing waiting to release yet). The delivery looks
    again once the waits are recorded: the digest goes out in that tick, not six hours later."""
    start_fresh(db_url, oslo(2026, 11, 30, 9))
    clock = FixedClock(oslo(2026, 12, 7, 9))
    async with replica(peer, db_url, khm, clock) as bot:
        await plan_tick(bot)
        fenced = repo.fenced_update
        landed: list[bool] = []

        async def her_message_lands_first(session: Any, msg: m.OutboxMessage, **values: object) -> bool:
            if values.get("last_error") == repo.WAITING and not landed:  # before the claim records any wait
                landed.append(True)
                await say(bot, peer, "hanne-1", **HANNE_WRITES)
            return await fenced(session, msg, **values)

        monkeypatch.setattr(repo, "fenced_update", her_message_lands_first)
        await deliver_tick(bot)
        assert landed
        monkeypatch.setattr(repo, "fenced_update", fenced)
        learned = clock.now()
        clock.advance(TICK)
        await deliver_tick(bot)

    digest, = await outbox(db_url, m.OutboxMessage.kind == "digest")
    # the delivery that found no chat sees it when it looks again, and sends the digest in that same tick
    assert (digest.status, digest.sent_at) == ("sent", learned)
    assert card_of(digest) in posted_to(peer, HANNE_CHAT)


@pytest.mark.postgres
async def test_a_chat_learned_by_one_replica_is_sent_by_another(peer: BfPeer, postgres_url: str,  # noqa: F811
                                                                 khm: HmsConfig) -> None:
    from tests.conftest import _clear

    _clear(postgres_url)
    start_fresh(postgres_url, oslo(2026, 11, 30, 9))
    clock = FixedClock(oslo(2026, 12, 7, 9))
    async with replica(peer, postgres_url, khm, clock) as a, replica(peer, postgres_url, khm, clock) as b:
        await plan_tick(a)
        await deliver_tick(b)
        learned = await learned_then_tick(a, b, peer, clock, "hanne-1", **HANNE_WRITES)  # A learns, B sends
    digest, = await outbox(postgres_url, m.OutboxMessage.kind == "digest")
    assert (digest.status, digest.sent_at) == ("sent", learned + TICK)
    assert posted_to(peer, HANNE_CHAT).count(card_of(digest)) == 1


@pytest.mark.postgres
async def test_two_replicas_learning_the_chat_at_once_send_what_waited_once(peer: BfPeer, postgres_url: str,  # noqa: F811
                                                                           khm: HmsConfig) -> None:
    """Teams sends the install and the adviser's first message to two replicas at the same moment; both store
    the chat and release what waited for it, and both deliver at the next tick: each message goes out once."""
    from tests.conftest import _clear

    _clear(postgres_url)
    start_fresh(postgres_url, oslo(2026, 11, 30, 9))
    clock = FixedClock(oslo(2026, 12, 7, 9))
    async with replica(peer, postgres_url, khm, clock) as a, replica(peer, postgres_url, khm, clock) as b:
        await plan_tick(a)
        await asyncio.gather(deliver_tick(a), deliver_tick(b))
        waiting = await outbox(postgres_url, m.OutboxMessage.recipient_email == HANNE)
        assert len(waiting) > 1 and all(r.last_error == repo.WAITING for r in waiting)
        clock.advance(dt.timedelta(seconds=20))
        await asyncio.gather(
            say(a, peer, "hanne-install", type="installationUpdate", text=None, action="add",
                conversation_id=HANNE_CHAT, **{"from": HANNE_FROM}),
            say(b, peer, "hanne-1", **HANNE_WRITES))
        learned = clock.now()
        clock.advance(TICK)
        await asyncio.gather(deliver_tick(a), deliver_tick(b))
    rows = await outbox(postgres_url, m.OutboxMessage.recipient_email == HANNE)
    assert {r.id for r in rows} == {r.id for r in waiting}
    assert all((r.status, r.sent_at, r.attempts) == ("sent", learned + TICK, 2) for r in rows)
    posted = posted_to(peer, HANNE_CHAT)
    for row in rows:
        assert posted.count(card_of(row)) == 1, row.dedupe_key
