"""End to end through the real Microsoft 365 Agents Playground (local Teams emulator): install, questions, an
unknown user, a fire round from the planner's prompt to the LAMU summary and the measure owner's reminder, a
measure created in the chat ("nytt tiltak") that "åpne tiltak" then lists, the safety round's invitation
from the section leader's proposal to the safety representative's acceptance, and the adviser's weekly digest on a
Monday at 09:00 with the inspection pack asked for in the chat and downloaded from the bot.

The bot runs in-process on 127.0.0.1 with a FixedClock and no scheduler; the Playground runs behind its loopback
guard (playground/launcher.py). See tests/e2e_support.py and docs/playground-api.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hms.config import HmsConfig
from hms.workdays import WorkCalendar
from playground import launcher as playground, local
from storage import models as m
from tests.cardtext import input_ids, nodes, texts
from tests.conftest import oslo
from tests.e2e_support import E2E, Frame, cards_of, eventually, frame_text, press, running


def _unavailable() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed: the Microsoft 365 Agents Playground cannot run"
    try:
        playground.ensure_installed()
    except (playground.PlaygroundError, OSError) as exc:
        return f"the Microsoft 365 Agents Playground is not installed and could not be installed: {exc}"
    return None


_REASON = _unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

pytestmark = pytest.mark.e2e

NOW = oslo(2027, 3, 10, 9, 0)
QUESTION = "hva forfaller denne måneden?"


@pytest.fixture
async def env(tmp_path: Path, khm: HmsConfig) -> AsyncIterator[E2E]:
    async with running(tmp_path, khm, NOW) as e:
        yield e


FATIMA = "fatima.ali@khm.uio.no"
HANNE = "hanne.solberg@khm.uio.no"
JONAS = "jonas.eide@khm.uio.no"
OTHER_FLOORS = ("underetasjen", "2. etasje", "3. etasje", "Økern", "basement", "2nd floor", "3rd floor")


def created_in(conversation_id: str, *needles: str) -> Callable[[Frame], bool]:
    """A chat-stream frame: a new bot message in `conversation_id` whose text holds every needle."""
    def match(f: Frame) -> bool:
        if f.get("action") != "createMessage" or f.get("actionConversationId") != conversation_id:
            return False
        shown = frame_text(f)
        return all(n in shown for n in needles)
    return match


def bot_sent_to(conversation_id: str, *needles: str) -> Callable[[Frame], bool]:
    """A log-stream frame: the bot (User Application) sent a message into `conversation_id` holding every needle."""
    def match(f: Frame) -> bool:
        log = f.get("log") or {}
        if log.get("activityName") != "message" or log.get("from") != "User Application" \
                or log.get("conversationId") != conversation_id:
            return False
        shown = texts((log.get("request") or {}).get("body"))
        return all(n in shown for n in needles)
    return match


async def test_install_in_personal_chat_sends_the_welcome(env: E2E) -> None:
    """The Playground's Teams locale is always en-US, so the welcome is in English (the Norwegian one,
    "Hei, Fatima!" / "etasjekontakt for Historisk museum, 1. etasje", is what an nb-NO client gets)."""
    await env.install(env.personal_chat)
    frame = await env.wait_for(created_in(env.personal_chat, "Hi, Fatima!"))
    shown = frame_text(frame)
    assert "floor contact for Historical Museum, 1st floor" in shown, shown
    assert frame["message"]["from"]["id"] == local.BOT["id"]
    await env.settle()
    welcomes = env.matching(created_in(env.personal_chat, "Fatima!"))
    assert len(welcomes) == 1, "installationUpdate and conversationUpdate must greet once"
    refs = await env.rows(m.ConversationRef, m.ConversationRef.conversation_id == env.personal_chat)
    assert [(r.conversation_type, r.person_email, r.locale) for r in refs] == [("personal", FATIMA, "en-US")]


async def test_due_this_month_answers_in_norwegian_for_her_floor_only(env: E2E) -> None:
    await env.say(QUESTION)
    frame = await env.wait_for(created_in(env.personal_chat, "Frister – mars 2027"))
    shown = frame_text(frame)
    assert "31. mars" in shown and "Brannvernrunde" in shown and "Historisk museum, 1. etasje" in shown, shown
    assert not any(other in shown for other in OTHER_FLOORS), shown
    # the first message in a chat the bot did not know yet is greeted, in the language of the question
    assert env.matching(created_in(env.personal_chat, "Hei, Fatima!"))


async def test_unknown_user_is_refused_with_the_advisers_name(env: E2E) -> None:
    guest = env.user("Gjest Gjestesen")
    await env.custom(env.personal_chat, type="message", text=QUESTION, textFormat="plain",
                     **{"from": {"id": guest["id"], "name": guest["name"], "aadObjectId": guest["aadObjectId"]}})
    frame = await env.wait_for(created_in(env.personal_chat, "Hanne Solberg"))
    shown = frame_text(frame)
    assert HANNE in shown and re.search(r"Jeg kjenner deg ikke ennå|I don't know you yet", shown), shown
    await env.settle()
    assert not env.matching(created_in(env.personal_chat, "Frister")), "an unknown user must see no deadlines"
    assert not env.matching(created_in(env.personal_chat, "Brannvernrunde"))


async def test_fire_round_end_to_end(env: E2E, khm: HmsConfig) -> None:
    # installed in the personal chat and in the LAMU team
    await env.install(env.personal_chat)
    await env.wait_for(created_in(env.personal_chat, "Fatima!"))
    await env.install(env.team_id)

    async def team_learned() -> dict[str, m.ConversationRef] | None:
        refs = {r.conversation_id: r for r in await env.rows(m.ConversationRef)}
        people = {r.person_email for r in refs.values() if r.conversation_type == "personal"}
        return refs if local.LAMU_CHANNEL_ID in refs and {HANNE, JONAS} <= people else None

    refs = await eventually(team_learned, 10, "LAMU channel and personal chats learned from the team install")
    lamu = refs[local.LAMU_CHANNEL_ID]
    assert (lamu.conversation_type, lamu.teams_channel_id, lamu.team_id, lamu.active) == (
        "channel", local.LAMU_CHANNEL_ID, local.TEAM_ID, True)
    dm = {r.person_email: r.conversation_id for r in refs.values() if r.conversation_type == "personal"}
    assert dm[FATIMA] == env.personal_chat and dm[HANNE].endswith("@test.user") and dm[JONAS].endswith("@test.user")

    # 10 March 09:00: the planner prompts the fire round; Fatima gets the checklist in her chat
    env.set_clock(NOW)
    planned = await env.plan()
    assert planned.planned >= 1
    await env.drain()
    prompt = await env.wait_for(lambda f: created_in(env.personal_chat)(f) and bool(
        re.search(r"Page 1 of 2|Side 1 av 2", frame_text(f))))
    card = cards_of(prompt)[0]
    assert re.search(r"Historical Museum, 1st floor|Historisk museum, 1\. etasje", texts(card))
    fields = [i for i in input_ids(card) if i.startswith("a:")]
    assert len(fields) == 9
    # Fatima does the round on her phone: "Lagre og neste" to page 2, one deviation there with its comment, then
    # "Alt annet OK". Each tap is counted as a person makes it: a compact choice is two (open the list, pick),
    # unfolding an item's comment field one, a button one (an invoke to the bot).
    taps = invokes = 0
    reply_to = prompt["message"]["messageId"]
    untouched = {f: "" for f in input_ids(card)}  # what the card sends for what nobody touched
    answer = await env.invoke(reply_to, press(card, "round.page", untouched))
    taps, invokes = taps + 1, invokes + 1
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    page2 = answer["value"]
    # what she must see next is where she is looking: the page line beside the buttons at the bottom
    assert re.search(r"Page 2 of 2|Side 2 av 2", page2["body"][-1]["text"]), texts(page2)
    fields2 = [i for i in input_ids(page2) if i.startswith("a:")]
    assert len(fields2) == 9 and not set(fields2) & set(fields)
    deviation = fields2[2][2:]
    choice = next(n for n in nodes(page2) if n.get("id") == f"a:{deviation}")
    assert choice["style"] == "compact" and "avvik" in [c["value"] for c in choice["choices"]]
    taps += 2
    toggle = next(n for n in nodes(page2) if n.get("type") == "Action.ToggleVisibility"
                  and f"more:{deviation}" in n["targetElements"])
    folded = next(n for n in nodes(page2) if n.get("id") in toggle["targetElements"])
    assert folded["isVisible"] is False and f"c:{deviation}" in input_ids(folded)
    taps += 1
    typed = {f"a:{deviation}": "avvik", f"c:{deviation}": "Kasser i trapp B"}
    untouched = {f: "" for f in input_ids(page2) if f not in typed}

    answer = await env.invoke(reply_to, press(page2, "round.allok", untouched | typed))
    taps, invokes = taps + 1, invokes + 1
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert taps <= 10 and invokes == 2, (taps, invokes)
    done = answer["value"]
    assert re.search(r"(Levert av|Submitted by) Fatima Ali .+ – 1 (avvik|deviation)", texts(done)), texts(done)
    assert "actions" not in done and "Kasser i trapp B" in texts(done)

    # the measure exists, owned by the leader of the floor's section
    measures = await env.rows(m.Measure)
    assert [(x.owner_email, x.status) for x in measures] == [(JONAS, "open")]
    measure = measures[0]
    assert measure.deadline == dt.date(2027, 4, 9)

    # the outbox: the LAMU summary (a new thread in the LAMU channel), the adviser's copy, the owner's card
    env.chat.frames.clear()
    await env.drain()
    root = await env.wait_for(created_in(local.LAMU_CHANNEL_ID, "Brannvernrunde 1. kvartal 2027"))
    thread = root["message"].get("postConversationId") or f"{local.LAMU_CHANNEL_ID};messageid=" \
                                                           f"{root['message']['messageId']}"
    summary = await env.wait_for(created_in(thread, "Historisk museum, 1. etasje", "Fatima Ali", "1 avvik"))
    assert "Jonas Eide" in frame_text(summary)
    assert not env.matching(lambda f: str(f.get("actionConversationId", "")).startswith(local.TEAM_ID)), \
        "nothing may go to the General channel"
    await env.wait_for(bot_sent_to(dm[HANNE], "Levert av Fatima Ali", "1 avvik", "Kasser i trapp B"), stream="log")
    await env.wait_for(bot_sent_to(dm[JONAS], "Kasser i trapp B"), stream="log")
    outbox = {o.dedupe_key: o for o in await env.rows(m.OutboxMessage)}
    for key in ("fire_round:2027-Q1:hm-1|lamu-summary", f"fire_round:2027-Q1:hm-1|documentation|{HANNE}",
                f"measure:{measure.id}|created|{JONAS}"):
        assert outbox[key].status == "sent" and outbox[key].activity_id, (key, outbox[key])
    assert json.loads(outbox[f"fire_round:2027-Q1:hm-1|documentation|{HANNE}"].payload)["target"]["email"] == HANNE

    # 7 working days before the measure's deadline: the owner is reminded
    cal = WorkCalendar(khm.tz)
    reminder_at = cal.at(cal.add_working_days(measure.deadline, -7), dt.time(9, 0))
    assert reminder_at == oslo(2027, 3, 31, 9, 0)  # Easter 2027 (25, 26 and 29 March) is skipped
    env.clock.advance(reminder_at - env.clock.now())
    await env.plan()
    await env.drain()
    key = f"measure:{measure.id}@{measure.deadline.isoformat()}|reminder-7|{JONAS}"
    rows = await env.rows(m.OutboxMessage, m.OutboxMessage.dedupe_key == key)
    assert [(r.status, bool(r.activity_id)) for r in rows] == [("sent", True)], rows
    await env.wait_for(bot_sent_to(dm[JONAS], "Påminnelse", "9. april"), stream="log")


async def test_a_measure_created_in_the_chat_is_among_the_open_measures(env: E2E) -> None:
    """Issue 11.3: "nytt tiltak" opens the form, Fatima fills it in and sends it, and "åpne tiltak" lists it."""
    await env.say("nytt tiltak")
    frame = await env.wait_for(lambda f: created_in(env.personal_chat)(f) and bool(
        re.search(r"Nytt tiltak|New measure", frame_text(f))))
    form = cards_of(frame)[0]
    assert input_ids(form) == ["source", "cim", "description", "owner", "deadline", "section"]
    answer = await env.invoke(frame["message"]["messageId"], press(form, "measure.create", {
        "source": "ros", "description": "Nødlys i trapp B skiftes", "owner": JONAS, "deadline": "2027-04-30",
        "section": "publikum"}))
    created = texts(answer["value"])
    assert re.search(r"Tiltak nr\. 1 er opprettet – ansvarlig Jonas Eide|Measure no\. 1 is created – owner Jonas Eide",
                     created), created
    [measure] = await env.rows(m.Measure)
    assert (measure.source, measure.owner_email, measure.created_by, measure.deadline) == (
        "ros", JONAS, FATIMA, dt.date(2027, 4, 30))
    await env.say("åpne tiltak")
    listed = await env.wait_for(created_in(env.personal_chat, "Nr. 1: Nødlys i trapp B skiftes"))
    assert "Jonas Eide" in frame_text(listed)


AHMED = "ahmed.rahimi@khm.uio.no"
SAFETY_ROUND = "vernerunde:2027:publikum"


async def test_safety_round_invitation_end_to_end(tmp_path: Path, khm: HmsConfig) -> None:
    """The section leader (the Playground's current user here) proposes a time on the safety round's prompt; the
    safety representative gets the invitation in her own chat and accepts it; the leader is told."""
    async with running(tmp_path, khm, oslo(2027, 5, 20, 8, 0), current=JONAS) as env:
        await env.install(env.personal_chat)
        await env.wait_for(created_in(env.personal_chat, "Jonas!"))
        await env.install(env.team_id)

        async def learned() -> dict[str, str] | None:
            dm = {r.person_email: r.conversation_id for r in await env.rows(m.ConversationRef)
                  if r.conversation_type == "personal" and r.person_email}
            return dm if {JONAS, AHMED} <= set(dm) else None

        dm = await eventually(learned, 10, "personal chats of the leader and the safety representative")
        assert dm[JONAS] == env.personal_chat and dm[AHMED].endswith("@test.user")

        # 20 May 09:00, six weeks before 1 July: the leader's prompt is the card to agree on a time
        env.set_clock(oslo(2027, 5, 20, 9, 0))
        await env.plan()
        await env.drain()
        prompt = await env.wait_for(created_in(env.personal_chat, "Ahmed Rahimi", "1 July 2027"))
        card = cards_of(prompt)[0]
        assert re.search(r"Safety inspection round – agree on a time", texts(card)), texts(card)
        assert input_ids(card) == ["date", "time"]
        answer = await env.invoke(prompt["message"]["messageId"],
                                  press(card, "meeting.propose", {"date": "2027-06-03", "time": "10:00"}))
        assert "The invitation went to Ahmed Rahimi." in texts(answer["value"]), texts(answer["value"])

        # the invitation reaches her chat through the outbox
        await env.drain()
        sent = await env.wait_for(bot_sent_to(dm[AHMED], "Jonas Eide", "3. juni 2027 kl. 10.00"), stream="log")
        invitation = (sent["log"]["request"]["body"])["attachments"][0]["content"]
        [row] = await env.rows(m.OutboxMessage, m.OutboxMessage.kind == "invitation")
        assert (row.recipient_email, row.status) == (AHMED, "sent") and row.activity_id
        ahmed = env.user("Ahmed Rahimi")
        accepted = await env.invoke(row.activity_id, press(invitation, "meeting.accept", {}),
                                    conversation_id=dm[AHMED], from_id=ahmed["id"])
        assert re.search(r"You accepted Thursday 3 June 2027 at 10:00", texts(accepted["value"])), \
            texts(accepted["value"])

        # the leader is told in his chat
        await env.drain()
        told = await env.wait_for(created_in(env.personal_chat, "Ahmed Rahimi accepted Thursday 3 June 2027 at 10:00"))
        assert "Agreed: Thursday 3 June 2027 at 10:00, with Jonas Eide and the safety representative Ahmed Rahimi." \
            in frame_text(told)
        rows = await env.rows(m.MeetingProposal)
        assert [(p.proposed_by, p.proposed_to, p.answer, p.answered_by) for p in rows] == [
            (JONAS, AHMED, "accepted", AHMED)]


DIGEST_MONDAY = oslo(2026, 12, 7, 9, 0)  # a Monday: the weekly digest goes out at 09:00


async def test_the_adviser_gets_the_digest_on_monday_and_the_inspection_pack_in_the_chat(
        tmp_path: Path, khm: HmsConfig) -> None:
    """Issue 13: the HMSB adviser (the Playground's current user here) gets the weekly digest on a Monday at 09:00
    of the injected clock, asks "lag tilsynsrapport for 2026" and gets a link; the file behind it is the pack."""
    from openpyxl import load_workbook

    async with running(tmp_path, khm, DIGEST_MONDAY - dt.timedelta(hours=1), current=HANNE) as env:
        await env.install(env.personal_chat)
        await env.wait_for(created_in(env.personal_chat, "Hanne!"))

        # Monday 08:00: no digest yet; at 09:00 the planner plans it and the outbox delivers it
        await env.plan()
        await env.drain()
        await env.settle()
        assert not env.matching(lambda f: created_in(env.personal_chat)(f)
                                and bool(re.search(r"HMS-status uke|HMS status week", frame_text(f))))
        env.set_clock(DIGEST_MONDAY)
        await env.plan()
        await env.drain()
        digest = await env.wait_for(lambda f: created_in(env.personal_chat)(f) and bool(
            re.search(r"HMS-status uke 50|HMS status week 50", frame_text(f))))
        assert cards_of(digest), frame_text(digest)
        assert re.search(r"Seksjon for publikum og formidling|Public programmes section", texts(cards_of(digest)[0])), \
            texts(cards_of(digest)[0])
        [row] = await env.rows(m.OutboxMessage, m.OutboxMessage.kind == "digest")
        assert (row.recipient_email, row.status) == (HANNE, "sent") and row.activity_id

        # the digest links to the unit's wheel, which the bot draws
        [wheel_url] = [a["url"] for a in cards_of(digest)[0].get("actions", []) if a.get("type") == "Action.OpenUrl"]
        path = re.sub(r"^https?://[^/]+", "", wheel_url)
        assert re.fullmatch(r"/wheel/[A-Za-z0-9_-]{20,64}\.svg", path), wheel_url
        async with env.http.get(f"http://127.0.0.1:{env.bot_port}{path}") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("image/svg+xml")
            svg = await resp.text()
        assert svg.lstrip().startswith(("<svg", "<?xml")) and "2026" in svg

        # the inspection pack in the chat: a download link served by the bot
        await env.say("lag tilsynsrapport for 2026")
        frame = await env.wait_for(created_in(env.personal_chat, "/files/"))
        urls = re.findall(r"https?://[^\s\"')]+/files/([A-Za-z0-9_-]+)", json.dumps(frame["message"]))
        assert urls, frame_text(frame)
        async with env.http.get(f"http://127.0.0.1:{env.bot_port}/files/{urls[0]}") as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"].startswith(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            body = await resp.read()
        (tmp_path / "pack.xlsx").write_bytes(body)
        wb = load_workbook(tmp_path / "pack.xlsx")
        cover = wb.worksheets[0]
        shown = " ".join(str(c) for row in cover.iter_rows(values_only=True) for c in row if c is not None)
        assert "Hanne Solberg" in shown or HANNE in shown, shown
        assert "2026" in shown and len(wb.worksheets) >= 5
        plan = wb.worksheets[1]
        tasks = {row[0] for row in plan.iter_rows(min_row=2, values_only=True)}
        assert any(str(task).startswith("Brannvernrunde") for task in tasks), tasks
        # a token that was never handed out gets nothing
        async with env.http.get(f"http://127.0.0.1:{env.bot_port}/files/{'x' * 32}") as resp:
            assert resp.status == 404
