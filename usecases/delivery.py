"""The delivery loop: send what the outbox holds, within Teams' limits, and record what happened.

- A message is in the database before it is sent and marked sent (with the Teams activity id) after. The one
  window for a duplicate is a crash between Teams accepting a message and our mark: on restart that message is
  claimed again once its lease has run out and is sent a second time. A process has at most `concurrency`
  messages in that window at once. Nothing else can send twice.
- Limits: at most one message a second per conversation, and a tenant-wide rate (default 40/s, below Teams' 50
  requests/s per app per tenant, which replies to turns also draw on) that holds in every one-second window from
  the first message on. With several replicas on PostgreSQL the rate is one schedule they share (a row that each
  send moves on), not a share per replica; a person is sent to by one claimant at a time (see `claim_outbox`).
- Sends to different conversations go out concurrently (`concurrency` senders, default 20), so the rate is the
  tenant's rather than one over the connector's latency. A claim's messages are grouped by conversation; each
  sender takes a group and sends it in order on a database session of its own, holding no connection while it
  waits for the limit or the network; the process claims again before the senders run out.
- 429, 412, 502, 504 (and an unreachable or silent connector) are retried with exponential backoff and jitter,
  honouring Retry-After; after `max_attempts` a message is dead and the adviser can see it.
- 403 (bot removed or blocked) and 404 (conversation gone) mark the conversation inactive and tell the adviser
  whose messages cannot be delivered.
- A message to someone the bot has no chat with yet (or to the LAMU channel before the bot is in the team) waits,
  and the adviser is told once. Learning the conversation releases it (`repo.upsert_conversation`, from any
  activity or a team install): it goes out at the next delivery tick, not hours later.
- Claims are leases with a fence. With several replicas on PostgreSQL, rows are claimed with FOR UPDATE SKIP
  LOCKED, a few at a time: no more than the process's senders can send within the lease if every send took the
  whole send timeout.
  Each claim carries a fresh token; before each send the claimant checks it still has at least half a lease
  (renewing it through the token when not; the lease is at least twice the send timeout), and it records an
  outcome only `WHERE id AND claim_token` match. A sender that lost a row (its lease ran out, say in a long
  pause) neither sends it nor marks it: that update changes nothing and is logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cards.common import message
from cards.notices import NoticeView, notice
from hms.clock import Clock
from hms.config import HmsConfig
from hms.i18n import t
from storage import models as m, repo
from usecases.ports import Coordinates, DeliveryError

log = logging.getLogger("hms.delivery")

T = TypeVar("T")

RETRYABLE = {0, 412, 429, 500, 502, 503, 504}
# A message to someone the bot cannot reach yet is released as soon as the chat becomes known; else it is tried
# again after this, until its attempts run out (`max_attempts`): a backstop, not the way it normally goes out.
WAIT = dt.timedelta(hours=6)
GONE = {403, 404}


class Sender(Protocol):
    async def send_to(self, coords: Coordinates, activity: dict[str, Any]) -> str | None: ...

    async def send_to_channel(self, service_url: str, tenant_id: str | None, teams_channel_id: str,
                              activity: dict[str, Any]) -> tuple[str, str | None]: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    waiting: int = 0
    lost: int = 0  # claims another sender took over after their lease ran out: nothing recorded for them here
    late: int = 0  # rate slots given up because a sender reached them too late (a busy event loop): not work done


REPORTED = ("sent", "retried", "dead", "waiting", "lost")


class Slots(Protocol):
    """The tenant's send schedule: slots `spacing` seconds apart, one per message."""

    shared: bool  # other processes send on this schedule too (replicas on PostgreSQL)

    async def reserve(self, earliest: float, spacing: float) -> float:
        """Take the next free slot at or after `earliest` and return it (seconds on the limiter's clock)."""
        ...


@dataclass
class LocalSlots:
    """The schedule kept in this process: for one process (SQLite), where the tenant's limit is the process's."""

    _next: float = float("-inf")
    shared: bool = False

    async def reserve(self, earliest: float, spacing: float) -> float:
        """Take the next free slot at or after `earliest`."""
        slot = max(self._next, earliest)
        self._next = slot + spacing
        return slot


@dataclass
class SharedSlots:
    """The schedule every replica shares (PostgreSQL): one row that each send moves on with one statement, so the
    tenant's rate holds whatever the number of replicas, and one replica alone may use all of it. Times are the
    replicas' wall clocks, which NTP keeps within milliseconds of each other."""

    engine: AsyncEngine
    name: str = "tenant"
    horizon: float = 60.0  # a next slot this far beyond the database's clock was left by a clock that ran ahead
    shared: bool = True

    async def reserve(self, earliest: float, spacing: float) -> float:
        """Take the next free slot at or after `earliest` from the shared row."""
        return await repo.reserve_slot(self.engine, self.name, earliest, spacing, self.horizon)


@dataclass
class RateLimiter:
    """At most `rate` messages in any one-second window from the very first message on, across every sender that
    shares `slots`, and a minimum spacing per conversation (kept by this process; across replicas the claims
    keep it, see `claim_outbox`).

    Each message takes a slot of the schedule, (1 + margin) / rate seconds after the previous one, and starts
    within `margin` * 0.8 seconds of it: a sender that wakes up later than that (a busy event loop, a stalled
    process) gives its slot up and takes a new one. So even late senders never put more than `rate` messages in a
    window, and the rate reached is 1 / (1 + margin) of the limit (95%). The send starts right after the check,
    with no await in between."""

    rate: float = 40.0
    per_conversation: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], float] = time.monotonic  # shared slots need a clock every replica shares: time.time
    slots: Slots = field(default_factory=LocalSlots)
    margin: float = 0.05
    late: int = 0  # slots given up because the sender reached them too late
    _last: dict[str, float] = field(default_factory=dict, init=False)
    _taking: set[str] = field(default_factory=set, init=False)
    _lead: float = field(default=0.0, init=False)  # how long taking a slot usually takes (moving average)

    @property
    def spacing(self) -> float:
        """Seconds between two slots."""
        return (1 + self.margin) / self.rate

    async def acquire(self, conversation: str) -> None:
        """Wait until a message to `conversation` may go out, and count it as sent now."""
        while True:
            now = self.now()
            last = self._last.get(conversation)
            if conversation in self._taking:  # another sender of this process is about to send to it
                wait = self.per_conversation
            else:
                wait = 0.0 if last is None else last + self.per_conversation - now
            if wait <= 0:
                break
            await self.sleep(wait)
        self._taking.add(conversation)
        try:
            tolerance = 0.8 * self.margin
            while True:
                # asked for no earlier than a slot usually takes to get (a database round trip): else, with no
                # queue, the slot would be the moment we asked, already past when the answer comes. Usually, not at
                # most: a slot asked for further ahead than the queue leaves the schedule a gap nobody sends in.
                asked = self.now()
                slot = await self.slots.reserve(asked + self._lead, self.spacing)
                self._lead += 0.1 * (self.now() - asked - self._lead)
                now = await self._until(slot)
                if now <= slot + tolerance:
                    break
                self.late += 1
                log.debug("send slot given up: reached %.0f ms late", (now - slot) * 1000)
            self._last[conversation] = now
        finally:
            self._taking.discard(conversation)

    async def _until(self, moment: float) -> float:
        """Sleep until `moment`; returns the time it is then."""
        now = self.now()
        while now < moment:
            await self.sleep(moment - now)
            now = self.now()
        return now


def tenant_limiter(engine: AsyncEngine, rate: float) -> RateLimiter:
    """The limiter for a deployment: one schedule shared by all replicas on PostgreSQL, the process's own on
    SQLite (which serves one process)."""
    if engine.dialect.name == "postgresql":
        return RateLimiter(rate=rate, now=time.time, slots=SharedSlots(engine))
    return RateLimiter(rate=rate)


class Delivery:
    """Claims due outbox messages a few at a time and sends them, `concurrency` at once to different
    conversations; only a message's current claimant records what became of it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], sender: Sender, clock: Clock,
                 config: HmsConfig, *, limiter: RateLimiter | None = None, concurrency: int = 20,
                 max_attempts: int = 6, base_backoff: float = 2.0, max_backoff: float = 3600.0, batch: int = 50,
                 lease: dt.timedelta = dt.timedelta(seconds=120), send_timeout: float = 30.0,
                 jitter: Callable[[], float] = random.random,
                 observe: Callable[[str, int | None], None] | None = None):
        if lease.total_seconds() < 2 * send_timeout:
            raise ValueError("the delivery lease must be at least twice the send timeout")
        if concurrency < 1:
            raise ValueError("the delivery needs at least one sender")
        self.sessions = sessions
        self.sender = sender
        self.clock = clock
        self.config = config
        self.limiter = limiter or RateLimiter()
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.batch = batch
        self.lease = lease
        self.send_timeout = send_timeout
        self.jitter = jitter
        # told each outcome ("sent", "retried", "dead", "waiting", "lost") with the connector's HTTP status (200
        # for sent, 0 for no answer, None when nothing was sent): the edge counts them for /metrics
        self.observe = observe or _ignore

    def claim_size(self) -> int:
        """How many messages one claim takes: what the process's senders can send within the lease even if each
        message waited its turn for the rate (the senders share it) or the conversation and then took the whole
        send timeout. A claim of 50 rows sent one by one outlived its lease with a slow connector, and another
        replica took and sent rows still waiting in the first one's batch. (Replicas share the rate too, so a turn
        can take longer; the lease is renewed before each send, and a row another sender took is not sent.)"""
        turn = max(self.concurrency / self.limiter.rate, self.limiter.per_conversation)
        per_sender = int(self.lease.total_seconds() // (self.send_timeout + turn))
        return max(1, min(self.batch, self.concurrency * per_sender))

    async def run_once(self) -> DeliveryReport:
        """Claim a few due messages and send them (to different conversations at once)."""
        return await self._deliver_claims(1)

    async def drain(self, rounds: int = 1000) -> DeliveryReport:
        """Send until nothing due is left (at most `rounds` claims)."""
        return await self._deliver_claims(rounds)

    async def _deliver_claims(self, claims: int) -> DeliveryReport:
        """Up to `claims` claims, sent by `concurrency` senders. A claim's messages are grouped by conversation and
        each sender takes a group and sends it in order on a database session of its own; the next claim is made
        while the last groups of one are still being sent, so no sender waits for a claim in the middle of a
        fan-out. One claim at a time per process: claims are few (a claim is about what the senders can send in a
        second or two), so replicas hardly ever queue for the claim lock."""
        total = DeliveryReport()
        late = self.limiter.late
        queue: deque[list[_Message]] = deque()
        claim: asyncio.Task[int] | None = None
        left, empty, sending, stop = claims, False, 0, False

        async def claim_into_queue() -> int:
            groups, claimed = await self._claim(total)
            queue.extend(groups)
            return claimed

        async def take() -> list[_Message] | None:
            nonlocal claim, left, empty
            while not stop:
                if claim is None and left > 0 and len(queue) < self.concurrency and not empty:
                    left -= 1
                    claim = asyncio.create_task(claim_into_queue())
                if queue:
                    return queue.popleft()
                if claim is not None:
                    task = claim
                    claimed = await task
                    if claim is task:  # the first sender back files the outcome
                        claim, empty = None, claimed == 0
                    continue
                # Nothing claimable. Messages still due are held back by the one-a-second rule (their person was
                # just sent to, or is being sent to, perhaps by another replica): the last sender waits for them.
                if left == 0 or sending > 0 or not await self._due():
                    return None
                await self.limiter.sleep(self.limiter.per_conversation)
                empty = False
            return None

        async def sender() -> None:
            nonlocal sending, stop
            try:
                while (group := await take()) is not None:
                    sending += 1
                    try:
                        await self._send_group(group, total)
                    finally:
                        sending -= 1
            except Exception:
                stop = True  # the others finish the conversation in hand (none of it is sent twice), then stop
                raise

        tasks = {asyncio.create_task(sender()) for _ in range(self.concurrency)}
        errors: list[BaseException] = []
        try:
            pending = tasks
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    error = task.exception()
                    if error is not None and not isinstance(error, Exception):
                        raise error  # a process-ending error: the other senders end at once too
                    if error is not None:
                        errors.append(error)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if claim is not None:
                claim.cancel()
                await asyncio.gather(claim, return_exceptions=True)
        if errors:
            raise errors[0]
        total.late = self.limiter.late - late
        return total

    async def _due(self) -> bool:
        async with self.sessions() as s:
            return await repo.outbox_due(s, self.clock.now())

    async def _claim(self, report: DeliveryReport) -> tuple[list[list[_Message]], int]:
        """One claim: its messages grouped by conversation (in claim order), and how many rows it took. Those to
        people the bot cannot reach yet are put back here. With other replicas sending too, a person sent to within
        the last second is left for a later claim (in one process the limiter spaces a person's messages)."""
        spacing = dt.timedelta(seconds=self.limiter.per_conversation if self.limiter.slots.shared else 0)
        async with self.sessions() as s:
            claimed = await repo.claim_outbox(s, self.clock.now(), self.claim_size(), self.lease, spacing)
            payloads = {msg.id: json.loads(msg.payload) for msg in claimed}
            emails = {p["target"].get("email") for p in payloads.values() if p["target"].get("kind") == "person"}
            refs = await repo.personal_conversations(s, {e for e in emails if e})
            await s.commit()  # hold no database connection while sending
            groups: dict[str, list[_Message]] = {}
            waiting = []
            for msg in claimed:
                target, activity = payloads[msg.id]["target"], payloads[msg.id]["activity"]
                if target.get("kind") == "lamu":
                    groups.setdefault("lamu", []).append(_Message(msg, target, activity, None))
                elif target.get("email") in refs:
                    groups.setdefault(target["email"], []).append(
                        _Message(msg, target, activity, refs[target["email"]]))
                else:
                    waiting.append(msg)
            if waiting:
                await self._no_conversation(s, waiting, report)
        return list(groups.values()), len(claimed)

    async def _send_group(self, group: list[_Message], total: DeliveryReport) -> None:
        """A conversation's messages of one claim, in order, on a session of their own."""
        report = DeliveryReport()
        async with self.sessions() as s:
            for item in group:
                if item.ref is None:
                    await self._deliver_to_channel(s, item.msg, item.target, item.activity, report)
                else:
                    await self._deliver(s, item.msg, item.ref, item.target["email"], item.activity, report)
        for name in REPORTED:
            setattr(total, name, getattr(total, name) + getattr(report, name))

    async def _deliver(self, s: AsyncSession, msg: m.OutboxMessage, ref: m.ConversationRef, email: str,
                       activity: dict[str, Any], report: DeliveryReport) -> None:
        if not await self._turn(s, msg, ref.conversation_id, report):
            return
        try:
            activity_id = await self._send(self.sender.send_to(_coords(ref), _without_mention(activity)))
        except DeliveryError as exc:
            await self._failed(s, msg, exc, ref, email, report)
            return
        await self._sent(s, msg, activity_id, report)

    async def _deliver_to_channel(self, s: AsyncSession, msg: m.OutboxMessage, target: dict[str, Any],
                                  activity: dict[str, Any], report: DeliveryReport) -> None:
        channel = await self._lamu_channel(s)
        if channel is None or not channel.teams_channel_id:
            await self._no_conversation(s, [msg], report)
            return
        activity = await self._with_mention(s, activity)
        thread = (await s.exec(select(m.ChannelThread).where(m.ChannelThread.key == target["thread"]))).first()
        await s.commit()  # hold no database connection while waiting for the rate limit or the network
        try:
            if thread is None:
                if not await self._turn(s, msg, channel.teams_channel_id, report):
                    return
                root = message(notice(NoticeView(target.get("thread_title") or target["thread"], ())),
                               target.get("thread_title") or target["thread"])
                conversation_id, root_id = await self._send(self.sender.send_to_channel(
                    channel.service_url, channel.tenant_id, channel.teams_channel_id, root))
                # another replica may have started the same thread meanwhile: reply into the one stored first
                thread = await repo.remember_thread(s, target["thread"], channel.teams_channel_id, conversation_id,
                                                    root_id, self.clock.now())
            coords = Coordinates(thread.conversation_id, channel.service_url, channel.tenant_id, "channel",
                                 channel.channel_id, channel.bot_id)
            if not await self._turn(s, msg, channel.teams_channel_id, report):
                return
            activity_id = await self._send(self.sender.send_to(coords, activity))
        except DeliveryError as exc:
            await self._failed(s, msg, exc, channel, None, report)
            return
        await self._sent(s, msg, activity_id, report)

    async def _lamu_channel(self, s: AsyncSession) -> m.ConversationRef | None:
        """The LAMU channel among the channel conversations the bot knows: the configured channel id; else the
        channel found by name when the bot was added to the team (a channel root that is not the team's General
        channel); else the General channel; else the channel last heard from. Never just "the channel last heard
        from" first: a mention in any channel thread, or the team install itself, must not divert the summaries."""
        rows = [r for r in (await s.exec(select(m.ConversationRef).where(
            m.ConversationRef.conversation_type == "channel", m.ConversationRef.active == True)  # noqa: E712
            .order_by(col(m.ConversationRef.updated_at).desc(), col(m.ConversationRef.id).desc()))).all()
            if r.teams_channel_id]
        wanted = (self.config.roles.lamu.channel_id or "").lower()

        def rank(r: m.ConversationRef) -> int:
            channel_id = str(r.teams_channel_id)
            if wanted and channel_id.lower() == wanted:
                return 0
            if r.conversation_id == channel_id:
                return 1 if channel_id != r.team_id else 2
            return 3

        return min(rows, key=rank, default=None)  # min keeps the first (newest) of equal rank

    async def _with_mention(self, s: AsyncSession, activity: dict[str, Any]) -> dict[str, Any]:
        """Turn our mention marker into a Teams mention when the person's Teams id is known."""
        mention = activity.get("mention")
        activity = _without_mention(activity)
        if not mention:
            return activity
        person = await repo.person_by_email(s, mention["email"])
        name = mention["name"]
        content = activity["attachments"][0]["content"]
        if person and person.teams_user_id:
            content.setdefault("msteams", {})["entities"] = [{
                "type": "mention", "text": f"<at>{name}</at>", "mentioned": {"id": person.teams_user_id, "name": name}}]
        else:
            activity = json.loads(json.dumps(activity).replace(f"<at>{name}</at>", name))
        return activity

    async def _turn(self, s: AsyncSession, msg: m.OutboxMessage, conversation: str, report: DeliveryReport) -> bool:
        """Wait for this message's turn under the limits while the claim holds it; False if the claim was lost.
        The lease is made sure of first (a renewal is a database round trip: it must not come between the slot
        and the send); if the wait ate into it so far that the whole send timeout no longer fits, the slot goes
        unused and the lease is renewed."""
        while True:
            if not await self._hold(s, msg, report):
                return False
            await self.limiter.acquire(conversation)
            assert msg.claimed_until is not None  # set by the claim
            if msg.claimed_until - self.clock.now() >= dt.timedelta(seconds=self.send_timeout):
                return True

    async def _hold(self, s: AsyncSession, msg: m.OutboxMessage, report: DeliveryReport) -> bool:
        """Whether this claim still holds `msg` for one more send; renews the lease when less than half of it is
        left. The lease is at least twice the send timeout, so a send started now ends before any other sender
        may claim the row: a row is sent by its current claimant only."""
        now = self.clock.now()
        assert msg.claimed_until is not None  # set by the claim
        if msg.claimed_until - now >= self.lease / 2:
            return True
        until = now + self.lease
        held = await repo.fenced_update(s, msg, claimed_until=until)
        await s.commit()
        if not held:
            self._lost(msg, "not sent", report)
            return False
        msg.claimed_until = until  # a detached row: this is our own view of the claim
        return True

    async def _send(self, call: Awaitable[T]) -> T:
        """One network call, bounded by the send timeout the lease is sized for."""
        try:
            async with asyncio.timeout(self.send_timeout):
                return await call
        except TimeoutError:
            raise DeliveryError(0, f"no answer within {self.send_timeout:g} s") from None

    async def _record(self, s: AsyncSession, msg: m.OutboxMessage, report: DeliveryReport,
                      **values: object) -> bool:
        """Record what became of a claimed message and release the claim, only if the claim still holds it
        (no commit). A sender whose row was taken over changes nothing: the new claimant records the outcome."""
        if await repo.fenced_update(s, msg, claimed_until=None, claim_token=None, **values):
            return True
        self._lost(msg, f"outcome {values.get('status')!r} not recorded", report)
        return False

    def _lost(self, msg: m.OutboxMessage, what: str, report: DeliveryReport) -> None:
        report.lost += 1
        self.observe("lost", None)
        log.warning("outbox message %s: another sender took over its claim after the lease ran out; %s here",
                    msg.id, what)

    async def _sent(self, s: AsyncSession, msg: m.OutboxMessage, activity_id: str | None,
                    report: DeliveryReport) -> None:
        if await self._record(s, msg, report, status="sent", activity_id=activity_id, sent_at=self.clock.now(),
                              attempts=msg.attempts + 1):
            report.sent += 1
            self.observe("sent", 200)
        await s.commit()

    async def _failed(self, s: AsyncSession, msg: m.OutboxMessage, exc: DeliveryError, ref: m.ConversationRef,
                      email: str | None, report: DeliveryReport) -> None:
        now = self.clock.now()
        attempts = msg.attempts + 1
        error = f"HTTP {exc.status}" + (f" (Retry-After {exc.retry_after}s)" if exc.retry_after else "")
        if exc.status in GONE:
            recorded = await self._record(s, msg, report, status="dead", attempts=attempts, last_error=error)
            if recorded:
                s.add(ref)  # a person's chat was read by the claim's session, not this one
                ref.active, ref.updated_at = False, now
                report.dead += 1
                self.observe("dead", exc.status)
            await s.commit()
            if recorded:
                log.warning("conversation gone (HTTP %s): marked inactive", exc.status)
                await self._tell_adviser(s, email, msg)
            return
        if exc.status in RETRYABLE and attempts < self.max_attempts:
            delay = min(self.max_backoff, self.base_backoff * 2 ** (attempts - 1))
            delay = max(delay * (0.5 + self.jitter()), exc.retry_after or 0.0)
            if await self._record(s, msg, report, status="retry", attempts=attempts, last_error=error,
                                  not_before=now + dt.timedelta(seconds=delay)):
                report.retried += 1
                self.observe("retried", exc.status)
            await s.commit()
            return
        recorded = await self._record(s, msg, report, status="dead", attempts=attempts, last_error=error)
        await s.commit()
        if recorded:
            report.dead += 1
            self.observe("dead", exc.status)
            log.warning("message dead after %d attempt(s): %s", attempts, error)
            await self._tell_adviser(s, email, msg)

    async def _no_conversation(self, s: AsyncSession, msgs: list[m.OutboxMessage], report: DeliveryReport) -> None:
        """Nobody to send to yet (the bot is not installed for them): wait, and tell the adviser once.

        The wait ends when the conversation becomes known (`repo.upsert_conversation` releases it), or after
        `WAIT` at the latest. A conversation learned while this claim was deciding is looked for again once the
        wait is committed: the learner stores the conversation before it releases, so either it sees the wait
        recorded here or this look sees its conversation, and no message waits hours for a chat the bot has."""
        notices, waiting = [], []
        for msg in msgs:
            attempts = msg.attempts + 1
            dead = attempts >= self.max_attempts
            later = {} if dead else {"not_before": self.clock.now() + WAIT}
            if not await self._record(s, msg, report, status="dead" if dead else "retry", attempts=attempts,
                                      last_error=repo.WAITING, **later):
                continue
            if dead:
                report.dead += 1
            else:
                report.waiting += 1
                waiting.append(msg)
            self.observe("dead" if dead else "waiting", None)
            if attempts == 1:
                notices.append(self._adviser_notice(msg.recipient_email, msg))
        await s.commit()
        if waiting:
            emails = {msg.recipient_email for msg in waiting if msg.recipient_email}
            found = set(await repo.personal_conversations(s, emails)) if emails else set()
            lamu = any(msg.recipient_email is None for msg in waiting) and await self._lamu_channel(s) is not None
            await s.commit()
            if found or lamu:
                await repo.release_waiting(s, self.clock.now(), emails=found, channel=lamu)
        await repo.enqueue(s, [n for n in notices if n], self.clock.now())

    async def _tell_adviser(self, s: AsyncSession, email: str | None, msg: m.OutboxMessage) -> None:
        notice_row = self._adviser_notice(email, msg)
        if notice_row:
            await repo.enqueue(s, [notice_row], self.clock.now())

    def _adviser_notice(self, email: str | None, msg: m.OutboxMessage) -> dict[str, object] | None:
        """The outbox row telling the adviser that someone cannot be reached (at most one a person a day)."""
        adviser = self.config.roles.hmsb_adviser
        if email == adviser or msg.kind == "undeliverable":
            return None
        locale = self.config.unit.locale
        person = self.config.person(email) if email else None
        who = person.name if person else (email or self.config.roles.lamu.channel_name)
        summary = json.loads(msg.payload)["activity"].get("summary", msg.kind)
        text = t(locale, "undeliverable", who=who, summary=summary)
        activity = message(notice(NoticeView(text, (), "Attention")), text)
        day = self.clock.now().astimezone(self.config.tz).date().isoformat()
        return {"dedupe_key": f"undeliverable|{email or 'lamu'}|{day}"[:300], "kind": "undeliverable",
                "recipient_email": adviser,
                "payload": json.dumps({"target": {"kind": "person", "email": adviser}, "activity": activity},
                                      ensure_ascii=False)}


def _ignore(_outcome: str, _status: int | None) -> None:
    pass


@dataclass
class _Message:
    """A claimed message ready to send: its row, where it goes and what it says."""

    msg: m.OutboxMessage
    target: dict[str, Any]
    activity: dict[str, Any]
    ref: m.ConversationRef | None  # the person's chat; None for the LAMU channel


def _coords(ref: m.ConversationRef) -> Coordinates:
    return Coordinates(ref.conversation_id, ref.service_url, ref.tenant_id, ref.conversation_type, ref.channel_id,
                       ref.bot_id)


def _without_mention(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if k != "mention"}
