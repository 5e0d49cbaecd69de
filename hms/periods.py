"""Periods of whole days, and reading them out of free text in Norwegian bokmål and English.

Pure and stdlib only. A `Period` is a closed range of dates (both ends included). The constructors build the
usual calendar periods (`month`, `week_of` (ISO, Monday-Sunday), `quarter_of`, `year_of`, `day`), and
`parse_period(text, today)` finds the period a chat message talks about, or None.

The text helpers `fold` and `tokenize` live here too, so that the message understanding in `hms.nlu` reads
text exactly the way the period parser does:

* `fold` lowercases, writes æ ø å as the ASCII skeleton a, o, a, and treats the usual stand-ins ("ae", "oe",
  "aa") the same way, so "måned", "maaned" and "maned" all become "maned", and "Økern"/"Oekern" become
  "okern". Other accents are dropped.
* `tokenize` splits folded text into words, numbers and dates ("1.12", "1.12.2026", "2026-12-01").

Rules for resolving what the words mean (`today` is the reference day):

* Relative periods: "denne/neste/forrige måned|uke|kvartal|år" and "this/next/last month|week|quarter|year";
  a bare definite form ("i måneden", "uka", "uken", "kvartalet", "året", "i år") means the current one, and
  "uka/måneden som kommer" the next one. "i fjor"/"last year" is the previous year.
* Named months and quarters ("mars", "march", "Q2", "2. kvartal", "andre kvartal") mean their next
  occurrence, counting the current month or quarter as "this": on 2026-11-26 "november" is November 2026,
  "mars" March 2027 and "oktober" October 2027. When the text looks back in time (past tense such as "ble",
  "var", "forfalt", "was", "did", or "forrige"/"last"), or the caller passes ``prefer_past=True`` (used for
  questions about overdue work), they mean the most recent occurrence instead: "oktober" is then October 2026
  and "desember" December 2025. An explicit year always wins: "mars 2027", "mars i fjor", "mars neste år",
  "mars i år".
* "uke 12"/"week 12" is ISO week 12 of this year, or of next year when that week is already over (the
  current week counts as this year's); with a past marker it is the most recent one.
* A day ("1. desember", "1.12", "15 march") is its next occurrence (today counts), or the last one when
  looking back.
* "de neste 30 dagene", "next two weeks", "kommende 3 måneder" run from today (without a number: 7 days,
  4 weeks or 3 months); "de siste 30 dagene", "past
  two weeks" end today; "resten av måneden"/"rest of the year" run from today to the period's end.
* "fra mars til mai", "from Q1 to Q2", "1.12-15.12" join two periods; "innen 1. desember", "by March",
  "until next week" run from today to that period's end; "siden 1. oktober"/"since October" from that
  period's start to today.
* Holidays people count to: "jul"/"Christmas" is 24-26 December (Christmas Eve is the holiday here), "påske"/
  "Easter" Maundy Thursday to Easter Monday, "sommerferien"/"the summer holiday" the common July holiday (ISO weeks
  28-30, "fellesferien", as in `hms.workdays`), "nyttår"/"new year" 1 January; each is its next occurrence (the one
  going on counts). "før jul" runs from today to the day before; "etter nyttår"/"after Easter" is the month that
  follows (January after new year, else the 30 days after the holiday).
* Halves and terms: "første/andre halvår", "the first half of next year" (January-June, July-December, the next one
  unless a year is named); a term (semester) is spring (January-June) or autumn (August-December; July counts
  towards it): "dette semesteret", "this term", "neste semester", "høstsemesteret", "spring term".
* Nynorsk forms of the units are read too ("veka", "neste veke", "denne månaden").
* When several periods are named, the first one wins.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "PERIOD_WORDS",
    "Period",
    "day",
    "easter_sunday",
    "fold",
    "half",
    "holiday",
    "iso_week",
    "month",
    "parse_period",
    "parse_period_tokens",
    "quarter",
    "quarter_of",
    "term",
    "term_of",
    "tokenize",
    "week_of",
    "year",
    "year_of",
]


@dataclass(frozen=True)
class Period:
    """A closed range of whole days: `start` and `end` are both included."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a period cannot end ({self.end}) before it starts ({self.start})")

    def contains(self, d: dt.date) -> bool:
        return self.start <= d <= self.end

    __contains__ = contains

    def days(self) -> Iterator[dt.date]:
        """Every day of the period, in order."""
        d = self.start
        while d <= self.end:
            yield d
            d += dt.timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days + 1

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Period:
        return cls(dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"]))


# ---------------------------------------------------------------------------------------------------------
# Constructors


def day(d: dt.date) -> Period:
    return Period(d, d)


def month(year: int, month: int) -> Period:
    return Period(dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1]))


def week_of(d: dt.date) -> Period:
    """The ISO week (Monday to Sunday) holding `d`."""
    monday = d - dt.timedelta(days=d.weekday())
    return Period(monday, monday + dt.timedelta(days=6))


def iso_week(year: int, week: int) -> Period | None:
    """ISO week `week` of ISO year `year`, or None when that year has no such week (like week 53 of 2027)."""
    try:
        return week_of(dt.date.fromisocalendar(year, week, 1))
    except ValueError:
        return None


def quarter(year: int, q: int) -> Period:
    first = 3 * (q - 1) + 1
    return Period(month(year, first).start, month(year, first + 2).end)


def quarter_of(d: dt.date) -> Period:
    return quarter(d.year, (d.month - 1) // 3 + 1)


def year(y: int) -> Period:
    return Period(dt.date(y, 1, 1), dt.date(y, 12, 31))


def year_of(d: dt.date) -> Period:
    return year(d.year)


def half(y: int, n: int) -> Period:
    """The first (n=1: January-June) or second (n=2: July-December) half of year `y`."""
    return Period(dt.date(y, 1 if n == 1 else 7, 1), dt.date(y, 6, 30) if n == 1 else dt.date(y, 12, 31))


def term(y: int, n: int) -> Period:
    """A university term: spring (n=1: January-June) or autumn (n=2: August-December) of year `y`."""
    return Period(dt.date(y, 1, 1), dt.date(y, 6, 30)) if n == 1 else Period(dt.date(y, 8, 1), dt.date(y, 12, 31))


def term_of(d: dt.date, offset: int = 0) -> Period:
    """The term `d` falls in (July counts towards the autumn term), moved by `offset` terms."""
    index = d.year * 2 + (0 if d.month <= 6 else 1) + offset
    return term(index // 2, index % 2 + 1)


def easter_sunday(y: int) -> dt.date:
    """Easter Sunday of year `y` (the Gregorian computus)."""
    a, b, c = y % 19, y // 100, y % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    mo = (h + l_ - 7 * m + 90) // 25
    return dt.date(y, mo, (h + l_ - 7 * m + 33 * mo + 19) % 32)


def holiday(name: str, y: int) -> tuple[Period, Period]:
    """A holiday in year `y` and what "after" it means: ("christmas", "easter", "summer", "new_year")."""
    if name == "new_year":
        return day(dt.date(y, 1, 1)), month(y, 1)
    if name == "christmas":
        p = Period(dt.date(y, 12, 24), dt.date(y, 12, 26))
    elif name == "easter":
        sunday = easter_sunday(y)
        p = Period(sunday - dt.timedelta(days=3), sunday + dt.timedelta(days=1))
    else:  # the common July holiday, ISO weeks 28-30
        p = Period(dt.date.fromisocalendar(y, 28, 1), dt.date.fromisocalendar(y, 30, 7))
    after = p.end + dt.timedelta(days=1)
    return p, Period(after, after + dt.timedelta(days=29))


def _add_months(y: int, m: int, k: int) -> tuple[int, int]:
    n = y * 12 + (m - 1) + k
    return n // 12, n % 12 + 1


def _shift_date_months(d: dt.date, k: int) -> dt.date:
    y, m = _add_months(d.year, d.month, k)
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


# ---------------------------------------------------------------------------------------------------------
# Text helpers shared with hms.nlu

_FOLD_TABLE = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "ä": "ae", "ö": "oe", "ß": "ss"})
_SKELETON = re.compile(r"aa|oe|ae")
_SKELETON_MAP = {"aa": "a", "oe": "o", "ae": "a"}
_TOKEN = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}"  # 2026-12-01
    r"|\d{1,2}\.\d{1,2}\.(?:\d{4}|\d{2})?"  # 1.12.2026, 1.12.26, 1.12.
    r"|\d{1,2}\.\d{1,2}(?!\d)"  # 1.12
    r"|\d{1,2}/\d{1,2}(?:/\d{4}|/\d{2})?"  # 1/12, 1/12/2026
    r"|[a-z]+|\d+"
)


def fold(text: str) -> str:
    """Lowercase ASCII skeleton of `text`: æ/ae→a, ø/oe→o, å/aa→a, accents dropped."""
    s = text.lower().translate(_FOLD_TABLE)
    if not s.isascii():
        s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    return _SKELETON.sub(lambda m: _SKELETON_MAP[m.group(0)], s)


_BEFORE_NB = re.compile(r"\bf(?:ø|oe|Ø|OE|Oe)r\b")


_ORDINAL_SUFFIX = re.compile(r"(?<=\d)(?:st|nd|rd|th)\b")


def tokenize(text: str) -> list[str]:
    """The folded words, numbers and dates of `text`, in order (punctuation dropped). Bokmål "før" (before)
    would fold to "for"; it becomes "before" so the two stay apart. English ordinals lose their ending ("2nd"
    floor, "15th" March read as 2 and 15)."""
    return _TOKEN.findall(_ORDINAL_SUFFIX.sub("", fold(_BEFORE_NB.sub("before", text))))


# ---------------------------------------------------------------------------------------------------------
# Word tables (folded spellings)


def _f(*words: str) -> frozenset[str]:
    return frozenset(fold(w) for w in words)


THIS = _f("denne", "dette", "inneværende", "this", "current")
NEXT = _f("neste", "kommende", "nærmeste", "next", "coming", "upcoming", "following")
LAST = _f("forrige", "sist", "siste", "last", "previous", "past", "foregående")

UNIT_WORDS: dict[str, str] = {}
for _unit, _words in {
    "day": ("dag", "dager", "dagene", "døgn", "day", "days"),
    "week": ("uke", "uka", "uken", "uker", "ukene", "ukas", "ukens", "veke", "veka", "veker", "vekene", "vekas",
             "week", "weeks", "wk"),
    "month": ("måned", "måneden", "måneder", "månedene", "månedens", "mnd", "mnd.", "månad", "månaden", "månader",
              "månadene", "månadens", "month", "months", "mth"),
    "quarter": ("kvartal", "kvartalet", "kvartaler", "kvartalene", "kvartalets", "quarter", "quarters", "qtr"),
    "year": ("år", "året", "årene", "årets", "year", "years", "yr"),
    "term": ("semester", "semesteret", "semestre", "semestrene", "semesterets", "term", "semestre", "terms"),
}.items():
    for _w in _words:
        UNIT_WORDS[fold(_w).rstrip(".")] = _unit

# Plural units after "neste"/"coming" without a number, and how many they stand for.
PLURAL_UNITS = {fold(w): n for w, n in (("dagene", 7), ("dager", 7), ("days", 7), ("ukene", 4), ("uker", 4),
                                        ("weeks", 4), ("vekene", 4), ("veker", 4), ("månedene", 3), ("måneder", 3),
                                        ("månadene", 3), ("månader", 3), ("months", 3))}

# Definite forms that on their own mean "the current one" ("i måneden", "uka", "årets").
DEFINITE_THIS = _f("måneden", "månedens", "uka", "uken", "ukas", "ukens", "kvartalet", "kvartalets", "året",
                   "årets", "veka", "vekas", "månaden", "månadens", "semesteret", "semesterets")

MONTH_NAMES: dict[str, int] = {}
for _i, _names in enumerate(
    (
        ("januar", "january", "jan"),
        ("februar", "february", "feb"),
        ("mars", "march", "mar"),
        ("april", "apr"),
        ("mai", "may"),
        ("juni", "june", "jun"),
        ("juli", "july"),  # not "jul": that is Christmas in Norwegian
        ("august", "aug"),
        ("september", "sept", "sep"),
        ("oktober", "october", "okt", "oct"),
        ("november", "nov"),
        ("desember", "december", "des", "dec"),
    ),
    start=1,
):
    for _n in _names:
        MONTH_NAMES[fold(_n)] = _i

NUMBER_WORDS: dict[str, int] = {
    fold(w): n
    for n, ws in {
        1: ("en", "ett", "ei", "one", "a"),
        2: ("to", "two", "couple"),
        3: ("tre", "three"),
        4: ("fire", "four"),
        5: ("fem", "five"),
        6: ("seks", "six"),
        7: ("sju", "syv", "seven"),
        8: ("åtte", "eight"),
        9: ("ni", "nine"),
        10: ("ti", "ten"),
        11: ("elleve", "eleven"),
        12: ("tolv", "twelve"),
        14: ("fjorten", "fourteen"),
        15: ("femten", "fifteen"),
        20: ("tjue", "tyve", "twenty"),
        30: ("tretti", "tredve", "thirty"),
        60: ("seksti", "sixty"),
        90: ("nitti", "ninety"),
    }.items()
    for w in ws
}
ORDINALS: dict[str, int] = {
    fold(w): n
    for n, ws in {1: ("første", "first", "1st"), 2: ("andre", "second", "2nd"), 3: ("tredje", "third", "3rd"),
                  4: ("fjerde", "fourth", "4th")}.items()
    for w in ws
}
ORDINAL_SUFFIXES = _f("st", "nd", "rd", "th", "e")

TODAY = _f("idag", "today")
TOMORROW = _f("imorgen", "imorra", "tomorrow")
YESTERDAY = _f("igår", "yesterday")
LAST_YEAR = _f("ifjor", "fjor")
REST = _f("resten", "rest", "remainder")
RANGE_JOIN = _f("til", "to", "until", "till", "through", "thru", "og", "and")
RANGE_FROM = _f("fra", "from", "mellom", "between")
UNTIL = _f("innen", "til", "by", "until", "till", "inntil", "through", "thru")
BEFORE = _f("before")
SINCE = _f("siden", "since")
WEEK_NUMBER_FILLER = _f("nr", "no", "number", "nummer")
AFTER = _f("etter", "after")
HALF_WORDS = _f("halvår", "halvåret", "halvårs", "half", "halvdel", "halvdelen")
SEASON_TERMS = {fold(w): n for w, n in (("vårsemester", 1), ("vårsemesteret", 1), ("spring", 1),
                                        ("høstsemester", 2), ("høstsemesteret", 2), ("autumn", 2), ("fall", 2))}
HOLIDAYS: dict[str, str] = {fold(w): h for h, ws in {
    "christmas": ("jul", "julen", "jula", "juleferie", "juleferien", "julaften", "christmas", "xmas"),
    "easter": ("påske", "påsken", "påska", "påskeferie", "påskeferien", "easter"),
    "summer": ("sommerferie", "sommerferien", "fellesferie", "fellesferien", "sommaren", "sommeren",
               "sumarferien", "summer"),
    "new_year": ("nyttår", "nyttåret", "nyår", "nyåret"),
}.items() for w in ws}
HOLIDAY_TAIL = _f("holiday", "holidays", "vacation", "break", "ferie", "ferien", "s")  # "summer holiday", "new year's"
PAST_MARKERS = _f("ble", "var", "gjorde", "skjedde", "hadde", "fikk", "forfalt", "forrige", "sist", "was", "were",
                  "did", "happened", "had", "last", "previous", "ago", "fjor", "ifjor", "siden", "since")

PERIOD_WORDS: frozenset[str] = frozenset(
    THIS | NEXT | LAST | UNIT_WORDS.keys() | DEFINITE_THIS | MONTH_NAMES.keys()
    | {w for w in NUMBER_WORDS if len(w) > 2} | {w for w in ORDINALS if w.isalpha()} | TODAY | TOMORROW
    | YESTERDAY | LAST_YEAR | REST | BEFORE | HOLIDAYS.keys() | HALF_WORDS
    | _f("kvartal", "morgen", "fjor", "resten", "innen", "siden", "since", "until", "semester", "semesteret")
)
"""Every (folded) word the parser knows; hms.nlu spell-corrects message words against these."""


# ---------------------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class _Mention:
    start: int  # token span [start, stop)
    stop: int
    period: Period
    named_month: int | None = None  # a month named without a year, for ranges like "oktober til desember"
    kind: str = ""  # "day", "month", ...: two of a kind side by side ("1.12-15.12") make a range
    after: Period | None = None  # what "etter"/"after" it means (holidays)


class _Parser:
    """One parse of one token list. Kept small: each `_at_*` method tries one pattern at token index i."""

    def __init__(self, tokens: Sequence[str], today: dt.date, past: bool):
        self.t = list(tokens)
        self.today = today
        self.past = past

    # -- helpers -----------------------------------------------------------------------------------------
    def tok(self, i: int) -> str:
        return self.t[i] if 0 <= i < len(self.t) else ""

    def digits(self, i: int) -> int | None:
        """The number written in digits at i. Every number a period uses (a day, week, quarter, count up to 1000
        or year) has at most four digits; longer runs are not read, since int() refuses more than 4,300 digits
        and costs the square of their count below that."""
        w = self.tok(i)
        return int(w) if w.isdigit() and len(w) <= 4 else None

    def number(self, i: int) -> int | None:
        n = self.digits(i)
        return n if n is not None else NUMBER_WORDS.get(self.tok(i))

    def year_number(self, i: int) -> int | None:
        w = self.tok(i)
        if w.isdigit() and len(w) == 4 and 1900 <= int(w) <= 2199:
            return int(w)
        return None

    def year_phrase(self, i: int) -> tuple[int, int] | None:
        """An explicit year at i: "2027", "neste år", "i fjor", "i år", "last year". -> (year, next index)."""
        y = self.year_number(i)
        if y is not None:
            return y, i + 1
        w, w2 = self.tok(i), self.tok(i + 1)
        this_year = self.today.year
        if w in LAST_YEAR:
            return this_year - 1, i + 1
        if w == "i" and w2 in LAST_YEAR:
            return this_year - 1, i + 2
        if w == "i" and w2 == "ar":
            return this_year, i + 2
        if UNIT_WORDS.get(w2) == "year":
            if w in NEXT:
                return this_year + 1, i + 2
            if w in LAST:
                return this_year - 1, i + 2
            if w in THIS:
                return this_year, i + 2
        if w in ("of", "in", "i") and self.year_number(i + 1) is not None:
            return self.year_number(i + 1), i + 2  # type: ignore[return-value]
        return None

    def resolve_month(self, m: int, explicit_year: int | None, past: bool | None = None) -> Period:
        if explicit_year is not None:
            return month(explicit_year, m)
        past = self.past if past is None else past
        y = self.today.year
        if past:
            return month(y if m <= self.today.month else y - 1, m)
        return month(y if m >= self.today.month else y + 1, m)

    def resolve_quarter(self, q: int, explicit_year: int | None) -> Period:
        if explicit_year is not None:
            return quarter(explicit_year, q)
        current = (self.today.month - 1) // 3 + 1
        y = self.today.year
        if self.past:
            return quarter(y if q <= current else y - 1, q)
        return quarter(y if q >= current else y + 1, q)

    def resolve_day(self, d: int, m: int, explicit_year: int | None) -> Period | None:
        def make(y: int) -> dt.date | None:
            try:
                return dt.date(y, m, d)
            except ValueError:
                return None

        if explicit_year is not None:
            date = make(explicit_year)
        else:
            y = self.today.year
            date = make(y)
            if date is None:
                date = make(y + (-1 if self.past else 1))
            elif self.past and date > self.today:
                date = make(y - 1)
            elif not self.past and date < self.today:
                date = make(y + 1)
        return day(date) if date else None

    def unit_period(self, unit: str, offset: int) -> Period:
        t = self.today
        if unit == "day":
            return day(t + dt.timedelta(days=offset))
        if unit == "week":
            return week_of(t + dt.timedelta(weeks=offset))
        if unit == "month":
            return month(*_add_months(t.year, t.month, offset))
        if unit == "quarter":
            y, m = _add_months(t.year, t.month, 3 * offset)
            return quarter_of(dt.date(y, m, 1))
        if unit == "term":
            return term_of(t, offset)
        return year(t.year + offset)

    def span(self, unit: str, n: int, forward: bool) -> Period:
        t = self.today
        if unit == "day":
            delta = dt.timedelta(days=n - 1)
            return Period(t, t + delta) if forward else Period(t - delta, t)
        if unit == "week":
            delta = dt.timedelta(days=7 * n - 1)
            return Period(t, t + delta) if forward else Period(t - delta, t)
        months = {"month": 1, "quarter": 3, "term": 6, "year": 12}[unit] * n
        if forward:
            return Period(t, _shift_date_months(t, months) - dt.timedelta(days=1))
        return Period(_shift_date_months(t, -months) + dt.timedelta(days=1), t)

    # -- patterns: each returns (mention) or None --------------------------------------------------------
    def at_date_token(self, i: int) -> _Mention | None:
        w = self.tok(i)
        if not w[:1].isdigit() or w.isdigit():
            return None
        parts = [int(p) for p in re.split(r"[./-]", w) if p]
        y: int | None
        if "-" in w and len(parts) == 3:
            y, m, d = parts
        elif len(parts) >= 2:
            d, m = parts[0], parts[1]
            y = parts[2] if len(parts) > 2 else None
            if y is not None and y < 100:
                y += 2000
        else:
            return None
        if not 1 <= m <= 12:
            return None
        if y is None:
            yp = self.year_number(i + 1)
            p = self.resolve_day(d, m, yp)
            return _Mention(i, i + (2 if yp else 1), p, kind="day") if p else None
        try:
            return _Mention(i, i + 1, day(dt.date(y, m, d)), kind="day")
        except ValueError:
            return None

    def at_relative_span(self, i: int) -> _Mention | None:
        """"(de) neste 30 dagene", "next two weeks", "past 3 months"."""
        w = self.tok(i)
        if w not in NEXT and w not in LAST:
            return None
        n = self.number(i + 1)
        unit = UNIT_WORDS.get(self.tok(i + 2))
        if n is None:  # "de kommende ukene", "the coming weeks": a few of them
            unit = UNIT_WORDS.get(self.tok(i + 1))
            if unit is None or self.tok(i + 1) not in PLURAL_UNITS:
                return None
            return _Mention(i, i + 2, self.span(unit, PLURAL_UNITS[self.tok(i + 1)], forward=w in NEXT))
        if unit is None or not 0 < n <= 1000:
            return None
        return _Mention(i, i + 3, self.span(unit, n, forward=w in NEXT))

    def at_rest_of(self, i: int) -> _Mention | None:
        """"resten av måneden/året", "rest of the month", "rest of this year"."""
        if self.tok(i) not in REST:
            return None
        j = i + 1
        while self.tok(j) in ("av", "of", "the", "this", "denne", "dette"):
            j += 1
        unit = UNIT_WORDS.get(self.tok(j))
        if unit is None or unit == "day":
            return None
        return _Mention(i, j + 1, Period(self.today, self.unit_period(unit, 0).end))

    def at_modifier_unit(self, i: int) -> _Mention | None:
        """"denne/neste/forrige måned", "this week", "next quarter"; also "neste mars", "last March"."""
        w = self.tok(i)
        offset = 0 if w in THIS else 1 if w in NEXT else -1 if w in LAST else None
        if offset is None:
            return None
        w2 = self.tok(i + 1)
        unit = UNIT_WORDS.get(w2)
        if unit is not None:
            return _Mention(i, i + 2, self.unit_period(unit, offset))
        m = self._month_name(i + 1)
        if m is not None:
            y = self.today.year
            if offset > 0:  # the next one strictly after the current month
                p = month(y if m > self.today.month else y + 1, m)
            elif offset < 0:  # the most recent one strictly before
                p = month(y if m < self.today.month else y - 1, m)
            else:
                p = self.resolve_month(m, None)
            return _Mention(i, i + 2, p)
        return None

    def at_definite(self, i: int) -> _Mention | None:
        """"i måneden", "uka", "uken som kommer", "i år", "årets", "i fjor"."""
        w, w2 = self.tok(i), self.tok(i + 1)
        if w in LAST_YEAR:
            return _Mention(i, i + 1, year(self.today.year - 1))
        if w == "i" and w2 == "ar":
            return _Mention(i, i + 2, year(self.today.year))
        if w in DEFINITE_THIS:
            unit = UNIT_WORDS[w]
            if w2 == "som" and self.tok(i + 2) in ("kommer", "kommet"):
                return _Mention(i, i + 3, self.unit_period(unit, 1))
            return _Mention(i, i + 1, self.unit_period(unit, 0))
        return None

    def at_day_words(self, i: int) -> _Mention | None:
        w, w2 = self.tok(i), self.tok(i + 1)
        t = self.today
        if w in TODAY or (w == "i" and w2 == "dag"):
            return _Mention(i, i + (1 if w in TODAY else 2), day(t))
        if w in TOMORROW or (w == "i" and w2 in ("morgen", "morra")):
            return _Mention(i, i + (1 if w in TOMORROW else 2), day(t + dt.timedelta(days=1)))
        if w in YESTERDAY or (w == "i" and w2 == "gar"):
            return _Mention(i, i + (1 if w in YESTERDAY else 2), day(t - dt.timedelta(days=1)))
        return None

    def at_week_number(self, i: int) -> _Mention | None:
        """"uke 12", "week 12", "uke nr. 12", "uke 12 2027"."""
        if UNIT_WORDS.get(self.tok(i)) != "week":
            return None
        j = i + 1
        if self.tok(j) in WEEK_NUMBER_FILLER:
            j += 1
        n = self.digits(j)
        if n is None or not 1 <= n <= 53:
            return None
        yp = self.year_phrase(j + 1)
        if yp is not None:
            p = iso_week(yp[0], n)
            return _Mention(i, yp[1], p) if p else None
        this_iso_year, this_week, _ = self.today.isocalendar()
        if self.past:
            years = (this_iso_year, this_iso_year - 1) if n <= this_week else (this_iso_year - 1,)
        else:
            years = (this_iso_year, this_iso_year + 1) if n >= this_week else (this_iso_year + 1,)
        for y in years:
            p = iso_week(y, n)
            if p is not None:
                return _Mention(i, j + 1, p)
        return None

    def at_quarter(self, i: int) -> _Mention | None:
        """"Q1", "1. kvartal", "første kvartal", "second quarter", "kvartal 2"; optionally with a year."""
        w, w2 = self.tok(i), self.tok(i + 1)
        q: int | None = None
        stop = i
        if w == "q" and w2.isdigit():
            q, stop = self.digits(i + 1), i + 2
        elif (w.isdigit() and len(w) == 1) or w in ORDINALS:
            n = int(w) if w.isdigit() else ORDINALS[w]
            j = i + 1
            if self.tok(j) in ORDINAL_SUFFIXES:
                j += 1
            if UNIT_WORDS.get(self.tok(j)) == "quarter":
                q, stop = n, j + 1
        elif UNIT_WORDS.get(w) == "quarter" and w2.isdigit() and len(w2) == 1:
            q, stop = int(w2), i + 2
        if q is None or not 1 <= q <= 4:
            return None
        yp = self.year_phrase(stop)
        if yp is not None:
            return _Mention(i, yp[1], self.resolve_quarter(q, yp[0]), kind="quarter")
        return _Mention(i, stop, self.resolve_quarter(q, None), kind="quarter")

    def _month_name(self, i: int) -> int | None:
        w = self.tok(i)
        m = MONTH_NAMES.get(w)
        if m is None:
            return None
        if w == "may":  # also a verb: only a month after a preposition or before a year or day
            prev = self.tok(i - 1)
            if prev not in ("in", "of", "for", "by", "until", "during", "i", "til", "from", "since", "to",
                            "early", "late", "mid") and self.year_number(i + 1) is None \
                    and not self.tok(i + 1).isdigit():
                return None
        if w in ("mar", "des", "dec", "sep", "jun") and len(self.t) > 1:
            # short forms that are also other words: need a neighbour that makes them a date
            prev, nxt = self.tok(i - 1), self.tok(i + 1)
            if not (prev.isdigit() or nxt.isdigit() or prev in ("i", "in", "of", "for", "til", "to", "by",
                                                                   "fra", "from", "innen", "until")):
                return None
        return m

    def at_month(self, i: int) -> _Mention | None:
        """"15. mars", "mars", "march 2027", "mars neste år", "15 march", "march 15"."""
        d = self.digits(i)
        if d is not None and 1 <= d <= 31:
            j = i + 1
            if self.tok(j) in ORDINAL_SUFFIXES or self.tok(j) == "of":
                j += 1
            m = self._month_name(j)
            if m is None:
                return None
            yp = self.year_phrase(j + 1)
            p = self.resolve_day(d, m, yp[0] if yp else None)
            return _Mention(i, yp[1] if yp else j + 1, p, kind="day") if p else None
        m = self._month_name(i)
        if m is None:
            return None
        nxt = self.tok(i + 1)
        if len(nxt) <= 2 and nxt.isdigit() and 1 <= int(nxt) <= 31:
            j = i + 2
            if self.tok(j) in ORDINAL_SUFFIXES:
                j += 1
            yp = self.year_phrase(j)
            p = self.resolve_day(int(nxt), m, yp[0] if yp else None)
            return _Mention(i, yp[1] if yp else j, p, kind="day") if p else None
        yp = self.year_phrase(i + 1)
        if yp is not None:
            return _Mention(i, yp[1], month(yp[0], m), kind="month")
        return _Mention(i, i + 1, self.resolve_month(m, None), named_month=m, kind="month")

    def at_holiday(self, i: int) -> _Mention | None:
        """"jul", "påske", "sommerferien", "the summer holiday", "new year", "nyttår": the next one (or the one going
        on); with a year ("påske 2027") that year's."""
        w = self.tok(i)
        name = HOLIDAYS.get(w)
        stop = i + 1
        if name is None and w == "new" and UNIT_WORDS.get(self.tok(i + 1)) == "year":
            name, stop = "new_year", i + 2
        if name is None:
            return None
        while self.tok(stop) in HOLIDAY_TAIL:
            stop += 1
        yp = self.year_phrase(stop)
        if yp is not None:
            found = holiday(name, yp[0])
            stop = yp[1]
        else:
            found = holiday(name, self.today.year)
            if found[0].end < self.today if not self.past else found[0].start > self.today:
                found = holiday(name, self.today.year + (-1 if self.past else 1))
        return _Mention(i, stop, found[0], kind="holiday", after=found[1])

    def at_half(self, i: int) -> _Mention | None:
        """"første halvår", "andre halvår 2027", "the first half of next year", "second half of the year"."""
        w = self.tok(i)
        n = ORDINALS.get(w) if w.isalpha() else (int(w) if w in ("1", "2") else None)
        if n not in (1, 2):
            return None
        j = i + 1
        if self.tok(j) in ORDINAL_SUFFIXES:
            j += 1
        if self.tok(j) not in HALF_WORDS:
            return None
        j += 1
        k = j
        while self.tok(k) in ("of", "av", "the", "this", "dette"):
            k += 1
        yp = self.year_phrase(k)
        if yp is None and UNIT_WORDS.get(self.tok(k)) == "year":  # "of the year"
            yp = (self.today.year, k + 1)
        first_month = 1 if n == 1 else 7
        if yp is not None:
            y, stop = yp
        else:
            y, stop = self.today.year, j
            end_month = first_month + 5
            if not self.past and (self.today.year, self.today.month) > (y, end_month):
                y += 1
            elif self.past and (self.today.year, self.today.month) < (y, first_month):
                y -= 1
        return _Mention(i, stop, Period(dt.date(y, first_month, 1), month(y, first_month + 5).end))

    def at_season_term(self, i: int) -> _Mention | None:
        """"høstsemesteret", "vårsemester 2027", "the spring term", "autumn semester"."""
        w = self.tok(i)
        n = SEASON_TERMS.get(w)
        if n is None:
            return None
        stop = i + 1
        if w in ("spring", "autumn", "fall"):  # English needs the unit after it
            if UNIT_WORDS.get(self.tok(i + 1)) != "term":
                return None
            stop = i + 2
        yp = self.year_phrase(stop)
        if yp is not None:
            return _Mention(i, yp[1], term(yp[0], n))
        y = self.today.year
        p = term(y, n)
        if not self.past and p.end < self.today:
            p = term(y + 1, n)
        elif self.past and p.start > self.today:
            p = term(y - 1, n)
        return _Mention(i, stop, p)

    def at_year(self, i: int) -> _Mention | None:
        y = self.year_number(i)
        return _Mention(i, i + 1, year(y)) if y is not None else None

    PATTERNS = (at_date_token, at_relative_span, at_rest_of, at_modifier_unit, at_week_number, at_half, at_quarter,
                at_month, at_day_words, at_definite, at_holiday, at_season_term, at_year)

    def mentions(self) -> list[_Mention]:
        found: list[_Mention] = []
        i = 0
        while i < len(self.t):
            for pattern in self.PATTERNS:
                mention = pattern(self, i)
                if mention is not None:
                    found.append(mention)
                    i = mention.stop
                    break
            else:
                i += 1
        return found

    def parse(self) -> Period | None:
        found = self.mentions()
        if not found:
            return None
        first = found[0]
        k = first.start - 1
        while self.tok(k) == "the" and k > 0:  # "before the summer holiday"
            k -= 1
        before = self.tok(k)
        if len(found) > 1:
            second = found[1]
            gap = self.t[first.stop:second.start]
            joined = (len(gap) == 1 and gap[0] in RANGE_JOIN) or (not gap and first.kind and first.kind == second.kind)
            if joined:
                if first.named_month is not None and second.named_month is not None:
                    # resolve the end first, then the start as the latest such month not after it
                    end = second.period
                    start_y = end.start.year if first.named_month <= second.named_month else end.start.year - 1
                    return Period(month(start_y, first.named_month).start, end.end)
                if second.period.end >= first.period.start:
                    return Period(first.period.start, second.period.end)
        if before in UNTIL and first.period.end >= self.today:
            return Period(self.today, first.period.end)
        if before in BEFORE and first.period.start > self.today:
            return Period(self.today, first.period.start - dt.timedelta(days=1))
        if before in AFTER and first.after is not None:
            return first.after
        if before in SINCE and first.period.start <= self.today:
            return Period(first.period.start, self.today)
        return first.period


def parse_period_tokens(tokens: Sequence[str], today: dt.date, *, prefer_past: bool = False) -> Period | None:
    """`parse_period` on text already split by `tokenize` (hms.nlu passes spell-corrected tokens)."""
    past = prefer_past or any(t in PAST_MARKERS for t in tokens)
    return _Parser(tokens, today, past).parse()


def parse_period(text: str, today: dt.date, *, prefer_past: bool = False) -> Period | None:
    """The period `text` talks about, resolved against `today`, or None. See the module docstring for rules."""
    return parse_period_tokens(tokenize(text), today, prefer_past=prefer_past)
