"""A card that hands someone a link: the inspection pack to download, their calendar feed, the wheel's picture."""

from __future__ import annotations

from typing import Any

from cards.common import card, heading, message, open_url, text


def link_card(title: str, lines: list[str], button: str, url: str, *, image: str | None = None) -> dict[str, Any]:
    """A message with a heading, a few lines, optionally an image, and one button that opens `url`."""
    body = [heading(title), *(text(line) for line in lines)]
    if image:
        body.append({"type": "Image", "url": image, "altText": title, "size": "Stretch"})
    body.append(text(url, subtle=True))
    return message(card(body, [open_url(button, url)]), title)
