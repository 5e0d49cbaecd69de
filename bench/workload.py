"""The mixed workload: what the people of an HMS unit do with the bot, as a seeded plan of Teams activities.

- **People.** The 20 demo people of hms/orgfiles/khm.yaml ask the questions. Teams sends every user's Teams id and
  Entra object id; only three demo people have their Entra id in the organisation file, so the bot knows the
  others by their Teams id (the mock connector answers Teams' member lookup with their e-mail and UPN).
- **Rounds.** The organisation the bot serves is khm.yaml plus `extra_floors` generated floors (a bench
  building, spread over the four sections), each with a generated floor contact, every fourth of them with an
  Entra id in the file: a fire round can only be submitted once a quarter, and a run of 2,000 turns at the
  default mix submits 100 rounds. An *episode* is one person's round: "start brannvernrunde" (the checklist card
  comes back to the chat), page saves (Action.Execute invokes carrying the signed data of the card the bot sent
  and the answers of that page: forward to page 2, back to page 1, ...), and the submit from the page-2 card.
  Episodes take the open floors in turn (the demo floors first); when every floor has had one, later episodes
  meet submitted rounds (their presses get the "already submitted" card), which the report counts.
- **Questions** are the phrasings of tests/data/nlu_corpus.yaml and nlu_heldout.yaml (bokmål and English) with
  every intent but starting a round, which the episodes do.

The default mix is 80% questions, 10% page saves, 5% round starts, 5% submits, as in issue 10's table.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cardtext import nodes  # the same card walker the tests use

ROOT = Path(__file__).resolve().parent.parent
KHM = ROOT / "hms" / "orgfiles" / "khm.yaml"
CORPORA = (ROOT / "tests" / "data" / "nlu_corpus.yaml", ROOT / "tests" / "data" / "nlu_heldout.yaml")
START_TEXTS = {"nb": ("start brannvernrunde", "jeg skal gå brannrunden nå", "brannvernrunde", "brannrunde nå"),
               "en": ("begin fire round", "start fire round now", "fire round please",
                      "let's start the fire inspection")}
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
DEFAULT_MIX = (80.0, 10.0, 5.0, 5.0)  # questions, page saves, round starts, submits (shares of all turns)
DEFAULT_EXTRA_FLOORS = 100
DEVIATION_SHARE = 0.1  # of the answered items, "avvik" with a comment (a finding and a measure on submit)
CARD_SECRET = "bench-card-secret"  # HMS_CARD_SECRET of every mixed-workload server


@dataclass(frozen=True)
class Person:
    """One person as Teams presents them to the bot."""

    name: str
    email: str
    teams_id: str
    aad_id: str  # what Teams sends; equal to the file's entra_object_id when the file has one
    in_file: bool  # the organisation file has their Entra object id
    locale: str  # their Teams client's locale

    def account(self) -> dict[str, Any]:
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad_id}

    def profile(self) -> dict[str, Any]:
        """What Teams answers to GET /v3/conversations/{id}/members/{teams id}."""
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad_id, "email": self.email,
                "userPrincipalName": self.email, "tenantId": "bench-tenant", "userRole": "user"}


def organisation(extra_floors: int = DEFAULT_EXTRA_FLOORS) -> dict[str, Any]:
    """khm.yaml with `extra_floors` generated floors, each with its own generated floor contact."""
    doc: dict[str, Any] = yaml.safe_load(KHM.read_text(encoding="utf-8"))
    sections = [s["key"] for s in doc["sections"]]
    floors = []
    for i in range(1, extra_floors + 1):
        email = f"benk.kontakt.{i:03d}@khm.uio.no"
        person: dict[str, Any] = {"name": f"Benk Kontakt {i:03d}", "email": email, "title": "Etasjekontakt",
                                  "demo": True}
        if i % 4 == 1:
            person["entra_object_id"] = f"0b0e0000-{i:04d}-4000-8000-{i:012d}"
        doc["people"].append(person)
        floors.append({"key": f"benk-{i:03d}", "name": {"nb": f"Benkbygget, fløy {i:03d}",
                                                          "en": f"Bench building, wing {i:03d}"},
                       "section": sections[i % len(sections)], "contact": email})
    if floors:
        doc["buildings"].append({"key": "benk", "name": "Benkbygget", "address": "Generated for the benchmark",
                                 "floors": floors})
    return doc


def write_organisation(path: Path, extra_floors: int = DEFAULT_EXTRA_FLOORS) -> Path:
    path.write_text(yaml.safe_dump(organisation(extra_floors), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def people(doc: dict[str, Any]) -> list[Person]:
    """Everyone in the organisation file, with the Teams ids the load generator sends as theirs."""
    out = []
    for i, p in enumerate(doc["people"]):
        aad = p.get("entra_object_id") or str(uuid.UUID(int=0xBE1C << 112 | i))
        out.append(Person(p["name"], p["email"].lower(), f"29:bench-user-{i:04d}", aad,
                          bool(p.get("entra_object_id")), "en-US" if i % 5 == 4 else "nb-NO"))
    return out


def demo_people(everyone: list[Person]) -> list[Person]:
    return [p for p in everyone if not p.email.startswith("benk.")]


def fire_floors(doc: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(floor key, contact, deputy) of every floor with a contact: the demo floors first."""
    return [(f["key"], f["contact"].lower(), (f.get("deputy") or "").lower() or None)
            for b in doc["buildings"] for f in b["floors"] if f.get("contact")]


def questions() -> list[str]:
    """Every distinct phrasing of the language corpora whose intent is not starting a round."""
    seen: dict[str, None] = {}
    for path in CORPORA:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            if case.get("intent") != "start_round":
                seen.setdefault(str(case["text"]), None)
    return list(seen)


@dataclass(frozen=True)
class Mix:
    questions: float
    pages: float
    starts: float
    submits: float

    @classmethod
    def parse(cls, text: str) -> Mix:
        parts = [float(x) for x in text.split(",")]
        if len(parts) != 4 or any(x < 0 for x in parts) or sum(parts) <= 0:
            raise ValueError("--mix takes four shares: questions,page saves,round starts,submits")
        mix = cls(*parts)
        if mix.submits > mix.starts or (mix.submits and not mix.pages):
            raise ValueError("--mix: every submit needs a round start and a page save before it")
        return mix

    def text(self) -> str:
        return ",".join(f"{x:g}" for x in (self.questions, self.pages, self.starts, self.submits))


@dataclass
class Episode:
    """One person's fire round: the steps left and the cards the bot gave back so far."""

    number: int
    floor: str
    person: Person
    pages: int  # page saves in this episode
    submit: bool
    card_message_id: str = ""  # the activity id of the message that carried the checklist
    card: dict[str, Any] | None = None  # the card now shown
    page2: dict[str, Any] | None = None  # the last page-2 card seen (its Submit action)
    broken: str = ""  # why the rest of the episode is skipped

    def steps(self) -> list[str]:
        return ["start"] + ["page"] * self.pages + (["submit"] if self.submit else [])


@dataclass
class Op:
    kind: str  # question | start | page | submit | hello
    person: Person
    text: str = ""
    episode: Episode | None = None


@dataclass
class Workload:
    """Everything the load generator needs for one organisation: people, questions, floors, the mix."""

    doc: dict[str, Any]
    mix: Mix
    seed: int = 1
    everyone: list[Person] = field(init=False)
    askers: list[Person] = field(init=False)
    floors: list[tuple[str, str, str | None]] = field(init=False)
    texts: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.everyone = people(self.doc)
        self.askers = demo_people(self.everyone)
        self.floors = fire_floors(self.doc)
        self.texts = questions()
        self._by_email = {p.email: p for p in self.everyone}
        self._episodes = itertools.count()  # the soak's lanes take the floors in turn

    def directory(self) -> dict[str, dict[str, Any]]:
        return {p.teams_id: p.profile() for p in self.everyone}

    def round_people(self) -> list[Person]:
        """Everyone who does rounds (and so must have a chat with the bot before the measurement)."""
        emails = {e for _, contact, deputy in self.floors for e in (contact, deputy) if e}
        return [p for p in self.everyone if p.email in emails]

    def _episode(self, number: int, rng: random.Random, pages: int, submit: bool) -> Episode:
        floor, contact, deputy = self.floors[number % len(self.floors)]
        email = deputy if deputy and rng.random() < 0.2 else contact
        return Episode(number, floor, self._by_email[email], pages, submit)

    def plan(self, n: int, lanes: int) -> list[list[Op]]:
        """n turns in the mix, as `lanes` sequences run concurrently; an episode's steps stay in one lane, in
        order, and episodes take the floors in turn."""
        rng = random.Random(self.seed)
        total = self.mix.questions + self.mix.pages + self.mix.starts + self.mix.submits
        episodes = round(n * self.mix.starts / total)
        submits = min(episodes, round(n * self.mix.submits / total))
        pages = round(n * self.mix.pages / total) if episodes else 0
        asked = max(0, n - episodes - submits - pages)
        blocks: list[list[Op]] = []
        for e in range(episodes):
            k = pages // episodes + (1 if e < pages % episodes else 0)
            episode = self._episode(e, rng, max(k, 1 if e < submits else 0), e < submits)
            blocks.append([Op(step, episode.person, episode=episode) for step in episode.steps()])
        blocks += [[self.question(rng)] for _ in range(asked)]
        rng.shuffle(blocks)
        out: list[list[Op]] = [[] for _ in range(lanes)]
        for block in blocks:  # the shortest lane takes the next block, so lanes stay even
            min(out, key=len).extend(block)
        return out

    def question(self, rng: random.Random) -> Op:
        return Op("question", rng.choice(self.askers), rng.choice(self.texts))

    def stream(self, lane: int) -> Iterator[Op]:
        """An endless sequence of blocks in the mix, for the soak: lane `lane` of many."""
        rng = random.Random(self.seed * 1000 + lane)
        total = self.mix.questions + self.mix.pages + self.mix.starts + self.mix.submits
        starts = self.mix.starts / total  # the share of turns that start an episode
        size = (self.mix.starts + self.mix.pages + self.mix.submits) / self.mix.starts if self.mix.starts else 1.0
        p_episode = starts / (1 - starts * (size - 1)) if starts else 0.0  # per block, so turns keep the mix
        pages = self.mix.pages / self.mix.starts if self.mix.starts else 0.0
        while True:
            if rng.random() < p_episode:
                k = int(pages) + (1 if rng.random() < pages % 1 else 0)
                submit = rng.random() < self.mix.submits / self.mix.starts
                episode = self._episode(next(self._episodes), rng, max(k, 1 if submit else 0), submit)
                yield from (Op(step, episode.person, episode=episode) for step in episode.steps())
            else:
                yield self.question(rng)


# -- cards ---------------------------------------------------------------------------------------------------


def card_of(activity: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in activity.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("contentType") == CARD_TYPE:
            content = attachment.get("content")
            return content if isinstance(content, dict) else None
    return None


def execute_actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The card's Action.Execute buttons by verb (the last of a verb wins: on page 2, "previous" and "submit")."""
    return {a["verb"]: a for a in card.get("actions") or [] if a.get("type") == "Action.Execute"}


def choice_inputs(card: dict[str, Any]) -> list[str]:
    """The ids of the card's answer inputs (a:<item>) on the page shown."""
    return [n["id"] for n in nodes(card.get("body")) if n.get("type") == "Input.ChoiceSet"]


def card_texts(card: dict[str, Any]) -> str:
    return "\n".join(str(n.get("text", "")) for n in nodes(card.get("body")) if n.get("type") == "TextBlock")


def answers(card: dict[str, Any], rng: random.Random, share: float = 1.0) -> dict[str, str]:
    """Answers for `share` of the page's items: mostly OK, some deviations with the comment they need."""
    out: dict[str, str] = {}
    for input_id in choice_inputs(card):
        if rng.random() > share:
            continue
        key = input_id[2:]
        if rng.random() < DEVIATION_SHARE:
            out[input_id] = "avvik"
            out[f"c:{key}"] = f"Benk: avvik funnet ved {key}"
        else:
            out[input_id] = "ok"
    return out
