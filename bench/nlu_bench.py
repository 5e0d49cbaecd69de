"""Time hms.nlu.understand over the test corpus and print microseconds per call (not a test).

    python bench/nlu_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hms.nlu import Vocabulary, understand  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
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


if __name__ == "__main__":
    main()
