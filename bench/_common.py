"""Small helpers shared by the benchmark servers: argument parsing and the loopback guard."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


def server_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1 only)")
    return parser.parse_args()


def require_loopback(url: str) -> None:
    """Refuse any serviceUrl that is not the local mock connector: the benchmark never leaves 127.0.0.1."""
    if urlsplit(url).hostname != LOOPBACK:
        raise ValueError(f"refusing non-loopback serviceUrl {url!r}")
