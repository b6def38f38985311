"""The suite's own PostgreSQL server (tests/support/postgres.py) and its fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from support.crash import write_crash_campaign
from support.postgres import (
    Backend,
    PgDatabase,
    PostgresServer,
    PostgresUnavailable,
    find_bindir,
    server_account,
    sweep_leftovers,
)

from campaign.config.model import load_campaign

TESTS = Path(__file__).resolve().parents[1]


def _user_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema') ORDER BY tablename"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_test_gets_an_empty_database_of_its_own(pg_url: str, turn: str) -> None:
    # Whichever turn runs second sees the other's table if a database were shared.
    assert _user_tables(pg_url) == []
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE marker (turn text)")
        conn.execute("INSERT INTO marker VALUES (%s)", (turn,))
    assert _user_tables(pg_url) == ["marker"]


def test_a_dropped_database_is_gone_even_with_a_connection_left_open(
    postgres_server: PostgresServer,
) -> None:
    database = postgres_server.create_database()
    left_open = psycopg.connect(database.url)
    try:
        postgres_server.drop_database(database.name)
        with psycopg.connect(postgres_server.admin_url()) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (database.name,)
            ).fetchone()
        assert found == (0,)
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
    finally:
        left_open.close()


def test_the_server_refuses_a_wrong_or_missing_password(
    postgres_server: PostgresServer,
    pg_url_no_password: str,
    pg_password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not postgres_server.started_here:
        pytest.skip("the server of CAMPAIGN_TEST_PG_URL authenticates as its operator chose")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    wrong = pg_url_no_password.replace("campaign_test@", "campaign_test:not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_url_no_password)
    monkeypatch.setenv("PGPASSWORD", pg_password)
    with psycopg.connect(pg_url_no_password) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_url_without_password_works_with_pgpassword(
    pg_url: str, pg_url_no_password: str, pg_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pg_password not in pg_url_no_password
    assert pg_password in pg_url
    monkeypatch.setenv("PGPASSWORD", pg_password)
    with psycopg.connect(pg_url_no_password) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == name


def test_reprs_never_show_the_password(
    postgres_server: PostgresServer, pg_database: PgDatabase
) -> None:
    backend = Backend("postgresql", pg_database.url, pg_database.url_no_password, "s3cret")
    assert postgres_server.password
    assert postgres_server.password not in repr(postgres_server)
    assert postgres_server.password not in repr(pg_database)
    assert "s3cret" not in repr(backend)


def test_state_backend_gives_sqlite_no_url_and_postgresql_a_fresh_database(
    state_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The campaign file it writes is one the config accepts (no password in it).
    path = write_crash_campaign(tmp_path, 1, "5/min", extra=state_backend.campaign_yaml())
    config = load_campaign(path, env=state_backend.env())
    assert config.uses_postgres is state_backend.is_postgres
    if state_backend.name == "sqlite":
        assert (state_backend.url, state_backend.env()) == (None, {})
        return
    assert config.state_url == state_backend.url_no_password
    assert state_backend.url is not None and state_backend.password is not None
    assert _user_tables(state_backend.url) == []
    line = state_backend.campaign_yaml()
    assert line == f"state_url: {state_backend.url_no_password}\n"
    assert state_backend.password not in line
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for name, value in state_backend.env().items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(line.removeprefix("state_url: ").strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_server_given_by_url_is_used_and_never_stopped(postgres_server: PostgresServer) -> None:
    given = PostgresServer.from_url(postgres_server.admin_url())
    database = given.create_database()
    try:
        assert _user_tables(database.url) == []
    finally:
        given.drop_database(database.name)
    given.stop()
    assert not given.started_here
    with psycopg.connect(postgres_server.admin_url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_no_binaries_fails_loudly_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresUnavailable) as failure:
        find_bindir(tmp_path / "usr-lib-postgresql")
    assert ".ci/run" in str(failure.value)
    assert "postgresql" in str(failure.value)
    assert "CAMPAIGN_TEST_PG_URL" in str(failure.value)


def test_the_newest_debian_version_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for version in ["9.6", "16", "15"]:
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        (bindir / "initdb").touch()
        (bindir / "pg_ctl").touch()
    assert find_bindir(tmp_path) == tmp_path / "16" / "bin"


def test_a_server_left_by_a_killed_session_is_swept_by_the_next() -> None:
    # A child session starts a server and is killed (SIGKILL: no atexit, no finalizer).
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from support.postgres import PostgresServer; "
         "s = PostgresServer.start(); print(s.directory, s.admin_url(), flush=True); "
         "sys.stdin.read()"],
        cwd=TESTS, env={**os.environ, "PYTHONPATH": str(TESTS)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        directory_text, url = child.stdout.readline().split()
    finally:
        child.kill()
        child.wait(timeout=30)
    directory = Path(directory_text)
    with psycopg.connect(url) as conn:  # the leftover is real: it still serves
        assert conn.execute("SELECT 1").fetchone() == (1,)

    assert directory in sweep_leftovers(find_bindir(), server_account())
    assert not directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
