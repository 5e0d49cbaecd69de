"""The reminder policy: when each step goes out (working days, 09:00 Oslo time, DST), and catching up once."""

from __future__ import annotations

import datetime as dt

from hms.config import HmsConfig, ReminderOverrides, ReminderPolicy
from hms.policy import Item, due_steps, steps
from hms.workdays import WorkCalendar
from tests.conftest import oslo

CAL = WorkCalendar("Europe/Oslo")
FIRE_Q1_2027 = Item("fire_round:2027-Q1:hm-1", dt.date(2027, 1, 1), dt.date(2027, 3, 31), ("fatima@x",),
                    deputy="lars@x", section_leader="jonas@x", adviser="hanne@x")


def schedule(item: Item, policy: ReminderPolicy) -> dict[str, dt.datetime]:
    return {s.name: s.at for s in steps(item, policy, CAL)}


def test_fire_round_q1_2027_over_easter() -> None:
    at = schedule(FIRE_Q1_2027, ReminderPolicy())
    assert at == {
        "prompt": oslo(2027, 3, 10, 9),  # three weeks before the quarter ends
        "deputy": oslo(2027, 3, 15, 9),  # five days later (a Monday: Saturday moves on)
        "reminder-7": oslo(2027, 3, 17, 9),  # 7 working days back over Easter (25, 26, 29 March)
        "reminder-1": oslo(2027, 3, 30, 9),
        "overdue": oslo(2027, 4, 1, 9),
        "escalation-section_leader": oslo(2027, 4, 6, 9),
        "escalation-hmsb_adviser": oslo(2027, 4, 15, 9),
    }
    # 09:00 Oslo is 08:00 UTC in winter and 07:00 UTC after the DST change on 28 March
    assert at["prompt"].astimezone(dt.UTC).hour == 8 and at["reminder-1"].astimezone(dt.UTC).hour == 7


def test_vernerunde_six_weeks_before_first_of_july(khm: HmsConfig) -> None:
    policy = khm.policy(khm.task("vernerunde"))
    item = Item("vernerunde:2027:samling", dt.date(2027, 1, 2), dt.date(2027, 7, 1), ("tor@x",), adviser="hanne@x")
    at = schedule(item, policy)
    assert at["prompt"] == oslo(2027, 5, 20, 9)
    assert "escalation-section_leader" not in at  # no section leader above a section leader
    assert at["escalation-hmsb_adviser"] == oslo(2027, 7, 16, 9)


def test_away_floor_contact_goes_to_deputy() -> None:
    away = Item(**{**FIRE_Q1_2027.__dict__, "assignee_away": True})
    all_steps = steps(away, ReminderPolicy(), CAL)
    assert {s.to for s in all_steps if s.kind in ("prompt", "reminder", "overdue")} == {("lars@x",)}
    assert "deputy" not in {s.name for s in all_steps}


def test_prompt_when_window_opens_and_july_weeks() -> None:
    review = Item("management_review:2027:unit", dt.date(2027, 10, 1), dt.date(2027, 11, 30), ("per@x",))
    at = schedule(review, ReminderPolicy(prompt_when_window_opens=True))
    assert at["prompt"] == oslo(2027, 10, 1, 9)
    summer = Item("x", dt.date(2027, 6, 1), dt.date(2027, 8, 20), ("a@x",))
    july = ReminderPolicy().merged(ReminderOverrides(skip_july_holiday=True, first_prompt_days_before=40))
    assert schedule(summer, july)["prompt"] == oslo(2027, 8, 2, 9)  # 11 July falls in the holiday weeks
    assert schedule(summer, ReminderPolicy(first_prompt_days_before=40))["prompt"] == oslo(2027, 7, 12, 9)


def test_disabled_policy_and_no_assignee_send_nothing() -> None:
    assert steps(FIRE_Q1_2027, ReminderPolicy(enabled=False), CAL) == []
    assert steps(Item("x", dt.date(2027, 1, 1), dt.date(2027, 2, 1), ()), ReminderPolicy(), CAL) == []


def test_due_steps_catch_up_once() -> None:
    all_steps = steps(FIRE_Q1_2027, ReminderPolicy(), CAL)
    assert due_steps(all_steps, oslo(2027, 3, 10, 8, 59)) == []
    assert [s.name for s in due_steps(all_steps, oslo(2027, 3, 10, 9))] == ["prompt"]
    # back after three weeks of downtime: one catch-up message (the newest), plus the deputy prompt
    names = [s.name for s in due_steps(all_steps, oslo(2027, 4, 2, 12))]
    assert names == ["overdue", "deputy"]
    late = [s.name for s in due_steps(all_steps, oslo(2027, 5, 1, 12))]
    assert late == ["overdue", "deputy", "escalation-section_leader", "escalation-hmsb_adviser"]


def test_dedupe_keys_are_stable() -> None:
    a = steps(FIRE_Q1_2027, ReminderPolicy(), CAL)
    b = steps(FIRE_Q1_2027, ReminderPolicy(), CAL)
    assert [s.dedupe_key(FIRE_Q1_2027.key, to) for s in a for to in s.to] == \
           [s.dedupe_key(FIRE_Q1_2027.key, to) for s in b for to in s.to]
    assert len({s.dedupe_key(FIRE_Q1_2027.key, to) for s in a for to in s.to}) == len(a)


def test_nothing_due_before_tracking_started_has_a_step() -> None:
    starts = dt.date(2027, 4, 1)
    assert steps(FIRE_Q1_2027, ReminderPolicy(), CAL, starts=starts) == []  # due 31 March: the day before
    assert due_steps(steps(FIRE_Q1_2027, ReminderPolicy(), CAL, starts=starts), oslo(2027, 4, 15, 9)) == []
    same_day = {s.name for s in steps(FIRE_Q1_2027, ReminderPolicy(), CAL, starts=dt.date(2027, 3, 31))}
    assert "escalation-hmsb_adviser" in same_day  # due on the first day: followed up like any other


def test_no_deputy_prompt_dated_before_tracking_started() -> None:
    # the bot starts on 16 March: the floor contact never had the prompt of 10 March, so no deputy for it
    names = [s.name for s in steps(FIRE_Q1_2027, ReminderPolicy(), CAL, starts=dt.date(2027, 3, 16))]
    assert "deputy" not in names and "prompt" in names
    assert [s.name for s in due_steps(steps(FIRE_Q1_2027, ReminderPolicy(), CAL, starts=dt.date(2027, 3, 16)),
                                      oslo(2027, 3, 16, 9))] == ["prompt"]  # one catch-up message
