"""The planning tick: ask the wheel and the database what should be sent now, and write it to the outbox.

Idempotent: every message has a unique key (item, step, recipient), so a second tick, a restart, a clock jump
or a second replica plans nothing twice. After downtime the reminder chain catches up with one message (see
hms.policy). The work grows with what is open around today, never with the years of history: only
occurrences whose window touches [today - 60 days, today + the longest prompt lead] are looked at. Nothing due
before tracking started (`usecases.due.tracking_starts`) is prompted, reminded or escalated.

A dry run (`hms-bot plan --dry-run`) computes the same messages and writes none of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from hms import policy as pol, wheel
from hms.config import HmsConfig
from hms.i18n import format_date, t
from hms.workdays import WorkCalendar
from storage import models as m, repo
from usecases.database import opened
from usecases.digest import weekly_digest
from usecases.due import tracking_starts
from usecases.outbox import outbox_row, person_target
from usecases.rounds import Rounds

log = logging.getLogger("hms.planner")

LOOK_BACK_DAYS = 60
GROUP_ROLES = {"management_group", "lamu"}


@dataclass(frozen=True)
class PlannedMessage:
    """One message a tick planned: its kind, recipient, the task and occurrence (or measure) it is about, and that
    one's deadline (none for the digest)."""

    key: str
    kind: str
    recipient: str
    task: str | None = None
    occurrence: str | None = None
    deadline: dt.date | None = None
    measure: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Stable field names, ISO dates."""
        return {"kind": self.kind, "recipient": self.recipient, "task": self.task, "occurrence": self.occurrence,
                "deadline": self.deadline.isoformat() if self.deadline else None, "measure": self.measure,
                "key": self.key}


@dataclass(frozen=True)
class PlanReport:
    considered: int
    planned: int
    messages: tuple[PlannedMessage, ...] = ()
    tracking_starts: dt.date | None = None


async def plan(s: AsyncSession, config: HmsConfig, rounds: Rounds, now: dt.datetime, *,
               dry_run: bool = False, public_url: str | None = None) -> PlanReport:
    """Write every prompt, reminder, overdue notice, deputy prompt and escalation due at `now`, and the reminders of
    safety rounds' agreed meetings, to the outbox (with `dry_run`, only say what would be written: nothing is).
    `public_url`: where people reach the bot's links (the digest links to the wheel's picture there)."""
    today = wheel.local_date(now, config)
    starts = await tracking_starts(s, config)
    if starts is None and dry_run:
        starts = today  # the real tick's program records today as the first day before it plans (prepare_database)
    ahead = max(config.policy(task).first_prompt_days_before for task in config.tasks) + 1
    start, end = today - dt.timedelta(days=LOOK_BACK_DAYS), today + dt.timedelta(days=ahead)
    occurrences = wheel.occurrences(config, start, end)
    done = await repo.completions(s, start, end)
    away = await repo.away_people(s)
    reacted = await repo.reacted_occurrences(s, [o.key for o in occurrences])
    locales = await _locales(s)
    cal = WorkCalendar(config.tz)
    adviser = config.roles.hmsb_adviser

    wanted: list[tuple[str, str, str, tuple[Any, ...]]] = []  # (dedupe key, kind, recipient, what to render)
    for occ in occurrences:
        task = config.task(occ.task)
        if occ.key in done or task is None:
            continue
        assignees = occ.assignees[:1] if task.responsible in GROUP_ROLES else occ.assignees
        item = pol.Item(occ.key, occ.window_start, occ.due, assignees, occ.deputy,
                        section_leader=occ.accountable[0] if occ.accountable else None,  # never the assignee
                        adviser=adviser, assignee_away=any(a in away for a in assignees))
        for step in pol.due_steps(pol.steps(item, config.policy(task), cal, starts=starts), now):
            if step.kind == "deputy" and occ.key in reacted:
                continue
            wanted += [(step.dedupe_key(occ.key, to), step.kind, to, (occ, step)) for to in step.to]
    measure_policy = config.reminders.model_copy(
        update={"escalate_to_unit_head_after": config.measures.escalate_to_unit_head_after})
    for measure, finding, occ_row in await repo.open_measures(s):
        section_key = measure.section_key or (occ_row.section_key if occ_row else None)
        section = config.section(section_key) if section_key else None
        # the deadline is part of the key: a moved deadline plans its reminders and escalations again
        item = pol.Item(f"measure:{measure.id}@{measure.deadline.isoformat()}",
                        measure.created_at.astimezone(config.tz).date(), measure.deadline, (measure.owner_email,),
                        None, section_leader=section.leader if section else None, adviser=adviser,
                        assignee_away=measure.owner_email in away, unit_head=config.roles.unit_head)
        for step in pol.due_steps(pol.steps(item, measure_policy, cal, prompt=False, starts=starts), now):
            wanted += [(step.dedupe_key(item.key, to), step.kind, to, (measure, finding, occ_row, step))
                       for to in step.to]

    # a safety round's prompts bring the card to agree on its time until it is agreed; agreed ones are reminded
    meetings = await rounds.meetings.states(s, [w[3][0] for w in wanted if len(w[3]) == 2], today)
    reminders = await rounds.meetings.due_reminders(s, now, locales)

    week = wheel.local_date(now, config).isocalendar()
    digest_key = f"digest|{week.year}-W{week.week:02d}|{adviser}"
    existing = await _existing_keys(s, [w[0] for w in wanted] + [r.key for r in reminders] + [digest_key])
    rows = []
    messages = []
    for key, kind, to, what in wanted:
        if key in existing:
            continue
        locale = locales.get(to) or config.unit.locale
        if len(what) == 2:  # an occurrence step
            occ, step = what
            if step.kind == "escalation":
                activity = rounds.escalation_activity(occ, locale)
            elif rounds.reports.is_report(occ):  # the section's annual report comes drafted from the records
                line = rounds.prompt_line(occ, step.kind, locale)
                activity = await rounds.reports.activity(s, occ, now, locale, line, step.name)
            else:
                activity = rounds.prompt_activity(occ, step.name, step.kind, locale, meetings.get(occ.key))
            messages.append(PlannedMessage(key, kind, to, occ.task, occ.key, occ.due))
        else:
            measure, finding, occ_row, step = what
            activity = _measure_message(config, rounds, measure, finding, occ_row, step, locale)
            messages.append(PlannedMessage(key, kind, to, occ_row.task_key if occ_row else None,
                                           occ_row.key if occ_row else None, measure.deadline, measure.id))
        rows.append(outbox_row(key, kind, person_target(to), activity))
    for reminder in reminders:
        if reminder.key not in existing:
            occ = reminder.occurrence
            rows.append(outbox_row(reminder.key, "meeting_reminder", person_target(reminder.recipient),
                                   reminder.activity))
            messages.append(PlannedMessage(reminder.key, "meeting_reminder", reminder.recipient, occ.task, occ.key,
                                           occ.due))
    if config.weekly_digest:
        digest = await weekly_digest(s, config, now, cal, existing, public_url=public_url, dry_run=dry_run)
        rows += digest
        messages += [PlannedMessage(str(r["dedupe_key"]), "digest", adviser) for r in digest]
    planned = len(rows) if dry_run else await repo.enqueue(s, rows, now)
    if planned and not dry_run:
        log.info("planned %d message(s)", planned)
    return PlanReport(considered=len(wanted), planned=planned, messages=tuple(messages), tracking_starts=starts)


async def plan_once(url: str, config: HmsConfig, card_key: bytes, now: dt.datetime, *,
                    dry_run: bool = False, public_url: str | None = None) -> PlanReport:
    """One planning tick from the command line (`hms-bot plan`). A real one prepares the database as the bot does
    (recording `now` as its first day when nothing is on record); a dry run only checks it and writes nothing."""
    async with opened(url, now=now, write=not dry_run) as s:
        return await plan(s, config, Rounds(config, card_key), now, dry_run=dry_run, public_url=public_url)


def _measure_message(config: HmsConfig, rounds: Rounds, measure: m.Measure, finding: m.Finding | None,
                     occ_row: m.Occurrence | None, step: pol.Step, locale: str) -> dict[str, object]:
    due = format_date(measure.deadline, locale)
    if step.kind == "escalation":
        owner = config.person(measure.owner_email)
        item = rounds.measures.description((measure, finding, occ_row))[:80]
        text = t(locale, "prompt.measure_escalation", item=item, due=due,
                 who=owner.name if owner else measure.owner_email)
    elif step.kind == "overdue":
        text = t(locale, "prompt.measure_overdue", due=due)
    else:
        text = t(locale, "prompt.measure_reminder", due=due)
    return rounds.measures.measure_activity(measure, finding, occ_row, locale, text)


async def _existing_keys(s: AsyncSession, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        stmt = select(m.OutboxMessage.dedupe_key).where(col(m.OutboxMessage.dedupe_key).in_(chunk))
        found |= set((await s.exec(stmt)).all())
    return found


async def _locales(s: AsyncSession) -> dict[str, str]:
    stmt = select(m.ConversationRef.person_email, m.ConversationRef.locale).where(
        m.ConversationRef.conversation_type == "personal", m.ConversationRef.active == True)  # noqa: E712
    return {email: locale for email, locale in (await s.exec(stmt)).all() if email and locale}
