"""Clocks: the only place core code's `now` comes from at the edges."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real time, aware, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass
class OffsetClock:
    """Real time moved so that it started at `start` (for `serve --dev --now`): it keeps ticking."""

    start: dt.datetime
    _offset: dt.timedelta = field(init=False)

    def __post_init__(self) -> None:
        self._offset = self.start - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset


@dataclass
class FixedClock:
    """A clock tests move by hand."""

    current: dt.datetime

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        self.current += delta


def parse_instant(text: str, tz: ZoneInfo) -> dt.datetime:
    """An ISO date or date-time; without an offset it is read as local time in `tz`."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value
