"""Virtual time for asyncio tests: `sleep` and `monotonic` for the code under test, on a clock that moves only
when nothing else can happen without it.

The clock jumps to the earliest wake-up once every task that uses it is asleep on it. A task that uses it (has
read it or slept on it) and is doing real work, such as a database round trip, holds the clock still, so that
work takes no virtual time and a test of rates and latencies is exact however slow the machine is. Tasks that
never touched the clock (one that only awaits others, a background claim) do not hold it; nor do the task that
created the clock (the test) and tasks handed to `exclude`.

A task must never wait on something only another task's virtual sleep can release (a lock held across a sleep):
the clock would stop. A test that does so hangs, so guard it with a real timeout.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from typing import ClassVar


class VirtualTime:
    """Create it inside the test's task; pass `sleep` and `monotonic` (or `now`) to the code under test."""

    _owners: ClassVar[weakref.WeakKeyDictionary[asyncio.Task[object], VirtualTime]] = weakref.WeakKeyDictionary()

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.slept: list[float] = []
        self._heap: list[tuple[float, int, asyncio.Future[None], asyncio.Task[object]]] = []
        self._order = itertools.count()
        self._asleep: set[asyncio.Task[object]] = set()
        self._excluded: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
        self._advancer: asyncio.Task[None] | None = None
        try:
            creator = asyncio.current_task()
        except RuntimeError:  # no running loop: created outside the test's coroutine
            creator = None
        if creator is not None:
            self._excluded.add(creator)

    def monotonic(self) -> float:
        """The virtual time, in seconds. The task asking is this clock's from now on (see `_quiet`)."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop
            task = None
        if task is not None:
            VirtualTime._owners.setdefault(task, self)
        return self.t

    now = monotonic

    def exclude(self, *tasks: asyncio.Task[object]) -> None:
        """Tasks that only wait for others (e.g. a replica's drain awaiting its senders) never hold the clock."""
        self._excluded.update(tasks)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of virtual time."""
        task = asyncio.current_task()
        assert task is not None
        VirtualTime._owners[task] = self
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        self.slept.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.t + seconds, next(self._order), future, task))
        self._asleep.add(task)
        if self._advancer is None or self._advancer.done():
            self._advancer = asyncio.create_task(self._advance())
        try:
            await future
        finally:
            self._asleep.discard(task)

    async def _advance(self) -> None:
        while True:
            while self._heap and self._heap[0][2].done():  # sleepers that were cancelled
                heapq.heappop(self._heap)
            if not self._heap:
                return
            await asyncio.sleep(0)
            if not self._quiet():
                await asyncio.sleep(0.0005)  # real time: let pending I/O complete
                continue
            self.t = max(self.t, self._heap[0][0])
            while self._heap and self._heap[0][0] <= self.t:
                _, _, future, task = heapq.heappop(self._heap)
                self._asleep.discard(task)
                if not future.done():
                    future.set_result(None)

    def _quiet(self) -> bool:
        """Every live task that uses this clock is asleep on it."""
        for task, owner in list(VirtualTime._owners.items()):
            if owner is self and not task.done() and task not in self._excluded and task not in self._asleep:
                return False
        return True
