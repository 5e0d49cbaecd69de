"""Understanding chat messages: what the user asks for, about which period, round, section and floor.

Pure, stdlib only, rule-based. `understand(text, today, vocab)` runs four small steps:

1. **Normalise** with `hms.periods.tokenize`: lowercase, æ/ø/å and their stand-ins (ae, oe, aa) folded to one
   ASCII skeleton, punctuation dropped.
2. **Look up** every word in one lexicon built at import time from the keyword tables below (both languages):
   an exact hit, a word that starts with a stem (the table writes stems as ``"frist*"``, which covers
   "frister", "fristene", "fristen"), or else the nearest keyword within a few typing errors
   (Damerau-Levenshtein; 0 errors for words of up to 3 letters, 1 up to 6, 2 from 7). A symmetric-deletion
   index keeps the typo search cheap. Each keyword stands for one or more *concepts* (DUE, LATE, MEASURE,
   ROUND...), and common filler words are in the lexicon too, so they are never "corrected" into keywords.
   Keywords written ``"=late"`` are exact only.
3. **Score** each intent by the rules in `RULES`: a rule names a set of concepts and a weight, and adds its
   weight when all its concepts are present. Word order does not matter. A few rules weigh against an intent
   ("takk for hjelpen" is thanks, not a request for help; "who ..." asks about people, which the bot cannot
   answer). English "have/has" counts as an obligation only as "have to"/"have got", not before a
   participle ("how much have we completed"). The highest score wins (ties go by `INTENT_PRIORITY`); below
   `MIN_SCORE` the message is `unknown`.
4. **Fill in** the period (`hms.periods` on the spell-corrected words; `due` defaults to this month, or to
   the next twelve months for a bare "when" question), the round ("fire"/"safety"), and the section and
   floor named by the unit's `Vocabulary`.

`register_done` is the HMSB adviser putting work done before or outside the bot on record ("registrer
brannvernrunde 1. etasje utført 12.11.2026", "mark the action plan as done"); its period is the day the work was
done, read as past. A question ("hva er registrert som utført?") is not a registration.

"avvik" alone is ambiguous: "meld avvik"/"registrere avvik" is `report_incident`, "åpne avvik"/"avvik som
ikke er lukket" is `open_measures`, and a bare "avvik" is `unknown` (the bot then shows its help).

**Bounded work.** Only the first `MAX_TEXT` characters of a message are read (`clip`), and a word's lookup
reads a bounded part of it, so one message costs at most a few milliseconds whatever its size: the bot answers
on the event loop, and one slow message would stall every conversation. A huge word is simply not understood,
and what is not understood gets the help card.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hms import periods
from hms.periods import Period, fold, tokenize

MAX_TEXT = 500
"""How many characters of a message are understood. A question in a chat is a sentence or two: the longest in
the test corpus has 57 characters, a chatty one with a greeting and some context 150-250. Past 500 it is no
longer one question, and a bag-of-keywords reading only piles up concepts from unrelated sentences. Reading
500 characters of real words takes about 2 ms."""

INTENTS = ("due", "overdue", "my_tasks", "status", "open_measures", "new_measure", "start_round", "report_incident",
           "register_done", "annual_report", "done_check", "who", "help", "smalltalk", "unknown")

# ---------------------------------------------------------------------------------------------------------
# Fuzzy matching


def damerau_levenshtein(a: str, b: str, max_distance: int | None = None) -> int:
    """Edit distance counting insertions, deletions, substitutions and swaps of neighbours (optimal string
    alignment). With `max_distance`, stops early and returns max_distance + 1 once the distance exceeds it."""
    if a == b:
        return 0
    la, lb = len(a), len(b)
    cap = max_distance if max_distance is not None else la + lb
    if abs(la - lb) > cap:
        return cap + 1
    if not la or not lb:
        return max(la, lb)
    before: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        ai = a[i - 1]
        cur = [i] + [0] * lb
        row_min = i
        for j in range(1, lb + 1):
            bj = b[j - 1]
            v = prev[j - 1] if ai == bj else prev[j - 1] + 1
            if prev[j] + 1 < v:
                v = prev[j] + 1
            if cur[j - 1] + 1 < v:
                v = cur[j - 1] + 1
            if i > 1 and j > 1 and ai == b[j - 2] and a[i - 2] == bj and before[j - 2] + 1 < v:
                v = before[j - 2] + 1
            cur[j] = v
            if v < row_min:
                row_min = v
        if row_min > cap:
            return cap + 1
        before, prev = prev, cur
    return prev[lb] if prev[lb] <= cap else cap + 1


def max_typos(length: int) -> int:
    """How many typing errors a keyword of this length tolerates."""
    return 0 if length <= 3 else 1 if length <= 6 else 2


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    layer = {word}
    for _ in range(depth):
        layer = {w[:i] + w[i + 1:] for w in layer for i in range(len(w))}
        out |= layer
    return out


@dataclass(frozen=True)
class _Term:
    text: str  # folded
    prefix: bool  # also matches words that start with it
    fuzzy: bool  # tolerates typos
    concepts: frozenset[str]
    langs: frozenset[str]  # "nb", "en"


@dataclass(frozen=True)
class _Match:
    terms: tuple[_Term, ...]
    distance: int

    @property
    def concepts(self) -> frozenset[str]:
        return frozenset().union(*(t.concepts for t in self.terms))


class _Lexicon:
    """Words and stems with their concepts; finds the best match for a word. Not changed after __init__."""

    def __init__(self, entries: Iterable[tuple[str, Iterable[str], Iterable[str]]]):
        """entries: (pattern, concepts, langs); pattern "stem*" matches by prefix, "=word" only exactly."""
        merged: dict[str, tuple[bool, bool, set[str], set[str]]] = {}
        for pattern, concepts, langs in entries:
            exact_only = pattern.startswith("=")
            prefix = pattern.endswith("*")
            text = fold(pattern.strip("=*"))
            fuzzy = not exact_only and text.isalpha() and max_typos(len(text)) > 0
            old = merged.get(text)
            if old is None:
                merged[text] = (prefix, fuzzy, set(concepts), set(langs))
            else:
                merged[text] = (old[0] or prefix, old[1] and fuzzy, old[2] | set(concepts), old[3] | set(langs))
        self.terms: dict[str, _Term] = {
            t: _Term(t, p, f, frozenset(c), frozenset(lg)) for t, (p, f, c, lg) in merged.items()
        }
        self.stems: dict[str, _Term] = {t: term for t, term in self.terms.items() if term.prefix and len(t) >= 3}
        self.stem_lengths = tuple(sorted({len(t) for t in self.stems}))
        # Typo search. Whole words: a symmetric-deletion index (every spelling with up to max_typos letters
        # deleted). Short stems (up to 6 letters) likewise, queried with the word's first 4-7 letters. Long
        # stems: an index of their three-letter pieces picks the few candidates worth a full comparison.
        word_index: dict[str, list[_Term]] = {}
        short_stem_index: dict[str, list[_Term]] = {}
        gram_index: dict[str, list[tuple[_Term, int]]] = {}
        for term in self.terms.values():
            if not term.fuzzy:
                continue
            for variant in _deletes(term.text, max_typos(len(term.text))):
                word_index.setdefault(variant, []).append(term)
                if term.prefix and len(term.text) <= 6:
                    short_stem_index.setdefault(variant, []).append(term)
            if term.prefix and len(term.text) > 6:
                for i in range(len(term.text) - 2):
                    gram_index.setdefault(term.text[i:i + 3], []).append((term, i))
        self.word_index = {k: tuple(v) for k, v in word_index.items()}
        self.short_stem_index = {k: tuple(v) for k, v in short_stem_index.items()}
        self.gram_index = {k: tuple(v) for k, v in gram_index.items()}
        self.longest_stem = max((len(t) for t in self.stems), default=0)
        # A word more than two letters longer than every typo-tolerant keyword is no misspelling of one (each
        # edit changes the length by at most one), so the whole-word search skips it. Without this bound the
        # deletion variants of a long word cost the cube of its length (a 1,200-letter word took 5 s and
        # 900 MB); with it, a word's lookup reads at most a few dozen of its letters besides hashing it.
        self.longest_fuzzy_word = max((len(t.text) for t in self.terms.values() if t.fuzzy), default=0)

    def exact(self, word: str) -> _Match | None:
        """Typo-free hits: the word itself, or the longest stem it starts with."""
        hits: list[_Term] = []
        term = self.terms.get(word)
        if term is not None:
            hits.append(term)
        for n in self.stem_lengths:
            if n >= len(word):
                break
            stem = self.stems.get(word[:n])
            if stem is not None:
                hits.append(stem)
        if not hits:
            return None
        longest = max(len(t.text) for t in hits)
        return _Match(tuple(t for t in hits if len(t.text) == longest), 0)

    def match(self, word: str, *, fuzzy: bool = True) -> _Match | None:
        """The best match for a folded word: exact hits first; typo-tolerant search when there is none, or
        when the only hit is a short stem at the start of a long word (the rest may hold a misspelt
        keyword: "brannvernrnuden" should still be a fire round)."""
        found = self.exact(word)
        if not fuzzy or len(word) < 4 or not word.isalpha():
            return found
        if found is not None and len(word) - len(found.terms[0].text) < 5:
            return found
        typo = self._fuzzy(word)
        if found is None or (typo is not None and _rank(typo) > _rank(found)):
            return typo
        return found

    def _fuzzy(self, word: str) -> _Match | None:
        scored: list[tuple[int, int, _Term]] = []

        def score(term: _Term, d: int) -> None:
            scored.append((len(term.text) - 2 * d, -d, term))

        seen: set[tuple[str, str]] = set()
        for p in range(4, min(len(word), 7) + 1):  # whole word, and short stems at the start of the word
            head = word[:p]
            index = self.word_index if p == len(word) else self.short_stem_index
            for variant in _deletes(head, 1):
                for term in index.get(variant, ()):
                    if (head, term.text) not in seen:
                        seen.add((head, term.text))
                        if len(term.text) > 5 or head[0] == term.text[0]:  # short: a wrong first letter
                            d = damerau_levenshtein(head, term.text, max_typos(len(term.text)))  # is another word
                            if d <= max_typos(len(term.text)):
                                score(term, d)
        if 7 < len(word) <= self.longest_fuzzy_word + 2:  # whole long words
            for variant in _deletes(word, 2):
                for term in self.word_index.get(variant, ()):
                    if (word, term.text) not in seen:
                        seen.add((word, term.text))
                        d = damerau_levenshtein(word, term.text, 2)
                        if d <= 2:
                            score(term, d)
        if len(word) >= 5:  # long stems at the start of the word
            head = word[:self.longest_stem + 2]
            shared: dict[str, int] = {}  # stem -> pieces found at about the same place in the word
            for i in range(len(head) - 2):
                for term, at in self.gram_index.get(head[i:i + 3], ()):
                    if abs(at - i) <= 2:
                        shared[term.text] = shared.get(term.text, 0) + 1
            for text, n in shared.items():
                if n >= max(2, len(text) - 8):
                    d = _prefix_distance(text, word, 2)
                    if d <= 2:
                        score(self.terms[text], d)
        if not scored:
            return None
        top = max((rank, neg_d) for rank, neg_d, _ in scored)
        terms = {t.text: t for rank, neg_d, t in scored if (rank, neg_d) == top}
        return _Match(tuple(terms.values()), -top[1])


def _prefix_distance(stem: str, word: str, cap: int) -> int:
    """The smallest edit distance between `stem` and any start of `word` (cap + 1 when above cap). Only the
    band of cells within `cap` of the diagonal is computed."""
    ls = len(stem)
    w = word[:ls + cap]
    lw = len(w)
    big = cap + 1
    if lw < ls - cap:
        return big
    before: list[int] = []
    prev = [j if j <= cap else big for j in range(lw + 1)]
    for i in range(1, ls + 1):
        si = stem[i - 1]
        cur = [big] * (lw + 1)
        if i <= cap:
            cur[0] = i
        row_min = cur[0]
        for j in range(max(1, i - cap), min(lw, i + cap) + 1):
            wj = w[j - 1]
            v = prev[j - 1] if si == wj else prev[j - 1] + 1
            if prev[j] + 1 < v:
                v = prev[j] + 1
            if cur[j - 1] + 1 < v:
                v = cur[j - 1] + 1
            if i > 1 and j > 1 and si == w[j - 2] and stem[i - 2] == wj and before[j - 2] + 1 < v:
                v = before[j - 2] + 1
            if v > big:
                v = big
            cur[j] = v
            if v < row_min:
                row_min = v
        if row_min > cap:
            return big
        before, prev = prev, cur
    return min(prev[max(0, ls - cap):])


def _rank(m: _Match) -> int:
    """How much of a word a match explains: longer keywords and fewer typos rank higher."""
    return len(m.terms[0].text) - 2 * m.distance


# ---------------------------------------------------------------------------------------------------------
# Keyword tables: concept -> (bokmål words, English words). "stem*" matches by prefix, "=word" exactly only.

CONCEPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "DUE": (("forfall*", "forfaller", "forfell", "frist*", "fristen", "tidsfrist*", "innleveringsfrist*"),
            ("due", "deadline*", "duedate*")),
    "AGENDA": (("kommende", "forestående", "snart", "planlagt*", "årshjul*", "kalender*", "skjer", "framover",
                "fremover", "fremtid*", "framtid*"),
               ("upcoming", "soon", "planned", "scheduled", "schedule", "calendar", "wheel", "happening",
                "coming", "ahead")),
    "LATE": (("forsink*", "forsinka", "forfalt", "forfalte", "passert", "utløpt*", "overskred*", "oversittet",
              "etterslep*", "etterskudd*", "sent", "glemt", "glemte", "glemmer", "overtid*", "forsein*"),
             ("overdue*", "=late", "missed", "behind", "lagging", "expired", "passed", "forgot*")),
    "THEDEADLINE": (("fristen",), ("deadline",)),  # "over fristen", "etter fristen", "past the deadline"
    "OVER": (("over",), ()),
    "GONE": (("gått", "gikk"), ()),  # "fristen har gått ut"
    "OUT": (("ut",), ()),
    "AFTER": (("etter",), ()),  # "ligger etter", "henger etter"
    "LAG": (("henger",), ()),
    "NOTDONE": (("ugjort*", "uferdig*", "ufullført*", "ugjennomført*"),
                ("unfinished", "incomplete", "undone", "uncompleted", "outstanding")),
    "PAST": ((), ("past",)),
    "NOT": (("ikke", "ikkje", "uten"),
            ("not", "isn", "aren", "haven", "hasn", "wasn", "weren", "don", "didn", "never")),
    "DONE": (("gjort", "utført", "ferdig*", "fullført", "gjennomført", "levert", "unnagjort", "rukket", "rakk"),
             ("done", "completed", "complete", "finished", "delivered", "submitted", "handed")),
    # "burde/skulle vært gjort", "should have been done": past obligation, i.e. late
    "SHOULD": (("burde", "skulle", "skal"), ("should", "ought", "supposed")),
    "BEEN": (("=vært", "=blitt"), ("=been",)),
    "ALREADY": (("allerede",), ("already",)),
    "DO": (("gjøre", "gjøres", "gjør", "gjere", "gjerast",
            "utføre*", "gjennomføre*", "fullføre", "rekke", "rekker", "ordne", "ordnes",
            "fikse", "fikses", "levere", "leveres"),
           ("do", "perform*", "carry", "conduct*", "handle", "sort", "deal", "finish", "doing")),
    "MUST": (("må", "skal", "bør", "burde", "trenger", "trengs"),
             ("have", "has", "need*", "must", "should", "got")),
    "ME": (("jeg", "meg", "eg"), ("me", "myself")),
    "I": (("jeg", "eg"), ()),  # the speaker as subject ("har jeg noe som forfaller"); English "i" is added in analyse
    "MY": (("=mine", "min", "mitt", "mi"), ("my", "=mine")),
    "TASK": (("oppgave*", "oppgåve*", "gjøremål*", "arbeidsoppgave*", "ting", "tingene", "liste", "lista", "listen",
              "gjøreliste*", "blokka", "blokken", "bordet"),
             ("task*", "todo*", "assignment*", "plate", "chores", "list", "stuff", "jobs", "duties")),
    "WAIT": (("venter", "ventende"), ("waiting", "awaiting", "awaits")),
    "WE": (("vi",), ("we",)),
    "RESPONSIBLE": (("ansvar*", "tildelt*"), ("responsib*", "assigned", "hook")),
    "STATUS": (("status*", "fremdrift*", "framdrift*", "tilstand*", "statu*"),
               ("status*", "progress*", "state", "standing", "dashboard")),
    "OVERVIEW": (("oversikt*", "sammendrag*", "sammenfatning*"), ("overview*", "summary", "summarise", "summarize")),
    "HOW": (("hvordan", "korleis"), ("how",)),
    "GOING": (("går", "ligger", "ligg", "står", "ser"),
              ("doing", "going", "looking", "progressing", "stand", "getting")),
    "MUCH": (("mye", "mange"), ("much", "many")),
    "WHERE": (("hvor", "kvar"), ("where",)),
    "FAR": (("langt",), ("far",)),
    "MEASURE": (("tiltak*", "oppfølging*", "korrigerende", "forbedringstiltak*"),
                ("measure*", "action*", "followup*", "corrective", "remedial")),
    "NEW": (("=ny", "=nytt", "opprett*", "=lag"), ("=new", "create", "=add")),  # "nytt tiltak", "new measure"
    "OPEN": (("åpne", "åpen", "åpent", "opne", "uløst*", "ulukket", "ulukkede", "utestående", "gjenstående"),
             ("open", "unresolved", "pending", "remaining", "unclosed", "outstanding")),
    "CLOSED": (("lukket", "lukka", "lukke*", "løst", "avsluttet", "avslutte*", "fikset", "fiksa", "ordnet", "ordna",
                "utbedret", "utbedra", "rettet", "retta"),
               ("closed", "close", "resolved", "fixed", "sorted", "rectified")),
    "DEVIATION": (("avvik*", "funn"), ("deviation*", "nonconformit*", "finding*")),
    "INCIDENT": (("hendelse*", "uønsket", "uønskede", "ulykke*", "nestenulykke*", "skade*", "skadet", "skadd",
                  "uhell*", "personskade*", "brannskade*", "falt", "snublet", "kuttet", "klemt", "besvimt",
                  "tyveri*", "innbrudd*", "ulukke*",
                  "vold", "trussel*", "truet", "brenne*", "=brenner", "brant", "brent",
                  "branntilløp*", "datt", "detta", "snubl*", "skled", "sklei", "skli*", "velt*", "brukket", "brakk",
                  "brudd", "lekk*", "vannlekk*", "vannskade*", "oversvøm*", "røyklukt*", "gasslukt*", "røyk", "røyker",
                  "blør", "blødde", "blødning*", "sølt", "kollaps*", "raste", "knust", "eksplo*"),
                 ("incident*", "accident*", "injur*", "hurt", "unwanted", "mishap", "fell", "tripped", "fainted",
                  "theft", "threat*", "violence", "slipped", "slip", "fall", "smoke", "burning", "burnt", "burned",
                  "leak*", "flood*", "spill*", "spilt", "broke", "broken", "bleeding", "collapsed", "toppled",
                  "tipped", "cut", "stolen", "burglary")),
    "URGENT": (("haster", "hastesak*", "akutt", "prekær"), ("urgent*", "pressing", "asap")),
    "SOMETHING": (("noe",), ("anything", "something")),
    "BURNING": (("=brenner",), ()),  # "er det noe som brenner?": the idiom for "anything urgent"
    "HAPPENED": (("skjedd", "skjedde", "hendt"), ("happened", "happen")),
    "NEAR": ((), ("near",)),
    "MISS": ((), ("miss", "misses")),
    "REPORT": (("meld*", "rapporter*", "rapport", "rapporten", "registrer*", "varsl*"),
               ("report*", "log", "file", "submit", "register", "notify")),
    "CIM": (("cim",), ("cim",)),
    # putting work done on record afterwards: "registrer brannvernrunden som utført", "mark the action plan as done"
    "REGISTER": (("registrer*", "loggfør*", "dokumenter*"), ("register*", "record", "=log", "logging")),
    "MARK": (("marker*",), ("mark", "tick")),
    "ANNUAL_REPORT": (("årsrapport*", "årsmelding*", "årsrapp*"), ()),
    "ANNUAL": (("årlig*", "års"), ("annual*", "yearly")),
    "HELP": (("hjelp*", "kommando*", "bruksanvisning*", "veiledning*", "meny", "menyen"),
             ("help*", "command*", "menu", "instructions", "usage", "features", "guide")),
    "WHAT": (("hva", "hvilke", "hvilken", "hvilket", "kva", "kvilke", "kvilken"), ("what", "which", "whats")),
    "CAN": (("kan",), ("can", "could")),
    "YOU": (("du", "deg", "boten", "botten", "roboten"), ("you", "bot")),
    "USE": (("bruke*", "bruker"), ("use", "using")),
    "ASK": (("spørre", "spør", "spørsmål"), ("ask", "question*")),
    "WORK": (("fungerer", "virker", "funker", "funke*"), ("work", "works")),
    "UNDERSTAND": (("forstår", "forstå", "skjønner"), ("understand*",)),
    "THANKS": (("takk", "takker", "takke"), ("thanks", "thank", "thx", "cheers", "ty")),
    "GREET": (("hei", "hallo", "heisann", "hallais", "morn", "god", "heia"), ("hi", "hello", "hey", "morning",
                                                                          "greetings", "howdy", "hiya")),
    "WHO": (("hvem", "kven"), ("who", "whom")),
    "DID": ((), ("did",)),
    # roles people ask about ("hvem er verneombud for publikum?"); each also stands for ROLE
    "R_SAFETY_REP": (("verneombud*", "verneombod*"), ("representative*", "=rep", "=reps")),
    "R_FLOOR_CONTACT": (("etasjekontakt*", "etasjeansvarlig*", "kontaktperson*"), ("contact*",)),
    "R_DEPUTY": (("=vara", "varaen", "varaetasjekontakt*", "stedfortreder*"), ("deputy", "deputies", "substitute")),
    "R_ADVISER": (("rådgiver*", "rådgjevar*", "hmsb", "hmsrådgiver*", "hmsbrådgiver*"),
                  ("adviser*", "advisor*", "coordinator")),
    "R_SECTION_LEADER": (("seksjonsleder*", "seksjonsleiar*", "seksjonssjef*"), ()),
    "R_HEAD": (("=leder", "=lederen", "=leiar", "=leiaren", "=sjef", "=sjefen"),
               ("leader", "head", "manager", "boss", "leads", "runs", "heads")),
    "R_UNIT_HEAD": (("direktør*", "museumsdirektør*", "enhetsleder*", "instituttleder*", "dekan*"),
                    ("director*", "dean")),
    "SECTIONWORD": (("seksjon", "seksjonen", "seksjonens"), ("section", "department")),
    "FROM": (("fra",), ("from",)),
    "WHEN": (("når",), ("when",)),
    "START": (("start*", "begynn*", "igangsett*", "kjør*"), ("start*", "begin*", "launch*", "kick", "run")),
    "WANT": (("vil", "ønsker", "klar"), ("want*", "like", "wanna", "ready", "lets")),
    "NOW": (("nå", "straks"), ("now",)),
    "WALK": (("gå", "ta"), ("go",)),
    "FIRE": (("brann", "brannvern*", "brannsikkerhet"), ("fire",)),
    "FLAME": (("brann", "brannen", "flamme*", "ild"), ("fire", "flames", "flame")),  # a fire, not a fire round
    "FIRE_ROUND": (("brannvernrund*", "brannrund*", "brannsjekk*", "branninspeksjon*", "brannvernsjekk*"), ()),
    "SAFETY": (("verne", "vern", "hms"), ("safety", "hse", "hms", "health")),
    "SAFETY_ROUND": (("vernerund*", "hmsrund*", "verneinspeksjon*"), ()),
    "ROUND": (("runde*", "inspeksjon*", "befaring*", "sjekkrunde*", "sjekkliste*"),
              ("round*", "inspection*", "walk*", "checklist*")),
    # words that must not be read as a keyword they start with
    "": (("skadedyr*", "meldingen", "startside*", "tiltaksplan*", "handlingsplan*", "nesten", "rundt",
          "ledergrupp*", "varsl*", "varer"),
         ("reporting", "statue")),
}

FILLER: dict[str, tuple[str, ...]] = {
    "nb": ("hvem", "hvorfor", "er", "var", "være", "vært", "blir", "ble", "vi", "oss", "dere", "de", "den", "det",
           "dette", "disse", "en", "et", "ei", "og", "på", "til", "fra", "med", "om", "av", "som", "har", "hadde",
           "ha", "skulle", "måtte", "kunne", "ville", "da", "så", "også", "bare", "litt", "noe", "noen", "alle",
           "alt", "vår", "våre", "vårt", "din", "dine", "ditt", "sin", "sine", "sitt", "seg", "hei", "hallo",
           "takk", "tusen", "vær", "snill", "vennligst", "fortell", "fortelle", "vis", "vise", "gi", "gir", "liste",
           "se", "sjekk", "sjekke", "opp", "ut", "inn", "her", "der", "hvis", "at", "eller", "etter", "før",
           "mellom", "enda", "ennå", "fortsatt", "mye", "mange", "få", "fått", "finnes", "fins", "hos", "jo",
           "vel", "gjerne", "la", "lurer", "egentlig", "altså", "kanskje", "seksjon", "seksjonen", "seksjonens",
           "etasje", "etasjen", "bygg", "bygget", "museet", "museum", "oppe", "nede", "enhet", "enheten", "khm",
           "uio", "god", "dag", "morgen", "kveld", "ok", "okei", "hjulet", "lurte", "trenger", "kommer", "vite",
           "skjema", "skjemaet", "hvorda", "dem", "hvordan", "selv", "igjen", "ny", "nytt", "nye", "første",
           "andre", "tredje", "siste", "ukentlig", "hele", "unntatt", "over", "under", "ved", "hvert", "hver",
           "mandag", "fredag", "helg", "helga", "helgen", "ark", "ros", "fin", "fint", "slags", "type", "supert",
           "flott", "bra", "topp", "perfekt", "kjempe", "kjempebra", "morn", "mornings", "heisann", "hallais",
           "si", "sier", "trappa", "trappen", "trapp", "gulvet", "kollega", "kollegaen", "besøkende",
           "utstilling*", "utstillingen", "armen", "foten", "hylle", "hylla", "hyllen", "kontoret", "tide",
           "tid", "tiden", "kommet", "rett", "nok", "dei", "ikkje", "eit", "ein", "meir", "berre", "finn", "ho",
           "han", "kjellaren", "mykje", "vere", "vore", "skal", "ha", "deg", "dykk", "ligg"),
    "en": ("who", "whom", "why", "is", "are", "am", "be", "been", "being", "was", "were", "the", "an", "and", "or",
           "of", "in", "on", "at", "for", "from", "with", "to", "this", "that", "these", "those", "there", "here",
           "does", "did", "we", "us", "our", "your", "it", "its", "they", "them", "their", "had", "would", "will",
           "shall", "please", "show", "tell", "list", "give", "get", "let", "know", "about", "kindly", "just",
           "see", "any", "all", "some", "still", "yet", "hi", "hello", "hey", "thanks", "thank", "much", "many",
           "so", "too", "also", "then", "than", "if", "but", "up", "out", "into", "over", "by", "as", "ll", "re",
           "ve", "okay", "ok", "check", "find", "display", "view", "date", "dates", "things", "thing", "whole",
           "unit", "section", "floor", "building", "museum", "everything", "anything", "something", "someone",
           "somebody", "one", "team", "good", "morning", "is", "lot", "every", "each", "what", "doing", "great",
           "nice", "cool", "awesome", "perfect", "kind", "type", "stairs", "floor", "visitor", "colleague",
           "basement", "smell", "case", "shelf", "office", "exhibition", "yet", "time", "there", "s", "so", "our",
           "on", "has"),
}

# Period words that tell the language (hms.periods knows the words but not their language).
PERIOD_LANGUAGE: dict[str, tuple[str, ...]] = {
    "nb": ("denne", "dette", "neste", "forrige", "kommende", "måned", "måneden", "uke", "uka", "uken", "ukene",
           "kvartal", "kvartalet", "året", "årets", "idag", "januar", "februar", "mars", "mai", "juni", "juli",
           "oktober", "desember", "dagene", "dager", "resten", "innen", "fjor", "neste", "veke", "veka", "månad",
           "månaden", "jul", "jula", "julen", "påske", "påsken", "sommerferien", "nyttår", "halvår", "semesteret",
           "etter"),
    "en": ("this", "next", "last", "month", "months", "week", "weeks", "quarter", "year", "years", "today",
           "tomorrow", "yesterday", "days", "january", "february", "march", "may", "june", "july", "october",
           "december", "rest", "past", "until", "since", "christmas", "easter", "summer", "holiday", "holidays",
           "half", "term", "after"),
}

# Words that vote for no language: they are common in both.
SHARED_WORDS = frozenset(fold(w) for w in ("i", "for", "men", "at", "her", "to", "a", "ok", "hms", "cim", "status",
                                           "start", "se", "over", "bot", "mine", "de", "dag", "before", "ark"))

RULES: tuple[tuple[str, str, float], ...] = (
    # (intent, concepts that must all be present, weight)
    ("due", "DUE", 3),
    ("due", "MUST DO", 2),
    ("due", "MUST DONE", 2.5),
    ("due", "AGENDA", 2),
    ("due", "TASK", 1.5),
    ("due", "WHEN", 1),
    ("due", "WHEN ROUND", 2),
    ("due", "PERIOD CLEAN", 1.5),
    ("due", "PERIOD WHAT CLEAN", 0.5),
    ("due", "WHO", -2),
    ("overdue", "LATE", 4),
    ("overdue", "NOTDONE", 3.5),
    ("overdue", "NOT DONE", 3.5),
    ("overdue", "PAST DUE", 3.5),
    ("overdue", "GONE OUT", 4),
    ("overdue", "OVER THEDEADLINE", 5),
    ("overdue", "LATE THEDEADLINE", 1.5),  # "missed the deadline", "forfalt fristen"
    ("overdue", "AFTER THEDEADLINE", 5),
    ("overdue", "WHAT MISS", 3.5),
    ("overdue", "GOING AFTER", 3),
    ("overdue", "LAG AFTER", 4),
    ("overdue", "SHOULD BEEN DONE", 4.5),  # "burde vært gjort", "should have been done"
    ("overdue", "ALREADY SHOULD DONE", 3),
    ("overdue", "URGENT", 4),
    ("overdue", "BURNING SOMETHING", 4.5),  # "er det noe som brenner?"
    ("my_tasks", "MY", 1.5),
    ("my_tasks", "MY TASK", 5),
    ("my_tasks", "MY DUE", 3.5),
    ("my_tasks", "MY DO", 3.5),
    ("my_tasks", "ME TASK", 3),
    ("my_tasks", "ME MUST DO", 4.5),
    ("my_tasks", "ME RESPONSIBLE", 4),
    ("my_tasks", "ME DO", 2),
    ("my_tasks", "ME WAIT", 4),
    ("my_tasks", "MY CLEAN", 1),  # a bare "mine"
    ("my_tasks", "MY RESPONSIBLE", 4),
    ("my_tasks", "I DUE", 4.5),  # "har jeg noe som forfaller (snart)?"
    ("my_tasks", "I AGENDA", 2),
    ("my_tasks", "WHO", -2),  # "who do I call about ...": a question about people, not my tasks
    ("status", "STATUS", 4),
    ("status", "OVERVIEW", 2),
    ("status", "HOW GOING", 3.5),
    ("status", "HOW FAR", 3.5),
    ("status", "WHERE FAR", 3.5),
    ("status", "WHERE GOING", 3),
    ("status", "WHERE WE", 2.5),
    ("status", "DONE", 1.5),
    ("status", "DONE PERIOD", 1),
    ("status", "SECTION", 1),
    ("status", "SECTION HOW", 1),
    ("status", "HOW MUCH DONE", 2),
    ("status", "WHERE MUCH DONE", 2),
    ("status", "WHO", -2),
    ("open_measures", "MEASURE", 3),
    ("open_measures", "MEASURE OPEN", 2),
    ("open_measures", "MEASURE NOT CLOSED", 2),
    ("open_measures", "MEASURE NOT DONE", 2),
    ("open_measures", "DEVIATION OPEN", 4.5),
    ("open_measures", "DEVIATION NOT CLOSED", 4.5),
    ("open_measures", "NOT CLOSED", 2),
    ("open_measures", "OPEN", 0.5),
    ("open_measures", "OPEN ROUND FROM", 2.5),  # "open items from the safety round"
    ("new_measure", "NEW MEASURE", 6),  # "nytt tiltak", "opprett et tiltak", "new measure", "add an action"
    ("new_measure", "WHAT", -4),  # "hvilke nye tiltak ..." asks about measures
    ("new_measure", "OPEN", -3),
    ("start_round", "ROUND", 2),
    ("start_round", "ROUND START", 2.5),
    ("start_round", "ROUND WANT", 1.5),
    ("start_round", "ROUND NOW", 1.5),
    ("start_round", "ROUND DO", 1),
    ("start_round", "ROUND WALK", 1),
    ("start_round", "ROUND FLOOR", 0.5),
    ("start_round", "START", 1),
    ("report_incident", "INCIDENT", 3.5),
    ("report_incident", "INCIDENT REPORT", 2),
    ("report_incident", "DEVIATION", 1),
    ("report_incident", "DEVIATION REPORT", 5),
    ("report_incident", "NEAR MISS", 4),
    ("report_incident", "CIM", 3),
    ("report_incident", "REPORT WANT", 2),
    ("report_incident", "REPORT HAPPENED", 3),
    ("report_incident", "FLAME", 2.5),  # "brann i kjelleren", "there was a small fire"
    ("report_incident", "FLAME ROUND", -2.5),
    ("register_done", "REGISTER DONE", 6.5),  # "registrer brannvernrunde 1. etasje utført 12.11.2026"
    ("register_done", "MARK DONE", 7),  # "marker handlingsplanen som utført"
    ("register_done", "REGISTER ROUND", 3.5),  # "registrer vernerunden for publikum 3. juni"
    ("register_done", "WHAT", -5),  # "hva er registrert som utført?" asks, it does not register
    ("register_done", "WHO", -5),
    ("annual_report", "ANNUAL_REPORT", 6),
    ("annual_report", "ANNUAL REPORT", 6),
    ("help", "HELP", 3),
    ("help", "WHAT CAN YOU", 3),
    ("help", "HOW USE", 3),
    ("help", "CAN ASK", 3),
    ("help", "HOW WORK", 3),
    ("help", "WHAT YOU DO", 2.5),
    ("help", "YOU UNDERSTAND", 3),
    ("help", "WHO YOU", 2.5),  # "hvem er du?"
    ("help", "THANKS HELP", -3),  # "takk for hjelpen" is thanks, not a request for help
    ("done_check", "DONE ROUND", 5),  # "har vi gjort brannrunden i 3. etasje?": one round, done or not
    ("done_check", "DID ROUND", 4),  # "did adm do the safety round?"
    ("done_check", "WHAT", -3),  # "hvilke runder er gjennomført" asks for a list
    ("done_check", "MUCH", -3),  # "hvor mange runder er gjennomført" asks for a count (status)
    ("done_check", "NOT", -2),  # "hvilke vernerunder er ikke gjennomført" is overdue work
    ("done_check", "SHOULD", -2),
    ("who", "WHO ROLE", 6),  # "hvem er verneombud for publikum?"
    ("who", "WHO RESPONSIBLE", 4.5),  # "hvem har ansvar for brannvernrunden?"
    ("who", "ROLE", 1.5),  # "verneombud for publikum?"
    ("who", "ROLE MY", -1.5),
    ("smalltalk", "GREET", 2.5),  # "hei" on its own; a greeting before a question loses to the question
    ("smalltalk", "THANKS", 3),
    ("smalltalk", "THANKS HELP", 3),  # "takk for hjelpen"
)
"""Scoring rules. Besides the keyword concepts, `understand` adds PERIOD (a period was named), CLEAN (no
unrecognised words), SECTION and FLOOR (one was named)."""

INTENT_PRIORITY = ("report_incident", "register_done", "annual_report", "who", "done_check", "overdue",
                   "new_measure", "open_measures", "my_tasks", "start_round", "status", "due", "help", "smalltalk")
"""Who wins a tie: the more specific request first, help last."""

MIN_SCORE = 2.0
"""Below this the message is `unknown`."""

# Intents whose answer does not depend on a period: a period in the text is dropped.
PERIODLESS = frozenset({"start_round", "new_measure", "report_incident", "who", "help", "smalltalk", "unknown"})

ROLE_CONCEPTS = (("R_DEPUTY", "floor_deputy"), ("R_FLOOR_CONTACT", "floor_contact"), ("R_SAFETY_REP", "safety_rep"),
                 ("R_ADVISER", "hmsb_adviser"), ("R_UNIT_HEAD", "unit_head"), ("R_SECTION_LEADER", "section_leader"))
"""Role words and the organisation file's role keys, the more specific first ("vara for etasjekontakten" asks for
the deputy). A generic leader word ("leder", "head") is the section leader where a section is meant, else the unit
head."""


def _lexicon_entries() -> Iterable[tuple[str, Iterable[str], Iterable[str]]]:
    for concept, (nb, en) in CONCEPTS.items():
        concepts: tuple[str, ...] = (concept,) if concept else ()
        if concept in ("FIRE_ROUND", "SAFETY_ROUND"):
            concepts = (concept, "ROUND")
        elif concept.startswith("R_"):
            concepts = (concept, "ROLE")
        for w in nb:
            yield w, concepts, ("nb",)
        for w in en:
            yield w, concepts, ("en",)
    for lang, words in FILLER.items():
        for w in words:
            yield w, (), (lang,)
    for w in periods.PERIOD_WORDS:
        yield w, ("PERIODWORD",), ()
    for lang, words in PERIOD_LANGUAGE.items():
        for w in words:
            yield w, ("PERIODWORD",), (lang,)


def _compile_rules() -> tuple[tuple[str, frozenset[str], float], ...]:
    return tuple((intent, frozenset(concepts.split()), weight) for intent, concepts, weight in RULES)


_LEXICON = _Lexicon(_lexicon_entries())
_RULES = _compile_rules()
_PRIORITY = {intent: i for i, intent in enumerate(INTENT_PRIORITY)}
_SHARED = SHARED_WORDS
_PERFECT_AUX = frozenset({"have", "has"})


# ---------------------------------------------------------------------------------------------------------
# Vocabulary: the unit's sections and floors


FLOOR_WORDS = frozenset(fold(w) for w in ("etasje", "etasjen", "etg", "etage", "etasjar", "floor", "fl"))
_FLOOR_ORDINALS = {fold(w): str(n) for n, ws in {1: ("første", "fyrste", "first"), 2: ("andre", "second"),
                                                 3: ("tredje", "third"), 4: ("fjerde", "fourth"),
                                                 5: ("femte", "fifth")}.items() for w in ws}


def floor_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokens with floor names written one way: "3. etg", "tredje etasje", "third floor" and "3rd floor" all read as
    "3 etasje" (one token for one token, so positions stay). Used on both the unit's names and the message."""
    out = list(tokens)
    for i, w in enumerate(out):
        if w in FLOOR_WORDS:
            out[i] = "etasje"
            if i and out[i - 1] in _FLOOR_ORDINALS:
                out[i - 1] = _FLOOR_ORDINALS[out[i - 1]]
    return out


class _AliasIndex:
    """Finds section and floor names in a token list. Built once per Vocabulary, not changed afterwards."""

    def __init__(self, sections: Mapping[str, Sequence[str]], floors: Mapping[str, Sequence[str]]):
        self.aliases: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}  # first token -> [(tokens, kind, key)]
        words: set[str] = set()
        owners: dict[str, set[str]] = {}  # word -> keys whose names use it
        names_of: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for kind, table in (("section", sections), ("floor", floors)):
            for key, names in table.items():
                for name in (key, *names):
                    toks = tuple(floor_tokens(tokenize(name)))
                    if toks:
                        names_of.setdefault((kind, key), []).append(toks)
                        for w in toks:
                            owners.setdefault(w, set()).add(f"{kind}:{key}")
        for (kind, key), all_toks in names_of.items():
            for toks in all_toks:
                self._add(toks, kind, key, words)
                # A multi-word name also answers to its longest word of its own ("Seksjon for
                # samlingsforvaltning" -> "samlingsforvaltning"), unless that word is a common one.
                own = [w for w in toks if len(w) >= 5 and w.isalpha() and len(owners[w]) == 1
                       and _LEXICON.exact(w) is None]
                if len(toks) > 1 and own:
                    self._add((max(own, key=len),), kind, key, words)
        entries = []
        for w in words:
            pattern = w + "*" if w.isalpha() and len(w) >= 5 else w if w.isalpha() and len(w) >= 4 else "=" + w
            entries.append((pattern, (w,), ()))
        self.lexicon = _Lexicon(entries)

    def _add(self, toks: tuple[str, ...], kind: str, key: str, words: set[str]) -> None:
        entry = (toks, kind, key)
        if entry not in self.aliases.setdefault(toks[0], []):
            self.aliases[toks[0]].append(entry)
        words.update(toks)

    def find(self, tokens: Sequence[str], fuzzy: Sequence[bool]) -> tuple[dict[str, str], set[int]]:
        """The best section and floor named ({kind: key}), and which token positions were used."""
        tokens = floor_tokens(tokens)
        matched: list[frozenset[str]] = []
        for tok, fz in zip(tokens, fuzzy, strict=True):
            m = self.lexicon.match(tok, fuzzy=fz)
            matched.append(m.concepts if m else frozenset())
        best: dict[str, tuple[int, int, str]] = {}  # kind -> (-length, position, key)
        used: set[int] = set()
        for i, words in enumerate(matched):
            for w in words:
                for toks, kind, key in self.aliases.get(w, ()):
                    n = len(toks)
                    if i + n > len(tokens) or any(toks[k] not in matched[i + k] for k in range(1, n)):
                        continue
                    used.update(range(i, i + n))
                    rank = (-n, i, key)
                    if kind not in best or rank < best[kind]:
                        best[kind] = rank
        return {kind: rank[2] for kind, rank in best.items()}, used


@dataclass(frozen=True)
class Vocabulary:
    """The unit's section and floor keys with their names and aliases, in any language.

    >>> Vocabulary(sections={"samling": ["Seksjon for samlingsforvaltning", "samling"]},
    ...            floors={"hm-2": ["2. etasje", "andre etasje"]})  # doctest: +ELLIPSIS
    Vocabulary(...)

    Each key is an alias of itself. Alias words of five letters or more also match inflected forms and
    compounds that start with them ("samlingsforvaltningen"), and tolerate typos."""

    sections: Mapping[str, Sequence[str]] = field(default_factory=dict)
    floors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    _index: _AliasIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _AliasIndex(self.sections, self.floors))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Vocabulary:
        """From `{"sections": {key: [names...]}, "floors": {key: [names...]}}` (as in a YAML file)."""
        return cls(sections={k: list(v) for k, v in (data.get("sections") or {}).items()},
                   floors={k: list(v) for k, v in (data.get("floors") or {}).items()})

    @classmethod
    def from_config(cls, config: Any) -> Vocabulary:
        """From an `hms.config.HmsConfig` (duck-typed: sections and floors() with key, name.nb/en, aliases)."""

        def names(item: Any) -> list[str]:
            return [item.name.nb, item.name.en, *item.aliases]

        return cls(sections={s.key: names(s) for s in config.sections},
                   floors={f.key: names(f) for f in config.floors()})


# ---------------------------------------------------------------------------------------------------------
# Understanding


@dataclass(frozen=True)
class Understanding:
    intent: str
    period: Period | None
    round: str | None  # "fire" | "safety" | None
    section: str | None
    floor: str | None
    text_locale: str  # "nb" | "en": the language the message seems to be written in
    role: str | None = None  # `who`: the role asked about (a role key of the organisation file)
    period_named: bool = True  # False when the period is the default (no period in the words)

    def to_json(self) -> dict[str, Any]:
        out = {
            "intent": self.intent,
            "period": self.period.to_json() if self.period else None,
            "round": self.round,
            "section": self.section,
            "floor": self.floor,
        }
        return {**out, "role": self.role} if self.intent == "who" else out


def _choose_intent(concepts: frozenset[str]) -> tuple[str, dict[str, float]]:
    scores: dict[str, float] = {}
    for intent, needs, weight in _RULES:
        if needs <= concepts:
            scores[intent] = scores.get(intent, 0.0) + weight
    if not scores:
        return "unknown", scores
    intent = min(scores, key=lambda i: (-scores[i], _PRIORITY[i]))
    return (intent if scores[intent] >= MIN_SCORE else "unknown"), scores


def _round_kind(concepts: frozenset[str]) -> str | None:
    if "FIRE_ROUND" in concepts or {"FIRE", "ROUND"} <= concepts:
        return "fire"
    if "SAFETY_ROUND" in concepts or {"SAFETY", "ROUND"} <= concepts:
        return "safety"
    return None


def _role(concepts: frozenset[str]) -> str | None:
    for concept, role in ROLE_CONCEPTS:
        if concept in concepts:
            return role
    if "R_HEAD" in concepts:
        return "section_leader" if concepts & {"SECTION", "SECTIONWORD", "FLOOR"} else "unit_head"
    return None


def round_of(text: str) -> str | None:
    """The round kind ("fire", "safety") a name reads as: "Brannvernrunde" is a fire round, "Lab safety round" a
    safety round. How the bot finds a unit's rounds by what their names say, not by their keys."""
    concepts: set[str] = set()
    for tok in tokenize(clip(text)):
        m = _LEXICON.exact(tok) or _LEXICON.match(tok)
        if m is not None:
            concepts |= m.concepts
    return _round_kind(frozenset(concepts))


def smalltalk_kind(text: str) -> str:
    """"thanks" when the words thank, else "greeting" (for the short friendly answer to small talk)."""
    for tok in tokenize(clip(text)):
        m = _LEXICON.exact(tok)
        if m is not None and "THANKS" in m.concepts:
            return "thanks"
    return "greeting"


def _next_twelve_months(today: dt.date) -> Period:
    try:
        end = today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        end = today.replace(year=today.year + 1, day=28)
    return Period(today, end - dt.timedelta(days=1))


def clip(text: str) -> str:
    """The part of `text` that is understood: at most MAX_TEXT characters, without a word cut in two at the end
    (unless the text starts with a word that long). Callers that memoise by text key on this."""
    if len(text) <= MAX_TEXT:
        return text
    head = text[:MAX_TEXT]
    end = MAX_TEXT
    if text[end].isalnum():
        while end and head[end - 1].isalnum():
            end -= 1
    return head[:end] if end else head


def text_language(text: str) -> str | None:
    """"nb" or "en" when the words say which language a message is in; None when they fit both ("status")."""
    return _text_language(clip(text))


@functools.lru_cache(maxsize=1024)
def _text_language(text: str) -> str | None:
    tokens = tokenize(text.strip())
    votes = _votes(tokens, [_LEXICON.exact(t) or _LEXICON.match(t) for t in tokens], text)
    if votes["nb"] == votes["en"]:
        return None
    return "en" if votes["en"] > votes["nb"] else "nb"


def _locale(tokens: Sequence[str], matches: Sequence[_Match | None], text: str) -> str:
    votes = _votes(tokens, matches, text)
    return "en" if votes["en"] > votes["nb"] else "nb"


def _votes(tokens: Sequence[str], matches: Sequence[_Match | None], text: str) -> dict[str, float]:
    votes = {"nb": 0.0, "en": 0.0}
    if any(c in text for c in "æøåÆØÅ"):
        votes["nb"] += 1.5
    for tok, m in zip(tokens, matches, strict=True):
        if m is None or tok in _SHARED:
            continue
        langs = frozenset().union(*(t.langs for t in m.terms))
        if len(langs) == 1:
            votes[next(iter(langs))] += 1 if m.distance == 0 else 0.5
    return votes


def analyse(text: str, today: dt.date, vocab: Vocabulary) -> tuple[Understanding, dict[str, Any]]:
    """`understand`, plus the evidence: concepts found and intent scores (for debugging and tuning)."""
    stripped = clip(text).strip()
    tokens = tokenize(stripped)
    index = vocab._index
    # Keyword lexicon first; words it does not know exactly but the unit's names do (exactly) are not
    # spell-checked against keywords ("samlingsforvaltningen" is a section, not a typo).
    matches = [_LEXICON.exact(t) for t in tokens]
    for i, (tok, m) in enumerate(zip(tokens, matches, strict=True)):
        if (m is None or len(tok) - len(m.terms[0].text) >= 5) and index.lexicon.exact(tok) is None:
            matches[i] = _LEXICON.match(tok)
    locale = _locale(tokens, matches, stripped)

    concepts: set[str] = set()
    for m in matches:
        if m is not None:
            concepts |= m.concepts
    if locale == "en" and "i" in tokens:
        concepts |= {"ME", "I"}
    if "DONE" in concepts and "MUST" in concepts:
        # "have/has" before a participle is the perfect tense ("how much have we completed"), not "have to".
        must = [i for i, m in enumerate(matches) if m is not None and "MUST" in m.concepts]
        if all(tokens[i] in _PERFECT_AUX and tokens[i + 1:i + 2] not in (["to"], ["got"]) for i in must):
            concepts.discard("MUST")

    # Section and floor names: typo-tolerant only for words the keyword lexicon did not know exactly.
    named, used = index.find(tokens, [m is None or m.distance > 0 for m in matches])
    section, floor = named.get("section"), named.get("floor")
    if section:
        concepts.add("SECTION")
    if floor:
        concepts.add("FLOOR")

    corrected = []
    for tok, m in zip(tokens, matches, strict=True):
        fix = next((t.text for t in m.terms if not t.prefix and "PERIODWORD" in t.concepts), None) if m else None
        corrected.append(fix if fix and m and m.distance > 0 else tok)
    period = periods.parse_period_tokens(corrected, today)
    if period is not None:
        concepts.add("PERIOD")
    # Words not understood: not in the lexicon, not a name, or only a misspelt filler word.
    unknown_words = [t for i, (t, m) in enumerate(zip(tokens, matches, strict=True))
                     if i not in used and t.isalpha() and len(t) >= 3
                     and (m is None or (m.distance > 0 and not m.concepts))]
    if not unknown_words:
        concepts.add("CLEAN")

    frozen = frozenset(concepts)
    if stripped.strip("?!. ") == "" and "?" in stripped:
        intent, scores = "help", {"help": MIN_SCORE}
    else:
        intent, scores = _choose_intent(frozen)

    named_period = period is not None
    if intent in PERIODLESS:
        period = None
    elif intent in ("overdue", "register_done", "done_check") and period is not None:  # work done is in the past
        period = periods.parse_period_tokens(corrected, today, prefer_past=True)
    elif intent == "due" and period is None:
        if "WHEN" in frozen:
            period = _next_twelve_months(today)
        else:
            period = periods.month(today.year, today.month)

    result = Understanding(intent=intent, period=period, round=_round_kind(frozen), section=section, floor=floor,
                           text_locale=locale, role=_role(frozen) if intent == "who" else None,
                           period_named=named_period)
    evidence = {"tokens": tokens, "corrected": corrected, "concepts": sorted(frozen), "scores": scores,
                "unknown_words": unknown_words}
    return result, evidence


def understand(text: str, today: dt.date, vocab: Vocabulary) -> Understanding:
    """What the chat message `text` asks for. See the module docstring."""
    return analyse(text, today, vocab)[0]
