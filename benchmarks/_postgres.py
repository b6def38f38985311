"""A PostgreSQL server for the benchmarks: the test suite's (tests/support/postgres.py).

``postgres_database()`` starts a throwaway server (initdb and pg_ctl in a temp directory,
as the tests do; with ``CAMPAIGN_TEST_PG_URL`` set, that server is used instead) and yields
a fresh database on it; both are gone afterwards. Unlike the tests' server, this one keeps
PostgreSQL's durable defaults (``fsync``, ``full_page_writes``): a commit is on disk when
it returns, as SQLite's are with ``synchronous=FULL``, so the two are timed alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import support.postgres as harness
from support.postgres import PgDatabase, PostgresServer, PostgresUnavailable

__all__ = ["PgDatabase", "PostgresServer", "PostgresUnavailable", "postgres_database"]


class DurableServer(PostgresServer):
    """The tests' server, started without their ``fsync=off`` and ``full_page_writes=off``."""

    def _start_on_free_port(self) -> None:
        assert self.directory is not None and self.bindir is not None
        log = self.directory / "server.log"
        self.port = harness._free_port()
        options = f"-p {self.port} -h 127.0.0.1 -k {self.directory} -c max_connections=200"
        pg_ctl = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.directory / "data")]
        pg_ctl += ["-w", "-t", str(int(harness.READY_TIMEOUT_S)), "-l", str(log), "-o", options]
        harness._run(pg_ctl, self._account, self.directory)


@contextmanager
def postgres_database() -> Iterator[tuple[PostgresServer, PgDatabase]]:
    """A server (started here unless CAMPAIGN_TEST_PG_URL names one) and a fresh database."""
    server = DurableServer.from_env()
    try:
        database = server.create_database()
        try:
            yield server, database
        finally:
            server.drop_database(database.name)
    finally:
        server.stop()
