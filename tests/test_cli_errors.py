"""No traceback in front of a person: every case a person meets is one line saying what is wrong and what to do.

The command line is run as people run it (the console script in a subprocess, or `main()` with its output
captured): a PostgreSQL that cannot be reached (127.0.0.1 on a port nobody listens on), a port taken by a test
socket, a second `serve` on the same SQLite file, a reader that closes the pipe before the command writes, an
export onto a file where a folder is wanted. `serve` on an unreachable PostgreSQL starts anyway, answers /healthz,
says why it is not ready on /readyz, and starts for real once the database answers (a forwarder to the test
server opened on the port it was knocking at).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from pydantic import AliasChoices

from bot.app import Runtime, create_app
from bot.serving import serving
from bot.settings import Settings
from cli.main import build_parser, main
from hms.config import HmsConfig
from storage import db
from tests.conftest import ROOT

HMS_BOT = Path(sys.executable).parent / "hms-bot"  # the console script of the environment under test
PASSWORD = "not-shown-anywhere"


def closed_port() -> int:
    """A loopback port nobody listens on (bound for a moment by the kernel's choice, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL: a PostgreSQL on 127.0.0.1 at a closed port, with a password that must never be shown."""
    url = f"postgresql://hms:{PASSWORD}@127.0.0.1:{closed_port()}/hms"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    return url


def env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: local mode (no app id), the given settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.lower().startswith(("microsoftapp", "microsoft_app", "hms_", "database_url", "port"))}
    return {**clean, "LOG_LEVEL": "INFO", **extra}


def run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HMS_BOT), *args], cwd=cwd, env=env(**extra), capture_output=True, text=True,
                          timeout=60, check=False)


def one_line(err: str) -> str:
    """The only line on stderr (fails with the whole of it otherwise)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the database cannot be reached ------------------------------------------------------------------------------

COMMANDS = [
    ["due"], ["due", "--json"], ["ask", "hva forfaller denne måneden?"], ["plan"], ["plan", "--dry-run"],
    ["outbox"], ["export", "--from", "2026-01-01", "--to", "2026-12-31", "--out", "records.json"],
    ["done", "ros", "--date", "2026-11-02"], ["db", "upgrade"], ["measure", "list"], ["prune"],
    ["org", "import", str(ROOT / "hms" / "orgfiles" / "khm.yaml")], ["person", "away", "fatima.ali@khm.uio.no"],
    ["digest", "--preview"], ["annual-reports", "--year", "2026"], ["calendar", "link", "--unit"],
    ["wheel", "--year", "2026", "--out", "wheel.svg"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_says_in_one_line_which_database_it_could_not_reach(
        args: list[str], unreachable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    port = unreachable.rsplit(":", 1)[1].split("/")[0]
    assert line == (f"hms-bot: cannot reach the database postgresql://hms:***@127.0.0.1:{port}/hms: "
                    "Connection refused (DATABASE_URL says which database)")
    assert PASSWORD not in out + err and out == ""
    assert not (tmp_path / "records.json").exists()


def test_the_console_script_prints_one_line_and_fails(unreachable: str, tmp_path: Path) -> None:
    """It printed 124 lines of traceback before."""
    done = run(["due"], tmp_path, DATABASE_URL=unreachable)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("hms-bot: cannot reach the database postgresql://hms:***@127.0.0.1:")
    assert done.stdout == "" and PASSWORD not in done.stderr


def test_safe_url_hides_the_password_wherever_it_is() -> None:
    assert db.safe_url("postgresql://u:p@h:5/d") == "postgresql://u:***@h:5/d"
    assert db.safe_url("postgresql://u@h/d?sslmode=require&password=p") == \
        "postgresql://u@h/d?sslmode=require&password=***"
    assert db.safe_url("sqlite:///var/hms-bot.sqlite3") == "sqlite:///var/hms-bot.sqlite3"


# -- serve waits for PostgreSQL ------------------------------------------------------------------------------------


async def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.json()


async def until(condition_port: int, path: str, status: int, seconds: float = 30) -> dict[str, object]:
    """Poll `path` until it answers `status` (bounded); its body."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            got, body = await get(condition_port, path)
            if got == status:
                return body
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.05)


MESSAGE = {"type": "message", "id": "m1", "channelId": "msteams", "serviceUrl": "http://127.0.0.1:9/",
           "from": {"id": "29:fatima.ali"}, "recipient": {"id": "28:hms"}, "conversation": {"id": "a:chat"},
           "text": "hei"}


@contextlib.contextmanager
def process(args: list[str], cwd: Path, **extra: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([str(HMS_BOT), *args], cwd=cwd, env=env(**extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_serve_starts_without_postgresql_and_says_why_it_is_not_ready(unreachable: str,
                                                                            tmp_path: Path) -> None:
    """It printed 112 lines of traceback and stopped; the README promised /readyz 503 until the database is there."""
    port = closed_port()
    with process(["serve", "--dev", "--port", str(port)], tmp_path, DATABASE_URL=unreachable) as proc:
        assert (await until(port, "/healthz", 200)) == {"status": "alive"}
        body = await until(port, "/readyz", 503)
        assert body["status"] == "starting"
        assert body["reason"] == "database unreachable: Connection refused"
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/api/messages", json=MESSAGE) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "1"
        deadline = time.monotonic() + 30
        while int((await get(port, "/readyz"))[1]["attempts"]) < 2:  # type: ignore[call-overload]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and PASSWORD not in err
    attempts = [line for line in err.splitlines() if "not ready (attempt" in line]
    assert len(attempts) >= 2, err
    assert re.search(r"not ready \(attempt 1\): database unreachable: Connection refused at "
                     r"postgresql://hms:\*\*\*@127\.0\.0\.1:\d+/hms; trying again in \d+ s", attempts[0])
    assert "(attempt 2)" in attempts[1]
    assert "listening on http://127.0.0.1:" in err


@pytest.mark.postgres
async def test_serve_starts_for_real_once_postgresql_answers(postgres_url: str, khm: HmsConfig,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """The retries go on with backoff until the database is there; then the organisation is imported and the bot
    is ready, with nothing restarted."""
    real = sa.make_url(postgres_url)
    engine = db.create_sync_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM person"))
    port = closed_port()
    url = real.set(port=port).render_as_string(hide_password=False)
    settings = Settings(app_id="", app_password="", app_tenant_id="", database_url=url)
    app = create_app(settings, config=khm, runtime=Runtime(dev=True, scheduler=False, prepare_database=True,
                                                           retry_first=0.05, retry_most=0.2))

    caplog.set_level(logging.INFO, logger="hms.http")
    forwarding: set[asyncio.Task[object]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        forwarding.add(task)
        up_reader, up_writer = await asyncio.open_connection(real.host, real.port or 5432)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async with serving(app, settings, "127.0.0.1", 0) as site:
        status, body = await get(site.bound_port, "/readyz")
        assert status == 503 and str(body["reason"]).startswith("database unreachable")
        assert (await get(site.bound_port, "/healthz"))[0] == 200
        for _ in range(500):  # a few retries first
            if "(attempt 3)" in caplog.text:
                break
            await asyncio.sleep(0.02)
        proxy = await asyncio.start_server(forward, "127.0.0.1", port)  # the database comes up
        assert (await until(site.bound_port, "/readyz", 200, seconds=15)) == {"status": "ready"}
    proxy.close()
    for task in forwarding:  # a forwarder whose connection the bot still holds
        task.cancel()
    await asyncio.gather(*forwarding, return_exceptions=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM person")).scalar() == len(khm.people)
    engine.dispose()
    tries = [r for r in caplog.records if "not ready (attempt" in r.getMessage()]
    assert len(tries) >= 3 and all(r.exc_info is None for r in tries)
    assert any("database reachable after" in r.getMessage() for r in caplog.records)


# -- the port is taken ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("how", ["--port", "HMS_PORT"])
def test_serve_on_a_taken_port_says_which_and_how_to_choose_another(how: str, tmp_path: Path) -> None:
    with taken_port() as port:
        args, extra = (["--port", str(port)], {}) if how == "--port" else ([], {"HMS_PORT": str(port)})
        done = run(["serve", "--dev", *args], tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'hms.sqlite3'}",
                   **extra)
    assert done.returncode == 2
    assert one_line(done.stderr) == (f"hms-bot: cannot listen on 127.0.0.1:{port}: the port is in use (another "
                                     "hms-bot, or another program); choose another with --port N or HMS_PORT=N")


def test_local_on_a_taken_port_says_so_before_the_playground_starts(tmp_path: Path) -> None:
    """What `scripts/run` starts."""
    if not (ROOT / "playground" / "node_modules").is_dir():
        pytest.fail("the Playground is not installed: run scripts/setup")
    with taken_port() as port:
        done = run(["local", "--port", str(port), "--playground-port", str(closed_port()), "--workdir",
                    str(tmp_path / "local")], tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'hms.sqlite3'}")
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(f"hms-bot: cannot listen on 127.0.0.1:{port}: the port is in use")
    with taken_port() as port:  # the Playground's port
        done = run(["local", "--port", str(closed_port()), "--playground-port", str(port), "--workdir",
                    str(tmp_path / "local")], tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'hms.sqlite3'}")
    assert done.returncode == 2
    said = [line for line in done.stderr.splitlines() if line.startswith("hms-bot:")]
    assert said == [f"hms-bot: the Agents Playground: port {port} on 127.0.0.1 is already in use (choose another "
                    "with --playground-port N)"], done.stderr
    assert "Traceback" not in done.stderr


async def test_a_second_serve_on_the_same_sqlite_file_refuses_without_saying_it_listens(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'hms.sqlite3'}"
    first_port = closed_port()
    with process(["serve", "--dev", "--port", str(first_port)], tmp_path, DATABASE_URL=database):
        await until(first_port, "/readyz", 200, seconds=60)
        second = run(["serve", "--dev", "--port", str(closed_port())], tmp_path, DATABASE_URL=database)
    assert second.returncode == 2
    assert one_line(second.stderr).startswith("hms-bot: another hms-bot process is serving ")
    assert "listening" not in second.stderr


# -- a reader that goes away ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["due", "--json", "--from", "2026-01-01", "--to", "2028-12-31", "--now", "2026-11-30T10:00"],
    ["due", "--from", "2026-01-01", "--to", "2028-12-31", "--now", "2026-11-30T10:00"],
    ["outbox"], ["outbox", "--json"], ["ask", "hva forfaller denne måneden?"], ["--help"], ["due", "--help"],
    ["check-config", str(ROOT / "hms" / "orgfiles" / "khm.yaml")],
], ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(args: list[str], tmp_path: Path) -> None:
    """`hms-bot due --json | head`: BrokenPipeError in 4 of 10 runs, whenever head left before the last write.
    Here the reader is gone before the first one, every time."""
    database = f"sqlite:///{tmp_path / 'hms.sqlite3'}"
    assert run(["db", "upgrade"], tmp_path, DATABASE_URL=database).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # `head` has read its lines and exited
    try:
        done = subprocess.run([str(HMS_BOT), *args], cwd=tmp_path, env=env(DATABASE_URL=database),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == (0 if "--help" in args else 141)  # argparse's help ignores it


# -- output files, people, versions and help -----------------------------------------------------------------------


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("HMS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    return url


def test_export_onto_an_existing_file_or_folder_says_what_to_give(sqlite_env: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def said(err: str) -> str:  # the CLI's line (a handler another test left on a closed stream may add noise)
        lines = [line for line in err.splitlines() if line.startswith("hms-bot:")]
        assert len(lines) == 1, err
        return lines[0]

    period = ["export", "--from", "2026-01-01", "--to", "2026-12-31", "--locale", "en"]
    (tmp_path / "records.json").write_text("an earlier export\n")
    capsys.readouterr()
    assert main([*period, "--out", "records.json"]) == 2
    assert "records.json" in said(capsys.readouterr().err)
    assert (tmp_path / "records.json").read_text() == "an earlier export\n"
    (tmp_path / "folder.json").mkdir()
    assert main([*period, "--out", "folder.json", "--force"]) == 2
    assert said(capsys.readouterr().err) == "hms-bot: --out folder.json: Is a directory"
    assert main([*period, "--out", "missing/records.json"]) == 2
    assert said(capsys.readouterr().err) == "hms-bot: --out missing/records.json: No such file or directory"
    assert main([*period, "--out", "records.json", "--force"]) == 0
    assert capsys.readouterr().out.startswith("wrote records.json")


def test_due_for_an_unknown_person_says_so_as_ask_does(sqlite_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["due", "--person", "nobody@khm.uio.no"]) == 2
    due = one_line(capsys.readouterr().err)
    assert main(["ask", "hei", "--as", "nobody@khm.uio.no"]) == 2
    ask = one_line(capsys.readouterr().err)
    assert due == ask and due.startswith("hms-bot: nobody@khm.uio.no is not a person in ")
    assert main(["due", "--person", "fatima.ali@khm.uio.no", "--json"]) == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"hms-bot {version('hms-hjulet')}\n"


def _every_parser(parser: argparse.ArgumentParser, name: str = "hms-bot") -> Iterator[
        tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _every_parser(child, f"{name} {sub}")


def test_every_option_and_argument_has_a_help_text() -> None:
    missing = [f"{name} {action.option_strings or action.dest}" for name, parser in _every_parser(build_parser())
               for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


def _environment_names() -> list[str]:
    names = []
    for field in Settings.model_fields.values():
        assert isinstance(field.validation_alias, AliasChoices)
        names.append(str(field.validation_alias.choices[0]))
    return names


def test_serve_help_lists_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    listed = re.findall(r"^ {2}([A-Za-z_]+)", out.split("environment", 1)[1], re.MULTILINE)
    assert listed == _environment_names()
    assert "HMS_PORT or PORT  [3978]" in out and "HMS_HOST  [0.0.0.0]" in out


def test_the_readme_and_the_deployment_guide_name_every_environment_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = readme.split("## Deploying at a university", 1)[1]
    table = section[section.index("| variable |"):].split("\n\n", 1)[0]
    tests_only = {"HMS_OPENID_METADATA_URL", "HMS_TOKEN_ISSUER", "HMS_TOKEN_ENDPOINT"}  # named below the table
    assert [n for n in _environment_names() if n not in tests_only and f"`{n}`" not in table] == []
    assert all(f"`{n}`" in readme for n in tests_only)
    assert "](docs/deploy.md)" in readme
    assert "`HMS_CARD_SECRET`" in guide and "hms-bot db upgrade" in guide
