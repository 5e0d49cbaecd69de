"""The wheel as a picture: the twelve months as a ring, every task of a year on a track of its own with its window
as an arc and a dot at its deadline, coloured by status, today marked, and a legend in the reader's language (SVG).

Occurrences of one task due the same day (a fire round on every floor) share one dot, coloured by the least
finished of them; its tooltip names each place and its status. `svg` is pure; `wheel_svg` reads the record."""

from __future__ import annotations

import calendar as _cal
import datetime as dt
import math
from html import escape
from typing import Any

from hms import i18n, wheel
from hms.config import HmsConfig
from hms.i18n import t
from hms.periods import Period
from usecases.due import scope_name
from usecases.feeds import Feed, feed_items, feed_of
from usecases.inspection import plan_status

COLORS = {"missed": "#c62828", "open": "#1565c0", "not_yet_due": "#9e9e9e", "done_late": "#ef8f00",
          "done": "#2e7d32", "before_start": "#d7d7d7"}
WORST_FIRST = ("missed", "open", "done_late", "not_yet_due", "done", "before_start")
CX, CY, OUTER, RING = 420.0, 440.0, 380.0, 44.0
TRACK_STEP = 22.0


def angle(day: dt.date) -> float:
    """Degrees clockwise from the top: each month a twelfth of the circle, days spread evenly in it."""
    days = _cal.monthrange(day.year, day.month)[1]
    return (day.month - 1) * 30.0 + (day.day - 0.5) / days * 30.0


def _point(deg: float, r: float) -> tuple[float, float]:
    rad = math.radians(deg - 90.0)
    return CX + r * math.cos(rad), CY + r * math.sin(rad)


def _arc(start: float, end: float, r: float) -> str:
    (x1, y1), (x2, y2) = _point(start, r), _point(end, r)
    large = 1 if end - start > 180 else 0
    return f"M {x1:.1f} {y1:.1f} A {r:.1f} {r:.1f} 0 {large} 1 {x2:.1f} {y2:.1f}"


def svg(config: HmsConfig, name: str, year: int, items: list[wheel.DueItem], today: dt.date, locale: str) -> str:
    """The picture of one year's wheel (items: the occurrences to show; only those due in the year are drawn)."""
    lang = i18n.lang(locale)
    months = i18n.MONTHS_EN if lang == "en" else i18n.MONTHS_NB
    shown = [i for i in items if i.occurrence.due.year == year]
    tasks = list(dict.fromkeys(i.occurrence.task for i in sorted(shown, key=lambda i: i.occurrence.task)))
    tasks = [k.key for k in config.tasks if k.key in tasks]  # the file's order
    track = {key: OUTER - RING - 16 - n * TRACK_STEP for n, key in enumerate(tasks)}
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="1260" height="900" viewBox="0 0 1260 900" '
           'font-family="DejaVu Sans, Segoe UI, Arial, sans-serif" role="img">',
           f'<title>{escape(t(locale, "wheel.title", year=year, name=name))}</title>',
           '<rect width="1260" height="900" fill="#ffffff"/>',
           f'<text x="20" y="34" font-size="24" font-weight="bold">'
           f'{escape(t(locale, "wheel.title", year=year, name=name))}</text>']
    for m in range(12):  # the ring of months
        a0, a1 = m * 30.0, (m + 1) * 30.0
        (ox0, oy0), (ox1, oy1) = _point(a0, OUTER), _point(a1, OUTER)
        (ix1, iy1), (ix0, iy0) = _point(a1, OUTER - RING), _point(a0, OUTER - RING)
        fill = "#e8eef7" if m % 2 == 0 else "#d5e0f0"
        out.append(f'<path class="month" d="M {ox0:.1f} {oy0:.1f} A {OUTER} {OUTER} 0 0 1 {ox1:.1f} {oy1:.1f} '
                   f'L {ix1:.1f} {iy1:.1f} A {OUTER - RING} {OUTER - RING} 0 0 0 {ix0:.1f} {iy0:.1f} Z" '
                   f'fill="{fill}" stroke="#ffffff" stroke-width="2"/>')
        lx, ly = _point(a0 + 15.0, OUTER - RING / 2)
        out.append(f'<text class="month-name" x="{lx:.1f}" y="{ly + 5:.1f}" font-size="15" text-anchor="middle">'
                   f'{escape(months[m].capitalize())}</text>')
    for r in track.values():  # faint guides
        out.append(f'<circle cx="{CX}" cy="{CY}" r="{r:.1f}" fill="none" stroke="#eeeeee" stroke-width="1"/>')
    groups: dict[tuple[str, dt.date], list[wheel.DueItem]] = {}
    for item in shown:
        groups.setdefault((item.occurrence.task, item.occurrence.due), []).append(item)
    for (key, due), group in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        statuses = [plan_status(i, config.tz) for i in group]
        worst = min(statuses, key=WORST_FIRST.index)
        r = track[key]
        first = min(i.occurrence.window_start for i in group)
        if first < due:
            start = angle(max(first, dt.date(year, 1, 1)))
            out.append(f'<path class="window" d="{_arc(start, angle(due), r)}" fill="none" '
                       f'stroke="{COLORS[worst]}" stroke-opacity="0.35" stroke-width="8" stroke-linecap="round"/>')
        task = config.task(key)
        title = task.title.get(lang) if task else key
        lines = [f"{title} – {i18n.format_date(due, locale)}"] + [
            f"{scope_name(config, i.occurrence, locale)}: {t(locale, f'pack.plan.{s}')}"
            for i, s in zip(group, statuses, strict=True)]
        x, y = _point(angle(due), r)
        out.append(f'<circle class="deadline" data-task="{escape(title)}" data-status="{worst}" '
                   f'data-due="{due.isoformat()}" data-count="{len(group)}" cx="{x:.1f}" cy="{y:.1f}" r="7" '
                   f'fill="{COLORS[worst]}" stroke="#ffffff" stroke-width="1.5"><title>'
                   f'{escape(chr(10).join(lines))}</title></circle>')
    if today.year == year:  # today
        x, y = _point(angle(today), OUTER + 8)
        out.append(f'<line class="today" x1="{CX}" y1="{CY}" x2="{x:.1f}" y2="{y:.1f}" stroke="#d81b60" '
                   f'stroke-width="2.5" stroke-dasharray="6 4"/>')
        lx, ly = _point(angle(today), OUTER + 24)
        out.append(f'<text class="today-label" x="{lx:.1f}" y="{ly + 5:.1f}" font-size="14" font-weight="bold" '
                   f'fill="#d81b60" text-anchor="middle">{escape(t(locale, "wheel.today"))}</text>')
    out.append(f'<text x="{CX}" y="{CY + 10}" font-size="34" font-weight="bold" text-anchor="middle" '
               f'fill="#33415c">{year}</text>')
    out.extend(_legend(config, locale, tasks, track))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(config: HmsConfig, locale: str, tasks: list[str], track: dict[str, float]) -> list[str]:
    lang = i18n.lang(locale)
    x, y = 880, 90
    out = [f'<g class="legend"><text x="{x}" y="{y}" font-size="16" font-weight="bold">'
           f'{escape(t(locale, "wheel.legend.status"))}</text>']
    for n, status in enumerate(WORST_FIRST):
        yy = y + 26 + n * 24
        out.append(f'<circle cx="{x + 8}" cy="{yy - 5}" r="7" fill="{COLORS[status]}"/>'
                   f'<text class="legend-status" x="{x + 24}" y="{yy}" font-size="14">'
                   f'{escape(t(locale, f"pack.plan.{status}"))}</text>')
    y += 26 + len(WORST_FIRST) * 24 + 20
    out.append(f'<text x="{x}" y="{y}" font-size="16" font-weight="bold">'
               f'{escape(t(locale, "wheel.legend.tasks"))}</text>')
    for n, key in enumerate(tasks):
        task = config.task(key)
        out.append(f'<text class="legend-task" x="{x}" y="{y + 24 + n * 22}" font-size="13">{n + 1}. '
                   f'{escape(task.title.get(lang) if task else key)}</text>')
        nx, ny = _point(0.8, track[key])
        out.append(f'<text x="{nx:.1f}" y="{ny + 4:.1f}" font-size="10" fill="#555555">{n + 1}</text>')
    y += 24 + len(tasks) * 22 + 10
    out.append(f'<text x="{x}" y="{y}" font-size="12" fill="#555555">{escape(t(locale, "wheel.legend.window"))}'
               f'</text></g>')
    return out


async def wheel_svg(s: Any, config: HmsConfig, feed: Feed, year: int, now: dt.datetime, locale: str) -> str:
    """One year's wheel of a person, a section or the unit, as of `now`."""
    period = Period(dt.date(year, 1, 1), dt.date(year, 12, 31))
    items = await feed_items(s, config, feed, period, now)
    return svg(config, feed.label(config, locale), year,
               [i for i in items if period.start <= i.occurrence.due <= period.end],
               now.astimezone(config.tz).date(), locale)


async def serve_wheel(s: Any, config: HmsConfig, token: str, now: dt.datetime) -> str | None:
    """This year's wheel behind a feed token (None: revoked or unknown), in the unit's language."""
    feed = await feed_of(s, token)
    if feed is None:
        return None
    return await wheel_svg(s, config, feed, now.astimezone(config.tz).year, now, config.unit.locale)
