"""The wheel engine: every recurrence kind, statuses, DST, leap years and the year end."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from hms.config import HmsConfig, parse_config
from hms.wheel import Completion, due_items, find_occurrence, local_date, occurrences, status_of
from tests.conftest import oslo

D = dt.date


def of(config: HmsConfig, task: str, start: dt.date, end: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    return [(o.key, o.window_start, o.due) for o in occurrences(config, start, end) if o.task == task]


def test_done_when_2027(khm: HmsConfig) -> None:
    occ = occurrences(khm, D(2027, 1, 1), D(2027, 12, 31))
    fire = [o for o in occ if o.task == "fire_round"]
    assert Counter(o.floor for o in fire) == {f.key: 4 for f in khm.floors()}
    assert sorted({o.due for o in fire}) == [D(2027, 3, 31), D(2027, 6, 30), D(2027, 9, 30), D(2027, 12, 31)]
    for task, due in (("vernerunde", D(2027, 7, 1)), ("action_plan_input", D(2027, 9, 15)),
                      ("annual_report", D(2027, 12, 1))):
        rows = [o for o in occ if o.task == task]
        assert sorted(o.section for o in rows) == sorted(s.key for s in khm.sections)
        assert {o.due for o in rows} == {due}
        assert all(o.assignee == khm.section(o.section).leader for o in rows)
    [plan] = [o for o in occ if o.task == "action_plan"]
    assert plan.due == D(2027, 10, 1) and plan.assignee == khm.roles.unit_head
    assert "hanne.solberg@khm.uio.no" in plan.participants
    [review] = [o for o in occ if o.task == "management_review"]
    assert (review.window_start, review.due) == (D(2027, 10, 1), D(2027, 11, 30))
    focus = [(o.window_start, o.due) for o in occ if o.task == "focus_areas"]
    assert focus == [(D(2026, 12, 1), D(2027, 1, 31)), (D(2027, 12, 1), D(2028, 1, 31))]
    assert [o.cycle for o in occ if o.task == "ros"] == ["2027"]
    assert [o.cycle for o in occ if o.task == "ark_survey"] == []
    assert not [o for o in occ if o.task in ("unwanted_incident", "audit_inspection", "ark_measures")]


def test_fire_round_floor_people(khm: HmsConfig) -> None:
    [o] = [o for o in occurrences(khm, D(2027, 2, 1), D(2027, 2, 1)) if o.key == "fire_round:2027-Q1:hm-2"]
    assert (o.assignee, o.deputy, o.section) == ("eirik.haugen@khm.uio.no", "ida.lund@khm.uio.no", "publikum")
    assert o.accountable == ("jonas.eide@khm.uio.no",)
    assert (o.window_start, o.due) == (D(2027, 1, 1), D(2027, 3, 31))


def test_every_third_year_only_in_its_years(khm: HmsConfig) -> None:
    years = [o.cycle for o in occurrences(khm, D(2024, 1, 1), D(2036, 12, 31)) if o.task == "ros"]
    assert years == ["2024", "2027", "2030", "2033", "2036"]
    ark = [o.cycle for o in occurrences(khm, D(2024, 1, 1), D(2030, 12, 31)) if o.task == "ark_survey"]
    assert ark == ["2026", "2029"]


def test_continuous_review_every_six_months(khm: HmsConfig) -> None:
    rows = of(khm, "section_risk_assessment", D(2027, 1, 1), D(2027, 12, 31))
    assert {(s, e) for _, s, e in rows} == {(D(2027, 1, 1), D(2027, 6, 30)), (D(2027, 7, 1), D(2027, 12, 31))}
    assert len(rows) == 2 * 4


def test_window_across_year_end_and_period_overlap(khm: HmsConfig) -> None:
    assert of(khm, "focus_areas", D(2027, 1, 15), D(2027, 1, 15)) == [
        ("focus_areas:2026:unit", D(2026, 12, 1), D(2027, 1, 31))]
    assert of(khm, "focus_areas", D(2027, 2, 1), D(2027, 11, 30)) == []
    assert of(khm, "focus_areas", D(2027, 12, 31), D(2028, 1, 1)) == [
        ("focus_areas:2027:unit", D(2027, 12, 1), D(2028, 1, 31))]


def test_default_window_and_opening_before_new_year(khm_text: str) -> None:
    text = khm_text.replace('recurrence: {kind: yearly, due: "09-15", opens: "08-15"}',
                            'recurrence: {kind: yearly, due: "03-01"}')
    text = text.replace('recurrence: {kind: yearly, due: "12-01", opens: "11-01"}',
                        'recurrence: {kind: yearly, due: "01-15", opens: "12-01"}')
    config = parse_config(text)
    [(_, start, due)] = of(config, "action_plan_input", D(2028, 3, 1), D(2028, 3, 1))[:1]
    assert (start, due) == (D(2028, 2, 1), D(2028, 3, 1))  # opens on the 1st of the month before
    rows = of(config, "annual_report", D(2027, 12, 20), D(2027, 12, 20))
    assert {(s, d) for _, s, d in rows} == {(D(2027, 12, 1), D(2028, 1, 15))}


def test_leap_years(khm: HmsConfig) -> None:
    q1 = {o.due for o in occurrences(khm, D(2028, 2, 29), D(2028, 2, 29)) if o.task == "fire_round"}
    assert q1 == {D(2028, 3, 31)}
    assert len([o for o in occurrences(khm, D(2028, 2, 29), D(2028, 2, 29)) if o.task == "fire_round"]) == 5
    # a day on 29 February of a leap year is inside Q1's window and reported as open
    items = due_items(khm, D(2028, 2, 29), D(2028, 2, 29), oslo(2028, 2, 29, 12), {})
    assert {i.status for i in items if i.occurrence.task == "fire_round"} == {"open"}


def test_status_transitions(khm: HmsConfig) -> None:
    [o] = [o for o in occurrences(khm, D(2027, 7, 1), D(2027, 7, 1)) if o.key == "vernerunde:2027:samling"]
    assert status_of(o, D(2027, 1, 1), None) == "upcoming"
    assert status_of(o, D(2027, 1, 2), None) == "open"
    assert status_of(o, D(2027, 7, 1), None) == "open"  # the deadline day itself is still in time
    assert status_of(o, D(2027, 7, 2), None) == "overdue"
    done = Completion(o.key, oslo(2027, 8, 1, 10), "tor.arne.nilsen@khm.uio.no")
    assert status_of(o, D(2027, 8, 2), done) == "done"


def test_overdue_starts_at_local_midnight_not_utc(khm: HmsConfig) -> None:
    # 31 March 2027 23:30 in Oslo is 21:30 UTC: still the deadline day locally.
    late_evening = oslo(2027, 3, 31, 23, 30)
    items = {i.occurrence.key: i.status for i in
             due_items(khm, D(2027, 3, 31), D(2027, 3, 31), late_evening, {})}
    assert items["fire_round:2027-Q1:hm-1"] == "open"
    # 1 April 00:30 in Oslo is still 31 March in UTC (22:30): overdue by the site's calendar.
    just_after = dt.datetime(2027, 3, 31, 22, 30, tzinfo=dt.UTC)
    items = {i.occurrence.key: i.status for i in
             due_items(khm, D(2027, 3, 31), D(2027, 3, 31), just_after, {})}
    assert items["fire_round:2027-Q1:hm-1"] == "overdue"


def test_dst_days_are_plain_calendar_days(khm: HmsConfig) -> None:
    # 28 March 2027 (spring forward) and 31 October 2027 (fall back) are ordinary days in the wheel.
    assert local_date(dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC), khm) == D(2027, 3, 28)
    assert local_date(dt.datetime(2027, 10, 30, 22, 30, tzinfo=dt.UTC), khm) == D(2027, 10, 31)
    assert local_date(dt.datetime(2027, 10, 31, 0, 30, tzinfo=dt.UTC), khm) == D(2027, 10, 31)
    rows = due_items(khm, D(2027, 10, 31), D(2027, 10, 31), oslo(2027, 10, 31, 2, 30), {})
    assert {i.occurrence.task for i in rows} >= {"fire_round", "management_review"}


def test_naive_now_refused(khm: HmsConfig) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_items(khm, D(2027, 1, 1), D(2027, 1, 31), dt.datetime(2027, 1, 1), {})  # noqa: DTZ001


def test_bad_period_refused(khm: HmsConfig) -> None:
    with pytest.raises(ValueError):
        occurrences(khm, D(2027, 2, 1), D(2027, 1, 1))


def test_find_occurrence_round_trip(khm: HmsConfig) -> None:
    for o in occurrences(khm, D(2027, 1, 1), D(2027, 12, 31)):
        assert find_occurrence(khm, o.key) == o
    assert find_occurrence(khm, "fire_round:2027-Q1:nowhere") is None
    assert find_occurrence(khm, "nonsense") is None
    assert find_occurrence(khm, "ros:2028:unit") is None  # not a ROS year


def test_before_tracking_started_is_neither_overdue_nor_open(khm: HmsConfig) -> None:
    [o] = [o for o in occurrences(khm, D(2026, 10, 1), D(2026, 10, 1)) if o.key == "action_plan:2026:unit"]
    starts = D(2026, 11, 30)
    assert status_of(o, D(2026, 11, 30), None, starts) == "before_start"
    assert status_of(o, D(2026, 11, 30), None, D(2026, 10, 1)) == "overdue"  # due on the first day: it counts
    done = Completion(o.key, oslo(2026, 9, 28, 12), "hanne.solberg@khm.uio.no", "hanne.solberg@khm.uio.no")
    assert status_of(o, D(2026, 11, 30), done, starts) == "done"  # registered afterwards: on record like any
    items = due_items(khm, D(2026, 1, 1), D(2026, 12, 31), oslo(2026, 11, 30, 9), {}, starts=starts)
    assert not [i for i in items if i.status == "overdue"]
    assert {i.status for i in items if i.occurrence.due < starts} == {"before_start"}
    assert {i.status for i in items if i.occurrence.due >= starts} <= {"open", "upcoming"}
