"""The delivery loop: send what the outbox holds, within Teams' limits, and record what happened.

- A message is in the database before it is sent and marked sent (with the Teams activity id) after. The one
  window for a duplicate is a crash between Teams accepting a message and our mark: on restart that message is
  claimed again once its lease has run out and is sent a second time. Nothing else can send twice.
- Limits: at most one message a second per conversation, and an app-wide rate (default 20/s) per process, held
  in every one-second window from the first message on.
- 429, 412, 502, 504 (and an unreachable or silent connector) are retried with exponential backoff and jitter,
  honouring Retry-After; after `max_attempts` a message is dead and the adviser can see it.
- 403 (bot removed or blocked) and 404 (conversation gone) mark the conversation inactive and tell the adviser
  whose messages cannot be delivered.
- Claims are leases with a fence. With several replicas on PostgreSQL, rows are claimed with FOR UPDATE SKIP
  LOCKED, a few at a time: no more than can be sent within the lease if every send took the whole send timeout.
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

from sqlalchemy.ext.asyncio import async_sessionmaker
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


REPORTED = ("sent", "retried", "dead", "waiting", "lost")


@dataclass
class RateLimiter:
    """At most `rate` messages in any one-second window from the very first message, and a minimum spacing per
    conversation. A sliding window of the last second's send times, not a bucket that starts full (which let
    twice the rate out in the first second). A slot is taken with no await in between, so concurrent senders on
    one event loop share the limit."""

    rate: float = 20.0
    per_conversation: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic
    _sent: deque[float] = field(default_factory=deque, init=False)  # send times within the last window
    _last: dict[str, float] = field(default_factory=dict, init=False)

    async def acquire(self, conversation: str) -> None:
        """Wait until a message to `conversation` may go out, and count it as sent now."""
        capacity = max(1, int(self.rate))
        window = capacity / self.rate  # one second for rates of 1/s and more
        while True:
            now = self.monotonic()
            while self._sent and self._sent[0] < now - window:
                self._sent.popleft()
            # the send that would be one too many waits until the oldest of the window is strictly a window
            # old (_EDGE), so even a closed window [t, t + 1 s] never holds more than the rate
            wait = self._sent[0] + window + _EDGE - now if len(self._sent) >= capacity else 0.0
            last = self._last.get(conversation)
            if last is not None:
                wait = max(wait, last + self.per_conversation - now)
            if wait <= 0:
                break
            await self.sleep(wait)
        self._sent.append(now)
        self._last[conversation] = now


_EDGE = 0.001


class Delivery:
    """Claims due outbox messages a few at a time and sends them; only a message's current claimant records
    what became of it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], sender: Sender, clock: Clock,
                 config: HmsConfig, *, limiter: RateLimiter | None = None, max_attempts: int = 6,
                 base_backoff: float = 2.0, max_backoff: float = 3600.0, batch: int = 50,
                 lease: dt.timedelta = dt.timedelta(seconds=120), send_timeout: float = 30.0,
                 jitter: Callable[[], float] = random.random):
        if lease.total_seconds() < 2 * send_timeout:
            raise ValueError("the delivery lease must be at least twice the send timeout")
        self.sessions = sessions
        self.sender = sender
        self.clock = clock
        self.config = config
        self.limiter = limiter or RateLimiter()
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.batch = batch
        self.lease = lease
        self.send_timeout = send_timeout
        self.jitter = jitter

    def claim_size(self) -> int:
        """How many messages one claim takes: what can be sent within the lease even if each waited for the rate
        limits and then took the whole send timeout. A claim of 50 rows sent one by one outlived its lease with a
        slow connector, and another replica took and sent rows still waiting in the first one's batch."""
        per_message = self.send_timeout + max(1 / self.limiter.rate, self.limiter.per_conversation)
        return max(1, min(self.batch, int(self.lease.total_seconds() // per_message)))

    async def run_once(self) -> DeliveryReport:
        """Claim a few due messages and send them (the database work for a claim is a handful of statements)."""
        report = DeliveryReport()
        async with self.sessions() as s:
            claimed = await repo.claim_outbox(s, self.clock.now(), self.claim_size(), self.lease)
            targets = {msg.id: json.loads(msg.payload) for msg in claimed}
            emails = {p["target"].get("email") for p in targets.values() if p["target"].get("kind") == "person"}
            refs = await repo.personal_conversations(s, {e for e in emails if e})
            await s.commit()  # hold no database connection while sending
            waiting = [msg for msg in claimed if targets[msg.id]["target"].get("kind") == "person"
                       and targets[msg.id]["target"].get("email") not in refs]
            if waiting:
                await self._no_conversation(s, waiting, report)
            for msg in claimed:
                if msg in waiting:
                    continue
                target, activity = targets[msg.id]["target"], targets[msg.id]["activity"]
                if target.get("kind") == "lamu":
                    await self._deliver_to_channel(s, msg, target, activity, report)
                else:
                    await self._deliver(s, msg, refs[target["email"]], target["email"], activity, report)
        return report

    async def drain(self, rounds: int = 1000) -> DeliveryReport:
        """Run batches until nothing due is left (bounded)."""
        total = DeliveryReport()
        for _ in range(rounds):
            report = await self.run_once()
            for name in REPORTED:
                setattr(total, name, getattr(total, name) + getattr(report, name))
            if not any(getattr(report, name) for name in REPORTED):
                break
        return total

    async def _deliver(self, s: AsyncSession, msg: m.OutboxMessage, ref: m.ConversationRef, email: str,
                       activity: dict[str, Any], report: DeliveryReport) -> None:
        await self.limiter.acquire(ref.conversation_id)
        if not await self._hold(s, msg, report):
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
            await self.limiter.acquire(channel.teams_channel_id)
            if thread is None:
                if not await self._hold(s, msg, report):
                    return
                root = message(notice(NoticeView(target.get("thread_title") or target["thread"], ())),
                               target.get("thread_title") or target["thread"])
                conversation_id, root_id = await self._send(self.sender.send_to_channel(
                    channel.service_url, channel.tenant_id, channel.teams_channel_id, root))
                # another replica may have started the same thread meanwhile: reply into the one stored first
                thread = await repo.remember_thread(s, target["thread"], channel.teams_channel_id, conversation_id,
                                                    root_id, self.clock.now())
                await self.limiter.acquire(channel.teams_channel_id)
            coords = Coordinates(thread.conversation_id, channel.service_url, channel.tenant_id, "channel",
                                 channel.channel_id, channel.bot_id)
            if not await self._hold(s, msg, report):
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

    @staticmethod
    def _lost(msg: m.OutboxMessage, what: str, report: DeliveryReport) -> None:
        report.lost += 1
        log.warning("outbox message %s: another sender took over its claim after the lease ran out; %s here",
                    msg.id, what)

    async def _sent(self, s: AsyncSession, msg: m.OutboxMessage, activity_id: str | None,
                    report: DeliveryReport) -> None:
        if await self._record(s, msg, report, status="sent", activity_id=activity_id, sent_at=self.clock.now(),
                              attempts=msg.attempts + 1):
            report.sent += 1
        await s.commit()

    async def _failed(self, s: AsyncSession, msg: m.OutboxMessage, exc: DeliveryError, ref: m.ConversationRef,
                      email: str | None, report: DeliveryReport) -> None:
        now = self.clock.now()
        attempts = msg.attempts + 1
        error = f"HTTP {exc.status}" + (f" (Retry-After {exc.retry_after}s)" if exc.retry_after else "")
        if exc.status in GONE:
            recorded = await self._record(s, msg, report, status="dead", attempts=attempts, last_error=error)
            if recorded:
                ref.active, ref.updated_at = False, now
                report.dead += 1
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
            await s.commit()
            return
        recorded = await self._record(s, msg, report, status="dead", attempts=attempts, last_error=error)
        await s.commit()
        if recorded:
            report.dead += 1
            log.warning("message dead after %d attempt(s): %s", attempts, error)
            await self._tell_adviser(s, email, msg)

    async def _no_conversation(self, s: AsyncSession, msgs: list[m.OutboxMessage], report: DeliveryReport) -> None:
        """Nobody to send to yet (the bot is not installed for them): wait, and tell the adviser once."""
        notices = []
        for msg in msgs:
            attempts = msg.attempts + 1
            dead = attempts >= self.max_attempts
            later = {} if dead else {"not_before": self.clock.now() + dt.timedelta(hours=6)}
            if not await self._record(s, msg, report, status="dead" if dead else "retry", attempts=attempts,
                                      last_error="no conversation with the recipient", **later):
                continue
            if dead:
                report.dead += 1
            else:
                report.waiting += 1
            if attempts == 1:
                notices.append(self._adviser_notice(msg.recipient_email, msg))
        await s.commit()
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


def _coords(ref: m.ConversationRef) -> Coordinates:
    return Coordinates(ref.conversation_id, ref.service_url, ref.tenant_id, ref.conversation_type, ref.channel_id,
                       ref.bot_id)


def _without_mention(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if k != "mention"}
