"""The fire round on a phone: each page of the checklist, as the round's prompt brings it, rendered by the Adaptive
Cards JavaScript renderer in headless Chromium at 414 px, must fit in 1.5 phone screens (900 px each), in bokmål and
English, also with a refused deviation open. The layout of main before issue 12 (docs/phone/checklist-before.json)
measures far above it, so the measure can fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hms.config import HmsConfig
from hms.i18n import t
from hms.wheel import find_occurrence
from tests import cardlayout
from usecases.rounds import Rounds

LIMIT = 1.5 * cardlayout.SCREEN_HEIGHT  # 1,350 px
OCC = "fire_round:2027-Q1:hm-1"
BEFORE = Path(__file__).resolve().parents[1] / "docs" / "phone" / "checklist-before.json"


@pytest.fixture(autouse=True)
def _renderer() -> None:
    missing = cardlayout.available()
    assert missing is None, f"the card layout test cannot run: {missing} (scripts/setup and .ci/run install it)"


def _pages(khm: HmsConfig, locale: str) -> dict[str, tuple[dict[str, Any], int]]:
    """The cards a floor contact sees, by name, with their page number."""
    rounds = Rounds(khm, b"layout")
    occ = find_occurrence(khm, OCC)
    assert occ is not None
    prompt = rounds.prompt_activity(occ, "prompt", "prompt", locale)["attachments"][0]["content"]
    page2 = rounds.occurrence_card(occ, locale, nonce="n", page=2)
    checklist = khm.checklist("fire_round")
    assert checklist is not None
    first, last = checklist.items[0].key, checklist.items[8].key
    refused = rounds.occurrence_card(  # a deviation without its comment, refused: its field open, the error named
        occ, locale, nonce="n", page=1, values={k.key: "ok" for k in checklist.items[:9]} | {first: "avvik"},
        comments={last: "Skiltet er delvis dekket av en plakat ved heisen"},
        errors={first: t(locale, "checklist.comment_required")})
    unanswered = rounds.occurrence_card(  # "Lagre og neste" with nothing answered: every item refused
        occ, locale, nonce="n", page=1, errors={k.key: t(locale, "checklist.missing") for k in checklist.items[:9]})
    return {"page 1 (the prompt)": (prompt, 1), "page 2": (page2, 2), "page 1 with a refused deviation": (refused, 1),
            "page 1 with nothing answered, refused": (unanswered, 1)}


@pytest.mark.parametrize("locale", ["nb-NO", "en-US"])
async def test_each_checklist_page_fits_one_and_a_half_phone_screens(khm: HmsConfig, locale: str) -> None:
    lang = "en" if locale.startswith("en") else "nb"
    checklist = khm.checklist("fire_round")
    assert checklist is not None
    items = checklist.items
    for name, (card, page) in _pages(khm, locale).items():
        shown = await cardlayout.render(card)
        assert shown.height <= LIMIT, f"{locale} {name}: {shown.height} px at 414 px ({shown.screens:.2f} screens)"
        # it rendered the page it was given: the page line, every item on it, and the buttons
        flat = " ".join(shown.texts.split())
        assert t(locale, "checklist.page", page=page, pages=2) in flat, flat
        assert all(" ".join(i.text.get(lang).split()) in flat for i in items[(page - 1) * 9:page * 9]), flat
        assert t(locale, "checklist.all_ok") in flat


async def test_the_layout_before_issue_12_is_measured_too_long() -> None:
    before = json.loads(BEFORE.read_text(encoding="utf-8"))
    shown = await cardlayout.render(before)
    assert shown.height > LIMIT, f"the old layout measured {shown.height} px; the measure would not catch it"
    assert "Side 1 av 2" in shown.texts and "Kommentar" in shown.texts
