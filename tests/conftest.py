"""Configuration every test folder shares.

A folder's own fixtures live in its conftest.py (tests/sandbox/conftest.py, …); plain
helpers that several folders use (fakes, builders, processes) are modules of tests/support.

PostgreSQL (the suite starts its own server, see tests/support/postgres.py):

- ``postgres_server``: the session's server, started on first use.
- ``pg_url``: a fresh, empty database for the test, its URL with the password.
- ``pg_url_no_password`` / ``pg_password``: the same database's URL without the password,
  and the password (for PGPASSWORD, or to check that no log shows it).
- ``state_backend``: runs a test on SQLite and on PostgreSQL (``Backend``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from support.postgres import Backend, PgDatabase, PostgresServer, PostgresUnavailable


@pytest.fixture(autouse=True)
def _campaign_logging_is_reset() -> Iterator[None]:
    """A command run in-process installs log handlers; later tests must not inherit them."""
    logger = logging.getLogger("campaign")
    before = list(logger.handlers)
    level, propagate = logger.level, logger.propagate
    yield
    for handler in [h for h in logger.handlers if h not in before]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


# PostgreSQL: the suite starts its own server (tests/support/postgres.py), once per session
# and only when a test asks for one, so SQLite-only runs pay nothing.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: started here, or the one of CAMPAIGN_TEST_PG_URL.

    Without PostgreSQL binaries (Debian's package ``postgresql``) the tests that ask for it
    fail with a message saying what to install; they are never skipped.
    """
    try:
        server = PostgresServer.from_env()
    except PostgresUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[PgDatabase]:
    """A fresh, empty database for this test, dropped afterwards (open connections too)."""
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        postgres_server.drop_database(database.name)


@pytest.fixture
def pg_url(pg_database: PgDatabase) -> str:
    """The URL of this test's fresh database, password included: never log it."""
    return pg_database.url


@pytest.fixture
def pg_url_no_password(pg_database: PgDatabase) -> str:
    """The URL of the same database as ``pg_url`` without the password (see ``pg_password``)."""
    return pg_database.url_no_password


@pytest.fixture
def pg_password(pg_database: PgDatabase) -> str:
    """The password of ``pg_url_no_password``: set PGPASSWORD, or look for it in logs."""
    return pg_database.password


@pytest.fixture(params=["sqlite", "postgresql"])
def state_backend(request: pytest.FixtureRequest) -> Backend:
    """Run the test once per state backend: ``Backend("sqlite")``, then PostgreSQL.

    The test ids end in ``[sqlite]`` and ``[postgresql]`` (``-k postgresql`` picks one).
    ``backend.name`` is "sqlite" or "postgresql"; ``backend.url`` is None for SQLite, and for
    PostgreSQL the URL of a fresh, empty database of its own, password included (for the
    library, or CAMPAIGN_STATE_URL), dropped after the test. A campaign file refuses a
    password: write ``backend.campaign_yaml()`` into it (``state_url:`` without the password,
    "" for SQLite) and run the process with ``backend.env()`` (PGPASSWORD) added to its
    environment. The server starts only when a PostgreSQL case runs. Example::

        def test_resumes(state_backend, tmp_path):
            path = write_crash_campaign(tmp_path, 10, "5/min", extra=state_backend.campaign_yaml())
            run = subprocess.run([...], env={**os.environ, **state_backend.env()})
    """
    if request.param == "sqlite":
        return Backend("sqlite")
    database: PgDatabase = request.getfixturevalue("pg_database")
    return Backend("postgresql", database.url, database.url_no_password, database.password)
