"""The shared opt-out list: numbers that said stop, honoured by every campaign.

In SQLite it is ``<state_dir>/opt_outs.sqlite``; with ``state_url`` it is the table
``opt_outs`` of the schema ``campaign_shared``, one list for every host on the database.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg

from campaign.errors import StateError
from campaign.store.shared import (
    ensure_tables,
    open_shared,
    pg_errors,
    pooled,
    qualified,
    shared_where,
)

OPT_OUT_FILE = "opt_outs.sqlite"

OPT_OUTS_DDL = (
    "CREATE TABLE IF NOT EXISTS opt_outs (e164 TEXT PRIMARY KEY, campaign TEXT, "
    "row_key TEXT, t REAL)"
)


class OptOutList:
    """``<state_dir>/opt_outs.sqlite`` (or, with ``dsn``, the database's shared table):
    E.164 numbers never to call again."""

    def __init__(
        self, state_dir: Path, *, dsn: str | None = None, shown_url: str | None = None
    ) -> None:
        self.path = state_dir / OPT_OUT_FILE
        self._dsn = dsn  # the secret URL: never shown
        self.where = shared_where("the opt-out list", shown_url) if dsn else str(self.path)
        # One reading connection per thread, kept: the send gate asks before every call.
        # In autocommit mode each SELECT sees what other processes have committed.
        self._readers = threading.local()

    def __repr__(self) -> str:
        return f"OptOutList({self.where!r})"

    def _connect(self) -> sqlite3.Connection:
        return open_shared(self.path, OPT_OUTS_DDL)

    def _pg(self) -> str:
        """The DSN, the table made sure of (once per process)."""
        assert self._dsn is not None
        ensure_tables(self._dsn, self.where, "opt_outs", OPT_OUTS_DDL)
        return self._dsn

    def add(self, e164: str, *, campaign: str, row_key: str, now: float) -> None:
        """Add a number (idempotent)."""
        if self._dsn is not None:
            with pooled(self._pg(), self.where) as pg:
                pg.execute(
                    f"INSERT INTO {qualified('opt_outs')}(e164, campaign, row_key, t) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (e164, campaign, row_key, now),
                )
            return
        conn = self._connect()
        try:
            conn.execute(
                "INSERT OR IGNORE INTO opt_outs(e164, campaign, row_key, t) VALUES (?,?,?,?)",
                (e164, campaign, row_key, now),
            )
        finally:
            conn.close()

    def contains(self, e164: str) -> bool:
        """True if the number is on the list now (another run may have added it)."""
        if self._dsn is not None:
            return self._pg_contains(e164)
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            if not self.path.exists():
                return False
            conn = self._connect()
            self._readers.conn = conn
        row = conn.execute("SELECT 1 FROM opt_outs WHERE e164 = ?", (e164,)).fetchone()
        return row is not None

    def _pg_contains(self, e164: str) -> bool:
        # This thread's own connection, kept (not one of the pool's, which a thread that
        # never closes would hold forever): one round trip per question. A connection the
        # server dropped is opened again once.
        dsn = self._pg()
        sql = f"SELECT 1 FROM {qualified('opt_outs')} WHERE e164 = %s"
        for retry in (False, True):
            conn: psycopg.Connection[tuple[object, ...]] | None = getattr(self._readers, "pg", None)
            try:
                with pg_errors(self.where, dsn):
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            dsn, autocommit=True, connect_timeout=30, application_name="campaign"
                        )
                        self._readers.pg = conn
                    return conn.execute(sql, (e164,)).fetchone() is not None
            except StateError:
                if retry or conn is None or not conn.closed:
                    raise
                self._readers.pg = None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's reading connection, if one is open."""
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is not None:
            conn.close()
            self._readers.conn = None
        pg: psycopg.Connection[tuple[object, ...]] | None = getattr(self._readers, "pg", None)
        if pg is not None:
            pg.close()
            self._readers.pg = None

    def numbers(self, *, besides: str | None = None) -> list[str]:
        """Every opted-out number; with ``besides``, only those another campaign added."""
        if self._dsn is not None:
            sql = f"SELECT e164 FROM {qualified('opt_outs')}"
            params: tuple[str, ...] = ()
            if besides is not None:
                sql += " WHERE campaign IS DISTINCT FROM %s"
                params = (besides,)
            with pooled(self._pg(), self.where) as pg:
                return [str(r[0]) for r in pg.execute(sql + ' ORDER BY e164 COLLATE "C"', params)]
        if not self.path.exists():
            return []
        sql = "SELECT e164 FROM opt_outs ORDER BY e164"
        params = ()
        if besides is not None:
            sql = "SELECT e164 FROM opt_outs WHERE campaign IS NOT ? ORDER BY e164"
            params = (besides,)
        conn = self._connect()
        try:
            return [str(r[0]) for r in conn.execute(sql, params)]
        finally:
            conn.close()
