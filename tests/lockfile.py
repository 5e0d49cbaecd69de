"""Reading the lock files (requirements.lock, requirements-dev.lock; made by scripts/lock) for the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?"
                  r"(?P<op>[=<>!~]=?=?)(?P<version>[^ ;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


@dataclass(frozen=True)
class Pin:
    """One locked package: its version, the operator it is pinned with, where it applies, its files' hashes."""

    name: str
    op: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies(self) -> bool:
        """Whether this platform installs it."""
        return self.marker is None or self.marker.evaluate()


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock file by canonical name (a requirement line and its --hash continuation lines)."""
    pins: dict[str, Pin] = {}
    current: dict[str, object] | None = None
    hashes: list[str] = []

    def close() -> None:
        if current is not None:
            pins[str(current["name"])] = Pin(hashes=tuple(hashes), **current)  # type: ignore[arg-type]

    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash="):
            hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _PIN.match(stripped)
        assert match, f"{path.name}: not a pinned requirement: {line!r}"
        close()
        marker = match["marker"]
        current = {"name": canonicalize_name(match["name"]), "op": match["op"], "version": match["version"],
                   "marker": Marker(marker) if marker else None}
        hashes = []
    close()
    return pins
