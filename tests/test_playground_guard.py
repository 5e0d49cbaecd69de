"""Tests for playground/guard.cjs, the loopback-only preload for Node.

Each test runs ``node --require playground/guard.cjs -e '<script>'``.  As an
extra safety net the node process is started inside a loopback-only network
namespace (``unshare -n``) when that is possible (root); the assertions do not
depend on it: they check that the guard refused the connect itself, before the
original ``net.Socket.prototype.connect`` ran (no socket handle was created).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARD = ROOT / "playground" / "guard.cjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """``unshare -n`` wrapper (loopback up) if this machine allows it, else nothing."""
    unshare, ip, sh = shutil.which("unshare"), shutil.which("ip"), shutil.which("sh")
    if not (unshare and ip and sh) or os.geteuid() != 0:
        return ()
    prefix = (unshare, "-n", sh, "-c", f'{ip} link set lo up && exec "$@"', "sh")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


def run_node(script: str, *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert GUARD.is_file(), GUARD
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_OPTIONS", "HMS_GUARD_QUIET")}
    cmd = [*_netns_prefix(), NODE, "--require", str(GUARD), "-e", script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no RESULT line:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT ") :])


# A prologue shared by the scripts: proves the guard is loaded before anything
# tries to connect anywhere (a missing guard must never lead to a real connect).
PROLOGUE = r"""
const GUARD = globalThis[Symbol.for('hms.loopbackGuard')];
if (!GUARD || !GUARD.installed) { console.log('NO GUARD'); process.exit(3); }
const net = require('net');
const http = require('http');
const dns = require('dns');
function done(obj) { console.log('RESULT ' + JSON.stringify(obj)); process.exit(0); }
"""


def test_guard_marks_itself_and_sets_statsbeat_env() -> None:
    proc = run_node(
        PROLOGUE
        + r"""
done({
  statsbeat: process.env.APPLICATION_INSIGHTS_NO_STATSBEAT,
  nodeOptions: process.env.NODE_OPTIONS || '',
});
"""
    )
    res = result_of(proc)
    assert res["statsbeat"] == "1"
    assert str(GUARD) in res["nodeOptions"], "child node processes must inherit the guard"


def test_listen_without_host_binds_loopback() -> None:
    proc = run_node(
        PROLOGUE
        + r"""
const addrs = {};
const variants = {
  'listen(port)':            (s) => { s.listen(0); },
  'listen(port, cb)':        (s, cb) => { s.listen(0, cb); },
  'listen(port, backlog, cb)': (s, cb) => { s.listen(0, 128, cb); },
  'listen({port})':          (s, cb) => { s.listen({ port: 0 }, cb); },
  'listen()':                (s) => { s.listen(); },
  'listen(cb)':              (s, cb) => { s.listen(cb); },
  'listen("0", cb)':         (s, cb) => { s.listen('0', cb); },
  'listen(port, "0.0.0.0")': (s, cb) => { s.listen(0, '0.0.0.0', cb); },
  'listen({port, host: "::"})': (s, cb) => { s.listen({ port: 0, host: '::' }, cb); },
  'http listen(port, cb)':   null,
};
const names = Object.keys(variants);
let pending = names.length;
for (const name of names) {
  const server = name.startsWith('http') ? http.createServer() : net.createServer();
  const finish = () => {
    if (addrs[name] !== undefined) return;
    addrs[name] = server.address().address;
    server.close();
    if (--pending === 0) done(addrs);
  };
  server.on('listening', finish);
  server.on('error', (e) => { addrs[name] = 'ERROR ' + e.code; if (--pending === 0) done(addrs); });
  if (variants[name]) variants[name](server, () => {}); else server.listen(0, () => {});
}
"""
    )
    res = result_of(proc)
    assert len(res) == 10
    for variant, address in res.items():
        assert address == "127.0.0.1", f"{variant} bound to {address}"


@pytest.mark.parametrize("host,port", [("169.254.169.254", 80), ("10.255.255.1", 443)])
def test_connect_to_non_loopback_is_refused_before_any_packet(host: str, port: int) -> None:
    proc = run_node(
        PROLOGUE
        + f"""
const HOST = {json.dumps(host)}, PORT = {port};
"""
        + r"""
const sock = net.connect(PORT, HOST);
// The original connect creates the TCP handle synchronously; the guard must not.
const handleCreated = sock._handle != null;
let connected = false;
sock.on('connect', () => { connected = true; });
sock.on('error', (err) => {
  setImmediate(() => done({
    handleCreated, connected, code: err.code, message: err.message, hmsGuard: !!err.hmsGuard,
    destroyed: sock.destroyed,
  }));
});
setTimeout(() => done({ handleCreated, connected, code: 'TIMEOUT' }), 5000);
"""
    )
    res = result_of(proc)
    assert res["handleCreated"] is False, "original connect() ran: a socket handle was created"
    assert res["connected"] is False
    assert res["code"] == "ECONNREFUSED"
    assert res["hmsGuard"] is True
    assert res["destroyed"] is True
    assert f"[guard] refused connect to {host}:{port}" in proc.stderr


def test_http_https_fetch_and_dns_are_refused_without_crashing() -> None:
    proc = run_node(
        PROLOGUE
        + r"""
const out = {};
let pending = 5;
const mark = (k, v) => { out[k] = v; if (--pending === 0) done(out); };
http.get('http://169.254.169.254/metadata/instance', () => mark('http', 'RESPONSE'))
  .on('error', (e) => mark('http', e.code));
require('https').get('https://dc.services.visualstudio.com/v2/track', () => mark('https', 'RESPONSE'))
  .on('error', (e) => mark('https', e.code));
fetch('http://10.255.255.1:8080/').then(() => mark('fetch', 'RESPONSE'),
  (e) => mark('fetch', (e.cause && e.cause.code) || String(e)));
dns.lookup('example.com', (e) => mark('dns', e ? e.code : 'RESOLVED'));
// No 'error' listener at all: must not crash the process.
const bare = net.connect({ host: '192.0.2.1', port: 9 });
bare.on('close', () => mark('bare', 'closed'));
setTimeout(() => done(Object.assign(out, { timeout: true })), 8000);
"""
    )
    res = result_of(proc)
    assert res == {
        "http": "ECONNREFUSED",
        "https": "ECONNREFUSED",
        "fetch": "ECONNREFUSED",
        "dns": "ENOTFOUND",
        "bare": "closed",
    }
    for line in (
        "[guard] refused connect to 169.254.169.254:80",
        "[guard] refused connect to dc.services.visualstudio.com:443",
        "[guard] refused connect to 10.255.255.1:8080",
        "[guard] refused connect to 192.0.2.1:9",
    ):
        assert line in proc.stderr


def test_loopback_connect_works() -> None:
    proc = run_node(
        PROLOGUE
        + r"""
const server = net.createServer((c) => { c.end('pong'); });
server.listen(0, () => {
  const port = server.address().port;
  const results = {};
  let pending = 3;
  const finish = () => { if (--pending === 0) { server.close(); done(results); } };
  for (const [name, host] of [['ipv4', '127.0.0.1'], ['localhost', 'localhost'], ['opts', null]]) {
    const sock = host ? net.connect(port, host) : net.connect({ port, host: '127.0.0.1' });
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => { results[name] = data; finish(); });
    sock.on('error', (e) => { results[name] = 'ERROR ' + e.code; finish(); });
  }
});
setTimeout(() => done({ timeout: true }), 8000);
"""
    )
    res = result_of(proc)
    assert res == {"ipv4": "pong", "localhost": "pong", "opts": "pong"}
    assert "[guard] refused" not in proc.stderr


def test_http_on_loopback_works() -> None:
    proc = run_node(
        PROLOGUE
        + r"""
const server = http.createServer((req, res) => res.end('ok ' + req.url));
server.listen(0, () => {
  const port = server.address().port;
  http.get(`http://127.0.0.1:${port}/x`, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => { const bound = server.address().address; server.close(); done({ body, bound }); });
  }).on('error', (e) => done({ error: e.code }));
});
"""
    )
    assert result_of(proc) == {"body": "ok /x", "bound": "127.0.0.1"}


# ---------------------------------------------------------------------------
# playground/launcher.py (pure parts: no Playground is started here)
# ---------------------------------------------------------------------------


def _users() -> list[dict[str, str]]:
    return [
        {"id": f"user-id-{i}", "name": f"User {i}", "aadObjectId": f"aad-{i}", "email": f"u{i}@example.com"}
        for i in range(1, 6)
    ]


def test_write_mock_config_schema(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from playground import launcher as pg

    path = pg.write_document(tmp_path / "pg.yml", pg.build_mock_config(
        current_user={"id": "user-id-0", "name": "Ingrid Lund", "aadObjectId": "aad-0", "email": "i@example.com"},
        users=_users(),
        team={
            "id": "19:team@thread.tacv2",
            "name": "Team",
            "aadGroupId": "grp",
            "channels": [{"id": "19:c@thread.tacv2", "name": "HMS"}],
        },
    ))
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text.split("\n", 1)[1])  # header comment + JSON (valid YAML 1.2)
    assert set(doc) == {"version", "tenantId", "bot", "currentUser", "users", "personalChat", "groupChat", "team"}
    assert doc["version"] == "0.1.1"
    assert len(doc["users"]) == 5
    assert set(doc["currentUser"]) == {
        "id",
        "name",
        "userPrincipleName",
        "aadObjectId",
        "givenName",
        "surname",
        "email",
    }
    assert doc["currentUser"]["givenName"] == "Ingrid" and doc["currentUser"]["surname"] == "Lund"
    with pytest.raises(pg.PlaygroundError):
        pg.build_mock_config(current_user={"aadObjectId": "x"}, users=_users()[:4], team={})


def test_build_command_always_uses_guard(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from playground import launcher as pg

    if pg.installed_version() is None:
        pytest.skip("Playground npm package not installed")
    argv = pg.build_command("http://127.0.0.1:3978/api/messages", port=56151)
    assert argv[1:3] == ["--require", str(GUARD)]
    assert argv[3].endswith("cli.js")
    assert "--disable-telemetry" in argv
    assert argv[argv.index("--service-url") + 1] == "http://127.0.0.1:56151/_connector"
    env = pg.build_env(config_path=None, env={"HTTPS_PROXY": "http://proxy.invalid:3128"})
    assert env["APPLICATION_INSIGHTS_NO_STATSBEAT"] == "1"
    assert env["TEAMSAPPTESTER_BROWSER"] == "none"
    assert "HTTPS_PROXY" not in env
