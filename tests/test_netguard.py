"""The test process cannot reach anything but loopback: the guard refuses before a packet leaves."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.netguard import RefusedByGuard, is_loopback


def test_non_loopback_connect_refused() -> None:
    for address in (("169.254.169.254", 80), ("10.255.255.1", 443)):
        with socket.socket() as sock, pytest.raises(RefusedByGuard):
            sock.connect(address)


def test_name_lookups_refused_and_requests_fail_fast() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("login.microsoftonline.com", 443)
    with pytest.raises(requests.ConnectionError):
        requests.get("https://login.microsoftonline.com/", timeout=2)


def test_loopback_still_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("169.254.169.254") and not is_loopback("example.org")
