"""The test command brings its own PostgreSQL: where nothing answers and HMS_TEST_POSTGRES_URL is unset, the
suite starts a throwaway server (tests/pgserver.py), uses it, and removes it; where there are no server binaries
the PostgreSQL tests fail with one line saying how to get them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import db
from tests import pgserver
from tests.conftest import ROOT


def closed_port() -> int:
    port = pgserver.free_port()
    assert not pgserver.answers("127.0.0.1", port)
    return port


@pytest.mark.skipif(pgserver.server_binaries() is None, reason="needs the PostgreSQL server binaries")
def test_a_throwaway_server_is_started_when_nothing_answers_and_removed_after() -> None:
    default = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    with pgserver.admin_url({}, default=default) as url:
        assert url != default
        port = sa.make_url(url).port
        assert port is not None and pgserver.answers("127.0.0.1", port)
        admin = db.create_sync_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            data = Path(str(conn.execute(sa.text("SHOW data_directory")).scalar()))
            conn.execute(sa.text('CREATE DATABASE "hms_own"'))
        admin.dispose()
        own = url.rpartition("/")[0] + "/hms_own"
        db.upgrade(own)  # the suite's databases are migrated like this
        engine = db.create_sync_engine(own)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar() == 0
        engine.dispose()
        assert data.is_dir()
    assert not pgserver.answers("127.0.0.1", port)
    assert not data.exists() and not data.parent.exists()


def test_without_server_binaries_the_postgres_tests_say_in_one_line_how_to_get_them(tmp_path: Path) -> None:
    default = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    with pytest.raises(pgserver.NoServer) as caught, pgserver.admin_url(
            {}, default=default, binaries=str(tmp_path / "*" / "bin")):
        pass
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install postgresql" in message and "HMS_SKIP_POSTGRES=1" in message
    assert f"127.0.0.1:{sa.make_url(default).port}" in message


def test_a_server_that_answers_or_the_configured_url_is_used_as_it_is(postgres_admin_url: str) -> None:
    with pgserver.admin_url({"HMS_TEST_POSTGRES_URL": "postgresql://someone@127.0.0.1:1/theirs"}) as url:
        assert url == "postgresql://someone@127.0.0.1:1/theirs"
    answering = sa.make_url(postgres_admin_url)
    with pgserver.admin_url({}, default=postgres_admin_url) as url:
        assert url == postgres_admin_url  # something answers there: no server of our own
    assert answering.port is not None and pgserver.answers("127.0.0.1", answering.port)


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(pgserver.server_binaries() is None or not _can_unshare(),
                    reason="needs the PostgreSQL server binaries and a network namespace (unshare -n, as root)")
def test_postgres_tests_pass_where_no_server_runs() -> None:
    """PostgreSQL tests in a network namespace of their own, where nothing listens on 127.0.0.1:5432: the suite
    starts its own server and they pass."""
    env = {k: v for k, v in os.environ.items() if k not in {"HMS_TEST_POSTGRES_URL", "HMS_SKIP_POSTGRES"}}
    pytest_cmd = (f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_storage.py "
                  "-k 'postgresql_tables or postgresql_readers_keep_rows_until' -W ignore::DeprecationWarning")
    script = f"ip link set lo up && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && {pytest_cmd}"
    done = subprocess.run(["unshare", "-n", "bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split(" passed")[0].split()[-1]) == 2, summary
