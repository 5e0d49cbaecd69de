"""Walking card JSON in tests: every node, every text (TextBlocks and facts), every input id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `node`, depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from nodes(v)


def texts(node: Any) -> str:
    """Every TextBlock text and FactSet fact, one per line: what tests assert on."""
    out: list[str] = []
    for n in nodes(node):
        if n.get("type") == "TextBlock" and isinstance(n.get("text"), str):
            out.append(n["text"])
        if n.get("type") == "FactSet":
            out.extend(f"{f.get('title')}: {f.get('value')}" for f in n.get("facts") or [])
    return "\n".join(out)


def input_ids(card: Any) -> list[str]:
    """The ids of every Input.* element of a card, in order."""
    return [str(n["id"]) for n in nodes(card) if str(n.get("type", "")).startswith("Input.") and n.get("id")]
