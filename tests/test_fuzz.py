"""A seeded, property-based fuzz of POST /api/messages and of every card payload (see tests/fuzzing.py).

Thousands of mutated activities per run, the same ones every run (hypothesis, derandomized). For every case:
no 5xx, no ERROR record or traceback in the log, nothing written for a request the door refused; after the run,
nothing stored that a valid activity could not have stored. Failures are listed with how the case was made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hms.config import HmsConfig
from tests import fuzzing
from tests.fakes.bf_peer import BfPeer

# thousands of cases on SQLite; fewer on PostgreSQL, where a turn's commits cost more
CASES = {"sqlite": int(os.environ.get("HMS_FUZZ_CASES", "2000")),
         "postgres": int(os.environ.get("HMS_FUZZ_CASES_PG", "600"))}


@pytest.fixture
def peer() -> Iterator[BfPeer]:
    with BfPeer(member_email="nobody@elsewhere.example") as p:  # strangers stay strangers
        yield p


def fuzz(db_url: str, peer: BfPeer, khm: HmsConfig, cases: int) -> fuzzing.Report:
    """Post `cases` generated cases to a fresh bot; returns the status histogram and every broken promise."""
    report = fuzzing.Report()
    trouble, undo = fuzzing.watch_logs()
    try:
        with fuzzing.Door(db_url, khm) as door:
            seeds = fuzzing.seeds(peer.service_url, door.key, khm)
            # the complete round with two deviations first, so measures 1 and 2 exist for the measure cards
            door.run(fuzzing.Case("setup submit", fuzzing.json.dumps(
                fuzzing.submit_seed(peer.service_url, door.key, khm)).encode()), report)

            @settings(max_examples=cases, derandomize=True, database=None, deadline=None, print_blob=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=fuzzing.cases(seeds, door.key, peer.service_url))
            def one(case: fuzzing.Case) -> None:
                door.run(case, report)

            one()
    finally:
        undo()
    for record in trouble.records:
        report.failures.append(f"log {record.levelname} {record.name}: {record.getMessage()[:200]}"
                               + (" (with a traceback)" if record.exc_info else ""))
    report.failures.extend(fuzzing.stored_problems(db_url, peer.service_url, khm))
    return report


def test_fuzz_door_and_card_payloads(db_url: str, peer: BfPeer, khm: HmsConfig, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    kind = "postgres" if db_url.startswith("postgres") else "sqlite"
    report = fuzz(db_url, peer, khm, CASES[kind])
    total = sum(report.statuses.values())
    print(f"\n[fuzz {kind}] cases={total} statuses: {report.histogram()}")
    assert total >= CASES[kind]
    assert 200 in report.statuses and 400 in report.statuses  # both the valid and the refused paths were taken
    shown = "\n".join(report.failures[:60])
    assert not report.failures, f"{len(report.failures)} broken promises in {total} cases:\n{shown}"
