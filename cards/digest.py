"""The HMSB adviser's weekly digest: where the year stands, what is overdue, open measures, undelivered messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import MAX_ROWS, bullets, card, heading, message, subheading, text
from hms.i18n import t


@dataclass(frozen=True)
class DigestView:
    week: str
    counts: tuple[int, int, int, int]  # done, open, overdue, upcoming: of the deadlines in `period`
    overdue: tuple[str, ...]  # exactly the overdue ones counted
    due_soon: tuple[str, ...]
    open_measures: int
    overdue_measures: int
    undelivered: int
    period: str = ""  # the deadlines counted, as people read it
    before_start: int = 0  # deadlines in the period before tracking started (not counted)
    starts: str = ""  # the day tracking started


def digest_card(view: DigestView, locale: str) -> dict[str, Any]:
    done, open_, overdue, upcoming = view.counts
    title = t(locale, "digest.title", week=view.week)
    counts = t(locale, "status.counts", done=done, open=open_, overdue=overdue, upcoming=upcoming)
    if view.period:
        counts = t(locale, "digest.counts", period=view.period, counts=counts)
    body = [heading(title), text(counts, color="Attention" if overdue else "Good")]
    if view.before_start:
        body.append(text(t(locale, "digest.before_start", count=view.before_start, day=view.starts), subtle=True))
    body.append(text(t(locale, "digest.measures", count=view.open_measures, overdue=view.overdue_measures)))
    if view.undelivered:
        body.append(text(t(locale, "digest.undelivered", count=view.undelivered), color="Warning"))
    body.append(subheading(t(locale, "digest.overdue")))
    body.append(bullets(list(view.overdue[:MAX_ROWS])) if view.overdue else text(t(locale, "due.empty.overdue")))
    if len(view.overdue) > MAX_ROWS:
        body.append(text(t(locale, "due.more", count=len(view.overdue) - MAX_ROWS), subtle=True))
    if view.due_soon:
        body += [subheading(t(locale, "digest.due_soon")), bullets(list(view.due_soon[:MAX_ROWS]))]
    return message(card(body), title)
