"""The HMSB adviser's weekly digest, about two phone screens: where the year stands per section (a chart, with a
text fallback for clients without charts), what is overdue grouped by section (at most eight shown, "Vis alle"
opens the whole list), the oldest open measures with owner and deadline, what changed since last week, and the
next 14 days. The header counts exactly what the lists hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.common import bullets, card, heading, message, subheading, text
from hms.i18n import t, tn

SHOWN = 8  # overdue items and open measures shown before "Vis alle"


@dataclass(frozen=True)
class SectionBar:
    """Where one section (or the unit's own tasks) stands: its deadlines in the period by status."""

    name: str
    done: int
    open: int
    overdue: int
    upcoming: int


@dataclass(frozen=True)
class OverdueGroup:
    """A section's overdue items, newest deadline first (one line each)."""

    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class MeasureLine:
    text: str
    owner: str
    deadline: str
    overdue: bool


@dataclass(frozen=True)
class DigestView:
    week: str
    counts: tuple[int, int, int, int]  # done, open, overdue, upcoming: of the deadlines in `period`
    sections: tuple[SectionBar, ...]  # sums to `counts`
    overdue: tuple[OverdueGroup, ...]  # exactly the overdue ones counted
    measures: tuple[MeasureLine, ...]  # every open measure, oldest first
    overdue_measures: int
    changes: tuple[int, int, int]  # rounds done, new deviations, measures closed in the last seven days
    due_soon: tuple[str, ...]
    undelivered: int = 0
    period: str = ""  # the deadlines counted, as people read it
    before_start: int = 0  # deadlines in the period before tracking started (not counted)
    starts: str = ""  # the day tracking started
    wheel_url: str | None = None  # the picture of the wheel, where the deployment serves one


def digest_card(view: DigestView, locale: str) -> dict[str, Any]:
    done, open_, overdue, upcoming = view.counts
    title = t(locale, "digest.title", week=view.week)
    counts = t(locale, "status.counts", done=done, open=open_, overdue=overdue, upcoming=upcoming)
    if view.period:
        counts = t(locale, "digest.counts", period=view.period, counts=counts)
    body = [heading(title), text(counts, color="Attention" if overdue else "Good")]
    if view.before_start:
        body.append(text(t(locale, "digest.before_start", count=view.before_start, day=view.starts), subtle=True))
    if view.undelivered:
        body.append(text(tn(locale, "digest.undelivered", view.undelivered), color="Warning"))
    if view.sections:
        body.append(_chart(view.sections, locale))
    body += [subheading(t(locale, "digest.changes")),
             text(changes_line(view, locale))]
    actions: list[dict[str, Any]] = []
    body.append(subheading(t(locale, "digest.overdue_count", count=overdue)))
    if view.overdue:
        totals = {g.name: len(g.lines) for g in view.overdue}
        body += _groups(_first(view.overdue, SHOWN), totals)
        if overdue > SHOWN:
            body.append(text(t(locale, "due.more", count=overdue - SHOWN), subtle=True))
            actions.append(_show_all(t(locale, "digest.show_all_overdue"), _groups(view.overdue, totals)))
    else:
        body.append(text(t(locale, "due.empty.overdue")))
    body.append(subheading(measures_head(view, locale)))
    if view.measures:
        body.append(bullets([_measure(m, locale) for m in view.measures[:SHOWN]]))
        if len(view.measures) > SHOWN:
            body.append(text(t(locale, "due.more", count=len(view.measures) - SHOWN), subtle=True))
            actions.append(_show_all(t(locale, "digest.show_all_measures"),
                                     [bullets([_measure(m, locale) for m in view.measures])]))
    else:
        body.append(text(t(locale, "digest.no_measures")))
    body.append(subheading(t(locale, "digest.due_soon")))
    body.append(bullets(list(view.due_soon[:SHOWN * 2])) if view.due_soon else text(t(locale, "digest.none_soon")))
    if view.wheel_url:
        actions.append({"type": "Action.OpenUrl", "title": t(locale, "digest.wheel"), "url": view.wheel_url})
    return message(card(body, actions or None, fallback=counts), title)


def changes_line(view: DigestView, locale: str) -> str:
    """"1 runde utført · 2 nye avvik · 0 tiltak lukket": what changed since last week, each count as a count reads."""
    rounds, deviations, closed = view.changes
    return t(locale, "digest.changes_line", rounds=tn(locale, "digest.changes.rounds", rounds),
             deviations=tn(locale, "digest.changes.deviations", deviations),
             closed=tn(locale, "digest.changes.closed", closed))


def measures_head(view: DigestView, locale: str) -> str:
    """"Åpne tiltak (10, 2 over fristen), eldste først" ("ingen over fristen" when none is)."""
    return tn(locale, "digest.measures_head", view.overdue_measures, open=len(view.measures))


def _chart(sections: tuple[SectionBar, ...], locale: str) -> dict[str, Any]:
    """A grouped vertical bar chart per section (done, open, overdue, upcoming), as Teams renders Adaptive Card
    charts; clients without charts get the same numbers as a fact list (its `fallback`)."""
    series = (("done", "good"), ("open", "neutral"), ("overdue", "bad"), ("upcoming", "warning"))
    data = [{"legend": t(locale, f"digest.legend.{key}"), "color": color,
             "values": [{"x": s.name, "y": getattr(s, key)} for s in sections]} for key, color in series]
    fallback = {"type": "FactSet", "facts": [
        {"title": s.name, "value": t(locale, "status.counts", done=s.done, open=s.open, overdue=s.overdue,
                                     upcoming=s.upcoming)} for s in sections]}
    return {"type": "Chart.VerticalBar.Grouped", "title": t(locale, "digest.chart_title"),
            "xAxisTitle": t(locale, "digest.chart_x"), "yAxisTitle": t(locale, "digest.chart_y"),
            "showBarValues": True, "data": data, "fallback": fallback}


def _first(groups: tuple[OverdueGroup, ...], limit: int) -> tuple[OverdueGroup, ...]:
    """The groups cut to their first `limit` lines in all."""
    out, left = [], limit
    for group in groups:
        if left <= 0:
            break
        out.append(OverdueGroup(group.name, group.lines[:left]))
        left -= len(group.lines[:left])
    return tuple(out)


def _groups(groups: tuple[OverdueGroup, ...], totals: dict[str, int]) -> list[dict[str, Any]]:
    """Each section's name with how many of its items are overdue (all of them, also where the list is cut)."""
    out: list[dict[str, Any]] = []
    for group in groups:
        out += [text(f"**{group.name}** ({totals.get(group.name, len(group.lines))})", spacing="Small"),
                bullets(list(group.lines))]
    return out


def _measure(line: MeasureLine, locale: str) -> str:
    key = "digest.measure_overdue" if line.overdue else "digest.measure"
    return t(locale, key, text=line.text, owner=line.owner, deadline=line.deadline)


def _show_all(title: str, body: list[dict[str, Any]]) -> dict[str, Any]:
    """"Vis alle": the whole list in the card, opened in place (no round trip, works in every client)."""
    return {"type": "Action.ShowCard", "title": title, "card": {"type": "AdaptiveCard", "body": body}}
