"""Logging set-up: one line per record, with structured extras (the per-turn line) as JSON.

Message text and secrets are never logged at info level; the turn line carries type, outcome and duration.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


_TURN: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("hms_turn_fields", default=None)


def begin_turn() -> dict[str, Any]:
    """Start collecting fields for this turn's log line (the HTTP handler calls this; one task per request)."""
    fields: dict[str, Any] = {}
    _TURN.set(fields)
    return fields


def note(**fields: Any) -> None:
    """Add fields (intent, card outcome, ...) to the current turn's one log line; no-op outside a turn."""
    current = _TURN.get()
    if current is not None:
        current.update(fields)


class LineFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # the stamp changes once a second; formatting it is most of a line's cost
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        base = f"{self._stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            base += " " + json.dumps(extras, ensure_ascii=False, default=str)
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
