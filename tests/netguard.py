"""A loopback-only guard for the test process: any connect to, or name lookup of, a non-loopback address is
refused before a packet leaves (the Playground has its own guard in playground/guard.cjs)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}
_original: dict[str, Any] = {}


def is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


class RefusedByGuard(ConnectionRefusedError):
    pass


def install() -> None:
    """Patch socket.connect, connect_ex and getaddrinfo for this process (idempotent)."""
    if _original:
        return
    _original.update(connect=socket.socket.connect, connect_ex=socket.socket.connect_ex,
                     getaddrinfo=socket.getaddrinfo)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            raise RefusedByGuard(f"test network guard: refused connect to {address[0]}:{address[1]}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return _original["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return int(_original["connect_ex"](self, address))

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host if isinstance(host, str) else host.decode()):
            raise socket.gaierror(socket.EAI_NONAME, f"test network guard: refused lookup of {host}")
        return _original["getaddrinfo"](host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
