"""Rounds in the chat, on SQLite and PostgreSQL: the checklist card, pages and drafts, submission, findings and
measures, and every kind of bad submission, each with the card it gets and proof that nothing was lost."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from cards.actions import CardAction
from hms.config import HmsConfig
from hms.i18n import t
from hms.wheel import find_occurrence
from storage import db, models as m, repo
from tests.cardtext import nodes, texts
from tests.conftest import oslo
from tests.statements import Statements
from usecases.answers import Answerer
from usecases.cardactions import CardActions
from usecases.rounds import Rounds

KEY = b"test-key"
FATIMA = "fatima.ali@khm.uio.no"
NOW = oslo(2026, 11, 26, 10)
OCC = "fire_round:2026-Q4:hm-1"


@pytest.fixture
async def s(db_url: str, khm: HmsConfig) -> AsyncIterator[AsyncSession]:
    engine = db.create_engine(db_url)
    async with db.session_factory(engine)() as session:
        await repo.import_org(session, khm, NOW)
        yield session
    await engine.dispose()


@pytest.fixture
def rounds(khm: HmsConfig) -> Rounds:
    return Rounds(khm, KEY)


def verbs(rounds: Rounds) -> CardActions:
    """The card-verb table the bot builds: the rounds' verbs and the measures' verbs."""
    return CardActions(KEY, rounds.router, rounds.measures.router)


def actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["verb"]: a for a in card.get("actions", []) if a.get("type") == "Action.Execute"}


def press(card: dict[str, Any], verb: str, inputs: dict[str, str]) -> dict[str, Any]:
    """What Teams sends for an Action.Execute: the action's data merged with the card's inputs."""
    data = dict(actions(card)[verb]["data"])
    data.update(inputs)
    return {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}


def answers_all(khm: HmsConfig, deviations: dict[str, str] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in khm.checklist("fire_round").items:
        if deviations and item.key in deviations:
            out[f"a:{item.key}"] = "avvik"
            out[f"c:{item.key}"] = deviations[item.key]
        else:
            out[f"a:{item.key}"] = "ok"
    return out


def page_inputs(values: dict[str, str], keys: list[str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if k[2:] in keys}


async def start(s: AsyncSession, khm: HmsConfig, rounds: Rounds, email: str = FATIMA) -> dict[str, Any]:
    answer = await Answerer(khm, rounds).answer(s, "start brannvernrunde", email, NOW, "nb-NO")
    return answer.activity["attachments"][0]["content"]


async def count(s: AsyncSession, model: type) -> int:
    return len((await s.exec(select(model))).all())


async def submit_full(s: AsyncSession, khm: HmsConfig, rounds: Rounds, deviations: dict[str, str] | None = None,
                      email: str = FATIMA) -> tuple[dict[str, Any], dict[str, Any]]:
    card = await start(s, khm, rounds)
    values = answers_all(khm, deviations)
    keys = [i.key for i in khm.checklist("fire_round").items]
    page2 = (await verbs(rounds).handle(s, email, press(card, "round.page", page_inputs(values, keys[:9])), NOW,
                                 "nb-NO")).card
    result = await verbs(rounds).handle(s, email, press(page2, "round.submit", page_inputs(values, keys[9:])), NOW,
                                        "nb-NO")
    assert result.outcome == "submitted", texts(result.card)
    return page2, result.card


async def test_start_opens_the_paged_checklist(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    assert card["version"] == "1.5" and len(json.dumps(card).encode()) < 40_000
    assert "Side 1 av 2" in texts(card) and "Historisk museum, 1. etasje" in texts(card)
    choice_sets = [n for n in nodes(card["body"]) if n.get("type") == "Input.ChoiceSet"]
    # one row per item: a compact choice, not required in the card ("Alt annet OK" answers what is left open)
    assert len(choice_sets) == 9 and all(c["style"] == "compact" and not c.get("isRequired") for c in choice_sets)
    assert [c["value"] for c in choice_sets[0]["choices"]] == ["ok", "avvik", "ikke_relevant"]
    # the comment fields are folded away under their items until tapped (nothing is answered yet)
    folded = {n["id"]: n for n in nodes(card["body"]) if str(n.get("id", "")).startswith("more:")}
    assert len(folded) == 9 and not any(f.get("isVisible", True) for f in folded.values())
    assert all(any(i.get("id", "").startswith("c:") and "isMultiline" not in i for i in f["items"])
               for f in folded.values())
    toggles = [n for n in nodes(card["body"]) if n.get("type") == "Action.ToggleVisibility"]
    assert sorted(x for t_ in toggles for x in t_["targetElements"]) == sorted(folded)
    nxt = actions(card)["round.page"]
    assert nxt["fallback"]["type"] == "Action.Submit" and nxt["data"]["hms"]["page"] == 2
    assert actions(card)["round.allok"]["title"] == "Alt annet OK – lever"
    assert card["body"][-1]["text"] == "Side 1 av 2"  # the page line next to the buttons, too


async def test_all_else_ok_answers_every_open_item_and_submits(s: AsyncSession, khm: HmsConfig,
                                                                rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    keys = [i.key for i in khm.checklist("fire_round").items]
    page1 = {f"a:{k}": "" for k in keys[:9]} | {f"c:{k}": "" for k in keys[:9]}  # what a phone sends untouched
    page1 |= {"a:fire_doors": "avvik", "c:fire_doors": "Branndør til trapp B står på kile",
              "a:exit_signs": "ikke_relevant"}
    result = await verbs(rounds).handle(s, FATIMA, press(card, "round.allok", page1), NOW, "nb-NO")
    assert result.outcome == "submitted", texts(result.card)
    assert "Levert av Fatima Ali 26. november kl. 10.00 – 1 avvik" in texts(result.card)
    finals = {a.item_key: a.answer for a in (await s.exec(select(m.ChecklistAnswer))).all()}
    assert finals == {k: "ok" for k in keys} | {"fire_doors": "avvik", "exit_signs": "ikke_relevant"}
    assert [x.description for x in (await s.exec(select(m.Measure))).all()] == ["Branndør til trapp B står på kile"]
    assert await count(s, m.ChecklistDraft) == 0


async def test_all_else_ok_keeps_answers_saved_on_other_pages(s: AsyncSession, khm: HmsConfig,
                                                              rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    keys = [i.key for i in khm.checklist("fire_round").items]
    page1 = {f"a:{k}": "ok" for k in keys[:9]} | {f"a:{keys[3]}": "ikke_relevant"}
    page2 = (await verbs(rounds).handle(s, FATIMA, press(card, "round.page", page1), NOW, "nb-NO")).card
    assert card["body"][-1]["text"] == "Side 1 av 2" and page2["body"][-1]["text"] == "Side 2 av 2"
    last = {f"a:{keys[-1]}": "avvik", f"c:{keys[-1]}": "Montre står i rømningsvei"}
    result = await verbs(rounds).handle(s, FATIMA, press(page2, "round.allok", last), NOW, "nb-NO")
    assert result.outcome == "submitted", texts(result.card)
    finals = {a.item_key: a.answer for a in (await s.exec(select(m.ChecklistAnswer))).all()}
    assert finals == {k: "ok" for k in keys} | {keys[3]: "ikke_relevant", keys[-1]: "avvik"}


async def test_next_page_with_items_left_open_then_a_deviation_on_page_two_and_all_else_ok(
        s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    """A phone reaches page 2 in one tap: items left open are not refused on the way, they are answered by
    "Alt annet OK" (or refused, by number, when the round is submitted without them)."""
    card = await start(s, khm, rounds)
    keys = [i.key for i in khm.checklist("fire_round").items]
    nothing = {f"a:{k}": "" for k in keys[:9]} | {f"c:{k}": "" for k in keys[:9]}
    page2 = await verbs(rounds).handle(s, FATIMA, press(card, "round.page", nothing), NOW, "nb-NO")
    assert page2.outcome == "page" and page2.card["body"][-1]["text"] == "Side 2 av 2"
    untouched = {f"a:{k}": "" for k in keys[9:]}
    refused = await verbs(rounds).handle(s, FATIMA, press(page2.card, "round.submit", untouched), NOW, "nb-NO")
    assert refused.outcome == "invalid" and "Side 1 av 2" in texts(refused.card)
    assert "Svar mangler: punkt 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18." in texts(
        refused.card["body"][-1])
    page2 = await verbs(rounds).handle(s, FATIMA, press(refused.card, "round.page", {}), NOW, "nb-NO")
    result = await verbs(rounds).handle(s, FATIMA, press(page2.card, "round.allok", untouched | {
        f"a:{keys[12]}": "avvik", f"c:{keys[12]}": "Skjøteledning i serie på kontor 212"}), NOW, "nb-NO")
    assert result.outcome == "submitted", texts(result.card)
    finals = {a.item_key: a.answer for a in (await s.exec(select(m.ChecklistAnswer))).all()}
    assert finals == {k: "ok" for k in keys} | {keys[12]: "avvik"}


async def test_all_else_ok_refuses_a_deviation_without_a_comment_and_names_it_by_the_buttons(
        s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    keys = [i.key for i in khm.checklist("fire_round").items]
    result = await verbs(rounds).handle(s, FATIMA, press(card, "round.allok", {"a:fire_doors": "avvik",
                                                                               "c:fire_doors": "  "}), NOW, "nb-NO")
    assert result.outcome == "invalid"
    assert await count(s, m.ChecklistAnswer) == 0 and await count(s, m.Measure) == 0
    row = await repo.occurrence_row(s, OCC)
    assert row is not None and row.completed_at is None
    refused = result.card
    assert "Side 1 av 2" in texts(refused)
    # the refused item named at the top and again at the bottom, next to the buttons, with what is wrong
    named = "**4.** Branndører lukker helt og er ikke kilt opp; holdemagneter slipper: Skriv hva avviket gjelder."
    summaries = [n for n in refused["body"] if n.get("style") == "attention" and named in texts(n)]
    assert len(summaries) == 2 and refused["body"][-1] is summaries[1], texts(refused)
    assert refused["body"][-2]["text"] == "Side 1 av 2"
    # its comment field is open, the answer kept; the other items were answered OK in the draft (nothing lost)
    folded = {n["id"]: n for n in nodes(refused) if str(n.get("id", "")).startswith("more:")}
    assert folded["more:fire_doors"]["isVisible"] is True and folded["more:escape_routes"]["isVisible"] is False
    values, _ = await repo.draft(s, m.pk(row))
    assert values == {k: "ok" for k in keys} | {"fire_doors": "avvik"}
    fixed = await verbs(rounds).handle(s, FATIMA, press(refused, "round.allok", {
        "a:fire_doors": "avvik", "c:fire_doors": "Dør til trapp B står på kile"}), NOW, "nb-NO")
    assert fixed.outcome == "submitted" and await count(s, m.Measure) == 1


async def test_submit_with_deviations_makes_findings_measures_and_outbox(s: AsyncSession, khm: HmsConfig,
                                                                        rounds: Rounds) -> None:
    _, done = await submit_full(s, khm, rounds, {"fire_doors": "Branndør til trapp B står på kile",
                                                 "extinguishers": "Apparat ved heis mangler plombe"})
    body = texts(done)
    assert "Levert av Fatima Ali 26. november kl. 10.00 – 2 avvik" in body
    assert "Branndør til trapp B står på kile" in body and "actions" not in done
    finals = (await s.exec(select(m.ChecklistAnswer))).all()
    assert len(finals) == 18 and {a.submitted_by for a in finals} == {FATIMA}
    measures = (await s.exec(select(m.Measure))).all()
    assert len(measures) == 2
    assert {x.owner_email for x in measures} == {"jonas.eide@khm.uio.no"}  # leader of the floor's section
    assert {x.deadline.isoformat() for x in measures} == {"2026-12-26"}
    events = (await s.exec(select(m.MeasureEvent))).all()
    assert [e.status for e in events] == ["open", "open"]
    row = await repo.occurrence_row(s, OCC)
    assert row is not None and row.completed_by == FATIMA and row.completed_at == NOW
    outbox = {o.kind: o for o in (await s.exec(select(m.OutboxMessage))).all()}
    assert set(outbox) == {"documentation", "lamu_summary", "measure"}
    assert await count(s, m.OutboxMessage) == 4
    assert outbox["documentation"].recipient_email == "hanne.solberg@khm.uio.no"
    lamu = json.loads(outbox["lamu_summary"].payload)
    assert lamu["target"] == {"kind": "lamu", "thread": "fire_round:2026-Q4",
                              "thread_title": "Brannvernrunde 4. kvartal 2026"}
    assert lamu["activity"]["mention"]["email"] == "jonas.eide@khm.uio.no"


async def test_draft_survives_a_lost_connection(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    values = answers_all(khm, {"exit_signs": "Skilt over dør 104 lyser ikke"})
    keys = [i.key for i in khm.checklist("fire_round").items]
    await verbs(rounds).handle(s, FATIMA, press(card, "round.page", page_inputs(values, keys[:9])), NOW, "nb-NO")
    # the phone loses the card; asking again gives a card pre-filled from the draft
    again = await start(s, khm, rounds)
    prefilled = {b["id"]: b.get("value") for b in nodes(again["body"]) if str(b.get("type")).startswith("Input.")}
    assert prefilled["a:exit_signs"] == "avvik" and prefilled["c:exit_signs"] == "Skilt over dør 104 lyser ikke"
    assert prefilled["a:escape_routes"] == "ok"
    assert (await repo.occurrence_row(s, OCC)).completed_at is None


async def test_a_page_save_reads_only_the_current_draft_however_often_it_was_saved(
        s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    """A floor contact who goes back and forth between pages saves the same items again and again: the round
    keeps one draft row per item, and a page save or a round start reads no more than those."""
    card = await start(s, khm, rounds)
    values = answers_all(khm, {"exit_signs": "Skilt over dør 104 lyser ikke"})
    items = [i.key for i in khm.checklist("fire_round").items]
    page_one = press(card, "round.page", page_inputs(values, items[:9]))
    for _ in range(112):  # kept as a pile, that would be 1,008 rows of 9 items
        assert (await verbs(rounds).handle(s, FATIMA, page_one, NOW, "nb-NO")).outcome == "page"
    seen = Statements(s.bind)  # type: ignore[arg-type]
    try:
        page2 = await verbs(rounds).handle(s, FATIMA, page_one, NOW, "nb-NO")
        assert page2.outcome == "page" and "Side 2 av 2" in texts(page2.card)
        assert seen.rows_read("checklist_answer") + seen.rows_read("checklist_draft") <= len(items)
        seen.clear()
        again = await start(s, khm, rounds)
        assert seen.rows_read("checklist_answer") + seen.rows_read("checklist_draft") <= len(items)
    finally:
        seen.close()
    prefilled = {b["id"]: b.get("value") for b in nodes(again["body"]) if str(b.get("type")).startswith("Input.")}
    assert prefilled["a:exit_signs"] == "avvik" and prefilled["c:exit_signs"] == "Skilt over dør 104 lyser ikke"
    assert await count(s, m.ChecklistDraft) == 9 and await count(s, m.ChecklistAnswer) == 0

    await verbs(rounds).handle(s, FATIMA, press(page2.card, "round.submit", page_inputs(values, items[9:])), NOW,
                               "nb-NO")
    assert await count(s, m.ChecklistAnswer) == 18
    assert await count(s, m.ChecklistDraft) == 0  # nothing is left to resume once the answers are on record


async def test_deviation_without_comment_is_refused_and_kept_as_draft(s: AsyncSession, khm: HmsConfig,
                                                                      rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    values = answers_all(khm)
    values["a:fire_doors"] = "avvik"
    keys = [i.key for i in khm.checklist("fire_round").items]
    result = await verbs(rounds).handle(s, FATIMA, press(card, "round.page", page_inputs(values, keys[:9])), NOW,
                                        "nb-NO")
    assert result.outcome == "invalid"
    assert t("nb", "checklist.comment_required") in texts(result.card) and "Side 1 av 2" in texts(result.card)
    assert (await repo.occurrence_row(s, OCC)).completed_at is None
    values, _ = await repo.draft(s, (await repo.occurrence_row(s, OCC)).id)
    assert values["fire_doors"] == "avvik"  # nothing typed is lost


async def test_same_card_submitted_twice(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    page2, _ = await submit_full(s, khm, rounds)
    before = (await count(s, m.ChecklistAnswer), await count(s, m.OutboxMessage))
    keys = [i.key for i in khm.checklist("fire_round").items]
    again = await verbs(rounds).handle(s, FATIMA, press(page2, "round.submit", page_inputs(answers_all(khm), keys[9:])),
                                NOW, "nb-NO")
    assert again.outcome == "duplicate" and t("nb", "card.already_submitted") in texts(again.card)
    assert (await count(s, m.ChecklistAnswer), await count(s, m.OutboxMessage)) == before


async def test_round_completed_by_someone_else(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    deputy_card = await start(s, khm, rounds, "lars.bakke@khm.uio.no")
    await submit_full(s, khm, rounds)
    keys = [i.key for i in khm.checklist("fire_round").items]
    late = await verbs(rounds).handle(s, "lars.bakke@khm.uio.no",
                               press(deputy_card, "round.page", page_inputs(answers_all(khm), keys[:9])), NOW, "nb-NO")
    assert late.outcome == "completed_by_other"
    assert "allerede levert av Fatima Ali 26. november kl. 10.00" in texts(late.card)
    assert (await repo.occurrence_row(s, OCC)).completed_by == FATIMA


async def test_wrong_person(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    result = await verbs(rounds).handle(s, "eirik.haugen@khm.uio.no", press(card, "round.page", answers_all(khm)), NOW,
                                 "nb-NO")
    assert result.outcome == "not_allowed" and "Fatima Ali" in texts(result.card)
    assert await count(s, m.ChecklistAnswer) == 0


async def test_section_leader_and_adviser_may_submit(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    occ = find_occurrence(khm, OCC)
    assert rounds.may_act(occ, "jonas.eide@khm.uio.no") and rounds.may_act(occ, "hanne.solberg@khm.uio.no")
    assert rounds.may_act(occ, "lars.bakke@khm.uio.no") and not rounds.may_act(occ, "siri.holm@khm.uio.no")


async def test_card_from_an_older_template_version(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    old = CardAction("round.submit", OCC, "old-card", "fire_round", 0, page=2).pack(KEY)
    value = {"action": {"verb": "round.submit", "data": {**old, **answers_all(khm)}}}
    result = await verbs(rounds).handle(s, FATIMA, value, NOW, "nb-NO")
    assert result.outcome == "template_changed" and t("nb", "card.template_changed") in texts(result.card)
    assert actions(result.card)["round.page"]["data"]["hms"]["tplv"] == 1
    assert (await repo.occurrence_row(s, OCC)).completed_at is None
    values, _ = await repo.draft(s, (await repo.occurrence_row(s, OCC)).id)
    assert len(values) == 18  # kept as draft


@pytest.mark.parametrize("value", [
    None, "x", {}, {"action": {"data": {}}}, {"action": {"data": {"hms": {"verb": "round.submit"}}}},
    {"hms": {"verb": "round.submit", "ref": OCC, "nonce": "n", "sig": "0" * 32, "v": 1}},
])
async def test_malformed_payloads_refused(s: AsyncSession, rounds: Rounds, value: Any) -> None:
    result = await verbs(rounds).handle(s, FATIMA, value, NOW, "nb-NO")
    assert result.outcome == "tampered" and t("nb", "card.tampered") in texts(result.card)
    assert await count(s, m.ChecklistAnswer) == 0 and await count(s, m.Occurrence) == 0


async def test_tampered_payload_refused(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    value = press(card, "round.page", answers_all(khm))
    value["action"]["data"]["hms"]["ref"] = "fire_round:2026-Q4:hm-2"  # someone edits the payload
    result = await verbs(rounds).handle(s, FATIMA, value, NOW, "nb-NO")
    assert result.outcome == "tampered"
    assert await count(s, m.ChecklistAnswer) == 0


async def test_unknown_user_pressing_a_card(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    card = await start(s, khm, rounds)
    result = await verbs(rounds).handle(s, None, press(card, "round.page", answers_all(khm)), NOW, "en-US")
    assert result.outcome == "unknown_user" and "I don't know you" in texts(result.card)
    assert await count(s, m.ChecklistAnswer) == 0


async def test_measure_ticket_and_close(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await submit_full(s, khm, rounds, {"fire_doors": "Dør står på kile"})
    [(measure, finding, occ_row)] = await repo.open_measures(s)
    card = rounds.measures.measure_card((measure, finding, occ_row), "nb-NO")
    show = {a["title"]: a for a in card["actions"] if a["type"] == "Action.ShowCard"}
    ticket_action = show["Registrer saksnummer"]["card"]["actions"][0]
    close_action = show["Lukk tiltaket"]["card"]["actions"][0]
    urls = [a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"]
    assert urls == [khm.links["si_fra"].url]

    def value(action: dict[str, Any], **inputs: str) -> dict[str, Any]:
        return {"action": {"verb": action["verb"], "data": {**action["data"], **inputs}}}

    assert (await verbs(rounds).handle(s, "fatima.ali@khm.uio.no", value(close_action, note="fikset"), NOW,
                                "nb-NO")).outcome == "not_allowed"
    saved = await verbs(rounds).handle(s, "jonas.eide@khm.uio.no", value(ticket_action, ticket="EA-4711"), NOW, "nb-NO")
    assert saved.outcome == "ticket" and "EA-4711" in texts(saved.card)
    empty = await verbs(rounds).handle(s, "jonas.eide@khm.uio.no", value(close_action, note="  "), NOW, "nb-NO")
    assert empty.outcome == "invalid"
    later = oslo(2026, 12, 3, 14, 30)
    closed = await verbs(rounds).handle(s, "jonas.eide@khm.uio.no",
                                        value(close_action, note="Kile fjernet, dør justert"),
                                        later, "nb-NO")
    assert closed.outcome == "closed" and "Lukket av Jonas Eide 3. desember kl. 14.30" in texts(closed.card)
    again = await verbs(rounds).handle(s, "hanne.solberg@khm.uio.no", value(close_action, note="x"), later, "nb-NO")
    assert again.outcome == "already_closed" and "Kile fjernet" in texts(again.card)
    history = [(e.status, e.actor_email) for e in await repo.measure_events(s, measure.id)]
    assert history == [("open", FATIMA), ("open", "jonas.eide@khm.uio.no"), ("closed", "jonas.eide@khm.uio.no")]
    assert await repo.open_measures(s) == []


async def test_task_without_checklist_marked_done(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    occ = find_occurrence(khm, "annual_report:2026:samling")
    card = rounds.occurrence_card(occ, "nb-NO", nonce="n1")
    action = actions(card)["task.done"]
    bad = await verbs(rounds).handle(s, "tor.arne.nilsen@khm.uio.no",
                              {"action": {"verb": "task.done", "data": {**action["data"], "link": "ftp://x"}}}, NOW,
                              "nb-NO")
    assert bad.outcome == "invalid" and (await repo.occurrence_row(s, occ.key)).completed_at is None
    done = await verbs(rounds).handle(s, "tor.arne.nilsen@khm.uio.no", {"action": {"verb": "task.done", "data": {
        **action["data"], "note": "Sendt til HMSB", "link": "https://uio.no/rapport.pdf"}}}, NOW, "nb-NO")
    assert done.outcome == "done" and "Utført av Tor Arne Nilsen 26. november kl. 10.00" in texts(done.card)
    [event] = await repo.occurrence_events(s, [occ.key])
    assert (event.note, event.link) == ("Sendt til HMSB", "https://uio.no/rapport.pdf")


async def test_safety_round_participant_confirms(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    now = oslo(2027, 6, 10, 10)
    occ = find_occurrence(khm, "vernerunde:2027:samling")
    card = rounds.occurrence_card(occ, "nb-NO", nonce="vr1")
    assert "Deltar: Erik Dahl" in texts(card)  # the safety representative is named on the form
    values = {f"a:{i.key}": "ok" for i in khm.checklist("vernerunde").items}
    values["a:chemicals"], values["c:chemicals"] = "ma_forbedres", "Stoffkartoteket er ikke oppdatert"
    keys = [i.key for i in khm.checklist("vernerunde").items]
    page2 = (await verbs(rounds).handle(s, "tor.arne.nilsen@khm.uio.no",
                                 press(card, "round.page", page_inputs(values, keys[:9])), now, "nb-NO")).card
    done = await verbs(rounds).handle(s, "tor.arne.nilsen@khm.uio.no",
                               press(page2, "round.submit", page_inputs(values, keys[9:])), now, "nb-NO")
    assert done.outcome == "submitted" and "1 avvik" in texts(done.card)
    [ask] = (await s.exec(select(m.OutboxMessage).where(m.OutboxMessage.kind == "confirm"))).all()
    assert ask.recipient_email == "erik.dahl@khm.uio.no"
    confirm_card = json.loads(ask.payload)["activity"]["attachments"][0]["content"]
    assert "Du står som deltaker" in texts(confirm_card)
    other = await verbs(rounds).handle(s, "kari.moe@khm.uio.no", press(confirm_card, "round.confirm", {}), now, "nb-NO")
    assert other.outcome == "not_allowed"
    later = oslo(2027, 6, 11, 8, 30)
    ok = await verbs(rounds).handle(s, "erik.dahl@khm.uio.no", press(confirm_card, "round.confirm", {}), later, "nb-NO")
    assert ok.outcome == "confirmed" and "Deltakelse bekreftet av Erik Dahl 11. juni kl. 08.30" in texts(ok.card)
    again = await verbs(rounds).handle(s, "erik.dahl@khm.uio.no", press(confirm_card, "round.confirm", {}), later,
                                       "nb-NO")
    assert again.outcome == "already_confirmed"
    events = [e.kind for e in await repo.occurrence_events(s, [occ.key])]
    assert events.count("confirmed") == 1


async def test_confirm_before_submission_is_refused(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    data = CardAction("round.confirm", "vernerunde:2027:samling", "x").pack(KEY)
    result = await verbs(rounds).handle(s, "erik.dahl@khm.uio.no", {"action": {"data": data}}, NOW, "nb-NO")
    assert result.outcome == "not_submitted" and await count(s, m.OccurrenceEvent) == 0


async def test_records_export_for_a_period(s: AsyncSession, khm: HmsConfig, rounds: Rounds) -> None:
    await submit_full(s, khm, rounds, {"fire_doors": "Dør på kile"})
    [(measure, finding, occ_row)] = await repo.open_measures(s)
    close = next(a for a in rounds.measures.measure_card((measure, finding, occ_row), "nb-NO")["actions"]
                 if a["type"] == "Action.ShowCard" and a["title"] == "Lukk tiltaket")["card"]["actions"][0]
    await verbs(rounds).handle(s, "jonas.eide@khm.uio.no", {"action": {"data": {**close["data"], "note": "Fikset"}}},
                        oslo(2026, 12, 1, 9), "nb-NO")
    data = await repo.records(s, dt.date(2026, 10, 1), dt.date(2026, 12, 31))
    [round_] = data["rounds"]
    assert (round_["occurrence"], round_["completed_by"]) == (OCC, FATIMA)
    assert round_["events"][0]["kind"] == "completed"
    assert len(data["answers"]) == 18 and {a["by"] for a in data["answers"]} == {FATIMA}
    assert [f["description"] for f in data["findings"]] == ["Dør på kile"]
    [measure_row] = data["measures"]
    assert [(h["status"], h["by"]) for h in measure_row["history"]] == [("open", FATIMA),
                                                                       ("closed", "jonas.eide@khm.uio.no")]
    assert await repo.records(s, dt.date(2027, 1, 1), dt.date(2027, 12, 31)) == {
        "rounds": [], "answers": [], "findings": [], "measures": []}
