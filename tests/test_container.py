"""The container image, reproduced without a container engine (none runs on these machines): the Dockerfile's
promises are checked as written, and its runtime is rebuilt from it and started.

The reproduction builds the bot's wheel from the files the Dockerfile's build stage copies, installs it into a
fresh virtual environment beside the packages of requirements.lock (copied file by file from this environment,
which scripts/setup installed from the same lock), and runs the Dockerfile's CMD with its ENV, in its WORKDIR, as
a user who cannot write there: as root, the `nobody` user (setpriv); otherwise the tests' own user with the
application folder made read-only. Only the data folder is writable. Then the Dockerfile's HEALTHCHECK must pass.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, create_app
from bot.settings import DATABASE_FILE, Settings, default_data_dir
from hms.config import HmsConfig
from tests.e2e_support import free_port
from tests.lockfile import ROOT, RUNTIME_LOCK, read_lock

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), comments dropped and continuation lines joined."""
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions per build stage (the first list holds what comes before the first FROM)."""
    out: list[list[tuple[str, str]]] = [[]]
    for keyword, args in instructions():
        if keyword == "FROM":
            out.append([])
        out[-1].append((keyword, args))
    return out


def final_env() -> dict[str, str]:
    """The ENV of the image's last stage (`$PATH` left to the caller)."""
    env: dict[str, str] = {}
    for keyword, args in stages()[-1]:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def one(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [args for k, args in stage if k == keyword]
    assert len(found) == 1, f"expected one {keyword} in the stage, found {found}"
    return found[0]


# -- what the Dockerfile promises --------------------------------------------------------------------------------


def test_the_dockerfile_pins_its_base_installs_the_lock_in_its_own_layer_and_probes_readiness() -> None:
    preamble, *built = stages()
    base = dict(preamble)["ARG"].partition("=")[2]
    assert base.startswith("python:3.11-slim") and "@sha256:" in base and len(base.partition("@sha256:")[2]) == 64
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for stage in built for k, args in stage if k == "FROM")

    final = built[-1]
    runs = [args for k, args in final if k == "RUN"]
    # the locked dependencies come first, with nothing of the bot's source copied before them: a change to the
    # code rebuilds from the bot's own layer on
    assert [k for k, _ in final[:3]] == ["FROM", "COPY", "RUN"]
    assert final[1][1] == "requirements.lock /app/requirements.lock"
    assert "--require-hashes" in runs[0] and "-r /app/requirements.lock" in runs[0] and "hms_hjulet" not in runs[0]
    assert "hms_hjulet-" in runs[1] and "--no-index" in runs[1]

    env = final_env()
    assert env["HMS_DATA_DIR"] == "/data" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert json.loads(one(final, "VOLUME")) == ["/data"]
    assert one(final, "WORKDIR") == "/app"
    user = one(final, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    assert any("chown 10001:10001 /data" in r for r in runs) and not any("chown" in r and "/app" in r for r in runs)
    assert json.loads(one(final, "CMD")) == ["hms-bot", "serve"]

    options, _, command = one(final, "HEALTHCHECK").partition(" CMD ")
    assert "--start-period=" in options
    probe = json.loads(command)  # exec form: a JSON array, no shell
    assert isinstance(probe, list) and "/readyz" in " ".join(probe)


def test_the_build_context_leaves_out_the_checkouts_bulk() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*", "everything is left out unless let in"
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {src for k, args in instructions() if k == "COPY" and "--from" not in args for src in args.split()[:-1]}
    assert copied <= let_in | {"."}, f"copied but ignored: {copied - let_in}"
    assert not {".venv", "playground/node_modules", "var", ".git", "tests", "bench"} & let_in


# -- the data folder -------------------------------------------------------------------------------------------


def test_the_database_lives_in_the_data_folder_wherever_the_command_runs(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("HMS_DATA_DIR", str(tmp_path / "data"))
    for cwd in (tmp_path, ROOT):
        monkeypatch.chdir(cwd)
        assert Settings().database_url == f"sqlite:///{tmp_path / 'data' / DATABASE_FILE}"
    monkeypatch.setenv("HMS_DATA_DIR", "relative")  # a relative folder is taken from where the bot started
    assert Settings().data_dir == ROOT / "relative"
    monkeypatch.setenv("DATABASE_URL", "postgresql://hms@127.0.0.1/hms")
    assert Settings().database_url == "postgresql://hms@127.0.0.1/hms"
    # unset, it is the user's data folder, not the current one
    monkeypatch.delenv("HMS_DATA_DIR")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == default_data_dir() == tmp_path / "xdg" / "hms-hjulet"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings().database_url == f"sqlite:///{tmp_path}/home/.local/share/hms-hjulet/{DATABASE_FILE}"


async def test_local_mode_on_the_demo_organisation_does_not_warn(khm: HmsConfig, db_path: Path) -> None:
    settings = Settings(app_id="", database_url=f"sqlite:///{db_path}")
    app = create_app(settings, config=khm, runtime=Runtime(dev=True, scheduler=False))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        ready = await client.get("/readyz")
        assert (ready.status, await ready.json()) == (200, {"status": "ready"})


# -- the image's runtime, reproduced -----------------------------------------------------------------------------


@dataclass
class Image:
    """The image's application folder (/app), its virtual environment, and the wheel it was installed from."""

    app: Path
    venv: Path
    wheel: Path
    data: Path
    user: tuple[int, int] | None  # (uid, gid) the bot runs as, None: the tests' own user

    def run(self, argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
        prefix = [] if self.user is None else [
            "setpriv", f"--reuid={self.user[0]}", f"--regid={self.user[1]}", "--clear-groups", "--"]
        return subprocess.Popen(prefix + argv, env=env, cwd=self.app, text=True, **kwargs)  # type: ignore[call-overload]


def _build_wheel(out: Path) -> Path:
    """The build stage: copy what it copies, then build the wheel without downloading anything."""
    src = out / "src"
    for keyword, args in stages()[1]:
        if keyword != "COPY":
            continue
        *sources, _dest = args.split()
        for pattern in sources:
            for found in glob.glob(pattern, root_dir=ROOT):
                target = src / found
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / found).is_dir():
                    shutil.copytree(ROOT / found, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy2(ROOT / found, target)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(out / "wheels"), "."], cwd=src, check=True)
    (wheel,) = (out / "wheels").glob("hms_hjulet-*.whl")
    return wheel


def _copy_locked_packages(site: Path) -> None:
    """The lock layer: every package requirements.lock installs on this platform, its files as installed here."""
    for name, pin in read_lock(RUNTIME_LOCK).items():
        if not pin.applies():
            continue
        dist = metadata.distribution(name)
        assert dist.version == pin.version
        base = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file))).resolve()
            if source.is_relative_to(base) and source.is_file():  # scripts outside site-packages stay out
                target = site / source.relative_to(base)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def _interpreter(user: tuple[int, int] | None) -> str:
    """A Python 3.11 the bot's user can run (as the image's /usr/local/bin/python is): this one, unless the user
    cannot reach it (a Python installed under root's home folder), then the system's."""
    here = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if user is None:
        return here
    for candidate in (here, "/usr/local/bin/python3.11", "/usr/bin/python3.11"):
        check = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", "--", "/usr/bin/test",
                 "-x", candidate]
        if os.path.exists(candidate) and subprocess.run(check).returncode == 0:
            return candidate
    pytest.fail(f"no Python 3.11 that user {user[0]} can run (tried {here}, /usr/local/bin/python3.11 and "
                "/usr/bin/python3.11): install Debian's python3.11")


def _make_read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    # not under pytest's temporary folder: that is private to the tests' user, and the bot runs as another
    base = Path(tempfile.mkdtemp(prefix="hms-image-"))
    base.chmod(0o755)
    try:
        user = None if os.geteuid() != 0 else (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
        wheel = _build_wheel(base / "build")
        app = base / "app"
        venv = app / "venv"
        subprocess.run([_interpreter(user), "-m", "venv", "--without-pip", str(venv)], check=True)
        site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
        _copy_locked_packages(site)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                        "--no-deps", "--no-index", "--no-compile", str(wheel)], check=True)
        data = base / "data"
        data.mkdir(mode=0o700)
        if user is not None:
            os.chown(data, *user)
        else:  # the tests' own user can write anything it owns: take the write bits away
            _make_read_only(app)
        yield Image(app=app, venv=venv, wheel=wheel, data=data, user=user)
    finally:
        for path in [base, *base.rglob("*")]:  # give the write bits back so the folder can go
            if not path.is_symlink() and path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_the_wheel_carries_the_organisation_files_and_every_module(image: Image) -> None:
    names = set(zipfile.ZipFile(image.wheel).namelist())
    assert {"hms/orgfiles/khm.yaml", "hms/orgfiles/examples/faculty.yaml"} <= names
    tracked = subprocess.run(["git", "ls-files", "--", "hms", "storage", "cards", "usecases", "bot", "scheduler",
                              "cli", "teamsapp", "playground/*.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    modules = {name for name in tracked if name.endswith((".py", ".yaml", ".mako", ".ini"))}
    assert modules and modules <= names, f"not in the wheel: {sorted(modules - names)}"


def _env(image: Image, port: int) -> dict[str, str]:
    env = final_env()
    env.update({
        "PATH": f"{image.venv / 'bin'}:/usr/bin:/bin", "HMS_DATA_DIR": str(image.data), "PORT": str(port),
        "HOME": "/nonexistent", "HMS_HOST": "127.0.0.1",
        # a bot facing Teams, but everything it could reach is on loopback, and it has nobody to message
        "MicrosoftAppId": "11111111-2222-3333-4444-555555555555", "MicrosoftAppPassword": "secret",
        "MicrosoftAppTenantId": "5b0c9a31-8e7d-4c2b-b1a0-9d8e7f6a5b4c", "HMS_SCHEDULER": "false",
        "HMS_OPENID_METADATA_URL": "http://127.0.0.1:9/openid", "HMS_TOKEN_ENDPOINT": "http://127.0.0.1:9/token",
    })
    return env


def test_the_installed_package_finds_its_organisation_file_from_anywhere(image: Image) -> None:
    env = _env(image, 0)
    probe = image.run(["python", "-c", "from hms.config import DEFAULT_CONFIG_PATH as p, load_config as l; "
                       "print(p, len(l(p).people))"], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    path, people = out.split()
    assert Path(path).is_relative_to(image.venv) and path.endswith("hms/orgfiles/khm.yaml") and int(people) > 10


def test_the_image_starts_as_a_user_who_can_write_only_the_data_folder(image: Image) -> None:
    files_before = sorted(p for p in image.app.rglob("*"))
    port = free_port()
    env = _env(image, port)
    with tempfile.TemporaryFile("w+") as log:
        bot = image.run(json.loads(one(stages()[-1], "CMD")), env, stdout=log, stderr=subprocess.STDOUT)
        try:
            probe = json.loads(one(stages()[-1], "HEALTHCHECK").partition(" CMD ")[2])
            deadline = time.monotonic() + 60  # the HEALTHCHECK's start period
            while True:
                if image.run(probe, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(10) == 0:
                    break
                assert bot.poll() is None, f"the bot stopped:\n{_read(log)}"
                assert time.monotonic() < deadline, f"not ready within the start period:\n{_read(log)}"
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
                ready = json.load(response)
        finally:
            bot.send_signal(signal.SIGTERM)
            bot.wait(30)
        output = _read(log)
    # the bundled demo organisation, started without --dev: it says so, loudly, at start and when probed
    assert ready["status"] == "ready" and ready["warning"].startswith("DEMO DATA:")
    assert "HMS_CONFIG" in ready["warning"]
    assert "WARNING" in output and "DEMO DATA:" in output and "Traceback" not in output
    # SQLite went to the data folder; nothing was written anywhere in /app (it could not have been)
    assert (image.data / DATABASE_FILE).is_file()
    if image.user is not None:
        assert (image.data / DATABASE_FILE).stat().st_uid == image.user[0]
    assert sorted(p for p in image.app.rglob("*")) == files_before


def _read(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return log.read()  # type: ignore[attr-defined,no-any-return]
