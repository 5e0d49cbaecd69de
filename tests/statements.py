"""What a path asks of the database, for tests that pin its cost in statements and rows (never in time)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

WRITES = ("INSERT", "UPDATE", "DELETE")


class Statements:
    """Every statement an engine runs from now on, with the number of rows each SELECT returned.

    Rows are counted where SQLAlchemy's asyncio adapters hold them after execute (aiosqlite and psycopg fetch a
    plain cursor's rows at once); a cursor without them fails the test rather than counting nothing.
    """

    def __init__(self, engine: AsyncEngine):
        self._engine = engine.sync_engine
        self.seen: list[tuple[str, int]] = []
        event.listen(self._engine, "after_cursor_execute", self._executed)

    def _executed(self, _conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        rows = 0
        if statement.lstrip().upper().startswith("SELECT"):
            held = getattr(cursor, "_rows", None)
            assert held is not None, f"cannot count the rows of {type(cursor).__name__}"
            rows = len(held)
        self.seen.append((statement, rows))

    def clear(self) -> None:
        self.seen.clear()

    def close(self) -> None:
        event.remove(self._engine, "after_cursor_execute", self._executed)

    def writes(self, ignore: tuple[str, ...] = ("processed_activity",)) -> list[str]:
        """INSERT, UPDATE and DELETE statements, but those on the tables ignored (by default the retry ledger,
        whose one write per turn is the ledger's business)."""
        return [s for s, _ in self.seen if s.lstrip().split()[0].upper() in WRITES
                and not any(name in s for name in ignore)]

    def reading(self, table: str) -> list[str]:
        """SELECT statements that read `table`."""
        return [s for s, _ in self._selects(table)]

    def rows_read(self, table: str) -> int:
        """Rows returned by SELECT statements that read `table`."""
        return sum(n for _, n in self._selects(table))

    def _selects(self, table: str) -> list[tuple[str, int]]:
        name = re.compile(rf"\b{re.escape(table)}\b")
        return [(s, n) for s, n in self.seen if s.lstrip().upper().startswith("SELECT") and name.search(s)]
