"""Where the year stands: counts by status, rounds done (the unit's checklist rounds), open measures; per section
when asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import card, facts, heading, message, text
from hms.i18n import t


@dataclass(frozen=True)
class StatusLine:
    label: str
    done: int
    open: int
    overdue: int
    upcoming: int


@dataclass(frozen=True)
class StatusView:
    title: str
    total: StatusLine
    lines: tuple[StatusLine, ...]
    fire_done: int
    fire_total: int
    open_measures: int
    before_start: int = 0  # deadlines of the year before tracking started (not counted above)
    starts: str = ""  # the day tracking started
    rounds: str = ""  # the titles of the rounds counted in fire_done/fire_total; none: no rounds line


def _counts(line: StatusLine, locale: str) -> str:
    return t(locale, "status.counts", done=line.done, open=line.open, overdue=line.overdue, upcoming=line.upcoming)


def status_card(view: StatusView, locale: str) -> dict[str, Any]:
    body = [heading(view.title), text(_counts(view.total, locale), size="Medium",
                                      color="Attention" if view.total.overdue else None),
            *([text(t(locale, "status.rounds", rounds=view.rounds, done=view.fire_done, total=view.fire_total))]
              if view.rounds else []),
            text(t(locale, "status.measures", count=view.open_measures))]
    if view.before_start:
        body.append(text(t(locale, "status.before_start_note", count=view.before_start, day=view.starts),
                         subtle=True))
    if view.lines:
        body.append(facts([(line.label, _counts(line, locale)) for line in view.lines]))
    return message(card(body), view.title)
