"""Fuzzing the door: valid seed activities, hypothesis strategies that mutate them, and a harness that posts each
case to the bot in-process and checks what it did.

The bot runs in local mode (no tokens, so every case reaches the turn), on its own event loop in the test's
thread, driven by aiohttp's test client; its connector is the local Bot Framework peer (tests/fakes/bf_peer.py),
so replies, member lookups and card updates really go out, on loopback. A case is a request body (bytes) and
its headers; a seed is a valid activity of one kind the bot handles, card payloads signed with the bot's key.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import strategies as st
from sqlmodel import SQLModel

from bot.app import BOT, Runtime, create_app
from bot.settings import Settings
from cards.actions import CardAction
from hms.clock import FixedClock
from hms.config import Checklist, HmsConfig
from storage import db
from tests.conftest import oslo

NOW = oslo(2026, 11, 26, 10)
TENANT = "5b0c9a31-8e7d-4c2b-b1a0-9d8e7f6a5b4c"
BOT_ID = "28:hms-fuzz-bot"
ADVISER_AAD = "0a1b2c3d-0001-4000-8000-000000000001"  # Hanne Solberg, who may act on every round
FATIMA_AAD = "0a1b2c3d-000d-4000-8000-00000000000d"
SEED_ID = "SEED-ID"  # replaced by a fresh id per case, so the retry ledger does not swallow the case
CONVERSATION_TYPES = re.compile(r"[A-Za-z]{1,20}")
CARD_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # the nonces the bot signs: a re-signed case may carry any

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One request: a label saying how it was made, the body, and extra headers."""

    label: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seed:
    name: str
    body: dict[str, Any]
    card: bool = False  # carries a signed card payload (re-signed after mutation when drawn)


# -- seeds ---------------------------------------------------------------------------------------------------


def base_activity(service_url: str, kind: str, *, aad: str | None = ADVISER_AAD, user: str = "29:hanne",
                  conversation: str = "a:hanne-personal", conversation_type: str = "personal",
                  **extra: Any) -> dict[str, Any]:
    """A valid activity of `kind` from Hanne (the adviser) in her personal chat, with `extra` fields."""
    sender: dict[str, Any] = {"id": user, "name": "Hanne Solberg"}
    if aad:
        sender["aadObjectId"] = aad
    body: dict[str, Any] = {
        "type": kind, "id": SEED_ID, "timestamp": "2026-11-26T09:00:00.000Z", "channelId": "msteams",
        "serviceUrl": service_url, "locale": "nb-NO", "from": sender,
        "recipient": {"id": BOT_ID, "name": "HMS-hjulet"},
        "conversation": {"id": conversation, "conversationType": conversation_type, "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
        "entities": [{"type": "clientInfo", "locale": "nb-NO", "timezone": "Europe/Oslo", "platform": "Web"}],
    }
    body.update(extra)
    return body


def execute(verb: str, data: dict[str, Any]) -> dict[str, Any]:
    """The invoke value of an Action.Execute with the card's data."""
    return {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}


def _fire_round(config: HmsConfig) -> Checklist:
    checklist = config.checklist("fire_round")
    assert checklist is not None  # the bundled KHM file has it
    return checklist


def fire_answers(config: HmsConfig, deviations: tuple[str, ...] = ()) -> dict[str, str]:
    """Every item of the fire round answered: "ok", or "avvik" with a comment for the given items."""
    out: dict[str, str] = {}
    for item in _fire_round(config).items:
        out[f"a:{item.key}"] = "avvik" if item.key in deviations else "ok"
        if item.key in deviations:
            out[f"c:{item.key}"] = f"Avvik ved {item.key}"
    return out


def card_data(key: bytes, verb: str, ref: str, nonce: str, config: HmsConfig | None = None,
              page: int = 1) -> dict[str, Any]:
    """A card action's data as the bot packs it (a checklist's when `config` is given)."""
    checklist = _fire_round(config) if config else None
    action = CardAction(verb, ref, nonce, checklist.key if checklist else None,
                        checklist.version if checklist else None, page)
    return action.pack(key)


SUBMIT_NONCE = "fuzz-submit-hm3"


def submit_seed(service_url: str, key: bytes, config: HmsConfig) -> dict[str, Any]:
    """The complete fire round for 2nd floor with two deviations: it makes measures 1 and 2."""
    data = card_data(key, "round.submit", "fire_round:2026-Q4:hm-2", SUBMIT_NONCE, config, page=2)
    data.update(fire_answers(config, ("fire_doors", "extinguishers")))
    return base_activity(service_url, "invoke", name="adaptiveCard/action", value=execute("round.submit", data))


def seeds(service_url: str, key: bytes, config: HmsConfig) -> list[Seed]:
    """One valid activity of every kind the bot handles."""
    page = card_data(key, "round.page", "fire_round:2026-Q4:hm-1", "fuzz-page-hm1", config, page=2)
    page.update({k: v for k, v in list(fire_answers(config, ("fire_doors",)).items())[:9]})
    submit_hm3 = card_data(key, "round.submit", "fire_round:2026-Q4:hm-3", "fuzz-submit-hm3b", config, page=2)
    submit_hm3.update(fire_answers(config, ("exit_signs",)))
    close = {**card_data(key, "measure.close", "1", "fuzz-measure-1"), "note": "Kilen er fjernet"}
    ticket = {**card_data(key, "measure.ticket", "2", "fuzz-measure-2"), "ticket": "EA-4711"}
    round_ticket = {**card_data(key, "round.ticket", "1", "fuzz-round-ticket"), "ticket:1": "EA-4712"}
    done = {**card_data(key, "task.done", "annual_report:2026:publikum", "fuzz-task"), "note": "Sendt",
            "link": "https://khm.example/arsrapport.pdf"}
    opened = card_data(key, "round.open", "fire_round:2026-Q4:hm-u", "fuzz-open-hmu", config)
    submit_action = {**card_data(key, "round.page", "fire_round:2026-Q4:hm-1", "fuzz-submit-a", config, page=2),
                     "a:escape_routes": "ok"}
    url = service_url

    def card(name: str, verb: str, data: dict[str, Any]) -> Seed:
        return Seed(name, base_activity(url, "invoke", name="adaptiveCard/action", value=execute(verb, data)), True)

    return [
        Seed("question", base_activity(url, "message", text="hva forfaller denne måneden?")),
        Seed("help", base_activity(url, "message", text="<at>HMS-hjulet</at> hjelp",
                                   entities=[{"type": "mention", "text": "<at>HMS-hjulet</at>",
                                              "mentioned": {"id": BOT_ID, "name": "HMS-hjulet"}}])),
        Seed("stranger", base_activity(url, "message", aad=None, user="29:stranger",
                                       conversation="a:stranger-personal", text="mine oppgaver")),
        Seed("fatima", base_activity(url, "message", aad=FATIMA_AAD, user="29:fatima",
                                     conversation="a:fatima-personal", text="start brannvernrunde")),
        Seed("group", base_activity(url, "message", text="hjelp", conversation="19:group@thread.v2",
                                    conversation_type="groupChat")),
        Seed("installed", base_activity(url, "conversationUpdate", conversation="a:hanne-2",
                                        membersAdded=[{"id": BOT_ID}, {"id": "29:hanne"}])),
        Seed("team", base_activity(url, "installationUpdate", action="add", conversation="19:team@thread.tacv2",
                                   conversation_type="channel",
                                   channelData={"tenant": {"id": TENANT}, "team": {"id": "19:team@thread.tacv2"},
                                                "channel": {"id": "19:team@thread.tacv2"}})),
        Seed("removed", base_activity(url, "conversationUpdate", conversation="a:hanne-3",
                                      membersRemoved=[{"id": BOT_ID}])),
        Seed("typing", base_activity(url, "typing")),
        Seed("other invoke", base_activity(url, "invoke", name="composeExtension/query", value={"q": 1})),
        card("page", "round.page", page),
        card("submit", "round.submit", submit_hm3),
        card("measure close", "measure.close", close),
        card("measure ticket", "measure.ticket", ticket),
        card("round ticket", "round.ticket", round_ticket),
        card("task done", "task.done", done),
        card("round open", "round.open", opened),
        card("confirm", "round.confirm", card_data(key, "round.confirm", "fire_round:2026-Q4:hm-2", "fuzz-confirm")),
        Seed("action submit", base_activity(url, "message", value=submit_action, replyToId="card-1"), card=True),
    ]


# -- mutations -----------------------------------------------------------------------------------------------


NASTY_STRINGS = [
    "\ud800", "a\udfffb", "\udc00\ud800", "\x00", "nul\x00inside", "line\nINFO hms.http: forged", "\r\n", "\u2028",
    "\x1b[31m", "", " ", "😀", "ø" * 300, "x" * 450, "y" * 1200, "a:" + "z" * 600, "1e400", "99999999999999999999",
    "18446744073709551616", "2147483648", "-1", "0", "²", "①", "١٢", "NaN", "https://" + "l" * 2100, "null",
    "{}", "[]", "<at>x</at>", "%00", ".", "..", "a/b", "a?b#c", "\\", "\"",
]
NASTY_NUMBERS = [0, -1, 1, 5, 2**31, 2**63, 2**64, 10**30, -(10**30), 1.5, -0.0, 1e308, float("inf"), float("nan")]

_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
         | st.sampled_from(NASTY_STRINGS))
JSON = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=6), kids, max_size=3), max_leaves=6)
NASTY = st.sampled_from(NASTY_STRINGS) | st.sampled_from(NASTY_NUMBERS)


def paths(node: Any, prefix: Path = ()) -> list[Path]:
    """The path of every node under `node` (not the root itself)."""
    out: list[Path] = []
    items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


def _parent(doc: Any, path: Path) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _card_hms(doc: Any) -> dict[str, Any] | None:
    value = doc.get("value") if isinstance(doc, dict) else None
    if isinstance(value, dict) and isinstance(value.get("action"), dict):
        value = value["action"].get("data")
    hms = value.get("hms") if isinstance(value, dict) else None
    return hms if isinstance(hms, dict) else None


def resign(doc: Any, key: bytes) -> None:
    """Sign a (mutated) card payload again with the bot's key, as the bot signs: the holder of the key is the
    only one who can, so this reaches the checks that come after the signature."""
    hms = _card_hms(doc)
    if hms is None:
        return
    body = {k: hms.get(k) for k in ("verb", "ref", "nonce", "tpl", "tplv", "page", "v")}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    hms["sig"] = hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def _loopback_only(doc: Any, service_url: str) -> None:
    """Keep a mutated serviceUrl from naming any server but the peer: a URL for another host, port or path
    becomes a string that is no URL (nothing in the fuzz may try to reach anything else)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("serviceUrl"), str):
        return
    value = doc["serviceUrl"]
    try:
        parts, peer = urlsplit(value), urlsplit(service_url)
        same = (parts.hostname, parts.port, parts.path or "/") == (peer.hostname, peer.port, "/")
    except ValueError:
        same = False
    if value != service_url and ("//" in value or "." in value or ":" in value) and not same:
        doc["serviceUrl"] = "not a url: " + value.replace("/", "|").replace(":", ";").replace(".", ",")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Seed], key: bytes, service_url: str) -> Case:
    """A seed activity with one to three mutations (a wrong type, a nasty string or number, a deleted or added
    field), card payloads sometimes signed again afterwards; serialised with or without ASCII escapes."""
    seed = draw(st.sampled_from(seeds))
    doc: Any = json.loads(json.dumps(seed.body))  # a deep copy, faster
    labels = [seed.name]
    for _ in range(draw(st.integers(1, 3))):
        where = paths(doc)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = _parent(doc, path)
        op = draw(st.sampled_from(["json", "nasty", "nasty", "delete", "splice", "add", "container"]))
        name = ".".join(str(p) for p in path)
        if op == "json":
            parent[path[-1]] = draw(JSON)
        elif op == "nasty":
            parent[path[-1]] = draw(NASTY)
        elif op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "splice" and isinstance(parent[path[-1]], str):
            s = parent[path[-1]]
            at = draw(st.integers(0, len(s)))
            parent[path[-1]] = s[:at] + draw(st.sampled_from(["\ud800", "\x00", "\n", "\udfff", "é", "😀"])) + s[at:]
        elif op == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=8))] = draw(JSON)
        elif op == "container":
            current = parent[path[-1]]
            parent[path[-1]] = [current] if not isinstance(current, list) else {"0": current}
        else:
            op = "json"
            parent[path[-1]] = draw(JSON)
        labels.append(f"{op}@{name}")
    if seed.card and draw(st.booleans()):
        resign(doc, key)
        labels.append("resigned")
    _loopback_only(doc, service_url)
    if draw(st.booleans()):
        body = json.dumps(doc).encode()
    else:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return Case(" ".join(labels), body)


def _deep(depth: int, inside: bool, valid: bytes) -> bytes:
    if not inside:
        return b"[" * depth + b"]" * depth
    return valid[:-1] + b', "value": ' + b"[" * depth + b"]" * depth + b"}"


@st.composite
def raw(draw: st.DrawFn, seeds: list[Seed]) -> Case:
    """Whole-body faults: deep nesting, broken or odd JSON, bad bytes, compressed bodies good and bad."""
    valid = json.dumps(draw(st.sampled_from(seeds)).body).encode()
    kind = draw(st.sampled_from(["deep", "truncated", "bytes", "encoding", "gzip ok", "constants", "surrogate bytes",
                                 "bom", "duplicate", "top level"]))
    if kind == "deep":
        depth = draw(st.sampled_from([65, 200, 990, 5_000, 100_000]))
        inside = draw(st.booleans())
        return Case(f"raw deep {depth} {'inside' if inside else 'bare'}", _deep(depth, inside, valid))
    if kind == "truncated":
        return Case("raw truncated", valid[:draw(st.integers(0, len(valid) - 1))])
    if kind == "bytes":
        return Case("raw bytes", draw(st.binary(max_size=64)))
    if kind == "encoding":
        coding = draw(st.sampled_from(["deflate", "gzip", "br", "x-unknown"]))
        garbage = draw(st.binary(min_size=1, max_size=64))
        return Case(f"raw {coding} garbage", garbage, (("Content-Encoding", coding),))
    if kind == "gzip ok":
        coding = draw(st.sampled_from(["gzip", "deflate"]))
        packed = gzip.compress(valid) if coding == "gzip" else zlib.compress(valid)
        return Case(f"raw {coding} valid", packed, (("Content-Encoding", coding),))
    if kind == "constants":
        token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" * 5000]))
        return Case(f"raw constant {token[:8]!r}", valid.replace(b'"locale": "nb-NO"', b'"locale": ' + token))
    if kind == "surrogate bytes":
        return Case("raw surrogate bytes", valid.replace(b'"Hanne Solberg"', b'"Hanne \xed\xa0\x80"'))
    if kind == "bom":
        return Case("raw bom", b"\xef\xbb\xbf" + valid)
    if kind == "duplicate":
        return Case("raw duplicate key", b'{"type": 5, ' + valid[1:])
    return Case("raw top level", draw(st.sampled_from([b"[]", b"null", b"5", b'"message"', b"[{}]", b"{}"])))


def cases(seeds: list[Seed], key: bytes, service_url: str) -> st.SearchStrategy[Case]:
    """Mostly mutated activities, some whole-body faults."""
    return st.one_of(mutated(seeds, key, service_url), mutated(seeds, key, service_url),
                     mutated(seeds, key, service_url), mutated(seeds, key, service_url),
                     mutated(seeds, key, service_url), mutated(seeds, key, service_url), raw(seeds))


# -- the harness ---------------------------------------------------------------------------------------------


class Trouble(logging.Handler):
    """Keeps every ERROR record and every record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in str(record.msg):
            self.records.append(record)


@dataclass
class Report:
    """What a fuzz run saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def histogram(self) -> str:
        return ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))


LOCAL = Settings(app_id="", app_password="", app_tenant_id="", database_url="sqlite://",
                 openid_metadata_url=None, token_issuer=None, token_endpoint=None)
CARD_KEY = LOCAL.card_key()  # local mode's key: the bot under test signs its cards with it


def local_app(db_url: str, config: HmsConfig, tenant: str = TENANT) -> web.Application:
    """The bot in local mode (no tokens) on `db_url`, its clock at NOW, no scheduler; only `tenant` is served
    (every tenant when empty)."""
    return create_app(LOCAL.model_copy(update={"database_url": db_url}), config=config, clock=FixedClock(NOW),
                      runtime=Runtime(dev=True, dev_bot_id=BOT_ID, dev_tenant_id=tenant, scheduler=False))


_FINGERPRINT = "SELECT {}, (SELECT max(updated_at) FROM conversation_ref), " \
    "(SELECT count(*) FROM measure WHERE status = 'closed')".format(", ".join(
        f"(SELECT count(*) FROM {t.name})" for t in SQLModel.metadata.sorted_tables if t.name != "processed_activity"))


class Door:
    """The bot in local mode, on its own event loop, and a way to post cases to it."""

    def __init__(self, db_url: str, config: HmsConfig):
        self.key = CARD_KEY
        self.loop = asyncio.new_event_loop()
        app = local_app(db_url, config)
        self.client = TestClient(TestServer(app, host="127.0.0.1"), loop=self.loop)
        self.bot = app[BOT]
        self.turns = 0
        self.bot.on_turn = self._count_turns(self.bot.on_turn)  # type: ignore[method-assign,assignment]
        self._count = 0
        self._watch = db.create_sync_engine(db_url)
        self._watch_conn = self._watch.connect()

    def __enter__(self) -> Door:
        self.loop.run_until_complete(self.client.start_server())
        self._stored = self.fingerprint()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._watch_conn.close()
        self._watch.dispose()
        self.loop.run_until_complete(self.client.close())
        self.loop.close()

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever the bot stores something: every table's row count, the newest conversation update
        and the closed measures. The retry ledger is left out: its records are written behind, a moment after
        the turn that claimed them (`turns` tells whether a request reached a turn at all)."""
        found = self._watch_conn.exec_driver_sql(_FINGERPRINT).one()
        self._watch_conn.commit()
        return tuple(found)

    def post(self, case: Case) -> tuple[int, bytes, bool]:
        """Post one case; returns the status, the response body and whether it reached a turn or stored
        anything."""
        self._count += 1
        body = case.body.replace(f'"{SEED_ID}"'.encode(), f'"fz-{self._count}"'.encode())
        return self.loop.run_until_complete(self._post(body, dict(case.headers)))

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, bool]:
        # nothing writes between two cases (no scheduler; the ledger is not counted): the state after the last
        # case is the state before this one
        before, turns = self._stored, self.turns
        response = await self.client.post("/api/messages", data=body,
                                          headers={"Content-Type": "application/json", **headers})
        answer = await response.read()
        self._stored = self.fingerprint()
        return response.status, answer, self.turns != turns or self._stored != before

    def _count_turns(self, on_turn: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        async def counted(turn: Any) -> None:
            self.turns += 1
            await on_turn(turn)

        return counted

    def run(self, case: Case, report: Report) -> None:
        """Post a case and record its status and any broken promise (a 5xx, a write after a refusal)."""
        status, answer, wrote = self.post(case)
        report.statuses[status] += 1
        if status >= 500:
            report.failures.append(f"{status} for {case.label}: {answer[:200]!r}")
        elif 400 <= status < 500 and wrote:
            report.failures.append(f"{status} but a turn ran or something was stored, for {case.label}")


def stored_problems(db_url: str, service_url: str, config: HmsConfig) -> list[str]:
    """Rows no valid activity could have stored: a string that does not fit its column or is not UTF-8 text
    without NUL (what PostgreSQL refuses), a conversation elsewhere than the peer or outside our tenant, a
    checklist answer that is not the checklist's, a card submission nobody was given."""
    problems: list[str] = []
    engine = db.create_sync_engine(db_url)
    peer = urlsplit(service_url)
    checklist = _fire_round(config)
    answers = {a.key for a in checklist.answers}
    items = {i.key for i in checklist.items}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column in table.columns:
                    problems.extend(_column_problems(table.name, column, row[column.name]))
                problems.extend(_row_problems(table.name, row, peer, answers, items))
    engine.dispose()
    return problems


def _column_problems(table: str, column: sa.Column[Any], value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    out = []
    length = getattr(column.type, "length", None)
    if length is not None and len(value) > length:
        out.append(f"{table}.{column.name}: {len(value)} characters in a column of {length}")
    if "\x00" in value:
        out.append(f"{table}.{column.name}: NUL in {value[:40]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        out.append(f"{table}.{column.name}: not UTF-8 text: {value[:40]!r}")
    return out


def _row_problems(table: str, row: Any, peer: Any, answers: set[str], items: set[str]) -> list[str]:
    if table == "conversation_ref":
        url = urlsplit(row["service_url"])
        if (url.scheme, url.hostname, url.port) != (peer.scheme, peer.hostname, peer.port):
            return [f"conversation {row['conversation_id']!r} has service URL {row['service_url']!r}"]
        if row["tenant_id"] != TENANT:
            return [f"conversation {row['conversation_id']!r} is in tenant {row['tenant_id']!r}"]
        if not CONVERSATION_TYPES.fullmatch(row["conversation_type"]):
            return [f"conversation {row['conversation_id']!r} has type {row['conversation_type']!r}"]
    if table == "checklist_answer":
        if row["answer"] not in answers or row["item_key"] not in items:
            return [f"checklist answer {row['item_key']!r}={row['answer']!r}"]
        if not CARD_TOKEN.fullmatch(row["submission_id"]):
            return [f"checklist answer from a card the bot cannot have made ({row['submission_id']!r})"]
    if table == "occurrence_event" and row["link"] is not None and not row["link"].startswith("https://"):
        return [f"occurrence event link {row['link'][:40]!r}"]
    return []


def watch_logs() -> tuple[Trouble, Callable[[], None]]:
    """Attach a Trouble handler to the root logger (at INFO, so INFO tracebacks are seen); returns it and an
    undo function."""
    root = logging.getLogger()
    handler, level = Trouble(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    return handler, undo
