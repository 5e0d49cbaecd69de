"""Turns under load through the HTTP door (issue 10.1): fifty simultaneous round starts are all answered, no
turn ever holds more than one database connection, the turns' pool has one for every admitted turn, and a turn
over HMS_MAX_TURNS waits briefly and then gets 503 with Retry-After, never a 500 after the pool's timeout.

Connections are counted with SQLAlchemy's pool events, per asyncio task (each HTTP request's turn runs in one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.admission import Admission, ConnectionBudget
from bot.app import ADMISSION, BOT, DELIVERY, Runtime, create_app
from hms.config import HmsConfig
from hms.wheel import find_occurrence
from tests.fakes.bf_peer import BfPeer
from tests.test_door import APP_ID, activity, auth_settings, door, peer, post  # noqa: F401 (peer is a fixture)
from tests.test_first_touch import OCC, _page_one_press

STARTS = 50


class PoolWatch:
    """Counts connections checked out of the given pools, per asyncio task and in all.

    A connection is counted against the task that checked it out until it is checked in, wherever that happens
    (SQLAlchemy closes the connection of an `async with engine.begin()` block in a shielded task of its own)."""

    def __init__(self, *pools: Any):
        self.owner: dict[Any, Any] = {}  # connection record -> the task that checked it out
        self.held: Counter[Any] = Counter()
        self.most: Counter[Any] = Counter()  # the most one task held at once
        self.out = 0
        self.peak = 0
        for pool in pools:
            event.listen(pool, "checkout", self._checkout)
            event.listen(pool, "checkin", self._checkin)

    def _checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        task = asyncio.current_task()
        self.owner[record] = task
        self.held[task] += 1
        self.most[task] = max(self.most[task], self.held[task])
        self.out += 1
        self.peak = max(self.peak, self.out)

    def _checkin(self, _dbapi: Any, record: Any) -> None:
        if record in self.owner:  # not one checked out before the watch began
            self.held[self.owner.pop(record)] -= 1
            self.out -= 1

    def tasks_by_most_held(self) -> dict[int, int]:
        return dict(Counter(self.most.values()))


def _watch(client: Any) -> PoolWatch:
    """A watch over every pool a turn may draw on: the turns' engine, and on SQLite the inline readers' own."""
    bot = client.app[BOT]
    pools = [bot.engine.sync_engine.pool]
    if bot.read_sessions.inline:
        pools.append(bot.read_sessions._sync.pool)
    return PoolWatch(*pools)


def _start(peer: BfPeer, i: int) -> dict[str, Any]:  # noqa: F811
    """'start brannvernrunde' from a chat the bot has not seen yet (stored, and welcomed, in the same turn)."""
    return activity(peer, id=f"start-{i}", text="start brannvernrunde", conversation_id=f"a:fatima-{i}")


def _checklist_cards(peer: BfPeer, conversation_id: str) -> list[dict[str, Any]]:  # noqa: F811
    cards = [a["content"] for c in peer.sent_activities() if c.conversation_id == conversation_id
             for a in c.body.get("attachments") or []]
    return [c for c in cards if any(a.get("verb") == "round.page" for a in c.get("actions") or [])]


async def test_fifty_simultaneous_round_starts_are_all_answered(peer: BfPeer, db_url: str,  # noqa: F811
                                                               khm: HmsConfig) -> None:
    """Fifty floor-contact chats say "start brannvernrunde" at the same moment: every one is answered 200 with
    the checklist card (on PostgreSQL 36 of 50 were 500 after a 30 s wait: each turn held one pooled
    connection for its plain-row reads and waited for a second for its entity reads)."""
    settings = auth_settings(peer, Path("unused"), database_url=db_url, queue_timeout=120)
    async with door(settings, khm) as client:
        watch = _watch(client)
        token = peer.mint(APP_ID)
        started = time.perf_counter()
        responses = await asyncio.gather(*(post(client, _start(peer, i), token) for i in range(STARTS)))
        took = time.perf_counter() - started
        statuses = [r.status for r in responses]
        admission = client.app[ADMISSION]
    print(f"\n[round starts] {STARTS} at once on {db_url.split(':')[0]}: statuses {dict(Counter(statuses))} in "
          f"{took:.1f} s; at most {admission.most_in_flight} turns in flight; peak connections checked out "
          f"{watch.peak}; tasks by the most connections they held at once {watch.tasks_by_most_held()}")
    assert statuses == [200] * STARTS, statuses
    for i in range(STARTS):
        assert len(_checklist_cards(peer, f"a:fatima-{i}")) == 1, i


async def test_a_turn_never_holds_more_than_one_connection(peer: BfPeer, db_url: str,  # noqa: F811
                                                          khm: HmsConfig) -> None:
    """Round starts, first-page presses, questions and help, all at once, with few turns admitted: no task ever
    holds two connections of the turns' pools, and the turns never hold more than one each of those admitted."""
    occ = find_occurrence(khm, OCC)
    assert occ is not None
    max_turns = 4
    settings = auth_settings(peer, Path("unused"), database_url=db_url, max_turns=max_turns, queue_timeout=120)
    async with door(settings, khm) as client:
        watch = _watch(client)
        rounds = client.app[BOT].rounds
        token = peer.mint(APP_ID)
        bodies = []
        for i in range(10):
            card = rounds.occurrence_card(occ, "nb-NO", nonce=f"press-{i:02d}")
            bodies += [
                _start(peer, i),
                activity(peer, id=f"press-{i}", type="invoke", text=None, name="adaptiveCard/action",
                         value=_page_one_press(card, khm, "ok"), conversation_id=f"a:fatima-{i}"),
                activity(peer, id=f"due-{i}", text="hva forfaller denne måneden?", conversation_id=f"a:due-{i}"),
                activity(peer, id=f"help-{i}", text="hjelp", conversation_id="a:fatima-personal"),
            ]
        responses = await asyncio.gather(*(post(client, body, token) for body in bodies))
        statuses = Counter(r.status for r in responses)
    print(f"\n[connections per turn] {len(bodies)} turns, HMS_MAX_TURNS={max_turns}: statuses {dict(statuses)}; "
          f"tasks by the most connections they held at once {watch.tasks_by_most_held()}; peak {watch.peak}")
    assert statuses == {200: len(bodies)}
    assert len(watch.most) >= 20  # at least the starts and the presses took a connection (answers may be kept)
    assert max(watch.most.values()) == 1, watch.tasks_by_most_held()
    # at most one each for the admitted turns, plus the retry ledger's writer (on PostgreSQL)
    assert watch.peak <= max_turns + 1


class _Held:
    """Wraps the bot's turn: the activity with id `held` waits inside its turn until `release` is set."""

    def __init__(self, inner: Callable[[Any], Awaitable[None]], held: str):
        self.inner = inner
        self.held = held
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, turn: Any) -> None:
        if turn.activity.get("id") == self.held:
            self.entered.set()
            await self.release.wait()
        await self.inner(turn)


async def test_a_turn_over_the_limit_gets_503_with_retry_after_and_its_retry_is_handled(
        peer: BfPeer, db_url: str, khm: HmsConfig, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """One turn admitted, no queueing: while it runs, the next is refused at once with 503 and Retry-After (Bot
    Framework retries it), stores nothing, and its retry after the first turn ended is answered as usual."""
    settings = auth_settings(peer, Path("unused"), database_url=db_url, max_turns=1, queue_timeout=0)
    async with door(settings, khm) as client:
        bot = client.app[BOT]
        held = bot.on_turn = _Held(bot.on_turn, "first")
        token = peer.mint(APP_ID)
        first = asyncio.create_task(post(client, activity(peer, id="first", text="hjelp"), token))
        await held.entered.wait()
        second = activity(peer, id="second", text="start brannvernrunde", conversation_id="a:fatima-2")
        refused = await post(client, second, token)
        assert refused.status == 503, await refused.text()
        assert refused.headers["Retry-After"] == "1"
        assert (await refused.json())["error"]["code"] == "busy"
        assert "Traceback" not in await refused.text()
        assert "refused a turn with 503" in caplog.text
        assert _checklist_cards(peer, "a:fatima-2") == []
        held.release.set()
        assert (await first).status == 200
        retried = await post(client, second, token)  # Teams' retry of the refused activity
        assert retried.status == 200
        assert len(_checklist_cards(peer, "a:fatima-2")) == 1
        assert client.app[ADMISSION].refused == 1


async def test_a_turn_over_the_limit_queues_until_a_turn_ends(peer: BfPeer, db_path: Path,  # noqa: F811
                                                             khm: HmsConfig) -> None:
    """Within HMS_QUEUE_TIMEOUT a turn over the limit waits, holding no connection, and runs when one ends."""
    settings = auth_settings(peer, db_path, max_turns=1, queue_timeout=120)
    async with door(settings, khm) as client:
        bot = client.app[BOT]
        admission = client.app[ADMISSION]
        held = bot.on_turn = _Held(bot.on_turn, "first")
        watch = _watch(client)
        queued = asyncio.Event()
        enter = admission.enter

        async def entering() -> bool:
            queued.set()
            return await enter()

        token = peer.mint(APP_ID)
        first = asyncio.create_task(post(client, activity(peer, id="first", text="hjelp"), token))
        await held.entered.wait()
        admission.enter = entering  # type: ignore[method-assign]
        second = asyncio.create_task(post(client, activity(peer, id="second", text="start brannvernrunde",
                                                           conversation_id="a:fatima-2"), token))
        await queued.wait()
        assert admission.queued == 1 and not second.done()
        assert sum(watch.held.values()) == 0  # neither the held turn nor the waiting one holds a connection
        held.release.set()
        assert [(await first).status, (await second).status] == [200, 200]
        assert admission.refused == 0 and admission.most_in_flight == 1
        assert len(_checklist_cards(peer, "a:fatima-2")) == 1


async def test_a_turn_that_waited_out_the_queue_timeout_is_refused() -> None:
    admission = Admission(limit=1, wait=0.01)
    assert await admission.enter()
    assert not await admission.enter()  # the first never ends within the wait
    assert (admission.refused, admission.queued, admission.in_flight) == (1, 0, 1)
    admission.leave()
    assert await admission.enter()


@pytest.mark.postgres
def test_the_pools_are_sized_from_the_admitted_turns(peer: BfPeer, postgres_url: str, khm: HmsConfig,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The turns' pool has a connection for every admitted turn plus the ledger's, /readyz's and the probe's;
    the scheduler's jobs have their own two; the log tells the admin the total per replica."""
    caplog.set_level(logging.INFO, logger="hms.http")
    settings = auth_settings(peer, Path("unused"), database_url=postgres_url, max_turns=7)
    budget = ConnectionBudget(turns=7)
    assert (budget.turns_pool, budget.total) == (12, 15)
    app = create_app(settings, config=khm, runtime=Runtime(scheduler=False))
    assert app[BOT].engine.sync_engine.pool.size() == budget.turns_pool
    assert app[DELIVERY].sessions.kw["bind"].sync_engine.pool.size() == budget.jobs

    async def start_and_stop() -> None:
        from aiohttp.test_utils import TestServer

        async with TestServer(app, host="127.0.0.1"):
            pass

    asyncio.run(start_and_stop())
    assert "at most 15 PostgreSQL connections: 7 for turns (HMS_MAX_TURNS)" in caplog.text
