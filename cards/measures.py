"""Open measures (corrective actions) with owner, deadline and age."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import MAX_ROWS, card, heading, message, text
from hms.i18n import t, tn


@dataclass(frozen=True)
class MeasureRow:
    description: str
    owner: str
    deadline: str
    age_days: int
    overdue: bool


def open_measures_card(rows: list[MeasureRow], locale: str) -> dict[str, Any]:
    body = [heading(t(locale, "measures.title"))]
    for row in rows[:MAX_ROWS]:
        body.append(text(t(locale, "measures.row", description=row.description, owner=row.owner,
                           deadline=row.deadline, age=tn(locale, "measures.age", row.age_days)),
                         color="Attention" if row.overdue else None))
    if not rows:
        body.append(text(t(locale, "measures.empty")))
    elif len(rows) > MAX_ROWS:
        body.append(text(t(locale, "due.more", count=len(rows) - MAX_ROWS), subtle=True))
    return message(card(body), t(locale, "measures.title"))
