"""Tables of handlers keyed by a name (an activity kind, an invoke name, a card verb), as aiogram's routers do:
a new kind of input is one registration in the room it belongs to, and what nobody registered falls through to
the one answer the table's owner gives for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

H = TypeVar("H")


class Router(Generic[H]):
    """Handlers by name; `include` merges another room's router (a name may be registered once only)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: dict[str, H] = {}

    def register(self, key: str, handler: H) -> None:
        """Route `key` to `handler`; registering a name twice is a programming error, caught at start."""
        if key in self._handlers:
            raise ValueError(f"{self.name}: {key!r} is registered twice")
        self._handlers[key] = handler

    def on(self, *keys: str) -> Callable[[H], H]:
        """A decorator that registers a function for each of `keys` and returns it unchanged."""
        def decorate(handler: H) -> H:
            for key in keys:
                self.register(key, handler)
            return handler
        return decorate

    def include(self, other: Router[H]) -> Router[H]:
        """Add every route of `other` (a room's own router) to this one."""
        for key, handler in other._handlers.items():
            self.register(key, handler)
        return self

    def route(self, key: object) -> H | None:
        """The handler for `key`, or None when nobody registered it (or it is not a name at all)."""
        return self._handlers.get(key) if isinstance(key, str) else None

    def keys(self) -> frozenset[str]:
        return frozenset(self._handlers)
