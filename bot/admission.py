"""Admission: how many turns run at once, and what happens to the rest.

Every admitted turn may hold one database connection, so the turns' pool has a connection for each of them
(`ConnectionBudget`) and a turn never waits inside for one. A turn over the limit waits here, before it has
touched the database, for up to `wait` seconds, in the order it arrived; if no turn ended by then it is
answered 503 with Retry-After instead of failing with a 500 after the pool's own timeout (30 s). Such a turn was
never claimed in the retry ledger, so when the channel sends it again it is handled as new.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

RETRY_AFTER_SECONDS = 1  # a turn takes tens of milliseconds: a slot is usually free again within a second


class Admission:
    """At most `limit` turns in flight; the next ones queue for up to `wait` seconds, then are refused."""

    def __init__(self, limit: int, wait: float):
        self.limit = limit
        self.wait = wait
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.queued = 0
        self.most_in_flight = 0
        self.refused = 0

    async def enter(self) -> bool:
        """True once this turn has a slot (call `leave()` when it ends); False if none came free in time."""
        self.queued += 1
        try:
            async with asyncio.timeout(self.wait):
                await self._slots.acquire()
        except TimeoutError:
            self.refused += 1
            return False
        finally:
            self.queued -= 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return True

    def leave(self) -> None:
        """The turn ended: its slot goes to the longest waiting one."""
        self.in_flight -= 1
        self._slots.release()


@dataclass(frozen=True)
class ConnectionBudget:
    """The PostgreSQL connections one replica opens at most. The database's `max_connections` must cover
    `total` times the number of replicas, plus whatever else connects (migrations, the admin's tools)."""

    turns: int  # one per admitted turn (HMS_MAX_TURNS)
    # beside the turns, on their pool: the retry ledger's group writers (claims, completions, renewals of claims in
    # progress), /readyz, the listener's probe
    service: int = 5
    jobs: int = 2  # the scheduler's own pool: planning and delivery, each one run at a time
    listen: int = 1  # the connection that LISTENs for changes

    @property
    def turns_pool(self) -> int:
        """The size of the pool the turns share."""
        return self.turns + self.service

    @property
    def total(self) -> int:
        return self.turns_pool + self.jobs + self.listen

    def describe(self) -> str:
        return (f"at most {self.total} PostgreSQL connections: {self.turns} for turns (HMS_MAX_TURNS), "
                f"{self.service} for the retry ledger, readiness and probes, {self.jobs} for the scheduler's jobs, "
                f"{self.listen} listening for changes")
