"""The PostgreSQL server the tests use: HMS_TEST_POSTGRES_URL's, else the one on 127.0.0.1:5432, else a throwaway
server of the tests' own (initdb into a temporary folder, a free loopback port, trust authentication, listening
on 127.0.0.1 only, stopped and removed at the end). As root the server runs as the `postgres` user (initdb and
postgres refuse to run as root). Where there are no server binaries the PostgreSQL tests fail with one line
saying how to get them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
BINARIES = "/usr/lib/postgresql/*/bin"
NO_BINARIES = ("no PostgreSQL answers at {where} and there are no server binaries to start one "
               f"({BINARIES}/postgres): install them (apt-get install postgresql), set HMS_TEST_POSTGRES_URL, "
               "or set HMS_SKIP_POSTGRES=1 to skip the PostgreSQL tests")


class NoServer(Exception):
    """Nothing answers and no server can be started here; the message is the one line to show."""


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def server_binaries(pattern: str = BINARIES) -> Path | None:
    """The newest PostgreSQL's bin folder with initdb, pg_ctl and postgres, or None."""
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    for found in sorted(glob.glob(pattern), key=version, reverse=True):
        folder = Path(found)
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> dict[str, Any]:
    """subprocess arguments that run the server as a non-root user when we are root (else as ourselves)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def throwaway(binaries: Path) -> Iterator[str]:
    """A PostgreSQL server of our own for as long as the block runs; yields its admin URL (database postgres)."""
    folder = Path(tempfile.mkdtemp(prefix="hms-test-pg-"))
    run_as = _as_server_user()
    if run_as:
        os.chown(folder, run_as["user"], run_as["group"])
    data, log = folder / "data", folder / "server.log"
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}

    def run(*args: str) -> None:
        done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=120, **run_as)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise NoServer(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]} {tail}")

    port = free_port()
    started = False
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--no-sync", "--no-instructions")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with contextlib.suppress(NoServer, subprocess.TimeoutExpired):
                run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def admin_url(env: Mapping[str, str] = os.environ, *, default: str = DEFAULT_URL,
              binaries: str = BINARIES) -> Iterator[str]:
    """The admin URL of the server the PostgreSQL tests use (see the module's text); raises NoServer."""
    if env.get("HMS_TEST_POSTGRES_URL"):
        yield env["HMS_TEST_POSTGRES_URL"]
        return
    url = sa.make_url(default)
    host, port = url.host or "127.0.0.1", url.port or 5432
    if answers(host, port):
        yield default
        return
    found = server_binaries(binaries)
    if found is None:
        raise NoServer(NO_BINARIES.format(where=f"{host}:{port}"))
    with throwaway(found) as own:
        yield own
