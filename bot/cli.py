"""The `hms-bot` command: what's due, the database, the organisation file, the bot server and its tools.

Heavy modules (botbuilder, the web server) are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hms import i18n
from hms.clock import SystemClock, parse_instant
from hms.config import ConfigError, HmsConfig, load_config
from hms.wheel import DueItem

if TYPE_CHECKING:
    from hms import periods


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def _settings() -> Any:
    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise CliError("invalid settings in the environment:\n" + "\n".join(lines)) from None


def _config(path: str | Path | None, settings: Any) -> HmsConfig:
    return load_config(path or settings.config_path)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _month(text: str) -> tuple[int, int]:
    try:
        d = dt.date.fromisoformat(text + "-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {text!r}") from None
    return d.year, d.month


def _now(args: argparse.Namespace, config: HmsConfig) -> dt.datetime:
    if getattr(args, "now", None):
        try:
            return parse_instant(args.now, config.tz)
        except ValueError:
            raise CliError(f"--now: not an ISO date or date-time: {args.now!r}") from None
    return SystemClock().now()


# -- due ------------------------------------------------------------------------------------------------------


def _due_period(args: argparse.Namespace, today: dt.date) -> periods.Period:
    from hms import periods

    if args.month and (args.date_from or args.date_to):
        raise CliError("use either --month or --from/--to, not both")
    if args.month:
        return periods.month(*args.month)
    if args.date_from or args.date_to:
        if not (args.date_from and args.date_to):
            raise CliError("--from and --to go together")
        if args.date_to < args.date_from:
            raise CliError("--to is before --from")
        return periods.Period(args.date_from, args.date_to)
    return periods.month(today.year, today.month)


def cmd_due(args: argparse.Namespace) -> int:
    from bot import usecases

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    period = _due_period(args, now.astimezone(config.tz).date())
    if args.section and config.section(args.section) is None:
        raise CliError(f"unknown section {args.section!r}; known: {', '.join(s.key for s in config.sections)}")
    try:
        items = asyncio.run(usecases.due_from_database(settings.database_url, config, period, now,
                                                       section=args.section, person=args.person))
    except usecases.DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([usecases.due_item_json(config, i, args.locale) for i in items], ensure_ascii=False,
                         indent=2))
    else:
        print(render_due_text(config, items, period, args.locale))
    return 0


def render_due_text(config: HmsConfig, items: Sequence[DueItem], period: periods.Period, locale: str) -> str:
    """A terminal listing grouped by the month of each deadline."""
    from bot.usecases import scope_name

    lines = [i18n.t(locale, "due.header", period=i18n.format_period(period.start, period.end, locale)), ""]
    if not items:
        return "\n".join([*lines, i18n.t(locale, "due.none")])
    month = None
    for item in items:
        occ = item.occurrence
        task = config.task(occ.task)
        assert task is not None
        if (occ.due.year, occ.due.month) != month:
            month = (occ.due.year, occ.due.month)
            if len(lines) > 2:
                lines.append("")
            lines.append(i18n.format_period(occ.due.replace(day=1), _month_end(occ.due), locale).capitalize())
        who = config.person(occ.assignee).name if occ.assignee and config.person(occ.assignee) else "–"
        when = i18n.format_date(occ.due, locale, year=False)
        if task.recurrence.kind == "window":
            when = i18n.t(locale, "due.window", start=i18n.format_date(occ.window_start, locale, year=False),
                          end=when)
        status = i18n.t(locale, f"status.{item.status}")
        lines.append(f"  {when:<18} {task.title.get(locale)} · {scope_name(config, occ, locale)}"
                     f" · {who}  [{status}]")
    return "\n".join(lines)


def _month_end(d: dt.date) -> dt.date:
    from hms import periods

    return periods.month(d.year, d.month).end


# -- database and organisation -------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}: {_safe_url(settings.database_url)}")
    return 0


def cmd_org_import(args: argparse.Namespace) -> int:
    from bot import usecases

    settings = _settings()
    config = load_config(args.file)
    report = asyncio.run(usecases.import_org(settings.database_url, config, SystemClock().now()))
    print(f"imported {args.file}: {report.summary()}")
    for label, rows in (("created", report.created), ("updated", report.updated),
                        ("deactivated", report.deactivated), ("reactivated", report.reactivated)):
        for row in rows if args.verbose else []:
            print(f"  {label}: {row}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    floors = len(config.floors())
    print(f"{args.file}: OK ({len(config.people)} people, {len(config.sections)} sections, {floors} floors, "
          f"{len(config.tasks)} tasks, {len(config.checklists)} checklists)")
    return 0


def _safe_url(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        cred, _, host = rest.rpartition("@")
        rest = f"{cred.split(':')[0]}:***@{host}" if ":" in cred else rest
    return f"{scheme}{sep}{rest}"


# -- parser ---------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hms-bot", description="HMS-hjulet: the HMS annual wheel in Teams.")
    sub = p.add_subparsers(dest="command", required=True)

    due = sub.add_parser("due", help="what is due in a period (default: this month)")
    due.add_argument("--month", type=_month, help="YYYY-MM")
    due.add_argument("--from", dest="date_from", type=_date, help="YYYY-MM-DD")
    due.add_argument("--to", dest="date_to", type=_date, help="YYYY-MM-DD")
    due.add_argument("--section", help="only this section (key, e.g. samling)")
    due.add_argument("--person", help="only tasks held by this person (e-mail)")
    due.add_argument("--json", action="store_true", help="print JSON")
    due.add_argument("--now", help="answer as of this instant (ISO; local time if no offset)")
    due.add_argument("--locale", choices=("nb", "en"), default="nb")
    due.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    due.set_defaults(func=cmd_due)

    db = sub.add_parser("db", help="database migrations").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="migrate the database (DATABASE_URL) to the newest version")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)

    org = sub.add_parser("org", help="the organisation").add_subparsers(dest="org_command", required=True)
    imp = org.add_parser("import", help="import or update people, sections, floors and roles from a file")
    imp.add_argument("file")
    imp.add_argument("-v", "--verbose", action="store_true")
    imp.set_defaults(func=cmd_org_import)

    chk = sub.add_parser("check-config", help="validate an organisation file and report every problem")
    chk.add_argument("file")
    chk.set_defaults(func=cmd_check_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"the configuration has {len(exc.problems)} problem(s); nothing was changed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"hms-bot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
