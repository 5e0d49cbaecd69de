"""The safety round with the safety representative (issue 11.4), on SQLite and PostgreSQL, through the bot's chat
turns and the planning tick: the section leader proposes a day and a time on the round's prompt, the
representative gets an invitation in her chat and accepts it or proposes another time, the leader is told and can
accept or counter; each step is on record. Bad times, stale and repeated cards and the wrong person get clear
answers and store nothing. A reminder goes to both the working day before; the report names both, and the
representative confirms it as before.

Section "publikum": leader Jonas Eide, safety representative Ahmed Rahimi. The round is due 1 July 2027 and is
prompted six weeks ahead, on Thursday 20 May 2027 at 09:00.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import col, select

from bot.turns import HmsBot
from cli.main import main
from hms.clock import FixedClock
from hms.config import HmsConfig
from storage import db, models as m, repo
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.test_turns import BOT, TENANT, FakeProactive, FakeTurn, activity
from usecases.planning import plan

JONAS = "jonas.eide@khm.uio.no"
AHMED = "ahmed.rahimi@khm.uio.no"
KARI = "kari.moe@khm.uio.no"  # the safety representative of another section
FATIMA = "fatima.ali@khm.uio.no"
OCC = "vernerunde:2027:publikum"
PROMPT_AT = oslo(2027, 5, 20, 9, 0)


@pytest.fixture
async def bot(db_url: str, khm: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(db_url)
    b = HmsBot(config=khm, engine=engine, clock=FixedClock(PROMPT_AT), tenant_id=TENANT, bot_id=BOT,
               card_key=b"test-key", proactive=FakeProactive())
    await b.start()
    yield b
    await b.ledger.close()
    await engine.dispose()


_ids = iter(range(1, 100_000))


def _turn(who: str, locale: str, **kwargs: Any) -> FakeTurn:
    """A turn from `who` in their personal chat; Teams' member lookup tells the bot who that is."""
    user = f"29:{who.split('@')[0]}"
    return FakeTurn(activity(aad=None, user=user, conversation=f"a:{user}", locale=locale, **kwargs),
                    members={user: {"email": who}})


async def say(bot: HmsBot, who: str, text: str, locale: str = "nb-NO") -> dict[str, Any]:
    turn = _turn(who, locale, id=f"m{next(_ids)}", text=text)
    await bot.on_turn(turn)
    return turn.sent[-1]["attachments"][0]["content"]


async def press(bot: HmsBot, who: str, card: dict[str, Any], verb: str, inputs: dict[str, str] | None = None,
                locale: str = "nb-NO") -> dict[str, Any]:
    """An Action.Execute press by `who` on `card` (an action anywhere on it, show cards too), and the card back."""
    action = next(n for n in nodes(card) if n.get("type") == "Action.Execute" and n.get("verb") == verb)
    turn = _turn(who, locale, kind="invoke", id=f"i{next(_ids)}", name="adaptiveCard/action",
                 value={"action": {"type": "Action.Execute", "verb": verb,
                                   "data": {**action["data"], **(inputs or {})}}})
    await bot.on_turn(turn)
    assert turn.invoke is not None and turn.invoke[0] == 200
    return dict(turn.invoke[1]["value"])


async def outbox(bot: HmsBot, kind: str | None = None) -> list[m.OutboxMessage]:
    async with bot.sessions() as s:
        stmt = select(m.OutboxMessage).order_by(col(m.OutboxMessage.id))
        if kind:
            stmt = stmt.where(m.OutboxMessage.kind == kind)
        return list((await s.exec(stmt)).all())


def card_of(row: m.OutboxMessage) -> dict[str, Any]:
    return dict(json.loads(row.payload)["activity"]["attachments"][0]["content"])


async def proposals(bot: HmsBot) -> list[tuple[int, str, str, dt.datetime, str | None, str | None]]:
    async with bot.sessions() as s:
        rows = (await s.exec(select(m.MeetingProposal).order_by(col(m.MeetingProposal.seq)))).all()
    return [(p.seq, p.proposed_by, p.proposed_to, p.starts_at, p.answer, p.answered_by) for p in rows]


async def tick(bot: HmsBot, khm: HmsConfig, now: dt.datetime) -> list[Any]:
    async with bot.sessions() as s:
        return list((await plan(s, khm, bot.rounds, now)).messages)


async def the_prompt(bot: HmsBot, khm: HmsConfig) -> dict[str, Any]:
    """The planning tick on 20 May: the leader's prompt for the safety round, as it waits in the outbox."""
    planned = await tick(bot, khm, PROMPT_AT)
    assert [(p.kind, p.recipient) for p in planned if p.occurrence == OCC] == [("prompt", JONAS)]
    [row] = [r for r in await outbox(bot, "prompt") if r.dedupe_key.startswith(OCC)]
    return card_of(row)


async def agree(bot: HmsBot, khm: HmsConfig, date: str = "2027-06-03", time: str = "10:00") -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": date, "time": time})
    [invitation] = await outbox(bot, "invitation")
    await press(bot, AHMED, card_of(invitation), "meeting.accept")


# -- the leader proposes, the representative accepts -----------------------------------------------------------


async def test_the_leader_proposes_and_the_representative_accepts(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    shown = texts(prompt)
    assert "Vernerunde – avtal tidspunkt" in shown
    assert "Det er tid for vernerunden i Seksjon for publikum og formidling. Frist 1. juli 2027." in shown
    assert "verneombud Ahmed Rahimi skal delta" in shown and "Ingen tid er avtalt ennå." in shown
    date = next(n for n in nodes(prompt) if n.get("type") == "Input.Date")
    assert (date["min"], date["max"]) == ("2027-05-20", "2027-07-01")  # from today to the deadline
    assert input_ids(prompt) == ["date", "time"]

    sent = await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    assert "Invitasjonen er sendt til Ahmed Rahimi." in texts(sent)
    assert "Foreslått av Jonas Eide: torsdag 3. juni 2027 kl. 10.00 – venter på svar fra Ahmed Rahimi." in texts(sent)
    [invitation] = await outbox(bot, "invitation")
    assert invitation.recipient_email == AHMED and invitation.dedupe_key.endswith(f"|proposal|{AHMED}")
    invite = card_of(invitation)
    assert "Jonas Eide inviterer deg til vernerunden i Seksjon for publikum og formidling: torsdag 3. juni 2027 " \
           "kl. 10.00." in texts(invite)
    assert "Du deltar som verneombud" in texts(invite) and input_ids(invite) == ["date", "time"]

    accepted = await press(bot, AHMED, invite, "meeting.accept")
    assert "Du godtok torsdag 3. juni 2027 kl. 10.00. Tidspunktet er avtalt, og Jonas Eide får beskjed." \
           in texts(accepted)
    assert not [n for n in nodes(accepted) if n.get("type") == "Action.Execute"]  # nothing left to press
    [told] = await outbox(bot, "meeting")
    assert told.recipient_email == JONAS
    answer = card_of(told)
    assert "Ahmed Rahimi godtok torsdag 3. juni 2027 kl. 10.00 for vernerunden i Seksjon for publikum og " \
           "formidling." in texts(answer)
    assert "Avtalt: torsdag 3. juni 2027 kl. 10.00, med Jonas Eide og verneombud Ahmed Rahimi." in texts(answer)
    assert await proposals(bot) == [(1, JONAS, AHMED, oslo(2027, 6, 3, 10), "accepted", AHMED)]

    # the same card pressed again (a double tap), and the leader's card pressed again: nothing new
    again = await press(bot, AHMED, invite, "meeting.accept")
    assert "Du har allerede svart på dette forslaget. Ingenting ble endret." in texts(again)
    repeat = await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    assert "torsdag 3. juni 2027 kl. 10.00 er allerede avtalt. Ingenting nytt ble sendt." in texts(repeat)
    assert len(await proposals(bot)) == 1 and len(await outbox(bot, "invitation")) == 1

    # from the answer the leader opens the checklist; its button brings the meeting back as it stands
    checklist = await press(bot, JONAS, answer, "round.open")
    assert "Side 1 av 2" in texts(checklist)
    meeting = await press(bot, JONAS, checklist, "meeting.open")
    assert "Avtalt: torsdag 3. juni 2027 kl. 10.00" in texts(meeting)


async def test_the_invitation_in_english(bot: HmsBot, khm: HmsConfig) -> None:
    await say(bot, AHMED, "hello", locale="en-US")  # her chat is in English
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [invitation] = await outbox(bot, "invitation")
    invite = card_of(invitation)
    assert "Jonas Eide invites you to the safety inspection round of the Public programmes section: Thursday 3 June " \
           "2027 at 10:00." in texts(invite)
    bad = await press(bot, AHMED, invite, "meeting.counter", {"date": "2027-06-05", "time": "10:00"},
                      locale="en-US")
    assert "5 June 2027 is not a working day (Saturday). Choose another day. Nothing was sent." in texts(bad)


# -- the small loop: another time, and another ------------------------------------------------------------------


async def test_another_time_goes_back_and_forth_until_one_accepts(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [first] = await outbox(bot, "invitation")
    countered = await press(bot, AHMED, card_of(first), "meeting.counter", {"date": "2027-06-04", "time": "13:00"})
    assert "Du foreslo fredag 4. juni 2027 kl. 13.00 i stedet. Jonas Eide får beskjed" in texts(countered)

    second = (await outbox(bot, "invitation"))[-1]
    assert second.recipient_email == JONAS
    counter = card_of(second)
    assert "Ahmed Rahimi foreslår et annet tidspunkt for vernerunden i Seksjon for publikum og formidling: fredag " \
           "4. juni 2027 kl. 13.00." in texts(counter)
    # the leader sees it from the round too ("start vernerunde", then the checklist's button)
    status = await press(bot, JONAS, await say(bot, JONAS, "start vernerunde"), "meeting.open")
    assert "Foreslått av Ahmed Rahimi: fredag 4. juni 2027 kl. 13.00 – venter på svar fra Jonas Eide." in texts(status)

    # the wrong people press the proposals: nothing is stored
    for who, card in ((KARI, counter), (AHMED, counter), (JONAS, card_of(first))):
        refused = await press(bot, who, card, "meeting.accept")
        assert "og bare" in texts(refused) and "kan svare på det. Ingenting ble lagret." in texts(refused)
    await press(bot, JONAS, counter, "meeting.counter", {"date": "2027-06-07", "time": "09:30"})
    third = (await outbox(bot, "invitation"))[-1]
    assert third.recipient_email == AHMED

    # her first invitation is stale now: she gets the newest one to answer instead
    stale = await press(bot, AHMED, card_of(first), "meeting.accept")
    assert "ikke det siste lenger" in texts(stale) and "mandag 7. juni 2027 kl. 09.30" in texts(stale)
    accepted = await press(bot, AHMED, stale, "meeting.accept")
    assert "Du godtok mandag 7. juni 2027 kl. 09.30." in texts(accepted)
    assert [(t.recipient_email, t.kind) for t in await outbox(bot, "meeting")] == [(JONAS, "meeting")]
    assert await proposals(bot) == [
        (1, JONAS, AHMED, oslo(2027, 6, 3, 10), "countered", AHMED),
        (2, AHMED, JONAS, oslo(2027, 6, 4, 13), "countered", JONAS),
        (3, JONAS, AHMED, oslo(2027, 6, 7, 9, 30), "accepted", AHMED),
    ]
    # the leader's answer to a proposal already answered changes nothing
    late = await press(bot, JONAS, counter, "meeting.accept")
    assert "Du har allerede svart på dette forslaget" in texts(late)
    assert len(await proposals(bot)) == 3


async def test_the_leader_replaces_a_proposal_nobody_answered(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})  # a double tap
    assert len(await outbox(bot, "invitation")) == 1
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-10", "time": "14:00"})
    first, _ = await outbox(bot, "invitation")
    stale = await press(bot, AHMED, card_of(first), "meeting.counter", {"date": "2027-06-11", "time": "09:00"})
    assert "ikke det siste lenger" in texts(stale) and "torsdag 10. juni 2027 kl. 14.00" in texts(stale)
    assert [(p[0], p[4]) for p in await proposals(bot)] == [(1, "replaced"), (2, None)]
    assert len(await outbox(bot, "invitation")) == 2


# -- bad times and the wrong person -----------------------------------------------------------------------------


@pytest.mark.parametrize(("date", "time", "answer"), [
    ("2027-05-19", "10:00", "onsdag 19. mai 2027 kl. 10.00 har allerede vært. Velg et tidspunkt fram i tid."),
    ("2027-05-20", "08:30", "torsdag 20. mai 2027 kl. 08.30 har allerede vært."),
    ("2027-05-22", "10:00", "22. mai 2027 er ikke en arbeidsdag (lørdag). Velg en annen dag."),
    ("2027-07-02", "10:00", "2. juli 2027 er for sent: velg en dag senest 1. juli 2027 (fristen for runden er "
                            "1. juli 2027)."),
    ("9999-12-31", "23:59", "31. desember 9999 er for sent: velg en dag senest 1. juli 2027"),
    ("0001-01-01", "00:00", "1. januar 1 kl. 00.00 har allerede vært."),
    ("", "10:00", "Velg både dato og klokkeslett. Ingenting ble sendt."),
    ("2027-06-03", "25:00", "Velg både dato og klokkeslett."),
    ("3. juni", "kl 10", "Velg både dato og klokkeslett."),
])
async def test_a_time_that_cannot_be_is_refused_and_nothing_is_sent(bot: HmsBot, khm: HmsConfig, date: str,
                                                                     time: str, answer: str) -> None:
    prompt = await the_prompt(bot, khm)
    refused = await press(bot, JONAS, prompt, "meeting.propose", {"date": date, "time": time})
    assert answer in texts(refused), texts(refused)
    assert input_ids(refused) == ["date", "time"]  # the card is back to try again
    if date:
        assert next(n for n in nodes(refused) if n.get("id") == "date").get("value") == date  # nothing typed is lost
    assert await proposals(bot) == [] and await outbox(bot, "invitation") == []


async def test_a_public_holiday_is_refused_by_its_name(bot: HmsBot, khm: HmsConfig) -> None:
    bot.clock.current = oslo(2027, 5, 3, 9)  # type: ignore[attr-defined]
    meeting = await press(bot, JONAS, await say(bot, JONAS, "start vernerunde"), "meeting.open")
    refused = await press(bot, JONAS, meeting, "meeting.propose", {"date": "2027-05-17", "time": "10:00"})
    assert "17. mai 2027 er ikke en arbeidsdag (Andre pinsedag; Grunnlovsdag). Velg en annen dag." in texts(refused)
    assert await proposals(bot) == []


async def test_only_the_section_leader_proposes(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    for who in (AHMED, FATIMA):
        refused = await press(bot, who, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
        assert "Bare seksjonslederen (Jonas Eide) kan avtale tidspunkt for vernerunden. Ingenting ble lagret." \
               in texts(refused)
    assert await proposals(bot) == []


async def test_a_round_past_its_deadline_can_still_be_agreed(bot: HmsBot, khm: HmsConfig) -> None:
    late = oslo(2027, 7, 2, 9)
    bot.clock.current = late  # type: ignore[attr-defined]
    await tick(bot, khm, late)
    [row] = [r for r in await outbox(bot, "overdue") if r.dedupe_key.startswith(OCC)]
    meeting = card_of(row)
    assert "Vernerunden i Seksjon for publikum og formidling hadde frist 1. juli 2027" in texts(meeting)
    date = next(n for n in nodes(meeting) if n.get("type") == "Input.Date")
    assert (date["min"], date["max"]) == ("2027-07-02", "2027-08-01")
    refused = await press(bot, JONAS, meeting, "meeting.propose", {"date": "2027-08-02", "time": "10:00"})
    assert "velg en dag senest 1. august 2027 (fristen for runden er 1. juli 2027)" in texts(refused)
    sent = await press(bot, JONAS, meeting, "meeting.propose", {"date": "2027-07-08", "time": "10:00"})
    assert "Invitasjonen er sendt til Ahmed Rahimi." in texts(sent)


# -- the reminder, the prompts after agreement, and the report --------------------------------------------------


async def test_both_are_reminded_the_working_day_before(bot: HmsBot, khm: HmsConfig, db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    await agree(bot, khm, "2027-06-07", "10:00")  # a Monday: reminded on Friday 4 June at 09:00
    # what the tick will plan, as `hms-bot plan --dry-run --json` shows it (nothing written)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    capsys.readouterr()
    args = ["plan", "--now", "2027-06-04T09:00", "--dry-run", "--json"]
    assert await asyncio.to_thread(main, args) == 0
    shown = [p for p in json.loads(capsys.readouterr().out) if p["kind"] == "meeting_reminder"]
    assert sorted((p["recipient"], p["occurrence"], p["deadline"]) for p in shown) == [
        (AHMED, OCC, "2027-07-01"), (JONAS, OCC, "2027-07-01")]
    assert await outbox(bot, "meeting_reminder") == []
    assert [p for p in await tick(bot, khm, oslo(2027, 6, 4, 8, 59)) if p.kind == "meeting_reminder"] == []
    planned = await tick(bot, khm, oslo(2027, 6, 4, 9, 0))
    reminders = [p for p in planned if p.kind == "meeting_reminder"]
    assert sorted(p.recipient for p in reminders) == [AHMED, JONAS] and {p.occurrence for p in reminders} == {OCC}
    rows = await outbox(bot, "meeting_reminder")
    assert len(rows) == 2
    shown = texts(card_of(rows[0]))
    assert "Vernerunden i Seksjon for publikum og formidling er avtalt mandag 7. juni 2027 kl. 10.00, med Jonas Eide " \
           "og verneombud Ahmed Rahimi." in shown
    again = await tick(bot, khm, oslo(2027, 6, 4, 9, 5))
    assert [p for p in again if p.kind == "meeting_reminder"] == [] and len(await outbox(bot, "meeting_reminder")) == 2


async def test_a_meeting_agreed_after_its_reminder_time_is_not_reminded(bot: HmsBot, khm: HmsConfig) -> None:
    bot.clock.current = oslo(2027, 6, 2, 10)  # type: ignore[attr-defined]
    start = await say(bot, JONAS, "start vernerunde")
    meeting = await press(bot, JONAS, start, "meeting.open")
    await press(bot, JONAS, meeting, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [invitation] = await outbox(bot, "invitation")
    await press(bot, AHMED, card_of(invitation), "meeting.accept")
    assert [p for p in await tick(bot, khm, oslo(2027, 6, 2, 10, 5)) if p.kind == "meeting_reminder"] == []


async def test_reminders_of_the_round_after_agreement_bring_the_checklist(bot: HmsBot, khm: HmsConfig) -> None:
    await agree(bot, khm, "2027-06-24", "10:00")
    await tick(bot, khm, oslo(2027, 6, 22, 9))  # 7 working days before 1 July
    [row] = [r for r in await outbox(bot, "reminder") if r.dedupe_key.startswith(OCC)]
    card = card_of(row)
    assert "Påminnelse: vernerunden i Seksjon for publikum og formidling" in texts(card)
    assert "Avtalt: torsdag 24. juni 2027 kl. 10.00" in texts(card)
    assert any(n.get("type") == "Input.ChoiceSet" for n in nodes(card))


async def test_the_report_names_both_and_the_representative_confirms_it(
        bot: HmsBot, khm: HmsConfig, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    await agree(bot, khm)
    [told] = await outbox(bot, "meeting")
    bot.clock.current = oslo(2027, 6, 3, 11, 30)  # type: ignore[attr-defined]
    page1 = await press(bot, JONAS, card_of(told), "round.open")
    items = [i.key for i in khm.checklist("vernerunde").items]
    values = {f"a:{k}": "ok" for k in items} | {"a:lighting": "ma_forbedres", "c:lighting": "Lysrør defekt i hall"}
    page2 = await press(bot, JONAS, page1, "round.page", {k: v for k, v in values.items() if k[2:] in items[:9]})
    done = await press(bot, JONAS, page2, "round.submit", {k: v for k, v in values.items() if k[2:] in items[9:]})
    shown = texts(done)
    assert "Levert av Jonas Eide 3. juni kl. 11.30 – 1 avvik" in shown
    assert "Gjennomført av seksjonsleder Jonas Eide og verneombud Ahmed Rahimi." in shown
    assert "Avtalt tidspunkt: torsdag 3. juni 2027 kl. 10.00." in shown
    assert "Venter på at verneombud Ahmed Rahimi bekrefter rapporten." in shown

    lamu = card_of((await outbox(bot, "lamu_summary"))[0])
    assert "Gjennomført av seksjonsleder Jonas Eide og verneombud Ahmed Rahimi." in texts(lamu)
    assert "Gjennomført av seksjonsleder Jonas Eide og verneombud Ahmed Rahimi." in texts(
        card_of((await outbox(bot, "documentation"))[0]))
    [ask] = await outbox(bot, "confirm")
    assert ask.recipient_email == AHMED

    # the round is done: a meeting card pressed now changes nothing
    [invitation] = await outbox(bot, "invitation")
    late = await press(bot, AHMED, card_of(invitation), "meeting.counter", {"date": "2027-06-10", "time": "10:00"})
    assert "Runden er allerede levert av Jonas Eide 3. juni kl. 11.30. Ingenting ble endret." in texts(late)
    assert len(await proposals(bot)) == 1

    bot.clock.current = oslo(2027, 6, 4, 8, 15)  # type: ignore[attr-defined]
    confirmed = await press(bot, AHMED, card_of(ask), "round.confirm")
    assert "Deltakelse bekreftet av Ahmed Rahimi 4. juni kl. 08.15." in texts(confirmed)
    assert "Venter på at verneombud" not in texts(confirmed)

    # the record, as an inspector gets it
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    out = tmp_path / "export.json"
    args = ["export", "--from", "2027-01-01", "--to", "2027-12-31", "--out", str(out)]
    assert await asyncio.to_thread(main, args) == 0  # `hms-bot export`, as at a terminal
    capsys.readouterr()
    [round_] = [r for r in json.loads(out.read_text())["rounds"] if r["occurrence"] == OCC]
    assert round_["completed_by"] == JONAS
    assert round_["participants"] == [{"email": AHMED, "role": "safety_rep"}]
    assert [(e["kind"], e["by"]) for e in round_["events"]] == [("completed", JONAS), ("participant", AHMED),
                                                                ("confirmed", AHMED)]
    assert round_["meeting"] == [{"starts_at": "2027-06-03T08:00:00+00:00", "proposed_by": JONAS, "proposed_to": AHMED,
                                  "proposed_at": "2027-05-20T07:00:00+00:00", "answer": "accepted",
                                  "answered_by": AHMED, "answered_at": "2027-05-20T07:00:00+00:00"}]
    # the inspection pack names them, with the time they agreed and when the representative confirmed
    book = tmp_path / "tilsyn.xlsx"
    assert await asyncio.to_thread(main, [*args[:5], "--out", str(book), "--now", "2027-06-05T10:00"]) == 0
    capsys.readouterr()
    rows = list(load_workbook(book)["Runder"].iter_rows(values_only=True))
    [safety] = {r[5:7] for r in rows[1:] if r[0] == "Vernerunde" and r[1] == "Seksjon for publikum og formidling"}
    assert safety == ("Ahmed Rahimi (verneombud for Seksjon for publikum og formidling)",
                      oslo(2027, 6, 3, 10).replace(tzinfo=None))  # Excel holds Oslo wall-clock time


# -- the record holds under presses at the same moment --------------------------------------------------------


async def test_a_double_tap_at_the_same_moment_answers_once(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [invitation] = await outbox(bot, "invitation")
    cards = await asyncio.gather(*(press(bot, AHMED, card_of(invitation), "meeting.accept") for _ in range(2)))
    shown = sorted(texts(c) for c in cards)
    assert sum("Du godtok torsdag 3. juni 2027 kl. 10.00." in x for x in shown) == 1
    assert sum("Du har allerede svart på dette forslaget." in x for x in shown) == 1
    assert await proposals(bot) == [(1, JONAS, AHMED, oslo(2027, 6, 3, 10), "accepted", AHMED)]
    assert len(await outbox(bot, "meeting")) == 1  # the leader is told once


async def test_an_answer_and_a_new_proposal_at_the_same_moment_leave_one_meeting(bot: HmsBot,
                                                                                   khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [invitation] = await outbox(bot, "invitation")
    accepted, proposed = await asyncio.gather(
        press(bot, AHMED, card_of(invitation), "meeting.accept"),
        press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-10", "time": "14:00"}))
    stored = [(n, answer) for n, *_, answer, _ in await proposals(bot)]
    invitations = len(await outbox(bot, "invitation"))
    if stored == [(1, "accepted")]:  # his press read her proposal still open, and lost to her answer
        assert "Du godtok" in texts(accepted) and "samtidig med deg" in texts(proposed) and invitations == 1
    elif stored == [(1, "accepted"), (2, None)]:  # her answer, then his press moved the agreed time
        assert "Du godtok" in texts(accepted) and "Invitasjonen er sendt" in texts(proposed) and invitations == 2
    else:  # his new time first: her answer was to a proposal no longer the newest
        assert stored == [(1, "replaced"), (2, None)], stored
        assert "ikke det siste lenger" in texts(accepted) and "torsdag 10. juni 2027 kl. 14.00" in texts(accepted)
        assert "Invitasjonen er sendt til Ahmed Rahimi." in texts(proposed) and invitations == 2


async def test_a_press_that_read_the_meeting_just_before_it_moved_stores_nothing(
        bot: HmsBot, khm: HmsConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race above, made certain: each press reads the proposal as it was before the other side's answer was
    committed, so its compare-and-set finds it answered."""
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    [invitation] = await outbox(bot, "invitation")
    async with bot.sessions() as s:
        found = await repo.proposal_with_occurrence(s, 1)
        assert found is not None
        before = (m.MeetingProposal(**found[0].model_dump()), m.Occurrence(**found[1].model_dump()))
    await press(bot, AHMED, card_of(invitation), "meeting.accept")
    latest, with_occurrence = repo.latest_proposals, repo.proposal_with_occurrence
    stale = {"latest": 1, "one": 1}

    async def latest_as_before(s: Any, keys: Any) -> dict[str, m.MeetingProposal]:
        if stale["latest"]:
            stale["latest"] -= 1
            return {OCC: before[0]}
        return await latest(s, keys)

    async def one_as_before(s: Any, proposal_id: int) -> Any:
        if stale["one"]:
            stale["one"] -= 1
            return before
        return await with_occurrence(s, proposal_id)

    monkeypatch.setattr(repo, "latest_proposals", latest_as_before)
    monkeypatch.setattr(repo, "proposal_with_occurrence", one_as_before)
    moved = await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-10", "time": "14:00"})
    assert "Noen svarte på det samme samtidig med deg, så ingenting ble lagret." in texts(moved)
    assert "Avtalt: torsdag 3. juni 2027 kl. 10.00" in texts(moved)
    again = await press(bot, AHMED, card_of(invitation), "meeting.counter", {"date": "2027-06-04", "time": "13:00"})
    assert "Du har allerede svart på dette forslaget." in texts(again)
    assert stale == {"latest": 0, "one": 0}
    assert await proposals(bot) == [(1, JONAS, AHMED, oslo(2027, 6, 3, 10), "accepted", AHMED)]
    assert len(await outbox(bot, "invitation")) == 1 and len(await outbox(bot, "meeting")) == 1


async def test_two_answers_to_one_proposal_store_one(bot: HmsBot, khm: HmsConfig) -> None:
    prompt = await the_prompt(bot, khm)
    await press(bot, JONAS, prompt, "meeting.propose", {"date": "2027-06-03", "time": "10:00"})
    async with bot.sessions() as s:
        [p] = (await s.exec(select(m.MeetingProposal))).all()
        assert await repo.answer_proposal(s, p.id, "accepted", AHMED, PROMPT_AT)
        assert not await repo.answer_proposal(s, p.id, "countered", AHMED, PROMPT_AT)
        assert await repo.add_proposal(s, p.occurrence_id, 2, oslo(2027, 6, 4, 9), JONAS, AHMED, PROMPT_AT)
        assert await repo.add_proposal(s, p.occurrence_id, 2, oslo(2027, 6, 5, 9), AHMED, JONAS, PROMPT_AT) is None
        await s.commit()
    assert [(n, answer) for n, *_, answer, _ in await proposals(bot)] == [(1, "accepted"), (2, None)]
