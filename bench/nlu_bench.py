"""Time hms.nlu.understand over the test corpus and on the worst inputs a chat can send (not a test).

    python bench/nlu_bench.py [--rounds N] [--skip LABEL ...]

Part one: microseconds per call over the corpus. Part two, the worst cases: what one turn spends on a message
before any database work (`clean_text`, the language of the question, `understand`) for huge words, a huge
message of many words, pathological markup and punctuation, and a huge number, each as a ratio of a normal
question timed in the same run. The understanding reads at most `hms.nlu.MAX_TEXT` characters, so a huge message
costs about what MAX_TEXT characters of words cost, plus stripping its markup, which is linear in its length.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.turns import clean_text  # noqa: E402
from hms import nlu  # noqa: E402
from hms.nlu import Vocabulary, understand  # noqa: E402

NORMAL = "hva forfaller denne måneden?"


def worst_cases(corpus_texts: list[str]) -> list[tuple[str, str]]:
    """(label, message): a normal question first (the baseline), then what hurts a naive reader most."""
    letters = random.Random(9).choices(string.ascii_lowercase, k=100_000)
    questions = " ".join(corpus_texts)
    many_words = (questions * (120_000 // len(questions) + 1))[:120_000]
    return [
        ("normal question", NORMAL),
        ("longest corpus question", max(corpus_texts, key=len)),
        (f"{nlu.MAX_TEXT} characters of corpus questions", many_words[:nlu.MAX_TEXT]),
        ("28 KB word (one letter)", "a" * 28_000),
        ("120 KB word (one letter)", "a" * 120_000),
        ("100,000-character word (random letters)", "".join(letters)),
        ("120 KB of many words", many_words),
        ("120 KB nested brackets", "([{<" * 15_000 + ">}])" * 15_000),
        ("120 KB of '<at>' never closed", "<at>" * 30_000),
        ("120 KB of '<' never closed", "<" * 120_000),
        ("5,000-digit number", "9" * 5_000),
    ]


def per_call(fn: Callable[[], Any], min_seconds: float, max_rounds: int) -> float:
    """Seconds per call: the median of as many calls as fit in `min_seconds` (at least one, at most max_rounds)."""
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < max_rounds and (not samples or time.perf_counter() - began < min_seconds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[],
                        help="worst cases to leave out (label substrings), e.g. to time older code that cannot "
                             "survive them")
    args = parser.parse_args()

    corpus = yaml.safe_load((ROOT / "tests" / "data" / "nlu_corpus.yaml").read_text(encoding="utf-8"))
    today = corpus["today"]
    t0 = time.perf_counter()
    vocab = Vocabulary.from_mapping(corpus["vocabulary"])
    build_us = (time.perf_counter() - t0) * 1e6
    texts = [c["text"] for c in corpus["cases"]]

    per_text: dict[str, float] = {}
    for text in texts:
        start = time.perf_counter()
        for _ in range(args.rounds):
            understand(text, today, vocab)
        per_text[text] = (time.perf_counter() - start) / args.rounds * 1e6

    values = sorted(per_text.values())
    print(f"{len(texts)} messages x {args.rounds} rounds; vocabulary built in {build_us:.0f} µs")
    print(f"mean {statistics.mean(values):.0f} µs/call, median {statistics.median(values):.0f}, "
          f"p95 {values[int(0.95 * (len(values) - 1))]:.0f}, max {values[-1]:.0f}")
    print("slowest:")
    for text, us in sorted(per_text.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {us:6.0f} µs  {text}")

    def turn(text: str) -> None:
        """What a chat turn does with the text before it reads the database (the memos left cold)."""
        cleaned = clean_text(text)
        nlu._text_language.cache_clear()  # as on first sight
        nlu.text_language(cleaned)
        understand(cleaned, today, vocab)

    print(f"\nworst cases: one chat turn's text work (clean_text, language, understand); the understanding reads "
          f"at most {nlu.MAX_TEXT} characters")
    print(f"  {'message':42} {'chars':>8} {'ms/call':>10} {'x normal':>9}  intent")
    baseline = 0.0
    for label, text in worst_cases(texts):
        if any(s in label for s in args.skip):
            print(f"  {label:42} {len(text):>8}  (skipped)")
            continue
        seconds = per_call(functools.partial(turn, text), min_seconds=0.5, max_rounds=max(args.rounds, 200))
        baseline = baseline or seconds
        intent = understand(clean_text(text), today, vocab).intent
        print(f"  {label:42} {len(text):>8} {seconds * 1e3:>10.3f} {seconds / baseline:>9.1f}  {intent}", flush=True)


if __name__ == "__main__":
    main()
