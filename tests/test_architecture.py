"""The house's arrows: which package may import which (README, "Where things live"), checked over every import
in the shipped code, module level and inside functions alike. Fails when an import runs against the arrows,
when use cases import each other in a circle, or when botbuilder leaks out of the gateway."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the packages of ours it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "hms": set(),
    "storage": {"hms"},
    "cards": {"hms"},
    "usecases": {"hms", "storage", "cards"},
    "scheduler": {"hms", "usecases"},
    "bot": {"hms", "storage", "cards", "usecases", "scheduler"},
    "teamsapp": {"hms"},
    "playground": {"hms", "bot"},
    "cli": {"hms", "storage", "cards", "usecases", "bot", "scheduler", "teamsapp", "playground"},
}
OURS = set(ALLOWED)

# third-party packages that belong to one edge only
BOTBUILDER = {"botbuilder", "botframework", "msrest"}
FORBIDDEN: dict[str, set[str]] = {
    "hms": {"aiohttp", "sqlalchemy", "sqlmodel", "alembic", "psycopg", "apscheduler"} | BOTBUILDER,
    "cards": {"aiohttp", "sqlalchemy", "sqlmodel", "apscheduler"} | BOTBUILDER,
    "storage": {"aiohttp", "apscheduler"} | BOTBUILDER,
    "usecases": {"aiohttp", "apscheduler"} | BOTBUILDER,
    "scheduler": {"aiohttp"} | BOTBUILDER,
}
GATEWAY = "bot.gateway"  # the one module that may import botbuilder (moving to the Agents SDK touches only it)


def imports(tree: ast.AST, module: str) -> Iterator[tuple[str, int]]:
    """Every module an AST imports (absolute names; relative imports resolved against `module`), with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:  # `from usecases import rounds` imports usecases.rounds
                yield f"{name}.{alias.name}", node.lineno


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def shipped_modules() -> Iterator[tuple[str, Path]]:
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts or "migrations" in path.parts:
                continue
            yield module_name(path), path


def violations(module: str, source: str) -> list[str]:
    """What in `source` (the text of `module`) runs against the arrows."""
    package = module.split(".")[0]
    found = []
    for name, line in imports(ast.parse(source), module):
        top = name.split(".")[0]
        if top in OURS and top != package and top not in ALLOWED[package]:
            found.append(f"{module}:{line} imports {name} ({package} may import {sorted(ALLOWED[package])})")
        if top in FORBIDDEN.get(package, set()):
            found.append(f"{module}:{line} imports {name} ({package} must not import {top})")
        if top in BOTBUILDER and module != GATEWAY:
            found.append(f"{module}:{line} imports {name} (botbuilder belongs in {GATEWAY} only)")
    return found


def test_every_import_follows_the_arrows() -> None:
    found = [v for module, path in shipped_modules() for v in violations(module, path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_the_checker_sees_imports_against_the_arrows() -> None:
    """The check above can fail: an import against the arrows is reported, at module level or in a function."""
    assert violations("usecases.rounds", "from bot import turns\n")
    assert violations("scheduler.jobs", "def tick():\n    from bot.app import create_app\n")
    assert violations("storage.repo", "import cards.common\n")
    assert violations("hms.wheel", "import sqlalchemy\n")
    assert violations("usecases.answers", "from botbuilder.core import TurnContext\n")
    assert violations("bot.turns", "from botbuilder.schema import Activity\n")
    assert not violations("bot.turns", "from usecases.rounds import Rounds\n")
    assert not violations("bot.gateway", "from botbuilder.core import TurnContext\n")


def _use_case_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in shipped_modules():
        if module.split(".")[0] != "usecases":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {name for name, _ in imports(tree, module) if name.startswith("usecases.")}
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports in `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_use_cases_import_each_other_without_circles() -> None:
    graph = _use_case_graph()
    assert "usecases.rounds" in graph and "usecases.answers" in graph
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_package_says_what_it_holds(package: str) -> None:
    """A newcomer finds the room: each package's docstring says what lives there; the README's map names it."""
    init = ROOT / package / "__init__.py"
    assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"| `{package}/` |" in readme
