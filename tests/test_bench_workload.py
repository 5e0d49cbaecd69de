"""The benchmark's mixed workload: the organisation it serves is valid and every round in it can be started by
the person the plan sends, and the plan keeps the mix it promises (bench/workload.py)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from bench.connector import Throttle
from bench.workload import Mix, Workload, organisation
from hms import wheel
from hms.config import HmsConfig
from usecases.rounds import Rounds


@pytest.fixture(scope="module")
def doc() -> dict:
    return organisation(30)


def test_generated_organisation_is_valid_and_every_contact_may_start_their_round(doc: dict) -> None:
    config = HmsConfig.model_validate(doc)
    rounds = Rounds(config, b"k")
    today = dt.date(2026, 11, 30)
    fire = {o.floor: o for o in wheel.occurrences(config, today, today) if o.task == "fire_round"}
    workload = Workload(doc, Mix(80, 10, 5, 5))
    assert len(workload.floors) == 5 + 30
    for floor, contact, deputy in workload.floors:
        assert rounds.may_act(fire[floor], contact)
        assert deputy is None or rounds.may_act(fire[floor], deputy)
    # some people are known by the Entra id in the file, most only by their Teams id (as in khm.yaml)
    in_file = [p for p in workload.everyone if p.in_file]
    assert 0 < len(in_file) < len(workload.everyone) / 2
    assert len({p.teams_id for p in workload.everyone}) == len(workload.everyone)
    assert len(workload.askers) == 20


def test_plan_keeps_the_mix_and_each_episode_in_order_in_one_lane(doc: dict) -> None:
    workload = Workload(doc, Mix(80, 10, 5, 5), seed=3)
    lanes = workload.plan(700, 50)
    ops = [op for lane in lanes for op in lane]
    assert Counter(op.kind for op in ops) == {"question": 560, "page": 70, "start": 35, "submit": 35}
    assert max(map(len, lanes)) - min(map(len, lanes)) <= 4
    floors = [op.episode.floor for op in ops if op.kind == "start" and op.episode]
    assert len(set(floors)) == len(floors)  # 35 rounds on 35 floors: every submit completes a round
    for lane in lanes:
        seen: dict[int, list[str]] = {}
        for op in lane:
            if op.episode:
                seen.setdefault(op.episode.number, []).append(op.kind)
        assert all(steps == ["start", "page", "page", "submit"] for steps in seen.values())
    assert len({op.text for op in ops if op.kind == "question"}) > 100  # varied questions
    again = [op.text for lane in Workload(doc, Mix(80, 10, 5, 5), seed=3).plan(700, 50) for op in lane]
    assert again == [op.text for op in ops]  # seeded


def test_soak_stream_keeps_the_mix(doc: dict) -> None:
    workload = Workload(doc, Mix(80, 10, 5, 5))
    stream = workload.stream(0)
    kinds = Counter(next(stream).kind for _ in range(20_000))
    assert kinds["question"] / 20_000 == pytest.approx(0.80, abs=0.02)
    assert kinds["start"] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert kinds["submit"] / 20_000 == pytest.approx(0.05, abs=0.01)


def test_mix_refuses_submits_without_starts_and_pages() -> None:
    with pytest.raises(ValueError):
        Mix.parse("90,0,5,5")
    with pytest.raises(ValueError):
        Mix.parse("90,5,0,5")
    assert Mix.parse("70,20,5,5").text() == "70,20,5,5"


def test_throttle_refuses_the_configured_shares() -> None:
    throttle = Throttle(share_429=0.1, share_502=0.05, share_504=0.05, seed=1)
    verdicts = Counter(throttle.verdict() for _ in range(10_000))
    assert verdicts[429] / 10_000 == pytest.approx(0.1, abs=0.015)
    assert verdicts[502] / 10_000 == pytest.approx(0.05, abs=0.01)
    assert verdicts[504] / 10_000 == pytest.approx(0.05, abs=0.01)
