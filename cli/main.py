"""The `hms-bot` command: what's due, the database, the organisation file, the bot server and its tools.

Heavy modules (botbuilder, the web server) are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hms import i18n
from hms.clock import SystemClock, parse_instant
from hms.config import DEFAULT_CONFIG_PATH, ConfigError, HmsConfig, load_config
from hms.wheel import DueItem
from storage import db
from storage.db import DatabaseInUse

if TYPE_CHECKING:
    from hms import periods


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def _settings() -> Any:
    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
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
    from usecases.database import DatabaseNotReady
    from usecases.due import due_from_database, due_item_json

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    period = _due_period(args, now.astimezone(config.tz).date())
    if args.section and config.section(args.section) is None:
        raise CliError(f"unknown section {args.section!r}; known: {', '.join(s.key for s in config.sections)}")
    if args.person and config.person(args.person) is None:
        raise CliError(f"{args.person} is not a person in {args.config or settings.config_path}")
    try:
        items, later = asyncio.run(due_from_database(settings.database_url, config, period, now,
                                                     section=args.section, person=args.person))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    if not args.open:
        later = []
    if args.json:
        print(json.dumps([{**due_item_json(config, i, args.locale), "group": group}
                          for group, rows in (("due", items), ("open", later)) for i in rows],
                         ensure_ascii=False, indent=2))
    else:
        print(render_due_text(config, items, period, args.locale, later, now.astimezone(config.tz).date()))
    return 0


def render_due_text(config: HmsConfig, items: Sequence[DueItem], period: periods.Period, locale: str,
                    later: Sequence[DueItem] = (), today: dt.date | None = None) -> str:
    """A terminal listing of the deadlines in the period grouped by month, then (with --open) the windows open in
    the period whose deadline is later, in a group of their own."""
    lines = [i18n.t(locale, "due.header", period=i18n.format_period(period.start, period.end, locale)), ""]
    if not items:
        lines.append(i18n.t(locale, "due.none"))
    lines += _due_lines(config, items, locale)
    if later:
        now_open = today is not None and period.start <= today <= period.end
        lines += ["", i18n.t(locale, "due.later" if now_open else "due.later.period")]
        lines += _due_lines(config, later, locale, months=False)
    return "\n".join(lines)


def _due_lines(config: HmsConfig, items: Sequence[DueItem], locale: str, *, months: bool = True) -> list[str]:
    from usecases.due import scope_name

    lines: list[str] = []
    month = None
    for item in items:
        occ = item.occurrence
        task = config.task(occ.task)
        assert task is not None
        if months and (occ.due.year, occ.due.month) != month:
            month = (occ.due.year, occ.due.month)
            if lines:
                lines.append("")
            lines.append(i18n.format_period(occ.due.replace(day=1), _month_end(occ.due), locale).capitalize())
        person = config.person(occ.assignee) if occ.assignee else None
        who = person.name if person else "–"
        when = i18n.format_date(occ.due, locale, year=False)
        if task.recurrence.kind == "window":
            when = i18n.t(locale, "due.window", start=i18n.format_date(occ.window_start, locale, year=False),
                          end=when)
        status = i18n.t(locale, f"status.{item.status}")
        if not months:
            when = i18n.t(locale, "due.later.when", due=i18n.format_date(occ.due, locale))
        lines.append(f"  {when:<26} {task.title.get(locale)} · {scope_name(config, occ, locale)}"
                     f" · {who}  [{status}]")
    return lines


def _month_end(d: dt.date) -> dt.date:
    from hms import periods

    return periods.month(d.year, d.month).end


# -- database and organisation -------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import upgrade

    settings = _settings()
    now = _now(args, _config(None, settings)) if args.now else SystemClock().now()
    upgrade(settings.database_url, args.revision, now=now)
    print(f"database at {args.revision}: {db.safe_url(settings.database_url)}")
    return 0


def cmd_org_import(args: argparse.Namespace) -> int:
    from usecases.organisation import import_org

    settings = _settings()
    config = load_config(args.file)
    report = asyncio.run(import_org(settings.database_url, config, SystemClock().now()))
    print(f"imported {args.file}: {report.summary()}")
    for label, rows in (("created", report.created), ("updated", report.updated),
                        ("deactivated", report.deactivated), ("reactivated", report.reactivated)):
        for row in rows if args.verbose else []:
            print(f"  {label}: {row}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    floors = len(config.floors())
    print(f"{args.file}: OK ({len(config.people)} people, {len(config.sections)} sections, {len(config.buildings)} "
          f"buildings, {floors} floors, {len(config.roles.declared)} declared roles, {len(config.tasks)} tasks, "
          f"{len(config.checklists)} checklists)")
    return 0


# -- the bot server and its tools ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from bot import logs, serving
    from bot.app import Runtime, create_app
    from hms.clock import OffsetClock

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    if not args.dev:
        if args.now:
            raise CliError("--now is only for local mode (--dev)")
        if not settings.app_id:
            raise CliError("MicrosoftAppId is not set. Set MicrosoftAppId, MicrosoftAppPassword and "
                           "MicrosoftAppTenantId from the bot's Entra app registration, or start local mode "
                           "with `hms-bot serve --dev`.")
        if settings.app_type == "SingleTenant" and not settings.app_tenant_id:
            raise CliError("MicrosoftAppTenantId is required for a SingleTenant bot")
        if settings.app_type != "UserAssignedMSI" and not settings.app_password.get_secret_value():
            raise CliError("MicrosoftAppPassword is not set")
    config = _config(args.config, settings)
    if args.config:  # the file named in the bot's warnings
        settings = settings.model_copy(update={"config_path": Path(args.config)})
    clock = OffsetClock(parse_instant(args.now, config.tz)) if args.now else None
    host = "127.0.0.1" if args.dev else settings.host
    port = args.port or settings.port
    if args.dev:
        settings = settings.model_copy(update={"app_id": "", "app_tenant_id": ""})

    def listening(address: str) -> None:  # said once the socket is bound, never before a refusal
        if args.dev:
            print(f"LOCAL MODE: authentication is off; listening on {address}/api/messages (loopback only)",
                  file=sys.stderr)
            if args.now:
                print(f"LOCAL MODE: the clock starts at {args.now}", file=sys.stderr)

    # the database is made ready by the app's start, after it claimed a SQLite file; PostgreSQL that cannot be
    # reached yet is waited for with /readyz answering 503 (bot/app.py)
    app = create_app(settings, config=config, clock=clock,
                     runtime=Runtime(dev=args.dev, dev_bot_id=args.bot_id or "", dev_tenant_id=args.tenant_id or "",
                                     prepare_database=True))
    serving.run(app, settings, host, port, listening=listening)
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from bot import logs
    from hms.clock import OffsetClock
    from playground.launcher import PlaygroundError
    from playground.local import prepare, run_local

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    config = _config(args.config, settings)
    clock = OffsetClock(parse_instant(args.now, config.tz)) if args.now else None
    if not settings.database_url.startswith("sqlite"):
        print("note: local mode on a non-SQLite DATABASE_URL", file=sys.stderr)
    settings = settings.model_copy(update={"app_id": "", "app_tenant_id": ""})
    try:
        mock_path = prepare(config, Path(args.workdir) if args.workdir else settings.data_dir / "local", args.as_)
    except PlaygroundError as exc:
        raise CliError(f"the Agents Playground: {exc}") from None

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # so the Playground is stopped in run_local's cleanup, not left behind

    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(run_local(settings, config, clock=clock, bot_port=args.port, playground_port=args.playground_port,
                              mock_path=mock_path, current=args.as_))
    except KeyboardInterrupt:
        pass
    except PlaygroundError as exc:
        hint = " (choose another with --playground-port N)" if "already in use" in str(exc) else ""
        raise CliError(f"the Agents Playground: {exc}{hint}") from None
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from usecases.answers import ask
    from usecases.database import DatabaseNotReady

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    email = (args.as_ or config.roles.hmsb_adviser).lower()
    if config.person(email) is None:
        raise CliError(f"{email} is not a person in {args.config or settings.config_path}")
    questions = [line.strip() for line in sys.stdin if line.strip()] if args.text == "-" else [args.text]
    try:
        answers = asyncio.run(ask(settings.database_url, config, questions, email, now, args.locale,
                                           settings.card_key()))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    for question, answer in zip(questions, answers, strict=True):
        if args.json:
            print(json.dumps({"text": question, **answer.understanding.to_json(), "as": email,
                              "answer": {**answer.summary, "card": answer.activity}}, ensure_ascii=False))
        else:
            print(render_card_text(answer.activity))
    return 0


def render_card_text(activity: dict[str, Any]) -> str:
    """A plain-text rendering of a card message, for the terminal."""
    lines: list[str] = []

    def walk(items: list[dict[str, Any]], indent: str = "") -> None:
        for item in items:
            kind = item.get("type")
            if kind == "TextBlock":
                lines.append(indent + str(item.get("text", "")).replace("**", ""))
            elif kind == "FactSet":
                lines.extend(f"{indent}{f['title']}: {f['value']}" for f in item.get("facts", []))
            elif kind == "ColumnSet":
                parts: list[str] = []
                for column in item.get("columns", []):
                    parts.extend(str(b.get("text", "")).replace("**", "") for b in column.get("items", [])
                                 if b.get("type") == "TextBlock")
                lines.append(indent + "  " + "  ".join(parts))
            elif kind in ("Container", "Column"):
                walk(item.get("items", []), indent)

    for attachment in activity.get("attachments", []):
        content = attachment.get("content", {})
        walk(content.get("body", []))
        for action in content.get("actions", []):
            if action.get("url"):
                lines.append(f"[{action.get('title')}] {action['url']}")
    return "\n".join(lines)


def cmd_outbox(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.records import outbox_listing

    settings = _settings()
    try:
        rows = asyncio.run(outbox_listing(settings.database_url, args.status, args.limit))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{r['status']:<8} {r['kind']:<14} {r['recipient'] or 'LAMU':<32} tries {r['attempts']}  "
              f"{r['last_error'] or ''}  [{r['key']}]")
    if not rows:
        print(f"no {args.status} messages")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.planning import plan_once

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    try:
        report = asyncio.run(plan_once(settings.database_url, config, settings.card_key(), now,
                                       dry_run=args.dry_run,
                                       public_url=settings.public_url or f"http://localhost:{settings.port}"))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    starts = report.tracking_starts.isoformat() if report.tracking_starts else "not recorded (every day counts)"
    summary = (f"{len(report.messages)} message(s) planned at {now.astimezone(config.tz).isoformat()}"
               f"{' (dry run: nothing written)' if args.dry_run else f', {report.planned} new in the outbox'}; "
               f"tracking starts {starts}")
    if args.json:
        print(json.dumps([msg.to_json() for msg in report.messages], ensure_ascii=False, indent=2))
        print(summary, file=sys.stderr)
        return 0
    for msg in report.messages:
        print(f"{msg.kind:<11} {msg.recipient:<32} {msg.task or '–':<24} {msg.occurrence or '–':<34} "
              f"{msg.deadline.isoformat() if msg.deadline else '–'}")
    print(summary)
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.digest import digest_text, preview

    if not args.preview:
        raise CliError("the digest is sent by the planning tick; use --preview to print it here")
    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    try:
        digest = asyncio.run(preview(settings.database_url, config, now, args.locale))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(digest.to_json(), ensure_ascii=False, indent=2))
    else:
        print(digest_text(config, digest, args.locale))
    return 0


def cmd_annual_reports(args: argparse.Namespace) -> int:
    from hms.i18n import t
    from usecases.annual_reports import reports_for_year
    from usecases.database import DatabaseNotReady
    from usecases.packfiles import write_reports

    settings = _settings()
    config = _config(args.config, settings)
    out = Path(args.out) if args.out else None
    fmt = {".xlsx": "xlsx", ".pdf": "pdf"}.get(out.suffix.lower()) if out else None
    if out is not None:
        if fmt is None:
            raise CliError("--out: the reports are written as FILE.xlsx or FILE.pdf")
        if out.exists() and not args.force:
            raise CliError(t(args.locale, "pack.exists", path=str(out)))
    try:
        found = asyncio.run(reports_for_year(settings.database_url, config, args.year, args.locale,
                                             settings.card_key()))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    if out is not None and fmt is not None:
        try:
            write_reports(found, fmt, out, _now(args, config).astimezone(config.tz), args.locale)
        except OSError as exc:  # a folder where a file is wanted, a folder that is not there, no permission
            raise CliError(f"--out {out}: {exc.strerror or exc}") from None
        done = sum(r["submitted"] for r in found["reports"])
        print(f"wrote {out}: {done} of {len(found['reports'])} sections' reports submitted")
        return 0
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    for report in found["reports"]:
        if not report["submitted"]:
            print(f"== {report['section_name']}: not submitted (due {report['due']})\n")
            continue
        print(f"== {report['section_name']}: submitted by {report['submitted_by_name']} {report['submitted_at']}")
        for part in report["parts"]:
            print(f"-- {part['label']}\n{part['text'] or '–'}")
        print()
    return 0


def cmd_done(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.registration import Refused, register_done

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    task = config.task(args.task)
    if task is None:
        raise CliError(f"unknown task {args.task!r}; known: {', '.join(t.key for t in config.tasks)}")
    if args.section and config.section(args.section) is None:
        raise CliError(f"unknown section {args.section!r}; known: {', '.join(x.key for x in config.sections)}")
    if args.floor and config.floor(args.floor) is None:
        raise CliError(f"unknown floor {args.floor!r}; known: {', '.join(f.key for f in config.floors())}")
    if args.building and config.building(args.building) is None:
        raise CliError(f"unknown building {args.building!r}; known: {', '.join(b.key for b in config.buildings)}")
    given = "--section" if args.section else "--floor" if args.floor else "--building" if args.building else None
    wanted = {"unit": None, "section": "--section", "floor": "--floor", "building": "--building"}[task.scope]
    if given != wanted:
        place = f"give {wanted}" if wanted else "leave out --section, --floor and --building"
        raise CliError(f"{task.key} is done per {task.scope}: {place}")
    if args.by and config.person(args.by) is None:
        raise CliError(f"--by: {args.by} is not a person in the organisation file")
    try:
        occ, row, created = asyncio.run(register_done(
            settings.database_url, config, task.key, args.date, now, section=args.section, floor=args.floor,
            cycle=args.cycle, by=args.by, note=args.note, building=args.building))
    except Refused as exc:
        raise CliError(exc.text(config, "en")) from None
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    record = {"occurrence": occ.key, "task": occ.task, "cycle": occ.cycle, "section": occ.section,
              "floor": occ.floor, "building": occ.building, "due": occ.due.isoformat(),
              "done_on": args.date.isoformat(),
              "completed_by": row.completed_by, "registered_by": row.registered_by, "created": created}
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
    elif created:
        who = f" by {row.completed_by}" if row.completed_by != row.registered_by else ""
        print(f"{occ.key} (due {occ.due.isoformat()}) is on record as done {args.date.isoformat()}{who}, "
              f"registered afterwards by {row.registered_by}")
    else:
        print(f"{occ.key} is done already (by {row.completed_by}, "
              f"{row.completed_at.astimezone(config.tz).date().isoformat() if row.completed_at else '?'}): "
              "nothing was changed", file=sys.stderr)
    return 0 if created else 1


def cmd_measure(args: argparse.Namespace) -> int:
    """`hms-bot measure add|list|show|reassign|deadline|evidence|close`."""
    from usecases.database import DatabaseNotReady
    from usecases.measures import Refused, add_measure, change_measure, measure_listing, measure_record

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    by = (getattr(args, "by", None) or config.roles.hmsb_adviser).lower()
    if config.person(by) is None:
        raise CliError(f"--by: {by} is not a person in the organisation file")
    url = settings.database_url
    try:
        if args.measure_command == "add":
            values = {"source": args.source, "description": args.description, "owner": args.owner,
                      "deadline": args.deadline, "section": args.section, "cim": args.cim or ""}
            measure = asyncio.run(add_measure(url, config, values, by, now, settings.card_key()))
            record = asyncio.run(measure_record(url, config, measure.id or 0))
        elif args.measure_command == "list":
            rows = asyncio.run(measure_listing(url, config, everything=args.all))
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=2))
            for r in [] if args.json else rows:
                print(f"{r['id']:>4}  {r['status']:<6} {r['deadline']}  {r['owner']:<30} {r['section'] or '–':<10} "
                      f"{r['source']:<14} {r['description'][:60]}")
            if not rows and not args.json:
                print("no open measures" if not args.all else "no measures")
            return 0
        elif args.measure_command == "show":
            record = asyncio.run(measure_record(url, config, args.id))
        else:
            values = {"reassign": {"owner": getattr(args, "to", None), "reason": getattr(args, "reason", None)},
                      "deadline": {"deadline": getattr(args, "date", None), "reason": getattr(args, "reason", None)},
                      "close": {"note": getattr(args, "note", None)},
                      "evidence": {"note": getattr(args, "note", None), "link": getattr(args, "link", None),
                                   "file": getattr(args, "file", None)}}[args.measure_command]
            record = asyncio.run(change_measure(url, config, settings.card_key(), args.id, args.measure_command, by,
                                                now, **values))
    except Refused as exc:
        raise CliError(exc.text("en")) from None
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"--file: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    print(f"measure {record['id']} ({record['status']}): {record['description']}")
    print(f"  source {record['source']}{' · CIM ' + record['cim_ref'] if record['cim_ref'] else ''} · section "
          f"{record['section'] or '–'} · owner {record['owner']} · deadline {record['deadline']}")
    for h in record["history"]:
        change = f" {h['from'] or '–'} -> {h['to']}" if h["kind"] in ("reassigned", "deadline", "ticket") else ""
        print(f"  {h['at'][:16]}  {h['kind']:<10} {h['by']}{change}{': ' + h['note'] if h['note'] else ''}")
    for e in record["evidence"]:
        what = (e["file"] and f"{e['file']} ({e['content_type']}, {e['size']} bytes)") or e["url"] or e["note"]
        print(f"  {e['at'][:16]}  evidence   {e['by']}: {what}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.retention import prune_database

    settings = _settings()
    now = _now(args, _config(None, settings))
    try:
        report = asyncio.run(prune_database(settings.database_url, now, settings.retention(), dry_run=args.dry_run))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {report.ledger_deleted} retry-ledger rows (older than {settings.ledger_retention_days} days)")
    verb = "would clear" if args.dry_run else "cleared"
    print(f"{verb} {report.payloads_cleared} outbox card payloads (sent or dead over "
          f"{settings.outbox_retention_days} days ago; the rows are kept)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hms.i18n import t
    from usecases.database import DatabaseNotReady
    from usecases.inspection import build_pack
    from usecases.packfiles import outputs, write

    settings = _settings()
    config = _config(None, settings)
    if args.date_to < args.date_from:
        raise CliError("--to is before --from")
    if args.section and config.section(args.section) is None:
        raise CliError(f"no section {args.section!r} (sections: {', '.join(s.key for s in config.sections)})")
    out = Path(args.out)
    fmt = args.format or {".xlsx": "xlsx", ".pdf": "pdf", ".csv": "csv"}.get(out.suffix.lower(), "json")
    existing = [p for p in outputs(out, fmt) if p.exists()]
    if existing and not args.force:
        raise CliError(t(args.locale, "pack.exists", path=", ".join(str(p) for p in existing)))
    by = (args.by or config.roles.hmsb_adviser).lower()
    try:
        pack = asyncio.run(build_pack(settings.database_url, config, args.date_from, args.date_to,
                                      _now(args, config), by=by, section=args.section, locale=args.locale))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, what: str) -> None:
        if tty:  # a long export shows where it is; a pipe or a log gets only the summary
            print(f"\r{t(args.locale, 'pack.progress', done=done, total=total, what=what)[:78]:<78}", end="",
                  file=sys.stderr, flush=True)

    try:
        written = write(pack, fmt, out, progress)
    except OSError as exc:  # a folder where a file is wanted, a folder that is not there, no permission
        raise CliError(f"--out {out}: {exc.strerror or exc}") from None
    if tty:
        print(file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in written)}: {len(pack.plan)} deadlines, {len(pack.rounds)} rounds, "
          f"{len(pack.measures)} measures, {len(pack.responsibilities)} responsibilities")
    return 0


def cmd_calendar(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady, opened
    from usecases.feeds import FeedError, link_token, revoke

    settings = _settings()
    config = _config(args.config, settings)
    now = _now(args, config)
    base = (settings.public_url or f"http://localhost:{settings.port}").rstrip("/")

    async def run() -> str:
        async with opened(settings.database_url) as s:
            if args.calendar_command == "revoke":
                if not await revoke(s, args.token, now):
                    raise CliError(f"no live token {args.token!r} (revoked already, or never made)")
                return f"revoked: {base}/calendar/{args.token}.ics and {base}/wheel/{args.token}.svg no longer work"
            kind, subject = ("person", args.person) if args.person else ("section", args.section) if args.section \
                else ("unit", None)
            token = await link_token(s, config, kind, subject, (args.by or config.roles.hmsb_adviser), now)
            return f"{base}/calendar/{token}.ics\n{base}/wheel/{token}.svg"

    try:
        print(asyncio.run(run()))
    except (DatabaseNotReady, FeedError) as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_wheel(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady, opened
    from usecases.feeds import FeedError, check_feed
    from usecases.picture import wheel_svg

    settings = _settings()
    config = _config(args.config, settings)
    out = Path(args.out)
    if out.suffix.lower() != ".svg":
        raise CliError("--out: the wheel is drawn as SVG (FILE.svg); PNG is not supported yet")
    if out.exists() and not args.force:
        raise CliError(f"{out} exists already; use --force to overwrite it")
    try:
        feed = check_feed(config, "person" if args.person else "section" if args.section else "unit",
                          args.person or args.section)
    except FeedError as exc:
        raise CliError(str(exc)) from None

    async def run() -> str:
        async with opened(settings.database_url) as s:
            return await wheel_svg(s, config, feed, args.year, _now(args, config), args.locale)

    try:
        out.write_text(asyncio.run(run()), encoding="utf-8")
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {out}")
    return 0


def _output(text: str, option: str, *, folder: bool = False, hint: str = "") -> Path:
    """Where a command writes, checked before it writes: a file where a folder is wanted, or the other way round,
    or a parent that is not there, is one line saying so (a file is replaced, as an export is made again)."""
    path = Path(text)
    if folder and path.exists() and not path.is_dir():
        raise CliError(f"{option} {path} is a file, and a folder is wanted here: give a folder's name{hint}")
    if not folder and path.is_dir():
        raise CliError(f"{option} {path} is a folder: give a file's name{hint}")
    parent = path.parent
    if not folder and not parent.is_dir():
        raise CliError(f"{option} {path}: there is no folder {parent}")
    return path


def cmd_person_away(args: argparse.Namespace) -> int:
    from usecases.database import DatabaseNotReady
    from usecases.organisation import set_away

    settings = _settings()
    config = _config(args.config, settings)
    if config.person(args.email) is None:
        raise CliError(f"{args.email} is not a person in the organisation file")
    try:
        asyncio.run(set_away(settings.database_url, config, args.email, not args.back,
                                      SystemClock().now()))
    except DatabaseNotReady as exc:
        raise CliError(str(exc)) from None
    state = "back" if args.back else "away: prompts go to the deputy"
    print(f"{args.email.lower()} is {state}")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from teamsapp.manifest import AppIdentity, build_package

    config = _config(args.config, _settings())
    if config.app is None:
        raise CliError("the organisation file has no app: section (the app's names, developer and URLs); "
                       f"see the bundled {DEFAULT_CONFIG_PATH}")
    try:
        package = build_package(args.app_id, AppIdentity.of(config))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out = _output(args.out or "hms-hjulet.zip", "--out")
    try:
        out.write_bytes(package)
    except OSError as exc:
        raise CliError(f"--out {out}: {exc.strerror or exc}") from None
    print(f"wrote {out} ({len(package)} bytes): upload it in Teams admin center > Manage apps > Upload")
    return 0


# -- parser ---------------------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hms-hjulet")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _environment_help() -> str:
    """The settings `serve` reads from the environment, with their defaults (from bot/settings.py, so the list
    cannot fall behind); README's "Deploying at a university" says what each one means."""
    from pydantic import AliasChoices, SecretStr

    from bot.settings import Settings

    lines = ["environment (defaults in brackets; meanings in the README, Deploying at a university):"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = [str(a) for a in alias.choices] if isinstance(alias, AliasChoices) else [name.upper()]
        default = field.default
        value = "" if default is None or isinstance(default, SecretStr) else str(default)
        lines.append(f"  {' or '.join(names)}" + (f"  [{value}]" if value else ""))
    return "\n".join(lines)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hms-bot", description="HMS-hjulet: the HMS annual wheel in Teams.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    due = sub.add_parser("due", help="the deadlines in a period (default: this month); --open adds open windows")
    due.add_argument("--month", type=_month, help="YYYY-MM")
    due.add_argument("--from", dest="date_from", type=_date, help="YYYY-MM-DD")
    due.add_argument("--to", dest="date_to", type=_date, help="YYYY-MM-DD")
    due.add_argument("--section", help="only this section (key, e.g. samling)")
    due.add_argument("--person", help="only tasks held by this person (e-mail)")
    due.add_argument("--open", action="store_true",
                     help="also list work whose window is open in the period but whose deadline is later")
    due.add_argument("--json", action="store_true", help="print JSON")
    due.add_argument("--now", help="answer as of this instant (ISO; local time if no offset)")
    due.add_argument("--locale", choices=("nb", "en"), default="nb", help="the language of the listing (default nb)")
    due.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    due.set_defaults(func=cmd_due)

    db = sub.add_parser("db", help="database migrations").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="migrate the database (DATABASE_URL) to the newest version")
    up.add_argument("revision", nargs="?", default="head",
                    help="the Alembic revision to migrate to (default: head, the newest)")
    up.add_argument("--now", help="record this instant (ISO) as when the database was first migrated, if nothing "
                                  "is on record (default: now); its day is the first day the wheel is kept")
    up.set_defaults(func=cmd_db_upgrade)

    org = sub.add_parser("org", help="the organisation").add_subparsers(dest="org_command", required=True)
    imp = org.add_parser("import", help="import or update people, sections, floors and roles from a file")
    imp.add_argument("file", help="the organisation file (YAML)")
    imp.add_argument("-v", "--verbose", action="store_true", help="list every row created, updated or deactivated")
    imp.set_defaults(func=cmd_org_import)

    chk = sub.add_parser("check-config", help="validate an organisation file and report every problem")
    chk.add_argument("file", help="the organisation file (YAML)")
    chk.set_defaults(func=cmd_check_config)

    serve = sub.add_parser("serve", help="run the bot (POST /api/messages, GET /healthz, GET /readyz)",
                           description="Run the bot: POST /api/messages, GET /healthz (alive), GET /readyz (ready: "
                                       "the database reachable and migrated).",
                           epilog=_environment_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--dev", action="store_true", help="local mode: no authentication, loopback only")
    serve.add_argument("--now", help="local mode: start the clock at this instant (ISO)")
    serve.add_argument("--port", type=int, help="port (default: HMS_PORT, else PORT, else 3978)")
    serve.add_argument("--bot-id", help="local mode: the emulator's bot id, for proactive messages")
    serve.add_argument("--tenant-id", help="local mode: accept only this tenant")
    serve.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    serve.set_defaults(func=cmd_serve)

    local = sub.add_parser("local", help="run the bot with the Agents Playground (a local Teams) on loopback")
    local.add_argument("--now", help="start the bot's clock at this instant (ISO)")
    local.add_argument("--as", dest="as_", metavar="EMAIL", help="chat as this person (default: a floor contact)")
    local.add_argument("--port", type=int, default=3978, help="the bot's port (default 3978)")
    local.add_argument("--playground-port", type=int, default=56150, help="the Playground's port (default 56150)")
    local.add_argument("--workdir", help="where the mock data and logs go (default: local/ in HMS_DATA_DIR)")
    local.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    local.set_defaults(func=cmd_local)

    ask = sub.add_parser("ask", help="ask the bot a question from the terminal ('-' reads one per line)")
    ask.add_argument("text", help="the question, in quotes; '-' reads one question per line from stdin")
    ask.add_argument("--as", dest="as_", metavar="EMAIL", help="ask as this person (default: the HMSB adviser)")
    ask.add_argument("--now", help="answer as of this instant (ISO; local time if no offset)")
    ask.add_argument("--locale", choices=("nb", "en"), default="nb",
                     help="like the Teams locale: the answer follows the question's language, and this when its "
                          "words fit both (default nb)")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    ask.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    ask.set_defaults(func=cmd_ask)

    pl = sub.add_parser("plan", help="run one planning tick and print every message it planned")
    pl.add_argument("--now", help="plan as of this instant (ISO; local time if no offset; default: now)")
    pl.add_argument("--dry-run", action="store_true", help="write nothing: only print what would be planned")
    pl.add_argument("--json", action="store_true", help="print a JSON list, one object per message")
    pl.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    pl.set_defaults(func=cmd_plan)

    dg = sub.add_parser("digest", help="the adviser's weekly digest as it would be sent (--preview)")
    dg.add_argument("--preview", action="store_true", help="print the digest here; nothing is sent or written")
    dg.add_argument("--json", action="store_true", help="the numbers and lists as JSON")
    dg.add_argument("--now", help="as of this instant (ISO; local time if no offset)")
    dg.add_argument("--locale", choices=("nb", "en"), default="nb", help="the language (default nb)")
    dg.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    dg.set_defaults(func=cmd_digest)

    ar = sub.add_parser("annual-reports", help="the sections' HMS annual reports on a year, as submitted")
    ar.add_argument("--year", type=int, required=True, help="the year the reports are on")
    ar.add_argument("--json", action="store_true", help="print JSON (parts, who, when, the figures)")
    ar.add_argument("--out", help="write them as one document for LAMU: FILE.xlsx or FILE.pdf")
    ar.add_argument("--force", action="store_true", help="overwrite an existing file")
    ar.add_argument("--now", help="ISO time the document says it was made (default: now)")
    ar.add_argument("--locale", choices=("nb", "en"), default="nb", help="the language (default nb)")
    ar.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    ar.set_defaults(func=cmd_annual_reports)

    done = sub.add_parser("done", help="register work done before or outside the bot (as the HMSB adviser)")
    done.add_argument("task", help="task key, e.g. fire_round")
    place = done.add_mutually_exclusive_group()
    place.add_argument("--section", help="section key, for tasks done per section")
    place.add_argument("--floor", help="floor key, for tasks done per floor")
    place.add_argument("--building", help="building key, for tasks done per building")
    done.add_argument("--date", type=_date, required=True, help="the day the work was done (YYYY-MM-DD)")
    done.add_argument("--note", help="what was done, where the documentation is")
    done.add_argument("--by", metavar="EMAIL", help="who did the work (default: not given)")
    done.add_argument("--cycle", help="the cycle when the date alone does not tell, e.g. 2026-Q3 for a late round")
    done.add_argument("--now", help="register as of this instant (ISO; default: now)")
    done.add_argument("--json", action="store_true", help="print what was put on record as JSON")
    done.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    done.set_defaults(func=cmd_done)

    ms = sub.add_parser("measure", help="measures: add, list, show, reassign, move the deadline, add evidence, close")
    msub = ms.add_subparsers(dest="measure_command", required=True)

    def measure_parser(name: str, help_text: str, *, with_id: bool = True,
                       acts: bool = True) -> argparse.ArgumentParser:
        sp = msub.add_parser(name, help=help_text)
        if with_id:
            sp.add_argument("id", type=int, help="the measure's number")
        if acts:
            sp.add_argument("--by", metavar="EMAIL", help="who does it (default: the HMSB adviser); the owner, the "
                                                          "section leader and the adviser may")
            sp.add_argument("--now", help="as of this instant (ISO; default: now)")
        sp.add_argument("--json", action="store_true", help="print the measure as JSON")
        sp.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
        sp.set_defaults(func=cmd_measure)
        return sp

    add = measure_parser("add", "create a measure from any source", with_id=False)
    add.add_argument("--source", required=True, help="vernerunde, brannvernrunde, ark, ros, audit, lamu, incident "
                                                     "or other")
    add.add_argument("--description", required=True, help="what is to be done")
    add.add_argument("--owner", required=True, metavar="EMAIL", help="a person in the organisation file")
    add.add_argument("--deadline", required=True, help="YYYY-MM-DD")
    add.add_argument("--section", required=True, help="section key, e.g. samling")
    add.add_argument("--cim", metavar="REF", help="the CIM case number (source incident; never the incident itself)")
    lst = measure_parser("list", "the open measures", with_id=False, acts=False)
    lst.add_argument("--all", action="store_true", help="closed measures too")
    measure_parser("show", "a measure with its history and evidence", acts=False)
    ra = measure_parser("reassign", "give a measure to someone else")
    ra.add_argument("--to", required=True, metavar="EMAIL", help="the new owner, a person in the organisation file")
    ra.add_argument("--reason", required=True, help="why (kept on record with who and when)")
    dl = measure_parser("deadline", "move a measure's deadline")
    dl.add_argument("--date", required=True, help="the new deadline, YYYY-MM-DD")
    dl.add_argument("--reason", required=True, help="why (kept on record with who and when)")
    ev = measure_parser("evidence", "add evidence: a note, a link or a file (photo or PDF)")
    ev.add_argument("--note", help="what the evidence shows")
    ev.add_argument("--link", help="https://...")
    ev.add_argument("--file", help="a photo or PDF (at most 5 MB)")
    cl = measure_parser("close", "close a measure with a note on what was done")
    cl.add_argument("--note", required=True, help="what was done")

    out = sub.add_parser("outbox", help="messages that are waiting, failed or dead (for the HMSB adviser)")
    out.add_argument("--status", default="dead", choices=("dead", "retry", "pending", "sent"),
                     help="which messages (default dead: given up after six tries)")
    out.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default 100)")
    out.add_argument("--json", action="store_true", help="print JSON")
    out.set_defaults(func=cmd_outbox)

    prn = sub.add_parser("prune", help="delete old retry-ledger rows and old outbox card payloads (the bot does "
                                       "this daily)")
    prn.add_argument("--dry-run", action="store_true", help="only count what would be pruned")
    prn.add_argument("--now", help="prune as of this instant (ISO; local time if no offset)")
    prn.set_defaults(func=cmd_prune)

    exp = sub.add_parser("export", help="the inspection pack for a period: plan against done, rounds, deviations "
                                        "and measures, responsibilities, by internkontrollforskriften § 5")
    exp.add_argument("--from", dest="date_from", type=_date, required=True, help="YYYY-MM-DD (deadlines from)")
    exp.add_argument("--to", dest="date_to", type=_date, required=True, help="YYYY-MM-DD (deadlines to)")
    exp.add_argument("--out", required=True, help="the file to write (CSV: the other parts beside it)")
    exp.add_argument("--format", choices=("xlsx", "pdf", "csv", "json"),
                     help="default: from --out's suffix (.xlsx, .pdf, .csv), else json")
    exp.add_argument("--section", help="one section's pack (its key, as in the organisation file)")
    exp.add_argument("--force", action="store_true", help="overwrite existing files")
    exp.add_argument("--locale", choices=("nb", "en"), default="nb", help="the pack's language (default nb)")
    exp.add_argument("--by", metavar="EMAIL", help="who generates it (default: the HMSB adviser)")
    exp.add_argument("--now", help="as of this instant (ISO; local time if no offset)")
    exp.set_defaults(func=cmd_export)

    cal = sub.add_parser("calendar", help="calendar feeds of the wheel (and its picture), per person, section or unit"
                         ).add_subparsers(dest="calendar_command", required=True)
    link = cal.add_parser("link", help="print the feed's links (made the first time; the same after)")
    whose = link.add_mutually_exclusive_group(required=True)
    whose.add_argument("--person", metavar="EMAIL", help="this person's tasks")
    whose.add_argument("--section", metavar="KEY", help="this section's tasks")
    whose.add_argument("--unit", action="store_true", help="the whole unit's wheel")
    link.add_argument("--by", metavar="EMAIL", help="who makes it (default: the HMSB adviser)")
    rev = cal.add_parser("revoke", help="revoke a feed's token: its calendar and picture links stop working")
    rev.add_argument("token", help="the token in the feed's links")
    for sp in (link, rev):
        sp.add_argument("--now", help="as of this instant (ISO; default: now)")
        sp.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
        sp.set_defaults(func=cmd_calendar)

    whl = sub.add_parser("wheel", help="draw the year's wheel as a picture (SVG): months as a ring, every task at its "
                                       "deadline, coloured by status")
    whl.add_argument("--year", type=int, required=True, help="the year to draw")
    whom = whl.add_mutually_exclusive_group()
    whom.add_argument("--section", metavar="KEY", help="only this section's tasks")
    whom.add_argument("--person", metavar="EMAIL", help="only this person's tasks")
    whl.add_argument("--out", required=True, help="FILE.svg")
    whl.add_argument("--force", action="store_true", help="overwrite an existing file")
    whl.add_argument("--locale", choices=("nb", "en"), default="nb", help="the legend's language (default nb)")
    whl.add_argument("--now", help="as of this instant (ISO; default: now): statuses and today's mark")
    whl.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    whl.set_defaults(func=cmd_wheel)

    person = sub.add_parser("person", help="people").add_subparsers(dest="person_command", required=True)
    away = person.add_parser("away", help="mark a floor contact away (the deputy gets the prompts), or --back")
    away.add_argument("email", help="the floor contact's e-mail, as in the organisation file")
    away.add_argument("--back", action="store_true", help="they are back: the prompts go to them again")
    away.add_argument("--config", help="organisation file (default: HMS_CONFIG or the bundled KHM file)")
    away.set_defaults(func=cmd_person_away)

    man = sub.add_parser("manifest", help="build the Teams app package an admin uploads")
    man.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (a GUID)")
    man.add_argument("--out", help="where to write the zip (default: hms-hjulet.zip)")
    man.add_argument("--config", help="organisation file with the app's names and URLs (default: HMS_CONFIG or the "
                                      "bundled KHM file)")
    man.set_defaults(func=cmd_manifest)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever goes wrong that a person can act on is one line on stderr, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # inside: its --help meets a closed pipe too
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a reader that went away shows here, not at the interpreter's exit
        return code
    except ConfigError as exc:
        print(f"the configuration has {len(exc.problems)} problem(s); nothing was changed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `hms-bot due --json | head`: the reader has what it wanted. Nothing more may reach the closed pipe (the
        # interpreter's last flush would report it), so stdout goes to /dev/null; 141 is a shell's SIGPIPE status.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _one_line(exc)
        if message is None:
            raise
        print(f"hms-bot: {message}", file=sys.stderr)
        return 2


def _one_line(exc: Exception) -> str | None:
    """The one line for an error a person can act on (None: a fault of the program, shown with its traceback)."""
    from bot.serving import CannotListen

    if isinstance(exc, CliError | DatabaseInUse | CannotListen):
        return str(exc)
    reason = db.unreachable(exc)
    if reason is not None:
        try:
            url = db.safe_url(_settings().database_url)
        except CliError:
            url = "of DATABASE_URL"
        return f"cannot reach the database {url}: {reason} (DATABASE_URL says which database)"
    return None


if __name__ == "__main__":
    sys.exit(main())
