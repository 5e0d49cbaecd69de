"""The Teams app package (manifest.json, icons, English strings) that an IT admin uploads for HMS-hjulet.

Pure: nothing here talks to the network or reads a file. The app's names, description, developer and URLs are the
unit's, from the organisation file's `app:` section (:meth:`AppIdentity.of`); the CLI
(`hms-bot manifest --app-id ID [--out FILE.zip] [--config FILE]`) calls :func:`build_package` and writes the bytes.

The manifest follows the Teams app manifest schema v1.19; a verbatim copy of that schema and of its
localization schema is kept as test data in ``tests/data/teams-manifest/``. Strings in manifest.json are
bokmål (``nb-NO``, the default language); ``en.json`` carries the English strings, keyed as the Teams
localization schema prescribes (``name.short``, ``bots[0].commandLists[0].commands[0].title``, ...).

Note for the message handler: when a user picks a suggested command, Teams sends the command *title in
the user's client language*, so the bot may receive either the bokmål or the English title. Use
:func:`command_key` to map either to a stable key.
"""

from __future__ import annotations

import io
import json
import math
import struct
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from hms.config import HmsConfig

MANIFEST_VERSION = "1.19"
SCHEMA_URL = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
LOCALIZATION_SCHEMA_URL = (
    f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.Localization.schema.json"
)

MANIFEST_FILE = "manifest.json"
COLOR_ICON_FILE = "color.png"
OUTLINE_ICON_FILE = "outline.png"
ENGLISH_FILE = "en.json"
PACKAGE_FILES = (MANIFEST_FILE, COLOR_ICON_FILE, OUTLINE_ICON_FILE, ENGLISH_FILE)

DEFAULT_LANGUAGE_TAG = "nb-NO"
ENGLISH_LANGUAGE_TAG = "en"  # matches every English client (en-us, en-gb, ...)

COLOR_ICON_SIZE = 192
OUTLINE_ICON_SIZE = 32

BOT_SCOPES = ("personal", "team", "groupChat")
ACCENT_COLOR = "#1B5E4B"

# Limits from the v1.19 schema (and the Teams store rules they encode).
MAX_NAME_SHORT = 30
MAX_NAME_FULL = 100
MAX_DESCRIPTION_SHORT = 80
MAX_DESCRIPTION_FULL = 4000
MAX_DEVELOPER_NAME = 32
MAX_COMMAND_TITLE = 32
MAX_COMMAND_DESCRIPTION = 128
MAX_COMMANDS_PER_LIST = 10
MAX_VALID_DOMAINS = 16
MAX_URL = 2048


@dataclass(frozen=True)
class BotCommand:
    """One suggested bot command, with its bokmål and English title and description."""

    key: str
    title_nb: str
    description_nb: str
    title_en: str
    description_en: str


COMMANDS: tuple[BotCommand, ...] = (
    BotCommand(
        "due_this_month",
        "hva forfaller denne måneden",
        "Vis HMS-oppgavene i årshjulet som forfaller denne måneden",
        "what is due this month",
        "Show the HMS tasks in the yearly wheel that are due this month",
    ),
    BotCommand(
        "overdue",
        "forsinket",
        "Vis oppgaver og tiltak som har passert fristen",
        "overdue",
        "Show tasks and measures that are past their deadline",
    ),
    BotCommand(
        "my_tasks",
        "mine oppgaver",
        "Vis HMS-oppgavene og tiltakene som er tildelt deg",
        "my tasks",
        "Show the HMS tasks and measures assigned to you",
    ),
    BotCommand(
        "status",
        "status",
        "Oversikt over årshjulet: fullført, pågående og forsinket",
        "status",
        "Overview of the yearly wheel: done, in progress and overdue",
    ),
    BotCommand(
        "open_measures",
        "åpne tiltak",
        "List tiltak fra runder og avvik som ennå ikke er lukket",
        "open measures",
        "List measures from rounds and incidents that are not yet closed",
    ),
    BotCommand(
        "start_fire_round",
        "start brannvernrunde",
        "Start en brannvernrunde med sjekkliste for din etasje eller sone",
        "start fire safety round",
        "Start a fire safety round with the checklist for your floor or zone",
    ),
    BotCommand(
        "start_safety_round",
        "start vernerunde",
        "Start en vernerunde med sjekkliste for din seksjon",
        "start safety round",
        "Start a safety inspection round with the checklist for your section",
    ),
    BotCommand(
        "report_incident",
        "meld uønsket hendelse",
        "Meld en uønsket hendelse, skade eller nestenulykke",
        "report an incident",
        "Report an adverse event, injury or near miss",
    ),
    BotCommand(
        "annual_report",
        "årsrapport",
        "Lag HMS-årsrapport for enheten fra årets runder og tiltak",
        "annual report",
        "Produce the unit's annual HMS report from this year's rounds and measures",
    ),
    BotCommand(
        "help",
        "hjelp",
        "Vis hva HMS-hjulet kan hjelpe deg med",
        "help",
        "Show what HMS-hjulet can help you with",
    ),
)

DESCRIPTION_SHORT = ("HMS-årshjulet i Teams: runder, tiltak og frister",
                     "The HMS yearly wheel in Teams: rounds, measures, deadlines")
DESCRIPTION_FULL = (
    "HMS-hjulet driver {unit}s årlige HMS-hjul (helse, miljø og sikkerhet) i Teams. Boten sender sjekklister for "
    "rundene når de forfaller, minner om frister og følger opp tiltak til de er lukket. Spør «hva forfaller denne "
    "måneden?», se hva som er forsinket, hvilke oppgaver som er dine og hvilke tiltak som fortsatt er åpne.",
    "HMS-hjulet runs the yearly HMS (health, safety and environment) wheel of the {unit} in Teams. The bot sends "
    "the rounds' checklists when they are due, reminds about deadlines and follows up measures until they are "
    'closed. Ask "what is due this month?", see what is overdue, which tasks are yours and which measures are '
    "still open.",
)
"""The description when the organisation file gives none ({unit}: the unit's name)."""


@dataclass(frozen=True)
class AppIdentity:
    """Whose app it is: the names, description, developer and URLs the package carries, bokmål and English."""

    name_short_nb: str
    name_short_en: str
    name_full_nb: str
    name_full_en: str
    description_short_nb: str
    description_short_en: str
    description_full_nb: str
    description_full_en: str
    developer_name: str
    website_url: str
    privacy_url: str
    terms_url: str

    @classmethod
    def of(cls, config: HmsConfig) -> AppIdentity:
        """The identity the organisation file's `app:` section gives (ValueError when it has none)."""
        app = config.app
        if app is None:
            raise ValueError("the organisation file has no app: section (the app's names, developer and URLs)")
        unit = config.unit.name
        short = app.description_short
        full = app.description_full
        return cls(
            app.name_short.nb, app.name_short.en, app.name_full.nb, app.name_full.en,
            short.nb if short else DESCRIPTION_SHORT[0], short.en if short else DESCRIPTION_SHORT[1],
            full.nb if full else DESCRIPTION_FULL[0].format(unit=unit.nb),
            full.en if full else DESCRIPTION_FULL[1].format(unit=unit.en),
            app.developer, app.website_url, app.privacy_url, app.terms_url)


# --------------------------------------------------------------------------- validation


def normalize_app_id(app_id: str) -> str:
    """Return *app_id* as a lower-case ``8-4-4-4-12`` GUID, or raise ValueError.

    The Teams app id and the bot id are both the bot's Microsoft App ID (the Entra application /
    client id from the Azure Bot registration), which is a GUID.
    """
    if not isinstance(app_id, str):
        raise ValueError(f"app_id must be a GUID string like 00000000-0000-0000-0000-000000000000, got {app_id!r}")
    text = app_id.strip()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != text.lower():
        raise ValueError(
            f"app_id must be the bot's Microsoft App ID, a GUID in the form "
            f"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits), got {app_id!r}"
        )
    if parsed.int == 0:
        raise ValueError("app_id is the all-zero GUID; use the bot's real Microsoft App ID")
    return str(parsed)


def _check_len(field: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{field} is {len(value)} characters; Teams allows at most {limit}: {value!r}")
    return value


def _check_https(field: str, url: str) -> str:
    _check_len(field, url, MAX_URL)
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        raise ValueError(f"{field} must be an https:// URL, got {url!r}")
    return url


def _check_semver(version: str) -> str:
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() and (p == "0" or p[0] != "0") for p in parts):
        raise ValueError(f"version must be semver MAJOR.MINOR.PATCH like 1.0.0, got {version!r}")
    return version


def _check_domains(valid_domains: Iterable[str]) -> list[str]:
    if isinstance(valid_domains, str):
        valid_domains = [valid_domains]
    domains: list[str] = []
    for domain in valid_domains:
        _check_len("valid domain", domain, MAX_URL)
        if "://" in domain or "/" in domain or any(c.isspace() for c in domain):
            raise ValueError(f"valid domains are bare host names like www.khm.uio.no or *.uio.no, got {domain!r}")
        if domain not in domains:
            domains.append(domain)
    if len(domains) > MAX_VALID_DOMAINS:
        raise ValueError(f"Teams allows at most {MAX_VALID_DOMAINS} valid domains, got {len(domains)}")
    return domains


# --------------------------------------------------------------------------- manifest and strings


def build_manifest(
    app_id: str,
    app: AppIdentity,
    *,
    version: str = "1.0.0",
    valid_domains: Iterable[str] = (),
) -> dict:
    """The manifest.json content (bokmål) for the bot whose Microsoft App ID is *app_id*, named as *app* says.

    Raises ValueError if *app_id* is not a GUID or another value breaks a Teams limit.
    """
    bot_id = normalize_app_id(app_id)
    commands = [
        {
            "title": _check_len("command title", c.title_nb, MAX_COMMAND_TITLE),
            "description": _check_len("command description", c.description_nb, MAX_COMMAND_DESCRIPTION),
        }
        for c in COMMANDS
    ]
    if len(commands) > MAX_COMMANDS_PER_LIST:
        raise ValueError(f"Teams allows at most {MAX_COMMANDS_PER_LIST} commands per list")
    return {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": _check_semver(version),
        "id": bot_id,
        "localizationInfo": {
            "defaultLanguageTag": DEFAULT_LANGUAGE_TAG,
            "additionalLanguages": [{"languageTag": ENGLISH_LANGUAGE_TAG, "file": ENGLISH_FILE}],
        },
        "developer": {
            "name": _check_len("developer_name", app.developer_name, MAX_DEVELOPER_NAME),
            "websiteUrl": _check_https("website_url", app.website_url),
            "privacyUrl": _check_https("privacy_url", app.privacy_url),
            "termsOfUseUrl": _check_https("terms_url", app.terms_url),
        },
        "name": {
            "short": _check_len("name_short", app.name_short_nb, MAX_NAME_SHORT),
            "full": _check_len("name.full", app.name_full_nb, MAX_NAME_FULL),
        },
        "description": {
            "short": _check_len("description.short", app.description_short_nb, MAX_DESCRIPTION_SHORT),
            "full": _check_len("description.full", app.description_full_nb, MAX_DESCRIPTION_FULL),
        },
        "icons": {"color": COLOR_ICON_FILE, "outline": OUTLINE_ICON_FILE},
        "accentColor": ACCENT_COLOR,
        "bots": [
            {
                "botId": bot_id,
                "scopes": list(BOT_SCOPES),
                "supportsFiles": True,
                "isNotificationOnly": False,
                "commandLists": [{"scopes": [scope], "commands": [dict(c) for c in commands]} for scope in BOT_SCOPES],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": _check_domains(valid_domains),
    }


def build_localization(app: AppIdentity) -> dict:
    """The en.json content: English strings keyed by the Teams localization schema's paths.

    The names and descriptions are *app*'s English ones; the command keys follow the command lists of
    :func:`build_manifest` (one list per scope in ``BOT_SCOPES``).
    """
    strings: dict[str, str] = {
        "$schema": LOCALIZATION_SCHEMA_URL,
        "name.short": _check_len("English name_short", app.name_short_en, MAX_NAME_SHORT),
        "name.full": _check_len("English name.full", app.name_full_en, MAX_NAME_FULL),
        "description.short": _check_len("English description.short", app.description_short_en,
                                        MAX_DESCRIPTION_SHORT),
        "description.full": _check_len("English description.full", app.description_full_en, MAX_DESCRIPTION_FULL),
    }
    for list_index in range(len(BOT_SCOPES)):
        for command_index, command in enumerate(COMMANDS):
            prefix = f"bots[0].commandLists[{list_index}].commands[{command_index}]"
            strings[f"{prefix}.title"] = _check_len("English command title", command.title_en, MAX_COMMAND_TITLE)
            strings[f"{prefix}.description"] = _check_len(
                "English command description", command.description_en, MAX_COMMAND_DESCRIPTION
            )
    return strings


def command_key(text: str) -> str | None:
    """The key of the command whose bokmål or English title is *text* (case and spacing ignored)."""
    wanted = " ".join(text.split()).casefold().rstrip("?!.")
    for command in COMMANDS:
        if wanted in (command.title_nb.casefold(), command.title_en.casefold()):
            return command.key
    return None


# --------------------------------------------------------------------------- PNG icons


def encode_png(width: int, height: int, rgba: bytes) -> bytes:
    """A minimal PNG (8-bit RGBA, colour type 6, no interlace, filter 0 on every row)."""
    if width <= 0 or height <= 0:
        raise ValueError("PNG width and height must be positive")
    stride = width * 4
    if len(rgba) != stride * height:
        raise ValueError(f"expected {stride * height} bytes of RGBA, got {len(rgba)}")
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        raw += rgba[y * stride : (y + 1) * stride]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
    )


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


_WHITE = (255, 255, 255)
_SEASONS = {  # month index 0 = January, clockwise from twelve o'clock
    "winter": _hex_rgb("#5B9BD5"),
    "spring": _hex_rgb("#8CCB6B"),
    "summer": _hex_rgb("#F4C542"),
    "autumn": _hex_rgb("#E67E3A"),
}
_MONTH_SEASON = ("winter", "winter", "spring", "spring", "spring", "summer",
                 "summer", "summer", "autumn", "autumn", "autumn", "winter")  # fmt: skip


def _wheel_color(x: float, y: float, size: int) -> tuple[int, int, int]:
    """Colour of the year-wheel at point (x, y) of the 192-unit colour icon (scaled to *size*)."""
    scale = size / COLOR_ICON_SIZE
    cx = cy = size / 2
    dx, dy = x - cx, y - cy
    r = math.hypot(dx, dy) / scale
    if r > 80:
        return _hex_rgb(ACCENT_COLOR)
    if r > 71 or r <= 24:  # white rim and hub
        if r <= 9:
            return _hex_rgb(ACCENT_COLOR)  # axle
        return _WHITE
    angle = math.atan2(dx, -dy) % math.tau  # clockwise from twelve o'clock
    step = math.tau / 12
    within = angle % step
    if r * math.sin(min(within, step - within)) < 2.0:  # white spokes between the months
        return _WHITE
    return _SEASONS[_MONTH_SEASON[int(angle // step) % 12]]


@lru_cache(maxsize=1)
def color_icon_png() -> bytes:
    """192x192 full-colour icon: the year-wheel, twelve months in season colours, on the accent colour."""
    size, samples = COLOR_ICON_SIZE, 2
    pixels = bytearray()
    for py in range(size):
        for px in range(size):
            acc = [0, 0, 0]
            for sy in range(samples):
                for sx in range(samples):
                    c = _wheel_color(px + (sx + 0.5) / samples, py + (sy + 0.5) / samples, size)
                    acc[0] += c[0]
                    acc[1] += c[1]
                    acc[2] += c[2]
            n = samples * samples
            pixels += bytes((round(acc[0] / n), round(acc[1] / n), round(acc[2] / n), 255))
    return encode_png(size, size, bytes(pixels))


def _outline_inside(x: float, y: float) -> bool:
    """Whether (x, y) of the 32x32 outline icon is on the wheel: rim, eight spokes, hub."""
    dx, dy = x - 16, y - 16
    r = math.hypot(dx, dy)
    if 12.0 <= r <= 15.0 or r <= 4.0:
        return True
    if r >= 15.0:
        return False
    angle = math.atan2(dx, -dy) % math.tau
    step = math.tau / 8
    within = angle % step
    return r * math.sin(min(within, step - within)) <= 1.0


@lru_cache(maxsize=1)
def outline_icon_png() -> bytes:
    """32x32 outline icon: a white wheel on transparency, with only white and fully transparent pixels."""
    size, samples = OUTLINE_ICON_SIZE, 4
    pixels = bytearray()
    for py in range(size):
        for px in range(size):
            hits = sum(
                _outline_inside(px + (sx + 0.5) / samples, py + (sy + 0.5) / samples)
                for sy in range(samples)
                for sx in range(samples)
            )
            pixels += b"\xff\xff\xff\xff" if hits * 2 >= samples * samples else b"\x00\x00\x00\x00"
    return encode_png(size, size, bytes(pixels))


# --------------------------------------------------------------------------- package


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def build_package(app_id: str, app: AppIdentity, **kwargs) -> bytes:
    """The app package zip: manifest.json, color.png, outline.png and en.json at the root.

    *kwargs* are those of :func:`build_manifest`. The zip is deterministic (fixed timestamps), so the
    same input gives the same bytes.
    """
    manifest = build_manifest(app_id, app, **kwargs)
    english = build_localization(app)
    files = {
        MANIFEST_FILE: _json_bytes(manifest),
        COLOR_ICON_FILE: color_icon_png(),
        OUTLINE_ICON_FILE: outline_icon_png(),
        ENGLISH_FILE: _json_bytes(english),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in PACKAGE_FILES:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()
