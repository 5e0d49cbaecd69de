"""Logging set-up: one line per record, with structured extras (the per-turn line) as JSON; with LOG_FORMAT=json
each record is one JSON object on its line instead (`time`, `level`, `logger`, `message`, the extras such as
`turn` as fields of their own, and `exception` with the traceback), for log pipelines.

Message text and secrets are never logged at info level; the turn line carries type, outcome and duration.
A record is one line whatever it quotes: control characters (newlines too) in a message are escaped, so a
value from outside (an activity type, an invoke name) cannot forge a line of its own. Faults of the client
that aiohttp logs as errors with a traceback (a body that does not decode, a request it cannot parse, a sender
that disconnects) are one INFO line: the client got its 4xx, and nothing is wrong with the bot. A logged SQL
error shows neither its parameters nor the row PostgreSQL quotes back.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

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


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


# PostgreSQL's error text quotes the offending row or key in a DETAIL line (people's e-mails, Teams ids, the
# tenant); SQLAlchemy's own "[parameters: ...]" part is off (storage/db.py, hide_parameters).
_DETAIL = re.compile(r"^DETAIL: .*$", re.MULTILINE)


def clean(text: str) -> str:
    """`text` with control characters, line separators and lone surrogates escaped (\\n, \\x00, \\ud800)."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


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
        base = clean(base)  # the traceback below is the only text allowed more lines
        if record.exc_info:
            base += "\n" + _redacted_traceback(self, record)
        return base


def _redacted_traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    assert record.exc_info
    return _DETAIL.sub("DETAIL: (left out: it quotes the row's values)", formatter.formatException(record.exc_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: the readable line's fields, the extras as fields of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = _redacted_traceback(self, record)
        # json escapes the control characters below 0x20; the rest that could break a line (or not encode) are
        # escaped here the JSON way, so a record is one line whatever it quotes
        text = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class ClientFaults(logging.Filter):
    """Turns aiohttp's error records about a client's own faults into one INFO line without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if fault is not None and _client_fault(fault):
            record.msg, record.args = "request from a client refused: %s (%s)", (
                type(fault).__name__, clean(" ".join(str(fault).split()))[:200])
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def _client_fault(exc: BaseException) -> bool:
    """An HTTP parsing or decoding error, or a lost connection, anywhere in the exception's chain (aiohttp wraps
    a body that does not decompress in a RequestPayloadError caused by a ContentEncodingError)."""
    for _ in range(5):
        if isinstance(exc, HttpProcessingError | ConnectionResetError):
            return True
        cause = exc.__cause__ or exc.__context__
        if cause is None:
            return False
        exc = cause
    return False


def quiet_client_faults() -> None:
    """Install `ClientFaults` on aiohttp's server logger (idempotent; the composition root calls it)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientFaults) for f in server.filters):
        server.addFilter(ClientFaults())


FORMATS = ("text", "json")


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at `level`: readable lines (`text`, the default) or one JSON object per line (`json`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt.lower() == "json" else LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
