"""Every text in a card or message (TextBlocks and facts), joined by newlines: what tests assert on."""

from __future__ import annotations

from typing import Any


def texts(node: Any) -> str:
    out: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if n.get("type") == "TextBlock" and isinstance(n.get("text"), str):
                out.append(n["text"])
            if n.get("type") == "FactSet":
                out.extend(f"{f.get('title')}: {f.get('value')}" for f in n.get("facts") or [])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(node)
    return "\n".join(out)
