"""The Teams app package: manifest and en.json against Microsoft's official v1.19 schemas, zip layout, icons.

The schemas in tests/data/teams-manifest/ are verbatim copies of microsoft/json-schemas
teams/v1.19/MicrosoftTeams.schema.json and MicrosoftTeams.Localization.schema.json (see README.md there).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import jsonschema
import pytest

from hms.config import DEFAULT_CONFIG_PATH, load_config
from teamsapp import manifest as m

DATA = Path(__file__).resolve().parent / "data" / "teams-manifest"
APP_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
KHM_APP = m.AppIdentity.of(load_config(DEFAULT_CONFIG_PATH))  # the names and URLs come from the organisation file
IDENTITY = {"name_short": ("name_short_nb", "name_short_en"), "developer_name": ("developer_name",),
            "website_url": ("website_url",), "privacy_url": ("privacy_url",), "terms_url": ("terms_url",)}


def _identity(kwargs: dict) -> tuple[m.AppIdentity, dict]:
    """KHM's identity with the identity fields among `kwargs` changed, and the other keyword arguments."""
    changes = {field: v for k, v in kwargs.items() if k in IDENTITY for field in IDENTITY[k]}
    return dataclasses.replace(KHM_APP, **changes), {k: v for k, v in kwargs.items() if k not in IDENTITY}


def build_manifest(app_id, **kwargs):
    app, rest = _identity(kwargs)
    return m.build_manifest(app_id, app, **rest)


def build_package(app_id, **kwargs):
    app, rest = _identity(kwargs)
    return m.build_package(app_id, app, **rest)


def _validator_class(schema: dict):
    """The validator for the schema's declared draft (04), plus `const`, which the Teams schema uses.

    Draft 4 has no `const` keyword, so a plain Draft4Validator would silently accept any manifestVersion;
    the Teams tooling enforces it, and so do we.
    """
    base = jsonschema.validators.validator_for(schema)
    assert base is jsonschema.Draft4Validator
    return jsonschema.validators.extend(base, {"const": jsonschema.Draft6Validator.VALIDATORS["const"]})


@pytest.fixture(scope="module")
def manifest_schema() -> dict:
    return json.loads((DATA / "MicrosoftTeams.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def localization_schema() -> dict:
    return json.loads((DATA / "MicrosoftTeams.Localization.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest_validator(manifest_schema):
    cls = _validator_class(manifest_schema)
    cls.check_schema(manifest_schema)
    return cls(manifest_schema)


@pytest.fixture(scope="module")
def localization_validator(localization_schema):
    cls = _validator_class(localization_schema)
    cls.check_schema(localization_schema)
    return cls(localization_schema)


def _errors(validator, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


# --------------------------------------------------------------------------- a small, independent PNG reader


def read_png(data: bytes) -> tuple[dict, list[list[tuple[int, int, int, int]]]]:
    """Parse a PNG: check signature and CRCs, inflate IDAT, undo filters 0-4. Returns (IHDR, RGBA rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    ihdr = {"width": width, "height": height, "bit_depth": depth, "color_type": ctype, "interlace": interlace}
    assert (depth, ctype, comp, filt, interlace) == (8, 6, 0, 0, 0), "expected 8-bit RGBA, non-interlaced"
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride, bpp = width * 4, 4
    assert len(raw) == height * (stride + 1)
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                raise AssertionError(f"bad filter type {ftype}")
            line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x * 4 : x * 4 + 4]) for x in range(width)])
        prev = line
    return ihdr, rows


def _unzip(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


# --------------------------------------------------------------------------- the schemas themselves


def test_schemas_are_the_official_v1_19_ones(manifest_schema, localization_schema):
    assert manifest_schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert manifest_schema["properties"]["manifestVersion"]["const"] == m.MANIFEST_VERSION == "1.19"
    assert manifest_schema["definitions"]["guid"]["pattern"] == "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
    assert localization_schema["required"] == ["name.short", "name.full", "description.short", "description.full"]
    # Only internal references, which jsonschema resolves against the document itself.
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', json.dumps(manifest_schema))
    assert refs and all(ref.startswith("#/") for ref in refs)


def test_schema_url_matches_manifest_version():
    manifest = build_manifest(APP_ID)
    assert manifest["manifestVersion"] == m.MANIFEST_VERSION
    assert manifest["$schema"] == (
        f"https://developer.microsoft.com/json-schemas/teams/v{manifest['manifestVersion']}/MicrosoftTeams.schema.json"
    )
    assert m.build_localization(KHM_APP)["$schema"].endswith(
        f"/v{m.MANIFEST_VERSION}/MicrosoftTeams.Localization.schema.json")


# --------------------------------------------------------------------------- manifest


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"valid_domains": ["hms.khm.uio.no", "*.uio.no"], "version": "2.10.3"},
        {"name_short": "HMS-hjulet KHM", "developer_name": "Universitetet i Oslo"},
    ],
)
def test_manifest_is_valid_against_official_schema(manifest_validator, kwargs):
    manifest = build_manifest(APP_ID, **kwargs)
    assert _errors(manifest_validator, manifest) == []


def test_manifest_content():
    manifest = build_manifest(APP_ID, valid_domains=["hms.khm.uio.no", "hms.khm.uio.no"])
    assert manifest["id"] == APP_ID
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert bot["supportsFiles"] is True and bot["isNotificationOnly"] is False
    assert manifest["permissions"] == ["identity", "messageTeamMembers"]
    assert manifest["validDomains"] == ["hms.khm.uio.no"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert manifest["localizationInfo"] == {
        "defaultLanguageTag": "nb-NO",
        "additionalLanguages": [{"languageTag": "en", "file": "en.json"}],
    }
    assert "webApplicationInfo" not in manifest
    assert manifest["developer"]["websiteUrl"].startswith("https://www.khm.uio.no/")
    assert "brannvernrunde" in manifest["description"]["full"]


BROKEN = {
    "missing developer": lambda d: d.pop("developer"),
    "wrong manifestVersion": lambda d: d.__setitem__("manifestVersion", "1.18"),
    "id not a GUID": lambda d: d.__setitem__("id", "hms-hjulet"),
    "botId not a GUID": lambda d: d["bots"][0].__setitem__("botId", "not-a-guid"),
    "lower-case groupchat scope": lambda d: d["bots"][0].__setitem__("scopes", ["personal", "groupchat"]),
    "11 commands": lambda d: d["bots"][0]["commandLists"][0]["commands"].append({"title": "x", "description": "y"}),
    "33-char title": lambda d: d["bots"][0]["commandLists"][0]["commands"][0].__setitem__("title", "x" * 33),
    "129-char description": lambda d: d["bots"][0]["commandLists"][1]["commands"][0].__setitem__(
        "description", "x" * 129
    ),
    "81-char short description": lambda d: d["description"].__setitem__("short", "x" * 81),
    "http developer URL": lambda d: d["developer"].__setitem__("privacyUrl", "ftp://khm.uio.no"),
    "accent colour name": lambda d: d.__setitem__("accentColor", "green"),
    "unknown top-level property": lambda d: d.__setitem__("packageName", "no.uio.khm.hms"),
    "two bots": lambda d: d["bots"].append(copy.deepcopy(d["bots"][0])),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_schema_check_is_live(manifest_validator, breakage):
    manifest = copy.deepcopy(build_manifest(APP_ID))
    BROKEN[breakage](manifest)
    assert _errors(manifest_validator, manifest), f"schema accepted a manifest with {breakage}"


def test_manifest_without_bots_is_not_what_we_ship(manifest_validator):
    # The v1.19 schema does not require "bots" (a tab-only app is valid), so guard it ourselves.
    manifest = build_manifest(APP_ID)
    assert len(manifest["bots"]) == 1
    del manifest["bots"]
    assert _errors(manifest_validator, manifest) == []  # documents the schema's leniency


# --------------------------------------------------------------------------- app id and other inputs


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-guid",
        "3fa85f64-5717-4562-b3fc-2c963f66afa",  # one digit short
        "3fa85f64-5717-4562-b3fc-2c963f66afa6a",
        "3fa85f6457174562b3fc2c963f66afa6",  # no hyphens
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
        "urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3fa85f64-5717-4562-b3fc-2c963f66afg6",
        "00000000-0000-0000-0000-000000000000",
        None,
    ],
)
def test_non_guid_app_id_is_rejected(bad):
    with pytest.raises(ValueError, match="GUID"):
        build_manifest(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GUID"):
        build_package(bad)  # type: ignore[arg-type]


def test_app_id_is_normalised():
    manifest = build_manifest("  3FA85F64-5717-4562-B3FC-2C963F66AFA6\n")
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name_short": "x" * 31}, "name_short"),
        ({"developer_name": "Kulturhistorisk museum, Universitetet i Oslo"}, "developer_name"),
        ({"website_url": "http://www.khm.uio.no/"}, "https"),
        ({"terms_url": ""}, "terms_url"),
        ({"version": "1.0"}, "semver"),
        ({"version": "01.0.0"}, "semver"),
        ({"valid_domains": ["https://www.khm.uio.no"]}, "host"),
        ({"valid_domains": [f"d{i}.uio.no" for i in range(17)]}, "16"),
    ],
)
def test_bad_inputs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_manifest(APP_ID, **kwargs)


# --------------------------------------------------------------------------- commands


def test_command_lists_within_limits():
    manifest = build_manifest(APP_ID)
    lists = manifest["bots"][0]["commandLists"]
    assert [cl["scopes"] for cl in lists] == [["personal"], ["team"], ["groupChat"]]
    for command_list in lists:
        commands = command_list["commands"]
        assert 1 <= len(commands) <= m.MAX_COMMANDS_PER_LIST == 10
        titles = [c["title"] for c in commands]
        assert len(set(titles)) == len(titles)
        for command in commands:
            assert 0 < len(command["title"]) <= 32
            assert 0 < len(command["description"]) <= 128
    titles = [c["title"] for c in lists[0]["commands"]]
    for expected in ("hva forfaller denne måneden", "forsinket", "mine oppgaver", "start brannvernrunde", "hjelp"):
        assert expected in titles
    for command in m.COMMANDS:
        assert len(command.title_en) <= 32 and len(command.description_en) <= 128
    assert len({c.key for c in m.COMMANDS}) == len(m.COMMANDS)


def test_command_key_understands_both_languages():
    assert m.command_key("hva forfaller denne måneden?") == "due_this_month"
    assert m.command_key("  What is due   this month ") == "due_this_month"
    assert m.command_key("Start brannvernrunde") == "start_fire_round"
    assert m.command_key("start fire safety round") == "start_fire_round"
    assert m.command_key("årsrapport") == m.command_key("annual report") == "annual_report"
    assert m.command_key("lag kaffe") is None


# --------------------------------------------------------------------------- en.json


def test_english_strings_are_valid_against_localization_schema(localization_validator):
    english = m.build_localization(KHM_APP)
    assert _errors(localization_validator, english) == []
    assert english["name.short"] == "HMS-hjulet"


def test_english_strings_cover_every_command_and_point_at_real_manifest_paths():
    manifest = build_manifest(APP_ID)
    english = m.build_localization(KHM_APP)
    for i, command_list in enumerate(manifest["bots"][0]["commandLists"]):
        for j, _command in enumerate(command_list["commands"]):
            for field in ("title", "description"):
                assert f"bots[0].commandLists[{i}].commands[{j}].{field}" in english
    for key in english:
        match = re.fullmatch(r"bots\[0\]\.commandLists\[(\d)\]\.commands\[(\d+)\]\.(title|description)", key)
        if match:
            i, j, field = int(match[1]), int(match[2]), match[3]
            assert manifest["bots"][0]["commandLists"][i]["commands"][j][field]  # the path exists
    assert english["bots[0].commandLists[0].commands[0].title"] == "what is due this month"


@pytest.mark.parametrize(
    "breakage",
    ["missing name.full", "command index 10", "long title", "unknown key"],
)
def test_localization_schema_check_is_live(localization_validator, breakage):
    english = m.build_localization(KHM_APP)
    if breakage == "missing name.full":
        del english["name.full"]
    elif breakage == "command index 10":
        english["bots[0].commandLists[0].commands[10].title"] = "extra"
    elif breakage == "long title":
        english["bots[0].commandLists[2].commands[9].title"] = "x" * 33
    else:
        english["bots.commands.title"] = "x"
    assert _errors(localization_validator, english)


# --------------------------------------------------------------------------- package and icons


def test_package_layout():
    package = build_package(APP_ID, valid_domains=["hms.khm.uio.no"])
    files = _unzip(package)
    assert sorted(files) == sorted(["manifest.json", "color.png", "outline.png", "en.json"])
    assert all("/" not in name and "\\" not in name for name in files)
    manifest = json.loads(files["manifest.json"].decode("utf-8"))
    assert manifest == build_manifest(APP_ID, valid_domains=["hms.khm.uio.no"])
    assert not files["manifest.json"].startswith(b"\xef\xbb\xbf")
    assert "måneden" in files["manifest.json"].decode("utf-8")  # real UTF-8, not \u escapes
    assert manifest["icons"]["color"] in files and manifest["icons"]["outline"] in files
    for language in manifest["localizationInfo"]["additionalLanguages"]:
        assert language["file"] in files
    assert json.loads(files["en.json"].decode("utf-8")) == m.build_localization(KHM_APP)


def test_package_passes_kwargs_and_is_deterministic(localization_validator, manifest_validator):
    first = build_package(APP_ID, name_short="HMS KHM", version="1.2.3")
    assert first == build_package(APP_ID, name_short="HMS KHM", version="1.2.3")
    files = _unzip(first)
    manifest = json.loads(files["manifest.json"])
    english = json.loads(files["en.json"])
    assert manifest["version"] == "1.2.3" and manifest["name"]["short"] == english["name.short"] == "HMS KHM"
    assert _errors(manifest_validator, manifest) == [] and _errors(localization_validator, english) == []


def test_icon_sizes_from_ihdr():
    files = _unzip(build_package(APP_ID))
    for name, size in (("color.png", 192), ("outline.png", 32)):
        ihdr, rows = read_png(files[name])
        assert (ihdr["width"], ihdr["height"]) == (size, size), name
        assert len(rows) == size and all(len(row) == size for row in rows)
        # And the raw IHDR bytes say the same: width and height right after the chunk type.
        assert struct.unpack(">II", files[name][16:24]) == (size, size)


def test_outline_icon_is_only_white_and_transparent():
    _, rows = read_png(m.outline_icon_png())
    pixels = [p for row in rows for p in row]
    for r, g, b, a in pixels:
        assert a == 0 or ((r, g, b) == (255, 255, 255) and a == 255), (r, g, b, a)
    white = sum(1 for p in pixels if p[3] == 255)
    assert 0.15 * len(pixels) < white < 0.75 * len(pixels)  # a visible shape, not a blank or a block
    assert rows[0][0][3] == 0 and rows[16][16][3] == 255  # transparent corner, white hub


def test_color_icon_is_full_colour_and_opaque():
    _, rows = read_png(m.color_icon_png())
    pixels = [p for row in rows for p in row]
    assert all(p[3] == 255 for p in pixels)
    distinct = {p[:3] for p in pixels}
    assert len(distinct) > 6
    assert rows[0][0][:3] == tuple(int(m.ACCENT_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    assert {p[:3] for p in pixels} != {(255, 255, 255)}


def test_encode_png_round_trips_and_checks_input():
    rgba = bytes(range(2 * 3 * 4))
    ihdr, rows = read_png(m.encode_png(2, 3, rgba))
    assert (ihdr["width"], ihdr["height"]) == (2, 3)
    assert bytes(v for row in rows for p in row for v in p) == rgba
    with pytest.raises(ValueError):
        m.encode_png(2, 3, rgba[:-1])
