"""The reminder policy as pure code: which prompts, reminders, overdue notices and escalations an open item has,
to whom and at which instant, and which of them are due at `now`.

An item is a round or task occurrence, or a measure: anything with a deadline and someone responsible. Every
step has a stable name, so the planner can write it to the outbox under a unique key and planning twice, or on
two replicas, sends nothing twice. After downtime only the newest step of the reminder chain is sent: a person
gets one catch-up message, not every reminder they missed.

Nothing due before the wheel was kept (`starts`, the day tracking started) has a step at all, and no deputy prompt
dated before that day is sent: the floor contact had no prompt from the bot to ignore.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from hms.config import ReminderPolicy
from hms.workdays import WorkCalendar

StepKind = Literal["prompt", "reminder", "overdue", "deputy", "escalation"]


@dataclass(frozen=True)
class Item:
    """What the policy needs to know about something with a deadline."""

    key: str
    window_start: dt.date
    due: dt.date
    assignees: tuple[str, ...]
    deputy: str | None = None
    section_leader: str | None = None
    adviser: str | None = None
    assignee_away: bool = False
    unit_head: str | None = None  # the last to be told (measures: `MeasureDefaults.escalate_to_unit_head_after`)


@dataclass(frozen=True)
class Step:
    """One message the policy wants sent: the name is unique per item."""

    name: str
    kind: StepKind
    to: tuple[str, ...]
    at: dt.datetime

    def dedupe_key(self, item_key: str, recipient: str) -> str:
        return f"{item_key}|{self.name}|{recipient}"


def _at(cal: WorkCalendar, day: dt.date, policy: ReminderPolicy) -> dt.datetime:
    hour, minute = (int(x) for x in policy.send_at.split(":"))
    return cal.at(cal.next_working_day(day), dt.time(hour, minute))


def steps(item: Item, policy: ReminderPolicy, cal: WorkCalendar, *, prompt: bool = True,
          starts: dt.date | None = None) -> list[Step]:
    """Every step of an item's chain, in time order (the same answer whatever `now` is); none for an item due
    before `starts`, the day tracking started."""
    if not policy.enabled or not item.assignees or (starts is not None and item.due < starts):
        return []
    cal = cal if cal.skip_july_holiday == policy.skip_july_holiday else WorkCalendar(
        cal.tz, skip_july_holiday=policy.skip_july_holiday)
    to = (item.deputy,) if item.assignee_away and item.deputy else item.assignees
    out: list[Step] = []
    if prompt:
        first = item.window_start if policy.prompt_when_window_opens else max(
            item.window_start, item.due - dt.timedelta(days=policy.first_prompt_days_before))
        prompt_at = _at(cal, first, policy)
        out.append(Step("prompt", "prompt", to, prompt_at))
        if policy.deputy_after_days and item.deputy and not item.assignee_away:
            deputy_day = prompt_at.date() + dt.timedelta(days=policy.deputy_after_days)
            if deputy_day <= item.due and (starts is None or deputy_day >= starts):
                out.append(Step("deputy", "deputy", (item.deputy,), _at(cal, deputy_day, policy)))
    for n in sorted(set(policy.reminder_working_days_before), reverse=True):
        day = cal.add_working_days(item.due, -n) if cal.is_working_day(item.due) else \
            cal.add_working_days(cal.next_working_day(item.due), -n)
        if day >= item.window_start:
            out.append(Step(f"reminder-{n}", "reminder", to, _at(cal, day, policy)))
    if policy.overdue_notice:
        out.append(Step("overdue", "overdue", to, _at(cal, item.due + dt.timedelta(days=1), policy)))
    for role, after, who in (("section_leader", policy.escalate_to_section_leader_after, item.section_leader),
                             ("hmsb_adviser", policy.escalate_to_adviser_after, item.adviser),
                             ("unit_head", policy.escalate_to_unit_head_after, item.unit_head)):
        if after and who and who not in to:
            day = cal.add_working_days(cal.next_working_day(item.due + dt.timedelta(days=1)), after)
            out.append(Step(f"escalation-{role}", "escalation", (who,), _at(cal, day, policy)))
    return sorted(out, key=lambda s: (s.at, s.name))


CHAIN: tuple[StepKind, ...] = ("prompt", "reminder", "overdue")


def due_steps(all_steps: list[Step], now: dt.datetime) -> list[Step]:
    """The steps to send at `now`: the newest passed step of the prompt/reminder/overdue chain, and every
    passed deputy prompt or escalation (each goes to someone else, once)."""
    passed = [s for s in all_steps if s.at <= now]
    chain = [s for s in passed if s.kind in CHAIN]
    others = [s for s in passed if s.kind not in CHAIN]
    return ([chain[-1]] if chain else []) + others
