"""The bot's behaviour per activity, through a fake of our own TurnPort (no botbuilder, no HTTP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select

from bot.turns import KNOWN_TTL_SECONDS, HmsBot, clean_text
from hms import nlu
from hms.clock import FixedClock
from hms.config import HmsConfig, parse_config
from storage import db, models as m, repo, sessions
from tests.cardtext import texts
from tests.conftest import oslo
from tests.statements import Statements
from usecases.ports import DeliveryError

TENANT = "9f1c1c1c-1111-4111-8111-111111111111"
BOT = "28:hms-bot"
FATIMA_AAD = "0a1b2c3d-000d-4000-8000-00000000000d"


class FakeTurn:
    def __init__(self, activity: dict[str, Any], members: dict[str, dict[str, Any]] | None = None,
                 channels: list[dict[str, str]] | None = None, team: list[dict[str, Any]] | None = None):
        self.activity = activity
        self.sent: list[dict[str, Any]] = []
        self.invoke: tuple[int, Any] | None = None
        self.updated: list[tuple[str, dict[str, Any]]] = []
        self._members = members or {}
        self._channels = channels or []
        self._team = team or []

    async def send(self, activity: dict[str, Any]) -> str:
        self.sent.append(activity)
        return f"act-{len(self.sent)}"

    async def update(self, activity_id: str, activity: dict[str, Any]) -> None:
        self.updated.append((activity_id, activity))

    def respond(self, status: int, body: Any = None) -> None:
        self.invoke = (status, body)

    async def member(self, user_id: str) -> dict[str, Any] | None:
        return self._members.get(user_id)

    async def team_channels(self) -> list[dict[str, str]]:
        return self._channels

    async def team_members(self) -> list[dict[str, Any]]:
        return self._team


class DownTurn(FakeTurn):
    """A turn whose connector goes down after `sends` replies: every later reply fails (the bot then answers 500
    and Teams retries)."""

    def __init__(self, activity: dict[str, Any], sends: int = 0):
        super().__init__(activity)
        self.sends = sends

    async def send(self, activity: dict[str, Any]) -> str:
        if len(self.sent) >= self.sends:
            raise DeliveryError(502, "Bad Gateway")
        return await super().send(activity)

    async def update(self, activity_id: str, activity: dict[str, Any]) -> None:
        raise DeliveryError(502, "Bad Gateway")


class FakeProactive:
    def __init__(self) -> None:
        self.created: list[tuple[str, str | None, str]] = []

    async def create_personal_conversation(self, service_url: str, tenant_id: str | None, user_id: str,
                                           activity: dict[str, Any] | None = None) -> str:
        self.created.append((service_url, tenant_id, user_id))
        return f"a:personal-{user_id}"


def activity(kind: str = "message", *, id: str = "1", text: str | None = None, aad: str | None = FATIMA_AAD,
             user: str = "29:fatima", conversation: str = "a:fatima", ctype: str = "personal",
             tenant: str = TENANT, locale: str | None = "nb-NO", service_url: str = "https://smba.example/emea/",
             **extra: Any) -> dict[str, Any]:
    act: dict[str, Any] = {
        "type": kind, "id": id, "channelId": "msteams", "serviceUrl": service_url,
        "from": {"id": user, "name": "Someone", **({"aadObjectId": aad} if aad else {})},
        "recipient": {"id": BOT, "name": "HMS-hjulet"},
        "conversation": {"id": conversation, "conversationType": ctype, "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
        "entities": [{"type": "clientInfo", "locale": locale or "nb-NO", "timezone": "Europe/Oslo"}],
    }
    if locale:
        act["locale"] = locale
    if text is not None:
        act["text"] = text
    act.update(extra)
    return act


def make_bot(engine: Any, config: HmsConfig, **kwargs: Any) -> HmsBot:
    return HmsBot(config=config, engine=engine, clock=FixedClock(oslo(2026, 11, 26, 10)), tenant_id=TENANT,
                  bot_id=BOT, card_key=b"test-key", **kwargs)


@pytest.fixture
async def bot(db_url: str, khm: HmsConfig) -> AsyncIterator[HmsBot]:
    engine = db.create_engine(db_url)
    b = make_bot(engine, khm, proactive=FakeProactive())
    await b.start()
    yield b
    await b.ledger.close()  # completions are written behind: write them before the engine goes
    await engine.dispose()


async def refs(bot: HmsBot) -> list[m.ConversationRef]:
    async with bot.sessions() as s:
        return list((await s.exec(select(m.ConversationRef))).all())


async def test_install_greets_known_user_with_roles(bot: HmsBot) -> None:
    turn = FakeTurn(activity("conversationUpdate", membersAdded=[{"id": BOT}, {"id": "29:fatima"}]))
    await bot.on_turn(turn)
    [greeting] = turn.sent
    body = texts(greeting)
    assert "Hei, Fatima!" in body and "etasjekontakt for Historisk museum, 1. etasje" in body
    assert "brannvernrunden hvert kvartal" in body
    # Teams also sends installationUpdate for the same install: no second greeting.
    again = FakeTurn(activity("installationUpdate", id="2", action="add"))
    await bot.on_turn(again)
    assert again.sent == []
    [ref] = await refs(bot)
    assert (ref.conversation_id, ref.conversation_type, ref.tenant_id, ref.bot_id, ref.user_teams_id,
            ref.user_aad_id, ref.person_email, ref.locale, ref.timezone) == (
        "a:fatima", "personal", TENANT, BOT, "29:fatima", FATIMA_AAD, "fatima.ali@khm.uio.no", "nb-NO",
        "Europe/Oslo")


async def test_unknown_user_gets_the_refusal_and_nothing_else(bot: HmsBot) -> None:
    install = FakeTurn(activity("installationUpdate", action="add", aad="ffffffff-0000-4000-8000-000000000000",
                                user="29:stranger", conversation="a:stranger"))
    await bot.on_turn(install)
    [card] = install.sent
    assert "Jeg kjenner deg ikke ennå" in texts(card) and "Hanne Solberg" in texts(card)
    question = FakeTurn(activity(id="2", text="hva forfaller denne måneden?", aad=None, user="29:stranger",
                                 conversation="a:stranger"),
                        members={"29:stranger": {"email": "someone@uio.no", "userPrincipalName": "someone@uio.no"}})
    await bot.on_turn(question)
    [refusal] = question.sent
    assert "hanne.solberg@khm.uio.no" in texts(refusal) and "Frister" not in texts(refusal)


async def test_user_found_by_upn_when_no_entra_id(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="mine oppgaver", aad="aaaaaaaa-0000-4000-8000-000000000001", user="29:eirik",
                             conversation="a:eirik"),
                    members={"29:eirik": {"email": None, "userPrincipalName": "Eirik.Haugen@khm.uio.no"}})
    await bot.on_turn(turn)
    assert "Dine oppgaver" in texts(turn.sent[-1])
    assert "Brannvernrunde" in texts(turn.sent[-1])
    async with bot.sessions() as s:
        person = (await s.exec(select(m.Person).where(m.Person.email == "eirik.haugen@khm.uio.no"))).one()
    assert person.teams_user_id == "29:eirik"
    # next time the Teams id is enough: no member lookup needed
    turn2 = FakeTurn(activity(id="2", text="hjelp", aad=None, user="29:eirik", conversation="a:eirik"))
    await bot.on_turn(turn2)
    assert "Dette kan jeg hjelpe med" in texts(turn2.sent[-1])


def ask(n: int, user: str, members: dict[str, dict[str, Any]] | None = None) -> FakeTurn:
    """A question from someone without an Entra object id in the file, in their own chat."""
    return FakeTurn(activity(id=f"{user}-{n}", text="mine oppgaver", aad=None, user=user, conversation=f"a:{user}"),
                    members=members)


async def test_a_person_found_by_teams_id_costs_no_writes_after_the_first_turn(db_url: str, khm: HmsConfig) -> None:
    """Most people are known by the Teams id learned on their first turn, not by an Entra id in the file: after
    that turn nothing is written and nobody is looked up (on SQLite: no wait for the single writer)."""
    engine = db.create_engine(db_url)
    readers = sessions.Readers(db_url, engine)  # as the app reads
    ticks = [0.0]
    b = make_bot(engine, khm, readers=readers, monotonic=lambda: ticks[0])
    await b.start()
    seen = Statements(engine)
    try:
        first = ask(0, "29:lars", {"29:lars": {"email": "Lars.Bakke@khm.uio.no"}})
        await b.on_turn(first)
        assert "Dine oppgaver" in texts(first.sent[-1])
        assert seen.writes()  # the chat, and whose Teams id this is, are stored once
        for n in range(1, 4):
            seen.clear()
            b.clock.advance(dt.timedelta(minutes=1))  # type: ignore[attr-defined]
            ticks[0] += 60
            turn = ask(n, "29:lars")  # Teams would not be asked who this is (no member lookup here)
            await b.on_turn(turn)
            assert "Dine oppgaver" in texts(turn.sent[-1])
            assert seen.writes() == [] and seen.reading("person") == []
        # minutes later the chat's coordinates are read again; unchanged, they are not written
        b.clock.advance(dt.timedelta(minutes=5))  # type: ignore[attr-defined]
        ticks[0] += KNOWN_TTL_SECONDS
        seen.clear()
        await b.on_turn(ask(4, "29:lars"))
        assert seen.reading("conversation_ref") and seen.writes() == []
    finally:
        seen.close()
        await readers.dispose()
        await engine.dispose()


async def test_a_teams_id_stored_for_someone_who_left_the_file_identifies_nobody(
        db_url: str, khm: HmsConfig, khm_text: str) -> None:
    engine = db.create_engine(db_url)
    maria = {"29:maria": {"email": "maria.johansen@khm.uio.no"}}
    try:
        before = make_bot(engine, khm)
        await before.start()
        await before.on_turn(ask(0, "29:maria", maria))
        await before.on_turn(turn := ask(1, "29:maria"))
        assert "Dine oppgaver" in texts(turn.sent[-1])
        # the bot restarts with a file she is no longer in; her Teams id is still stored, and Teams still knows her
        after = make_bot(engine, parse_config(khm_text.replace("maria.johansen@", "nora.berg@")))
        await after.start()
        await after.on_turn(turn := ask(2, "29:maria", maria))
        assert "Jeg kjenner deg ikke ennå" in texts(turn.sent[-1])
    finally:
        await engine.dispose()


async def test_due_this_month_is_role_aware(bot: HmsBot) -> None:
    fatima = FakeTurn(activity(text="hva forfaller denne måneden?"))
    await bot.on_turn(fatima)
    card = texts(fatima.sent[-1])
    assert "Frister – november 2026" in card
    assert "Historisk museum, 1. etasje" in card and "2. etasje" not in card
    assert "HMS-årsrapport" not in card  # a floor contact sees their floor, not the sections' reports
    adviser = FakeTurn(activity(id="2", text="hva forfaller denne måneden?", aad="0a1b2c3d-0001-4000-8000-000000000001",
                                user="29:hanne", conversation="a:hanne"))
    await bot.on_turn(adviser)
    card = texts(adviser.sent[-1])
    assert "HMS-årsrapport" in card and "Ledelsens gjennomgang" in card and "hele enheten" in card


async def test_english_locale_answers_in_english(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="what's due next month?", locale="en-US"))
    await bot.on_turn(turn)
    assert "Deadlines – December 2026" in texts(turn.sent[-1])


async def test_norwegian_question_in_an_english_teams_gets_norwegian(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="hva forfaller denne måneden?", locale="en-US"))
    await bot.on_turn(turn)
    assert "Frister – november 2026" in texts(turn.sent[-1])
    ambiguous = FakeTurn(activity(id="2", text="status", locale="en-US"))
    await bot.on_turn(ambiguous)
    assert "Status 2026" in texts(ambiguous.sent[-1]) and "done" in texts(ambiguous.sent[-1])


async def test_nonsense_gets_short_help_never_silence(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="blåbærsyltetøy"))
    await bot.on_turn(turn)
    assert "Det forsto jeg ikke helt" in texts(turn.sent[-1])
    empty = FakeTurn(activity(id="2", text="<at>HMS-hjulet</at> "))
    await bot.on_turn(empty)
    assert "Dette kan jeg hjelpe med" in texts(empty.sent[-1])


async def test_incident_links_cim_and_stores_nothing_of_it(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="jeg vil melde en uønsket hendelse"))
    await bot.on_turn(turn)
    card = turn.sent[-1]["attachments"][0]["content"]
    urls = [a["url"] for a in card["actions"]]
    assert "https://uio-cim.no/loaddata.php?page=content&menu_id=98&sub_page=form" in urls
    assert "lagrer ingenting" in texts(turn.sent[-1])


async def test_retry_of_the_same_activity_is_handled_once(bot: HmsBot) -> None:
    first = FakeTurn(activity(id="same", text="hjelp"))
    await bot.on_turn(first)
    retry = FakeTurn(activity(id="same", text="hjelp"))
    await bot.on_turn(retry)
    assert len(first.sent) == 2 and retry.sent == []  # a new chat gets the welcome, then the answer


async def test_other_tenant_dropped_and_nothing_stored(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="hjelp", tenant="00000000-0000-4000-8000-000000000bad"))
    await bot.on_turn(turn)
    assert turn.sent == []
    assert await refs(bot) == []
    async with bot.sessions() as s:
        assert (await s.exec(select(m.ProcessedActivity))).all() == []


async def test_service_url_and_locale_refreshed_and_uninstall_deactivates(bot: HmsBot) -> None:
    await bot.on_turn(FakeTurn(activity(text="hjelp")))
    await bot.on_turn(FakeTurn(activity(id="2", text="help", locale="en-GB",
                                        service_url="https://smba.example/emea-new/")))
    [ref] = await refs(bot)
    assert (ref.service_url, ref.locale, ref.active) == ("https://smba.example/emea-new/", "en-GB", True)
    await bot.on_turn(FakeTurn(activity("installationUpdate", id="3", action="remove")))
    [ref] = await refs(bot)
    assert ref.active is False
    # Reinstalled: active again, greeted again.
    back = FakeTurn(activity("installationUpdate", id="4", action="add"))
    await bot.on_turn(back)
    assert "Hei, Fatima!" in texts(back.sent[0])


async def test_team_install_finds_lamu_channel_and_opens_personal_chats(bot: HmsBot) -> None:
    team = [
        {"id": "29:eirik", "email": "eirik.haugen@khm.uio.no", "userPrincipalName": "eirik.haugen@khm.uio.no"},
        {"id": "29:guest", "email": "guest@example.org", "userPrincipalName": "guest@example.org"},
        {"id": "29:fatima", "email": "fatima.ali@khm.uio.no", "userPrincipalName": "fatima.ali@khm.uio.no"},
    ]
    await bot.on_turn(FakeTurn(activity(text="hjelp")))  # Fatima already has a chat
    turn = FakeTurn(activity("conversationUpdate", id="t1", ctype="channel", conversation="19:general@thread",
                             membersAdded=[{"id": BOT}],
                             channelData={"team": {"id": "19:team@thread", "name": "LAMU KHM"},
                                          "tenant": {"id": TENANT}, "eventType": "teamMemberAdded"}),
                    channels=[{"id": "19:general@thread", "name": "General"},
                              {"id": "19:lamu@thread", "name": "LAMU"}], team=team)
    await bot.on_turn(turn)
    by_id = {r.conversation_id: r for r in await refs(bot)}
    lamu = by_id["19:lamu@thread"]
    assert (lamu.conversation_type, lamu.team_id, lamu.teams_channel_id) == ("channel", "19:team@thread",
                                                                              "19:lamu@thread")
    assert bot.proactive.created == [("https://smba.example/emea/", TENANT, "29:eirik")]  # type: ignore[union-attr]
    assert by_id["a:personal-29:eirik"].person_email == "eirik.haugen@khm.uio.no"


async def test_card_action_invoke_gets_an_answer(bot: HmsBot) -> None:
    turn = FakeTurn(activity("invoke", name="adaptiveCard/action", value={"action": {"verb": "x"}}))
    await bot.on_turn(turn)
    assert turn.invoke is not None and turn.invoke[0] == 200


def test_clean_text_strips_mentions() -> None:
    assert clean_text("<at>HMS-hjulet</at> hva forfaller  denne måneden?") == "hva forfaller denne måneden?"
    assert clean_text("<p>status</p>") == "status"
    assert clean_text("<AT>HMS-hjulet</AT> <p><b>status</b> for <i>1. etasje</i></p>") == "status for 1. etasje"


@pytest.mark.parametrize(("markup", "words"), [
    ("<at>" * 4_000, ""), ("<" * 16_000, "<" * 16_000), ("<a " * 5_333, "<a " * 5_333), ("<at>x" * 3_200, "x " * 3_200),
    ("hei <at>Bot</at> <at>uten slutt hva forfaller?", "hei uten slutt hva forfaller?")])
def test_clean_text_of_unclosed_markup(markup: str, words: str) -> None:
    """Unclosed tags are kept as words (what they cost is measured in bench/nlu_bench.py: linear since a tag
    ends at the next "<"; it was 40 s for 120 KB of "<at>" on the event loop)."""
    assert clean_text(markup) == " ".join(words.split())


async def test_a_huge_message_gets_the_help_card_and_is_remembered_by_its_prefix(bot: HmsBot) -> None:
    turn = FakeTurn(activity(text="a" * 28_000))
    await bot.on_turn(turn)
    assert "Det forsto jeg ikke helt" in texts(turn.sent[-1])
    many = FakeTurn(activity(id="2", text="hva er forsinket? " * 7_000))  # 126 KB: its start is understood
    await bot.on_turn(many)
    assert "forsinket" in texts(many.sent[-1]).lower()
    assert all(len(words) <= nlu.MAX_TEXT for words, _day in bot.answerer._understood)  # no 100 KB memo keys



async def test_round_started_in_chat_and_submitted_with_action_execute(bot: HmsBot, khm: HmsConfig) -> None:
    start = FakeTurn(activity(text="start brannvernrunde"))
    await bot.on_turn(start)
    form = start.sent[-1]["attachments"][0]["content"]
    assert "Brannvernrunde" in texts(start.sent[-1]) and "Side 1 av 2" in texts(start.sent[-1])
    answers = {f"a:{i.key}": "ok" for i in khm.checklist("fire_round").items}
    page = next(a for a in form["actions"] if a["verb"] == "round.page")
    first = FakeTurn(activity("invoke", id="i1", name="adaptiveCard/action",
                              value={"action": {"type": "Action.Execute", "verb": "round.page",
                                                "data": {**page["data"], **answers}}}))
    await bot.on_turn(first)
    status, body = first.invoke
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    submit = next(a for a in body["value"]["actions"] if a["verb"] == "round.submit")
    done = FakeTurn(activity("invoke", id="i2", name="adaptiveCard/action",
                             value={"action": {"type": "Action.Execute", "verb": "round.submit",
                                               "data": {**submit["data"], **answers}}}))
    await bot.on_turn(done)
    card = done.invoke[1]["value"]
    assert "Levert av Fatima Ali 26. november kl. 10.00 – ingen avvik" in texts({"attachments": [{"content": card}]})
    assert "actions" not in card  # read-only


async def test_action_submit_fallback_updates_the_pressed_card(bot: HmsBot, khm: HmsConfig) -> None:
    start = FakeTurn(activity(text="start brannvernrunde"))
    await bot.on_turn(start)
    form = start.sent[-1]["attachments"][0]["content"]
    page = next(a for a in form["actions"] if a["verb"] == "round.page")
    submit = FakeTurn(activity(id="s1", value={**page["fallback"]["data"], "a:escape_routes": "ok"},
                               replyToId="card-1"))
    await bot.on_turn(submit)
    assert submit.sent == [] and submit.updated[0][0] == "card-1"


async def test_simultaneous_install_events_greet_once(bot: HmsBot) -> None:
    import asyncio

    a = FakeTurn(activity("installationUpdate", id="x1", action="add"))
    b = FakeTurn(activity("conversationUpdate", id="x2", membersAdded=[{"id": BOT}, {"id": "29:fatima"}]))
    await asyncio.gather(bot.on_turn(a), bot.on_turn(b))
    assert len(a.sent) + len(b.sent) == 1
    assert len(await refs(bot)) == 1


async def test_prompts_waiting_for_a_chat_go_out_once_it_exists(bot: HmsBot) -> None:
    import json as _json

    later = oslo(2026, 11, 26, 16)
    async with bot.sessions() as s:
        await repo.enqueue(s, [{"dedupe_key": "p1", "kind": "prompt", "recipient_email": "fatima.ali@khm.uio.no",
                                "payload": _json.dumps({"target": {"kind": "person", "email": "fatima.ali@khm.uio.no"},
                                                        "activity": {"type": "message"}}),
                                "status": "retry", "last_error": "no conversation with the recipient",
                                "not_before": later}], oslo(2026, 11, 26, 9))
    await bot.on_turn(FakeTurn(activity("installationUpdate", action="add")))
    async with bot.sessions() as s:
        row = (await s.exec(select(m.OutboxMessage))).one()
    assert row.not_before == oslo(2026, 11, 26, 10)  # the bot's clock: due now, not in six hours


async def test_an_answer_that_could_not_be_sent_is_sent_by_the_retry(bot: HmsBot) -> None:
    """The connector is down: the turn fails (500). Teams' retry of the same activity is answered, once."""
    await bot.on_turn(FakeTurn(activity(id="hello", text="hei")))  # the welcome is out of the way
    with pytest.raises(DeliveryError):
        await bot.on_turn(DownTurn(activity(id="q", text="hva forfaller denne måneden?")))
    retry = FakeTurn(activity(id="q", text="hva forfaller denne måneden?"))
    await bot.on_turn(retry)
    assert len(retry.sent) == 1 and "Frister" in texts(retry.sent[0])
    again = FakeTurn(activity(id="q", text="hva forfaller denne måneden?"))
    await bot.on_turn(again)  # that retry completed: a later one is dropped
    assert again.sent == []


async def stored_answers(bot: HmsBot) -> list[tuple[str, str, bool]]:
    """Every stored answer: (item, answer, is it a draft)."""
    async with bot.sessions() as s:
        drafts = (await s.exec(select(m.ChecklistDraft))).all()
        finals = (await s.exec(select(m.ChecklistAnswer))).all()
        return sorted([(r.item_key, r.answer, True) for r in drafts] + [(r.item_key, r.answer, False) for r in finals])


async def test_a_card_submit_whose_receipt_failed_is_stored_once_and_its_retry_gets_the_receipt(
        bot: HmsBot, khm: HmsConfig) -> None:
    """Action.Submit (a message): the page and the round are stored, but the card cannot be replaced (the
    connector is down). The retry stores nothing again and replaces the card."""
    start = FakeTurn(activity(text="start brannvernrunde"))
    await bot.on_turn(start)
    form = start.sent[-1]["attachments"][0]["content"]
    answers = {f"a:{i.key}": "ok" for i in khm.checklist("fire_round").items}
    page = next(a for a in form["actions"] if a["verb"] == "round.page")
    press = activity(id="s1", value={**page["fallback"]["data"], **answers}, replyToId="card-1")
    with pytest.raises(DeliveryError):
        await bot.on_turn(DownTurn(press))
    drafts = await stored_answers(bot)
    assert len(drafts) == len(answers)
    retry = FakeTurn(press)
    await bot.on_turn(retry)
    assert retry.updated and retry.updated[0][0] == "card-1"
    assert await stored_answers(bot) == drafts  # the draft is stored once

    card = retry.updated[0][1]["attachments"][0]["content"]
    submit = next(a for a in card["actions"] if a["verb"] == "round.submit")
    done = activity(id="s2", value={**submit["fallback"]["data"], **answers}, replyToId="card-1")
    with pytest.raises(DeliveryError):
        await bot.on_turn(DownTurn(done))
    finals = [a for a in await stored_answers(bot) if not a[2]]
    assert len(finals) == len(answers)
    receipt = FakeTurn(done)
    await bot.on_turn(receipt)
    assert "Levert av Fatima Ali 26. november kl. 10.00 – ingen avvik" in texts(receipt.updated[0][1])
    assert [a for a in await stored_answers(bot) if not a[2]] == finals  # the round is stored once
    async with bot.sessions() as s:
        events = (await s.exec(select(m.OccurrenceEvent).where(m.OccurrenceEvent.kind == "completed"))).all()
    assert len(events) == 1
    late = FakeTurn(done)
    await bot.on_turn(late)  # completed: a later retry is dropped
    assert late.updated == [] and late.sent == []


@pytest.mark.parametrize("sent_before_failure", [0, 1])
async def test_a_new_chat_whose_first_turn_failed_is_greeted_once(bot: HmsBot, sent_before_failure: int) -> None:
    """The first message of a new chat gets the welcome, then the answer. When the turn fails before the welcome
    went out, the retry greets; when it failed after, the retry only answers."""
    with pytest.raises(DeliveryError):
        await bot.on_turn(DownTurn(activity(id="first", text="hjelp"), sends=sent_before_failure))
    retry = FakeTurn(activity(id="first", text="hjelp"))
    await bot.on_turn(retry)
    greeted = ["Hei, Fatima!" in texts(a) for a in retry.sent]
    assert greeted == ([True, False] if sent_before_failure == 0 else [False])


async def test_an_install_whose_greeting_failed_greets_on_the_retry(bot: HmsBot) -> None:
    install = activity("installationUpdate", id="inst", action="add")
    with pytest.raises(DeliveryError):
        await bot.on_turn(DownTurn(install))
    retry = FakeTurn(install)
    await bot.on_turn(retry)
    assert len(retry.sent) == 1 and "Hei, Fatima!" in texts(retry.sent[0])
