"""Shared fixtures: the bundled KHM config, and databases on SQLite and the real PostgreSQL.

PostgreSQL tests use a throw-away database created on HMS_TEST_POSTGRES_URL's server; without it, on the server
at 127.0.0.1:5432 (database `test`, user postgres); where nothing answers there, on a throwaway server the tests
start themselves from the PostgreSQL server binaries (tests/pgserver.py). Where there are none, they fail, not
skip, with one line saying how to get them, unless HMS_SKIP_POSTGRES=1 is set explicitly.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from hms.config import DEFAULT_CONFIG_PATH, HmsConfig, load_config
from storage import db
from tests import pgserver

OSLO = ZoneInfo("Europe/Oslo")


def pytest_configure(config: pytest.Config) -> None:
    """Every test runs with the loopback-only network guard (tests/netguard.py)."""
    from tests import netguard

    netguard.install()

ROOT = Path(__file__).resolve().parent.parent


def oslo(*args: int) -> dt.datetime:
    """An aware Oslo datetime, for tests."""
    return dt.datetime(*args, tzinfo=OSLO)


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test writes into the home folder: the bot's default data folder (HMS_DATA_DIR, where SQLite goes when
    DATABASE_URL is unset) is a fresh one, for this process and the commands its tests start."""
    data = tmp_path_factory.mktemp("hms-data")
    before = os.environ.get("HMS_DATA_DIR")
    os.environ["HMS_DATA_DIR"] = str(data)
    yield data
    if before is None:
        os.environ.pop("HMS_DATA_DIR", None)
    else:
        os.environ["HMS_DATA_DIR"] = before


@pytest.fixture(autouse=True)
def _no_stray_log_handlers() -> Iterator[None]:
    """A test that configures logging (`bot.logs.configure`, as `hms-bot` commands do) puts a handler on the root
    logger writing to the sys.stderr of that moment, pytest's capture stream, which is closed after the test: later
    tests then got "--- Logging error ---" and a traceback on their stderr. What a test added goes with it."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def khm() -> HmsConfig:
    return load_config(DEFAULT_CONFIG_PATH)


@pytest.fixture(scope="session")
def khm_text() -> str:
    return DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """The PostgreSQL server of this test session (tests/pgserver.py); subprocesses see it in
    HMS_TEST_POSTGRES_URL."""
    if os.environ.get("HMS_SKIP_POSTGRES") == "1":
        pytest.skip("HMS_SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    try:
        with pgserver.admin_url() as url:
            previous = os.environ.get("HMS_TEST_POSTGRES_URL")
            os.environ["HMS_TEST_POSTGRES_URL"] = url
            try:
                yield url
            finally:
                if previous is None:
                    os.environ.pop("HMS_TEST_POSTGRES_URL", None)
                else:
                    os.environ["HMS_TEST_POSTGRES_URL"] = previous
    except pgserver.NoServer as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    name = f"hms_test_{uuid.uuid4().hex[:10]}"
    admin = db.create_sync_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {postgres_admin_url} is not reachable: {' '.join(str(exc).split())[:300]}",
                    pytrace=False)
    base, _, _ = postgres_admin_url.rpartition("/")
    url = f"{base}/{name}"
    db.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _clear(url: str) -> None:
    engine = db.create_sync_engine(url)
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(sa.text(f"DELETE FROM {t}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hms.sqlite3'}"
        db.upgrade(url)
        yield url
    else:
        url = request.getfixturevalue("postgres_url")
        _clear(url)
        yield url


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("door-db") / "template.sqlite3"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_path(migrated_template: Path, tmp_path: Path) -> Path:
    """A migrated, empty SQLite file for one test (a copy: faster than migrating each time)."""
    path = tmp_path / "hms.sqlite3"
    shutil.copyfile(migrated_template, path)
    return path


@pytest.fixture
async def session(db_url: str) -> AsyncIterator[object]:
    engine = db.create_engine(db_url)
    async with db.session_factory(engine)() as s:
        yield s
    await engine.dispose()
