"""The organisation file: the bundled KHM file is valid, and each kind of broken file is refused with a
message that names the file, the place and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from hms.config import ConfigError, HmsConfig, load_config, parse_config


def break_it(text: str, old: str, new: str) -> str:
    assert old in text, f"test setup: {old!r} is not in the KHM file"
    return text.replace(old, new, 1)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "broken.yaml")
    return [str(p) for p in exc.value.problems]


def test_bundled_khm_file_is_valid(khm: HmsConfig) -> None:
    assert khm.unit.timezone == "Europe/Oslo"
    assert khm.unit.demo_data and all(p.demo for p in khm.people)
    assert len(khm.checklist("fire_round").items) == 18
    assert len(khm.checklist("vernerunde").items) == 15
    assert {t.recurrence.kind for t in khm.tasks} == {"yearly", "quarterly", "every_n_years", "window",
                                                      "continuous", "event"}
    assert all(f.contact and f.deputy for f in khm.floors())
    cim = khm.links["cim"].url
    assert cim == "https://uio-cim.no/loaddata.php?page=content&menu_id=98&sub_page=form"


def test_roles_of_a_person(khm: HmsConfig) -> None:
    assert ("section_leader", "samling") in khm.roles_of("TOR.ARNE.NILSEN@khm.uio.no")
    assert khm.roles_of("fatima.ali@khm.uio.no") == [("floor_contact", "hm-1")]
    assert khm.roles_of("nobody@example.org") == []


def test_bad_yaml_names_line(khm_text: str) -> None:
    text = break_it(khm_text, "  timezone: Europe/Oslo", "  timezone: [Europe/Oslo")
    [msg] = problems(text)
    assert msg.startswith("broken.yaml:")
    assert "not valid YAML" in msg


def test_unknown_field_named_with_line(khm_text: str) -> None:
    text = break_it(khm_text, "    scope: floor\n", "    scope: floor\n    scoop: oops\n")
    [msg] = problems(text)
    line = text.splitlines().index("    scoop: oops") + 1
    assert f"broken.yaml:{line}:" in msg
    assert "tasks[3].scoop" in msg and "unknown field" in msg


def test_unknown_role(khm_text: str) -> None:
    text = break_it(khm_text, "    responsible: floor_contact", "    responsible: brannsjef")
    [msg] = problems(text)
    assert "tasks[3].responsible" in msg and "unknown role 'brannsjef'" in msg


def test_missing_role(khm_text: str) -> None:
    text = break_it(khm_text, "  hmsb_adviser: hanne.solberg@khm.uio.no\n", "")
    [msg] = problems(text)
    assert "roles.hmsb_adviser" in msg and "required field is missing" in msg


def test_person_referenced_but_not_defined(khm_text: str) -> None:
    text = break_it(khm_text, "    contact: eirik.haugen@khm.uio.no", "    contact: eirik.hagen@khm.uio.no")
    [msg] = problems(text)
    line = text.splitlines().index("        contact: eirik.hagen@khm.uio.no") + 1
    assert f"broken.yaml:{line}:" in msg
    assert "buildings[0].floors[2].contact" in msg and "not defined under people" in msg


def test_impossible_date(khm_text: str) -> None:
    text = break_it(khm_text, 'due: "09-15"', 'due: "09-31"')
    [msg] = problems(text)
    assert "tasks[0].recurrence.due" in msg and "no day 31 in month 9" in msg


def test_29_february_refused(khm_text: str) -> None:
    [msg] = problems(break_it(khm_text, 'due: "12-01"', 'due: "02-29"'))
    assert "29 February" in msg


def test_floor_without_floor_contact(khm_text: str) -> None:
    [msg] = problems(break_it(khm_text, "        contact: ola.strand@khm.uio.no\n", ""))
    assert "buildings[0].floors[0]" in msg and "no floor contact" in msg


def test_unknown_recurrence_kind(khm_text: str) -> None:
    [msg] = problems(break_it(khm_text, "{kind: quarterly}", "{kind: monthly}"))
    assert "unknown recurrence kind" in msg


def test_role_that_scope_cannot_resolve(khm_text: str) -> None:
    [msg] = problems(break_it(khm_text, "    scope: section\n    responsible: section_leader\n"
                                        "    participants: [hmsb_adviser]\n",
                              "    scope: unit\n    responsible: section_leader\n"
                              "    participants: [hmsb_adviser]\n"))
    assert "cannot be resolved for a task of scope 'unit'" in msg


def test_all_problems_reported_at_once_in_file_order(khm_text: str) -> None:
    text = break_it(khm_text, "    contact: eirik.haugen@khm.uio.no", "    contact: ghost@khm.uio.no")
    text = break_it(text, 'due: "10-01"', 'due: "13-01"')
    text = break_it(text, "  - key: vernerunde\n    title:", "  - key: vernerunde\n    titel: x\n    title:")
    msgs = problems(text)
    assert len(msgs) == 3  # the reference error is reported with the structural ones, not hidden behind them
    assert any("13-01" in m for m in msgs) and any("titel" in m for m in msgs)
    assert any("ghost@khm.uio.no is referenced here" in m for m in msgs)
    lines = [int(m.split(":")[1]) for m in msgs]
    assert lines == sorted(lines)


def test_unreadable_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(exc.value) and "cannot read" in str(exc.value)


def test_check_config_command(tmp_path: Path, khm_text: str, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(khm_text, encoding="utf-8")
    assert main(["check-config", str(good)]) == 0
    assert ("OK (20 people, 4 sections, 2 buildings, 5 floors, 0 declared roles, 15 tasks, 2 checklists)"
            in capsys.readouterr().out)

    bad = tmp_path / "bad.yaml"
    text = break_it(khm_text, "    contact: eirik.haugen@khm.uio.no", "    contact: ghost@khm.uio.no")
    text = break_it(text, "    deputy: nina.vik@khm.uio.no", "    deputy: ghost2@khm.uio.no")
    bad.write_text(text, encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "ghost@khm.uio.no" in err and "ghost2@khm.uio.no" in err
    assert str(bad) in err


def test_people_found_by_entra_object_id_in_any_case(khm: HmsConfig) -> None:
    fatima = khm.person_by_entra_id("0A1B2C3D-000D-4000-8000-00000000000D")
    assert fatima is not None and fatima.email == "fatima.ali@khm.uio.no"
    assert khm.person_by_entra_id("ffffffff-0000-4000-8000-000000000000") is None


def test_one_entra_object_id_for_two_people_is_refused(khm_text: str) -> None:
    text = break_it(khm_text, "  - {name: Lars Bakke, email: lars.bakke@khm.uio.no, title: Publikumsvert, demo: true}",
                    "  - {name: Lars Bakke, email: lars.bakke@khm.uio.no, title: Publikumsvert, demo: true,\n"
                    "     entra_object_id: 0A1B2C3D-000D-4000-8000-00000000000D}")
    [msg] = problems(text)
    assert "people[" in msg and "entra_object_id" in msg and "also people[" in msg


def test_tracking_starts_is_a_day(khm_text: str, khm: HmsConfig) -> None:
    import datetime as dt

    def with_start(value: str) -> str:
        return break_it(khm_text, "  demo_data: true\n", f"  demo_data: true\n  tracking_starts: {value}\n")

    assert khm.unit.tracking_starts is None  # the demo counts from the day its database was first migrated
    assert parse_config(with_start("2026-08-01")).unit.tracking_starts == dt.date(2026, 8, 1)
    for bad in ("2026-13-01", "2026-08-01T09:00", "snart"):  # YAML's own date reading raised a bare ValueError
        [problem] = problems(with_start(bad))
        assert "broken.yaml:" in problem and "unit.tracking_starts" in problem and "YYYY-MM-DD" in problem
