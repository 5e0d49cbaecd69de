"""Golden files pin each card's JSON (set UPDATE_GOLDEN=1 to rewrite them after a deliberate change), and every
card stays inside Adaptive Cards 1.5 and Teams' size limit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cards.actions import BadAction, CardAction, unpack
from cards.annual_report_form import ReportFormView, ReportPart, annual_report_form_card
from cards.checklist import (
    BuildingFault,
    ChecklistItemView,
    ChecklistView,
    SubmittedView,
    checklist_card,
    submitted_card,
)
from cards.digest import DigestView, MeasureLine, OverdueGroup, SectionBar, digest_card
from cards.due_list import DueGroup, DueRow, DueView, LaterRow, due_card
from cards.help import help_card
from cards.incident import incident_card
from cards.measure import MeasureActions, MeasureView, NewMeasureView, measure_card, new_measure_card
from cards.measures import MeasureRow, open_measures_card
from cards.meeting import ProposalView, ScheduleView, TimeInputs, proposal_card, schedule_card
from cards.register import RegisterView, register_card
from cards.status import StatusLine, StatusView, status_card
from cards.task_check import CheckRow, CheckView, task_check_card
from cards.task_done import TaskView, task_card
from cards.unknown_user import UnknownUserView, unknown_user_card
from cards.welcome import WelcomeView, welcome_card
from cards.who import WhoRow, WhoView, who_card

GOLDEN = Path(__file__).parent / "golden"
KEY = b"golden"


def data(verb: str, page: int) -> dict[str, Any]:
    return CardAction(verb, "fire_round:2027-Q1:hm-1", "n1", "fire_round", 1, page).pack(KEY)


ITEMS = tuple(ChecklistItemView(f"i{n}", f"Punkt {n}") for n in range(1, 12))
CHECKLIST = ChecklistView("Brannvernrunde", "Historisk museum, 1. etasje", "Frist 31. mars", ITEMS,
                          (("ok", "OK"), ("avvik", "Avvik"), ("ikke_relevant", "Ikke relevant")), frozenset({"avvik"}),
                          page=2, values={"i10": "avvik"}, comments={"i10": "Skilt mangler"},
                          errors={"i11": "Svar mangler."}, notice="Påminnelse")

CASES: dict[str, Any] = {
    "welcome_nb": lambda: welcome_card(WelcomeView("Fatima", "Kulturhistorisk museum",
                                                   ("etasjekontakt for 1. etasje",), ("Brannvernrunden",)), "nb"),
    "unknown_user_en": lambda: unknown_user_card(UnknownUserView("Museum of Cultural History", "Hanne Solberg",
                                                                 "hanne.solberg@khm.uio.no"), "en"),
    "help_nb": lambda: help_card("nb"),
    "due_nb": lambda: due_card(DueView("Frister – november 2026", (DueGroup("Desember 2026", (
        DueRow("1. desember", "HMS-årsrapport", "Administrasjonsseksjonen", "Marianne Berg", "open"),)),),
        "Ingenting", "Viser hele enheten."), "nb"),
    "incident_en": lambda: incident_card("https://uio-cim.no/x", "https://si-fra.example/", "en"),
    "status_nb": lambda: status_card(StatusView("Status 2027", StatusLine("", 3, 2, 1, 4),
                                                (StatusLine("Adm", 1, 1, 0, 1),), 2, 5, 1, rounds="Brannvernrunde"),
                                     "nb"),
    "checklist_page2_nb": lambda: checklist_card(CHECKLIST, "nb", data),
    "checklist_page1_en": lambda: checklist_card(ChecklistView(
        "Fire safety round", "Historical Museum, 1st floor", "Due 31 March", (
            ChecklistItemView("i1", "Item 1", "What to look for"), *ITEMS[1:]),
        (("ok", "OK"), ("avvik", "Deviation"), ("ikke_relevant", "Not applicable")), frozenset({"avvik"}),
        values={"i1": "ok", "i2": "avvik"}), "en", data),
    "submitted_nb": lambda: submitted_card(SubmittedView("Brannvernrunde", "1. etasje", "Levert av Fatima Ali "
                                                         "3. mars kl. 09.12 – 1 avvik",
                                                         (("Punkt 1", "OK", "", False),
                                                          ("Punkt 2", "Avvik", "Dør på kile\n\nTiltak nr. 7 "
                                                           "opprettet – ansvarlig Jonas Eide, frist 2. april 2027",
                                                           True)),
                                                         "Du leverte runden 3. mars kl. 09.12."), "nb"),
    "submitted_building_nb": lambda: submitted_card(SubmittedView(
        "Brannvernrunde", "1. etasje", "Levert av Fatima Ali 3. mars kl. 09.12 – 3 avvik",
        (("Branndører", "Avvik", "Dør lukker ikke", True), ("Utgangsskilt", "Avvik", "Lyser ikke", True),
         ("Lagring", "Avvik", "Esker i korridoren", True)), "Saksnummer EA-4711 er lagret.",
        (BuildingFault("Branndører", "EA-4711", "ticket:7", CardAction("round.ticket", "7", "n").pack(KEY)),
         BuildingFault("Utgangsskilt", None, "ticket:8", CardAction("round.ticket", "8", "n").pack(KEY))),
        "https://si-fra.example/"), "nb"),
    "submitted_building_record_en": lambda: submitted_card(SubmittedView(
        "Fire safety round", "1st floor", "Submitted by Fatima Ali 3 March at 09:12 – 1 deviation",
        (("Fire doors", "Deviation", "Does not close", True),), None,
        (BuildingFault("Fire doors", "EA-4711", "ticket:7"),)), "en"),
    "task_nb": lambda: task_card(TaskView("HMS-årsrapport", "Adm", "Frist 1. desember"), "nb",
                                 CardAction("task.done", "annual_report:2027:adm", "n").pack(KEY)),
    "digest_nb": lambda: digest_card(DigestView(
        "14", (3, 18, 10, 24),
        (SectionBar("Administrasjonsseksjonen", 1, 4, 2, 6),
         SectionBar("Seksjon for publikum og formidling", 2, 9, 8, 12),
         SectionBar("Kulturhistorisk museum", 0, 5, 0, 6)),
        (OverdueGroup("Administrasjonsseksjonen", ("Vernerunde – Adm (1. juli 2026, Marianne Berg)",
                                                   "Medarbeidersamtaler – Adm (15. juni 2026, Marianne Berg)")),
         OverdueGroup("Seksjon for publikum og formidling", tuple(
             f"Brannvernrunde – Historisk museum, {n}. etasje (31. mars 2027, Fatima Ali)" for n in range(1, 9)))),
        tuple(MeasureLine(f"Tiltak nr. {n}: Nødlys i trapp {n}", "Jonas Eide", "1. april 2027", n < 3)
              for n in range(1, 11)), 2, (4, 3, 1), ("HMS-årsrapport – Adm (1. desember 2026, Marianne Berg)",),
        3, "5. april 2026 – 31. desember 2027"), "nb"),
    "register_nb": lambda: register_card(RegisterView("Brannvernrunde – Historisk museum, 1. etasje",
                                                      "2026-Q4 · frist 31. desember 2026", "12. november 2026",
                                                      "Hanne Solberg", (("fatima.ali@khm.uio.no", "Fatima Ali"),)),
                                         "nb", CardAction("task.register", "fire_round:2026-Q4:hm-1:2026-11-12",
                                                          "n").pack(KEY)),
    "digest_first_day_en": lambda: digest_card(DigestView(
        "49", (0, 14, 0, 0), (SectionBar("Administrasjonsseksjonen", 0, 3, 0, 0),), (), (), 0, (0, 0, 0),
        ("HMS-årsrapport – Adm",), 0, "30. november 2025 – 31. desember 2026", 48, "30. november 2026"), "en"),
    "annual_report_form_nb": lambda: annual_report_form_card(ReportFormView(
        "HMS-årsrapport 2026 – Administrasjonsseksjonen", "Frist 1. desember 2026",
        "Utkastet er fylt ut fra det som er registrert for 2026.", (("Brannvernrunde", "3/4"), ("Avvik", "2")),
        (ReportPart("rounds", "Vernerunde og brannvernrunder", "Brannvernrunde: 3 av 4 utført, 1 etter fristen"),
         ReportPart("comments", "Kommentarer", "x" * 10, "Høyst 2000 tegn.")), "Det er tid for HMS-årsrapport."),
        "nb", CardAction("report.submit", "annual_report:2026:adm", "n").pack(KEY)),
    "annual_report_submitted_en": lambda: annual_report_form_card(ReportFormView(
        "HMS annual report 2026 – Administration section", "Due 1 December 2026",
        "HMS annual report for 2026, as the section leader submitted it.", (("Fire safety round", "3/4"),),
        (ReportPart("rounds", "Safety round and fire rounds", "Fire safety round: 3 of 4 done"),
         ReportPart("bht", "Help from BHT", "")), done_line="Submitted by Marianne Berg 20 November 09:12."),
        "en", None),
    "status_first_day_nb": lambda: status_card(StatusView("Status 2026", StatusLine("", 0, 14, 0, 0), (), 0, 5, 0,
                                                          34, "30. november 2026", "Brannvernrunde"), "nb"),
    "due_open_later_nb": lambda: due_card(DueView("Frister – mars 2027", (DueGroup("Mars 2027", (
        DueRow("31. mars", "Brannvernrunde", "Historisk museum, 1. etasje", "Fatima Ali", "open"),)),),
        "Ingenting", "Viser hele enheten.", "Åpent nå, frist senere", (
            LaterRow("Vernerunde", "4 seksjoner", "1. juli 2027"),
            LaterRow("Helhetlig ROS-analyse", "Kulturhistorisk museum", "15. juni 2027"))), "nb"),
    "task_check_nb": lambda: task_check_card(CheckView("Brannvernrunde – er den gjort?", (
        CheckRow("Historisk museum, 3. etasje (2027-Q1)", "Utført av Maria Johansen 3. mars kl. 09.12.", True),
        CheckRow("Historisk museum, 2. etasje (2027-Q1)", "Ikke utført · fristen var 31. mars 2027", False, True)),
        "Ingen", "Viser hele enheten."), "nb"),
    "who_en": lambda: who_card(WhoView("Floor contact", (
        WhoRow("Eirik Haugen", "floor contact for Historical Museum, 2nd floor", "eirik.haugen@khm.uio.no",
               "Formidler"),), "Nobody"), "en"),
    "measure_nb": lambda: measure_card(MeasureView("Tiltak: Branndører", "1. etasje", "Avvik: kile", "Ansvarlig: Jonas",
                                                   "EA-1", "https://si-fra.example/",
                                                   lines=("Tiltak nr. 1 · kilde: avvik fra runde",),
                                                   people=(("jonas.eide@khm.uio.no", "Jonas Eide"),),
                                                   evidence_hint="Send et bilde med «bevis tiltak 1»."), "nb",
                                       MeasureActions(*(CardAction(verb, "1", "n").pack(KEY) for verb in (
                                           "measure.close", "measure.ticket", "measure.reassign", "measure.deadline",
                                           "measure.evidence")))),
    "new_measure_nb": lambda: new_measure_card(NewMeasureView(
        (("ark", "ARK"), ("incident", "Uønsket hendelse (CIM)")), (("jonas.eide@khm.uio.no", "Jonas Eide"),),
        (("samling", "Seksjon for samlingsforvaltning"),), {"source": "ark", "description": "Støy i lesesalen"},
        "Velg en seksjon fra listen."), "nb", CardAction("measure.create", "new", "n").pack(KEY)),
    "meeting_schedule_nb": lambda: schedule_card(ScheduleView(
        "Vernerunde – avtal tidspunkt", "Seksjon for publikum og formidling", "Frist 1. juli 2027",
        "Du har ansvaret for vernerunden i Seksjon for publikum og formidling, og verneombud Ahmed Rahimi skal delta.",
        "Foreslått av Jonas Eide: torsdag 3. juni 2027 kl. 10.00 – venter på svar fra Ahmed Rahimi.", False,
        TimeInputs("2027-05-20", "2027-07-01", "2027-06-03", "10:00"), "Det er tid for vernerunden.",
        "22. mai 2027 er ikke en arbeidsdag (lørdag)."), "nb",
        CardAction("meeting.propose", "vernerunde:2027:publikum", "n").pack(KEY),
        CardAction("round.open", "vernerunde:2027:publikum", "n", "vernerunde", 1).pack(KEY)),
    "meeting_invitation_en": lambda: proposal_card(ProposalView(
        "Invitation: Safety inspection round – Public programmes section", "Public programmes section",
        ("Jonas Eide invites you to the safety inspection round of the Public programmes section: Thursday 3 June "
         "2027 at 10:00.", "You take part as the safety representative; the round is due 1 July 2027."),
        TimeInputs("2027-05-20", "2027-07-01")), "en",
        CardAction("meeting.accept", "1", "n").pack(KEY), CardAction("meeting.counter", "1", "n").pack(KEY)),
    "meeting_accepted_nb": lambda: proposal_card(ProposalView(
        "Vernerunde – tidspunkt avtalt", "Seksjon for publikum og formidling",
        ("Ahmed Rahimi godtok torsdag 3. juni 2027 kl. 10.00 for vernerunden i Seksjon for publikum og formidling.",),
        TimeInputs("2027-06-03", "2027-07-01"),
        answered_line="Avtalt: torsdag 3. juni 2027 kl. 10.00, med Jonas Eide og verneombud Ahmed Rahimi."), "nb",
        None, None, CardAction("round.open", "vernerunde:2027:publikum", "n", "vernerunde", 1).pack(KEY)),
    "incident_nb": lambda: incident_card("https://uio-cim.no/x", "https://si-fra.example/", "nb"),
    "open_measures_nb": lambda: open_measures_card([
        MeasureRow("Nr. 3: Branndør til trapp B står på kile", "Jonas Eide", "9. april 2027", 0, False),
        MeasureRow("Nr. 2: Skilt over dør 104 lyser ikke", "Jonas Eide", "2. april 2027", 1, False),
        MeasureRow("Nr. 1: Esker i korridoren", "Tor Arne Nilsen", "1. mars 2027", 40, True)], "nb"),
    "open_measures_en": lambda: open_measures_card([
        MeasureRow("No. 3: Fire door wedged open", "Jonas Eide", "9 April 2027", 0, False),
        MeasureRow("No. 1: Boxes in the corridor", "Tor Arne Nilsen", "1 March 2027", 1, True)], "en"),
    "digest_undelivered_en": lambda: digest_card(DigestView(
        "14", (3, 18, 0, 24), (), (), (MeasureLine("Measure no. 1: Fire door", "Jonas Eide", "1 April 2027", False),),
        0, (1, 1, 0), (), 1), "en"),
}


def content(result: dict[str, Any]) -> dict[str, Any]:
    return result["attachments"][0]["content"] if result.get("type") == "message" else result


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    rendered = CASES[name]()
    path = GOLDEN / f"{name}.json"
    text = json.dumps(rendered, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file for {name}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"
    card = content(rendered)
    assert card["version"] == "1.5" and card["type"] == "AdaptiveCard"
    assert len(json.dumps(card).encode()) < 40_000


def test_full_fire_round_stays_small_on_every_page() -> None:
    items = tuple(ChecklistItemView(f"i{n}", "Rømningsveier (korridorer, trapper) er frie for hindringer " * 2)
                  for n in range(18))
    for page in (1, 2):
        view = ChecklistView("Brannvernrunde", "x", "y", items, (("ok", "OK"), ("avvik", "Avvik")),
                             frozenset({"avvik"}), page=page)
        assert len(json.dumps(checklist_card(view, "nb", data)).encode()) < 40_000


def test_payload_signature() -> None:
    packed = CardAction("round.submit", "k", "n", "fire_round", 1, 2).pack(KEY)
    assert unpack(packed, KEY, verbs={"round.submit"}).page == 2
    with pytest.raises(BadAction):
        unpack(packed, b"other key")
    forged = json.loads(json.dumps(packed))
    forged["hms"]["page"] = 1
    with pytest.raises(BadAction):
        unpack(forged, KEY)
    unknown = CardAction("round.delete", "k", "n").pack(KEY)
    with pytest.raises(BadAction, match="unknown verb"):
        unpack(unknown, KEY, verbs={"round.submit"})
