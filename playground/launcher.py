"""Launcher for the Microsoft 365 Agents Playground (local Teams emulator).

Stdlib only (no botbuilder imports), so tests and scripts can use it freely.

SAFETY: the Playground (npm ``@microsoft/m365agentsplayground`` 0.2.28) tries
to phone home (Application Insights) and listens on all interfaces.  This
module therefore ALWAYS starts it as::

    node --require playground/guard.cjs <cli.js> start --disable-telemetry ...

with ``APPLICATION_INSIGHTS_NO_STATSBEAT=1`` and ``TEAMSAPPTESTER_BROWSER=none``
in the environment and all proxy variables removed.  ``playground/guard.cjs``
forces listen() onto 127.0.0.1 and refuses every non-loopback connect / DNS
lookup before any packet leaves.  Never start the Playground any other way.

See docs/playground-api.md for the HTTP/WebSocket API of the running
Playground.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PACKAGE_NAME = "@microsoft/m365agentsplayground"
PACKAGE_VERSION = "0.2.28"
DEFAULT_PORT = 56150
CONFIG_ENV = "M365_AGENTS_PLAYGROUND_CONFIG_PATH"
CHANNELS = ("msteams", "directline", "webchat", "emulator", "agents")

# Environment variables that would make the Playground (axios) route traffic
# through a proxy; they are always removed from the child's environment.
_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)

# Defaults for the mock data (match docs/playground-api.md).
DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000001"
DEFAULT_BOT = {"id": "00000000-0000-0000-0000-00000000000011", "name": "HMS-hjulet"}
DEFAULT_PERSONAL_CHAT_ID = "personal-chat-id"
DEFAULT_GROUP_CHAT = {"id": "group-chat-id", "name": "Group Chat"}

_USER_FIELDS = ("id", "name", "userPrincipleName", "aadObjectId", "givenName", "surname", "email")


class PlaygroundError(RuntimeError):
    """Raised when the Playground cannot be installed, configured or started."""


# ---------------------------------------------------------------------------
# Locating things
# ---------------------------------------------------------------------------


def repo_root() -> Path:
    """The repository root (parent of ``playground/``)."""
    return Path(__file__).resolve().parent.parent


def playground_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root) / "playground" if root is not None else repo_root() / "playground"


def guard_path(root: str | os.PathLike[str] | None = None) -> Path:
    return playground_dir(root) / "guard.cjs"


def find_node() -> str:
    """Absolute path of the ``node`` executable (env ``NODE`` overrides)."""
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise PlaygroundError("node is not installed (apt-get install nodejs npm)")
    return node


def find_npm() -> str:
    npm = shutil.which("npm")
    if not npm:
        raise PlaygroundError("npm is not installed (apt-get install npm)")
    return npm


def package_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return playground_dir(root) / "node_modules" / Path(*PACKAGE_NAME.split("/"))


def cli_js(root: str | os.PathLike[str] | None = None) -> Path:
    """Path of the Playground's CLI JS, resolved from its package.json ``bin``."""
    pkg_dir = package_dir(root)
    pkg_json = pkg_dir / "package.json"
    if not pkg_json.is_file():
        raise PlaygroundError(f"{PACKAGE_NAME} is not installed in {pkg_dir.parent.parent}; run ensure_installed()")
    meta = json.loads(pkg_json.read_text(encoding="utf-8"))
    bin_field = meta.get("bin")
    if isinstance(bin_field, str):
        rel = bin_field
    elif isinstance(bin_field, Mapping) and bin_field:
        rel = bin_field.get("agentsplayground") or bin_field.get("teamsapptester") or next(iter(bin_field.values()))
    else:
        raise PlaygroundError(f"{pkg_json} has no usable 'bin' field")
    path = (pkg_dir / rel).resolve()
    if not path.is_file():
        raise PlaygroundError(f"Playground CLI {path} does not exist")
    return path


def installed_version(root: str | os.PathLike[str] | None = None) -> str | None:
    pkg_json = package_dir(root) / "package.json"
    if not pkg_json.is_file():
        return None
    return json.loads(pkg_json.read_text(encoding="utf-8")).get("version")


def ensure_installed(root: str | os.PathLike[str] | None = None, *, timeout: float = 600) -> Path:
    """Install the pinned Playground into ``playground/node_modules`` if missing.

    Uses ``npm ci`` when ``package-lock.json`` exists, else ``npm install``.
    Returns the CLI JS path.
    """
    pdir = playground_dir(root)
    if installed_version(root) != PACKAGE_VERSION:
        npm = find_npm()
        cmd = [npm, "ci"] if (pdir / "package-lock.json").is_file() else [npm, "install"]
        cmd += ["--ignore-scripts", "--no-audit", "--no-fund"]
        proc = subprocess.run(cmd, cwd=pdir, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise PlaygroundError(f"{' '.join(cmd)} failed in {pdir}:\n{proc.stdout}\n{proc.stderr}")
        if installed_version(root) != PACKAGE_VERSION:
            raise PlaygroundError(f"expected {PACKAGE_NAME}@{PACKAGE_VERSION}, got {installed_version(root)}")
    return cli_js(root)


# ---------------------------------------------------------------------------
# Mock data (".m365agentsplayground.yml")
# ---------------------------------------------------------------------------


def _user(u: Mapping[str, Any], idx: int) -> dict[str, str]:
    """Normalise a user mapping to the Playground's User schema.

    Accepts the schema's own keys plus friendlier aliases:
    ``aad_object_id``, ``upn`` / ``userPrincipalName`` / ``user_principal_name``,
    ``given_name``, ``surname`` / ``family_name``.  Missing fields are derived.
    """
    name = str(u.get("name") or f"User {idx}")
    parts = name.split()
    email = u.get("email") or u.get("mail")
    upn = (
        u.get("userPrincipleName")
        or u.get("userPrincipalName")
        or u.get("user_principal_name")
        or u.get("upn")
        or email
        or f"user{idx}@example.com"
    )
    aad = u.get("aadObjectId") or u.get("aad_object_id")
    if not aad:
        raise PlaygroundError(f"user {name!r} needs an aadObjectId")
    out = {
        "id": str(u.get("id") or f"user-id-{idx}"),
        "name": name,
        "userPrincipleName": str(upn),
        "aadObjectId": str(aad),
        "givenName": str(u.get("givenName") or u.get("given_name") or (parts[0] if parts else name)),
        "surname": str(u.get("surname") or u.get("family_name") or (parts[-1] if len(parts) > 1 else "")),
        "email": str(email or upn),
    }
    return out


def build_mock_config(
    *,
    current_user: Mapping[str, Any],
    users: Sequence[Mapping[str, Any]],
    team: Mapping[str, Any],
    tenant_id: str = DEFAULT_TENANT_ID,
    bot: Mapping[str, Any] | None = None,
    personal_chat_id: str = DEFAULT_PERSONAL_CHAT_ID,
    group_chat: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the mock-data document (schema version 0.1.1) as a dict.

    ``users`` must hold EXACTLY five users (the schema says minItems=maxItems=5).
    ``team`` = {"id", "name", "aadGroupId", "channels": [{"id", "name"}]} with at
    most ONE extra channel (the General channel is implicit: its conversation id
    is the team id).
    """
    if len(users) != 5:
        raise PlaygroundError(f"the Playground needs exactly 5 users besides the current user, got {len(users)}")
    channels = list(team.get("channels") or [])
    if len(channels) > 1:
        raise PlaygroundError("the Playground supports at most one channel besides General")
    cu = _user(current_user, 0)
    us = [_user(u, i + 1) for i, u in enumerate(users)]
    ids = [cu["id"], *(u["id"] for u in us)]
    if len(set(ids)) != len(ids):
        raise PlaygroundError("user ids must be unique")
    b = dict(DEFAULT_BOT if bot is None else bot)
    if len(str(b.get("name", ""))) > 42:
        raise PlaygroundError("bot name must be at most 42 characters")
    gc = dict(DEFAULT_GROUP_CHAT if group_chat is None else group_chat)
    team_channels = [{"id": str(c["id"]), "name": str(c["name"])} for c in channels]
    team_doc: dict[str, Any] = {
        "id": str(team.get("id") or "team-id"),
        "name": str(team.get("name") or "Team"),
        "aadGroupId": str(team.get("aadGroupId") or team.get("aad_group_id") or "00000000-0000-0000-0000-000000000031"),
        "channels": team_channels,
    }
    conv_ids = [personal_chat_id, gc["id"], team_doc["id"], *(c["id"] for c in team_channels)]
    if len(set(conv_ids)) != len(conv_ids):
        raise PlaygroundError("personal chat, group chat, team and channel ids must be unique")
    return {
        "version": "0.1.1",
        "tenantId": str(tenant_id),
        "bot": {k: str(v) for k, v in b.items()},
        "currentUser": cu,
        "users": us,
        "personalChat": {"id": str(personal_chat_id)},
        "groupChat": {"id": str(gc["id"]), "name": str(gc.get("name") or "Group Chat")},
        "team": team_doc,
    }


def write_document(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Write a mock-data document made by build_mock_config (as indented JSON, a subset of YAML)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = "# Microsoft 365 Agents Playground mock data (generated by playground/launcher.py)\n"
    p.write_text(header + json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return p


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def build_command(
    bot_endpoint: str,
    *,
    port: int = DEFAULT_PORT,
    channel: str = "msteams",
    root: str | os.PathLike[str] | None = None,
    service_url: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The exact argv used by :func:`start` (guard preload always included)."""
    if channel not in CHANNELS:
        raise PlaygroundError(f"unknown channel {channel!r}; one of {CHANNELS}")
    guard = guard_path(root)
    if not guard.is_file():
        raise PlaygroundError(f"network guard {guard} is missing; refusing to start the Playground")
    return [
        find_node(),
        "--require",
        str(guard),
        str(cli_js(root)),
        "start",
        "--disable-telemetry",
        "--app-endpoint",
        bot_endpoint,
        "--channel-id",
        channel,
        "--port",
        str(int(port)),
        "--service-url",
        service_url or f"http://127.0.0.1:{int(port)}/_connector",
        *extra_args,
    ]


def build_env(
    *,
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    base = dict(os.environ)
    if env:
        base.update(env)
    for var in _PROXY_VARS:
        base.pop(var, None)
    base["NO_PROXY"] = base["no_proxy"] = "localhost,127.0.0.1,::1"
    base["APPLICATION_INSIGHTS_NO_STATSBEAT"] = "1"
    base["TEAMSAPPTESTER_BROWSER"] = "none"
    base.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    base.pop("APPINSIGHTS_INSTRUMENTATIONKEY", None)
    if config_path is not None:
        base[CONFIG_ENV] = str(Path(config_path).resolve())
    if log_path is not None:
        base["M365_AGENTS_PLAYGROUND_LOGFILE"] = str(log_path)
    return base


def start(
    bot_endpoint: str,
    *,
    port: int = DEFAULT_PORT,
    config_path: str | os.PathLike[str] | None = None,
    channel: str = "msteams",
    env: Mapping[str, str] | None = None,
    root: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    stdout: Any = None,
    stderr: Any = subprocess.STDOUT,
    service_url: str | None = None,
) -> subprocess.Popen:
    """Start the Playground and return the process (not yet ready: see wait_ready).

    ``config_path`` is passed through ``M365_AGENTS_PLAYGROUND_CONFIG_PATH``
    (the CLI has no flag for it); without it the built-in mock data is used
    (with a random personal-chat id).  The Playground writes a log file to
    ``./devTools/m365agentsplayground.log`` relative to its cwd unless
    ``log_path`` is given; the cwd defaults to the config file's folder.
    stdout/stderr go to ``<cwd>/playground.out`` unless ``stdout`` is given
    (pass ``subprocess.PIPE`` only if you read it).

    NB: if ``port`` is taken the Playground would silently pick a random port,
    so start() refuses to start in that case (PlaygroundError).
    """
    if not port_is_free(port):
        raise PlaygroundError(f"port {port} on 127.0.0.1 is already in use")
    argv = build_command(bot_endpoint, port=port, channel=channel, root=root, service_url=service_url)
    if config_path is not None and not Path(config_path).is_file():
        raise PlaygroundError(f"mock config {config_path} does not exist")
    if cwd is None:
        cwd = Path(config_path).resolve().parent if config_path is not None else playground_dir(root)
    if log_path is None:
        log_path = Path(cwd) / "m365agentsplayground.log"
    full_env = build_env(config_path=config_path, env=env, log_path=log_path)
    out_file = None
    if stdout is None:
        # Not a pipe by default: nobody might read it and the Playground would block.
        out_file = open(Path(cwd) / "playground.out", "ab")
        stdout = out_file
    try:
        return subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    finally:
        if out_file is not None:
            out_file.close()


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (checked by binding it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: TIME_WAIT leftovers don't count, a live listener does (Linux).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", int(port)))
        except OSError:
            return False
    return True


def wait_ready(port: int = DEFAULT_PORT, timeout: float = 30.0, *, proc: subprocess.Popen | None = None) -> None:
    """Poll ``GET http://127.0.0.1:{port}/_debug/ping`` until it answers ``pong``."""
    url = f"http://127.0.0.1:{int(port)}/_debug/ping"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = ""
            if proc.stdout is not None:
                try:
                    out = proc.stdout.read() or ""
                except Exception:  # noqa: BLE001
                    out = ""
            raise PlaygroundError(f"Playground exited with {proc.returncode} before it was ready:\n{out}")
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"pong":
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise PlaygroundError(f"Playground not ready on 127.0.0.1:{port} after {timeout}s ({last})")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """Stop the Playground process (SIGTERM, then SIGKILL) and return its exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=timeout)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
    return proc.returncode
