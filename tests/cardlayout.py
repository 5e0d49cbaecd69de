"""Adaptive Cards as a phone shows them: the card rendered by the Adaptive Cards JavaScript renderer (npm
`adaptivecards`, installed under playground/node_modules by scripts/setup) in Debian's headless Chromium, driven by
playwright, at a phone's width (414 px, a screen 900 px high). It measures the rendered card's height and can take
a screenshot of it.

Loopback only: the page and the renderer are served from 127.0.0.1 by an aiohttp server of the test's own, and
Chromium starts with every background service off and a fresh profile, so it opens no other connection.

    .venv/bin/python -m tests.cardlayout CARD.json OUT.png   # a screenshot at 414 px (docs/phone/)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
RENDERER = ROOT / "playground" / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
CHROMIUM = Path("/usr/bin/chromium")
PHONE_WIDTH = 414
SCREEN_HEIGHT = 900
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--no-default-browser-check"]

# Teams' host config for phones, as far as it matters for height: its spacings, font sizes and card padding
HOST_CONFIG: dict[str, Any] = {
    "fontFamily": "'Segoe UI', 'DejaVu Sans', sans-serif",
    "spacing": {"small": 8, "default": 12, "medium": 16, "large": 20, "extraLarge": 24, "padding": 16},
    "separator": {"lineThickness": 1, "lineColor": "#E1DFDD"},
    "fontTypes": {"default": {
        "fontFamily": "'Segoe UI', 'DejaVu Sans', sans-serif",
        "fontSizes": {"small": 12, "default": 14, "medium": 14, "large": 18, "extraLarge": 24},
        "fontWeights": {"lighter": 300, "default": 400, "bolder": 600}},
        "monospace": {"fontFamily": "monospace", "fontSizes": {"small": 12, "default": 14, "medium": 14, "large": 18,
                                                              "extraLarge": 24}}},
    "containerStyles": {
        "default": {"backgroundColor": "#FFFFFF", "foregroundColors": {
            "default": {"default": "#242424", "subtle": "#616161"}, "accent": {"default": "#5B5FC7"},
            "attention": {"default": "#C4314B"}, "good": {"default": "#237B4B"}, "warning": {"default": "#835C00"}}},
        "emphasis": {"backgroundColor": "#F5F5F5"},
        "attention": {"backgroundColor": "#FCF4F6"}},
    "actions": {"maxActions": 6, "spacing": "default", "buttonSpacing": 8, "actionsOrientation": "horizontal",
                "actionAlignment": "left", "showCard": {"actionMode": "inline"}},
    "inputs": {"label": {"inputSpacing": "small", "requiredInputs": {"suffix": " *", "suffixColor": "attention"}}},
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<style>
  html, body { margin: 0; padding: 0; background: #F5F5F5; width: %(width)dpx; }
  #card { margin: 8px; background: #fff; border-radius: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.15); }
  .ac-input, .ac-multichoiceInput, select, input, textarea { font: 14px 'Segoe UI', 'DejaVu Sans', sans-serif;
    box-sizing: border-box; width: 100%%; min-height: 32px; border: 1px solid #D1D1D1; border-radius: 4px;
    padding: 4px 8px; }
  .ac-input-container input[type=radio], input[type=radio], input[type=checkbox] { width: 20px; min-height: 20px; }
  textarea { min-height: 96px; }
  .ac-pushButton { font: 600 14px 'Segoe UI', 'DejaVu Sans', sans-serif; height: 32px; padding: 0 12px;
    border: 1px solid #D1D1D1; border-radius: 4px; background: #fff; white-space: nowrap; }
  .ac-pushButton.style-positive, .ac-pushButton.primary { background: #5B5FC7; color: #fff; }
</style></head>
<body><div id="card"></div>
<script src="/adaptivecards.min.js"></script>
<script>
  const markdown = (text) => text
      .replace(/&/g, "&amp;").replace(/</g, "&lt;")
      .replace(/\\*\\*(.+?)\\*\\*/g, "<b>$1</b>")
      .split("\\n").map((line) => line.startsWith("- ") ? "&bull; " + line.slice(2) : line).join("<br>");
  AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
    result.outputHtml = markdown(text); result.didProcess = true; };
  try {
    const card = new AdaptiveCards.AdaptiveCard();
    card.hostConfig = new AdaptiveCards.HostConfig(%(host)s);
    card.parse(%(card)s);
    document.getElementById("card").appendChild(card.render());
    window.cardDone = "rendered";
  } catch (error) {
    window.cardDone = "failed: " + error;
  }
</script></body></html>
"""


@dataclass(frozen=True)
class Rendered:
    height: int  # px of the rendered card at PHONE_WIDTH
    texts: str  # what the page shows (to check it rendered what it was given)

    @property
    def screens(self) -> float:
        return self.height / SCREEN_HEIGHT


def available() -> str | None:
    """Why a card cannot be rendered here (None when it can): scripts/setup and .ci/run install all of it."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if not RENDERER.exists():
        return f"{RENDERER} is missing (scripts/setup installs playground/package.json)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (scripts/setup installs pyproject.toml's dev extras)"
    return None


async def render(card: dict[str, Any], screenshot: Path | None = None) -> Rendered:
    """Render one card at phone width; its height, its text, and optionally a full-length screenshot."""
    from playwright.async_api import async_playwright

    page_html = PAGE % {"width": PHONE_WIDTH, "host": json.dumps(HOST_CONFIG), "card": json.dumps(card)}

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")

    async def renderer(_: web.Request) -> web.FileResponse:
        return web.FileResponse(RENDERER, headers={"Content-Type": "application/javascript"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/adaptivecards.min.js", renderer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with tempfile.TemporaryDirectory(prefix="hms-chromium-") as profile:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch_persistent_context(
                    profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": PHONE_WIDTH, "height": SCREEN_HEIGHT}, device_scale_factor=1)
                try:
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{port}/")
                    done = await (await page.wait_for_function("window.cardDone", timeout=10_000)).json_value()
                    if done != "rendered":
                        raise RuntimeError(f"the Adaptive Cards renderer {done}")
                    box = await page.locator("#card").bounding_box()
                    assert box is not None, "the card did not render"
                    shown = await page.locator("#card").inner_text()
                    if screenshot is not None:
                        screenshot.parent.mkdir(parents=True, exist_ok=True)
                        await page.locator("#card").screenshot(path=str(screenshot))
                    return Rendered(round(box["height"]), shown)
                finally:
                    await browser.close()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    card = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    card = card.get("attachments", [{}])[0].get("content", card) if card.get("type") == "message" else card
    out = asyncio.run(render(card, Path(argv[1])))
    print(f"{argv[1]}: {out.height} px at {PHONE_WIDTH} px wide ({out.screens:.2f} screens of {SCREEN_HEIGHT} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
