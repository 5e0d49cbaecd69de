"""The adviser's desk in the chat: "lag tilsynsrapport for 2026" makes the inspection pack and hands it out as a
download link the bot serves (`GET /files/<token>`: an unguessable token, stored, that expires after a day).

Asked by anyone but the HMSB adviser, the answer is a refusal that names her. The requests are matched by their
words before the language understanding (they are commands, not questions)."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cards.common import card, message, text
from cards.links import link_card
from hms import i18n
from hms.config import HmsConfig
from hms.i18n import t
from storage import models as m, repo
from usecases.feeds import link_token, new_token
from usecases.inspection import pack_from
from usecases.packfiles import write

DOWNLOAD_LIFETIME = dt.timedelta(hours=24)
CONTENT_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "pdf": "application/pdf"}
PACK_WORDS = re.compile(r"\b(tilsynsrapport\w*|tilsynsmappe\w*|inspection\s+(pack|report))\b", re.IGNORECASE)
YEAR = re.compile(r"\b(20\d\d)\b")
WHEEL = re.compile(r"^\s*(vis|show)(\s+meg|\s+me)?\s+(årshjulet|årshjul|hjulet|the\s+(hms\s+)?wheel)\b",
                   re.IGNORECASE)
CALENDAR = re.compile(r"^\s*(min\s+|my\s+)?(kalender|calendar)(\s*(lenke|link|feed))?\s*[.!?]?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class PackRequest:
    year: int
    fmt: str  # xlsx or pdf


def pack_request(text_value: str, today: dt.date) -> PackRequest | None:
    """"lag tilsynsrapport for 2026", "tilsynsmappe som pdf", "inspection pack 2027": the year (this year when not
    named) and the format (a workbook unless PDF is asked for); None for anything else."""
    if not PACK_WORDS.search(text_value):
        return None
    year = YEAR.search(text_value)
    return PackRequest(int(year.group(1)) if year else today.year,
                       "pdf" if re.search(r"\bpdf\b", text_value, re.IGNORECASE) else "xlsx")


class Desk:
    """Answers the desk's requests in the chat; `public_url` is where people reach the bot's links."""

    def __init__(self, config: HmsConfig, public_url: str):
        self.config = config
        self.public_url = public_url.rstrip("/")

    async def answer(self, s: Any, text_value: str, email: str, now: dt.datetime, locale: str
                     ) -> dict[str, Any] | None:
        """The reply to a desk request, or None when the text is not one."""
        if CALENDAR.match(text_value):
            return await self._calendar(s, email, now, locale)
        if WHEEL.search(text_value):
            return await self._wheel(s, email, now, locale)
        today = now.astimezone(self.config.tz).date()
        request = pack_request(text_value, today)
        if request is None:
            return None
        if email.lower() != self.config.roles.hmsb_adviser:
            adviser = self.config.person(self.config.roles.hmsb_adviser)
            refusal = t(locale, "pack.chat.refused", name=adviser.name if adviser else self.config.roles.hmsb_adviser)
            return message(card([text(refusal)]), refusal)
        return await self._pack(s, request, email, now, locale)

    async def _calendar(self, s: Any, email: str, now: dt.datetime, locale: str) -> dict[str, Any]:
        """"kalender": the person's own feed link (made the first time), and how to add it."""
        token = await link_token(s, self.config, "person", email, email, now)
        return link_card(t(locale, "feed.title"), [t(locale, "feed.body")], t(locale, "feed.open"),
                         f"{self.public_url}/calendar/{token}.ics")

    async def _wheel(self, s: Any, email: str, now: dt.datetime, locale: str) -> dict[str, Any]:
        """"vis årshjulet": a link to the person's wheel this year (the picture, on the calendar's token)."""
        token = await link_token(s, self.config, "person", email, email, now)
        year = now.astimezone(self.config.tz).year
        return link_card(t(locale, "wheel.chat.title"), [t(locale, "wheel.chat.body", year=year)],
                         t(locale, "wheel.chat.open"), f"{self.public_url}/wheel/{token}.svg")

    async def _pack(self, s: Any, request: PackRequest, email: str, now: dt.datetime, locale: str
                    ) -> dict[str, Any]:
        start, end = dt.date(request.year, 1, 1), dt.date(request.year, 12, 31)
        pack = await pack_from(s, self.config, start, end, now, by=email, locale=locale)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"pack.{request.fmt}"
            write(pack, request.fmt, path)
            data = path.read_bytes()
        token = new_token()
        expires = now + DOWNLOAD_LIFETIME
        name = f"{'inspection-pack' if i18n.lang(locale) == 'en' else 'tilsynsmappe'}-{request.year}.{request.fmt}"
        await repo.add_download(s, token, name, CONTENT_TYPES[request.fmt], data, email, now, expires)
        period = i18n.format_period(start, end, locale)
        ready = t(locale, "pack.chat.ready", period=period, format=request.fmt.upper(),
                  expires=i18n.format_datetime(expires.astimezone(self.config.tz), locale, year=True))
        return link_card(t(locale, "pack.title"), [ready], t(locale, "pack.chat.download"),
                         f"{self.public_url}/files/{token}")


async def fetch_download(s: Any, _config: HmsConfig, token: str, now: dt.datetime) -> m.Download | None:
    """The file behind a download token, unless it expired or never existed."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", token):
        return None
    return await repo.download(s, token, now)
