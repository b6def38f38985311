"""The connection and transaction helpers every part of the checkpoint shares, and the
checks that refuse a damaged checkpoint file before anything is written to it.

SQLite's own errors never leave the checkpoint: ``checkpoint_error`` turns them into one
``StateError`` sentence saying what happened to the file and what to do, and ``_tx`` (writes)
and ``_reading`` (the sqlite-utils queries of ``_query``, ``_rows_where`` and ``_count``) are
where the store's writes and reads go through it.

The connection is the standard ``sqlite3`` one, in autocommit mode, wrapped in a
``sqlite_utils.Database``: the store's own ``BEGIN IMMEDIATE`` opens every write
transaction, and sqlite-utils operations run inside it (its ``atomic()`` nests as a
savepoint), so a bulk upsert commits with everything else of its transition, or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlite_utils import Database

from campaign.errors import StateError
from campaign.store.postgres import PgConnection, dict_rows, is_ours, pg_error

# Primary SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

# An exception made by hand (or by an old Python) carries no result code; then the
# message SQLite always uses for that code decides.
_CODE_OF_MESSAGE = {
    "database or disk is full": _SQLITE_FULL,
    "database disk image is malformed": _SQLITE_CORRUPT,
    "file is not a database": _SQLITE_NOTADB,
    "disk i/o error": _SQLITE_IOERR,
    "attempt to write a readonly database": _SQLITE_READONLY,
    "database is locked": _SQLITE_BUSY,
}

DAMAGED_ADVICE = (
    "it was left as it is; restore it from a backup, or move it away to start the campaign "
    "over (a new checkpoint knows nothing of the calls already placed)"
)


def _result_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    return next((c for message, c in _CODE_OF_MESSAGE.items() if message in text), None)


def damaged(path: Path | None, detail: str) -> StateError:
    """The error for a checkpoint whose file is not a sound SQLite database."""
    return StateError(
        f"{path or 'checkpoint'}: the checkpoint is damaged ({detail}); {DAMAGED_ADVICE}"
    )


def checkpoint_error(path: Path | None, exc: sqlite3.Error) -> StateError:
    """One sentence for a failed read or write of the checkpoint: what happened, what to do."""
    where = path or "checkpoint"
    code = _result_code(exc)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return damaged(path, str(exc))
    if code == _SQLITE_FULL:
        return StateError(
            f"{where}: the checkpoint cannot be written: the disk is full ({exc}); free some "
            "space and rerun — everything committed before this point is kept"
        )
    if code == _SQLITE_IOERR:
        return StateError(
            f"{where}: the disk reported an I/O error on the checkpoint ({exc}); check the "
            "disk, then rerun — everything committed before this point is kept"
        )
    if code == _SQLITE_READONLY:
        return StateError(
            f"{where}: the checkpoint cannot be written ({exc}); check the permissions of "
            "the file and its folder"
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StateError(
            f"{where}: the checkpoint stayed locked by another process ({exc}); make sure "
            "no other program holds it open, then rerun"
        )
    return StateError(f"{where}: the checkpoint cannot be used ({exc})")


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database, without letting SQLite touch it."""
    with path.open("rb") as handle:
        head = handle.read(100)
        # An empty file is a checkpoint not yet written (we create it before SQLite does).
        if head and (len(head) < 100 or not head.startswith(_SQLITE_HEADER)):
            raise damaged(path, "not an SQLite database: its header is missing or cut short")
        # Read the file through once, in order: the page-by-page reads of the checks that
        # follow then hit the cache (a 70 MB checkpoint: 0.3 s from a cold disk, not 2 s).
        while handle.read(1 << 20):
            pass


def check_structure(conn: sqlite3.Connection, path: Path | None) -> None:
    """Refuse a checkpoint whose pages are damaged, before anything is written to it.

    ``quick_check`` reads every page once, without the index cross-check of
    ``integrity_check`` (4× slower): about 0.2 s for a 100,000-row (70 MB) checkpoint,
    once per run, against a damaged file being written to for hours.
    """
    found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if found != ["ok"]:
        # One line for the Error: message; SQLite heads its report with the schema name.
        lines = [ln.strip() for text in found for ln in text.splitlines()]
        raise damaged(path, "; ".join(ln for ln in lines if ln and not ln.startswith("***")))


def _is_ours(exc: BaseException) -> bool:
    # A constraint or SQL mistake is a bug in this program, not a state of the file: it
    # keeps its own type (callers and tests rely on IntegrityError).
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


_ERRORS = (sqlite3.Error, psycopg.Error)

log = logging.getLogger(__name__)

# SQLite's default: a commit that leaves the WAL longer than this many pages copies it
# back into the database file (a checkpoint) before it returns.
_WAL_AUTOCHECKPOINT_PAGES = 1000


def _checkpoint_wal(path: Path) -> None:
    """Copy the WAL's committed pages back into the checkpoint file, on a connection of
    its own (the background half of ``StoreBase._defer_wal_checkpoint``).

    PASSIVE: it never waits for, nor blocks, the run's own connection, which goes on
    committing to the WAL meanwhile. A checkpoint stopped half-way (``kill -9``) is safe,
    and one that fails only leaves the WAL longer until the next one.
    """
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning(
            "%s: copying the write-ahead log into the checkpoint failed (%s); it is copied later",
            path,
            exc,
        )


class StoreBase:
    """One connection in autocommit mode (SQLite's, or ``PgConnection`` speaking the same
    SQL to PostgreSQL); writes go through ``_tx``."""

    def __init__(self, conn: sqlite3.Connection | PgConnection, path: Path | None) -> None:
        # Typed as sqlite3's: PgConnection offers the part of it the store uses.
        self._conn: sqlite3.Connection = conn  # type: ignore[assignment]
        self._depth = 0
        self._pg = conn if isinstance(conn, PgConnection) else None
        # No sqlite-utils plugins on the checkpoint's connection: nothing but this package
        # prepares it. PostgreSQL's reads are plain SQL (below).
        self.db = None if self._pg is not None else Database(self._conn, execute_plugins=False)
        self.path = path
        # the WAL checkpoint of a big transaction, done on a thread (_defer_wal_checkpoint)
        self._wal_deferred = False
        self._wal_copying: threading.Thread | None = None

    @property
    def where(self) -> str:
        """The checkpoint as messages name it: its file, or its PostgreSQL schema."""
        if self._pg is not None:
            return f"state database schema {self._pg.namespace!r}"
        return str(self.path or "checkpoint")

    def _error(self, exc: BaseException) -> BaseException:
        """A failed read or write as the ``StateError`` to raise; the exception itself
        when it is a mistake in this program's SQL."""
        if isinstance(exc, sqlite3.Error):
            return checkpoint_error(self.path, exc) if _is_ours(exc) else exc
        if isinstance(exc, psycopg.Error) and not is_ours(exc):
            return pg_error(self.where, exc, self._pg.dsn if self._pg else None)
        return exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so writers never deadlock."""
        if self._depth:  # inside transaction(): the enclosing transaction commits
            yield self._conn
            return
        try:
            if self._wal_copying is not None and not self._wal_copying.is_alive():
                self._wal_copied()
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                self._rollback()
                raise
            self._depth -= 1
            try:
                self._conn.execute("COMMIT")
            except _ERRORS:
                # A failed COMMIT (disk full, I/O error) may leave the transaction open.
                self._rollback()
                raise
            if self._wal_deferred:
                self._copy_wal_in_background()
        except _ERRORS as exc:
            mapped = self._error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR); then
        # ROLLBACK fails, harmlessly, and must not hide the error that caused it.
        with contextlib.suppress(*_ERRORS):
            self._conn.execute("ROLLBACK")
        if self._wal_deferred:  # nothing big was committed: checkpoint as usual again
            self._wal_deferred = False
            self._autocheckpoint(_WAL_AUTOCHECKPOINT_PAGES)

    def _defer_wal_checkpoint(self) -> None:
        """Let the transaction in progress commit without copying the WAL back into the
        file, and copy it on a thread after the commit.

        A transaction that writes a whole list (a million rows: some 300 MB of WAL) would
        otherwise spend seconds in its COMMIT on that copy, which durability does not need:
        the commit is durable once the WAL is synced. Until the copy is done, this
        connection's commits do not start one of their own; the first transaction after
        it turns them back on. SQLite files only; PostgreSQL has no such step."""
        if self._pg is not None or self.path is None or self._wal_deferred:
            return
        self._autocheckpoint(0)
        self._wal_deferred = True

    def _copy_wal_in_background(self) -> None:
        self._wal_deferred = False
        if self._wal_copying is not None:  # an earlier copy still running: it goes on
            return
        assert self.path is not None
        self._wal_copying = threading.Thread(
            target=_checkpoint_wal, args=(self.path,), name="checkpoint-wal", daemon=True
        )
        self._wal_copying.start()

    def _wal_copied(self) -> None:
        """Wait for the background copy; then this connection's commits copy again."""
        assert self._wal_copying is not None
        self._wal_copying.join()
        self._wal_copying = None
        self._autocheckpoint(_WAL_AUTOCHECKPOINT_PAGES)

    def _autocheckpoint(self, pages: int) -> None:
        with contextlib.suppress(*_ERRORS):
            self._conn.execute(f"PRAGMA wal_autocheckpoint={pages}").fetchall()

    def _close_connection(self) -> None:
        """Close the connection, once a background copy of the WAL is over (the last
        connection to close copies what is left and removes the WAL)."""
        if self._wal_copying is not None:
            self._wal_copied()
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several transitions (say, one page of call updates) into one commit.

        All of them land or none does, so it is as crash-safe as one transition each,
        with one fsync instead of many. Never ``await`` inside a transaction.
        """
        with self._tx():
            yield

    def _has_temp_table(self, conn: sqlite3.Connection, name: str) -> bool:
        """True if this connection has made the temporary table ``name``."""
        if self._pg is not None:
            sql = "SELECT 1 FROM pg_tables WHERE schemaname LIKE 'pg\\_temp\\_%' AND tablename = ?"
        else:
            sql = "SELECT 1 FROM sqlite_temp_master WHERE type = 'table' AND name = ?"
        return conn.execute(sql, (name,)).fetchone() is not None

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Map a failed read of the checkpoint to its ``StateError``."""
        try:
            yield
        except _ERRORS as exc:
            mapped = self._error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a read query (joins, aggregates) as dicts."""
        with self._reading():
            if self._pg is not None:
                return dict_rows(self._pg.execute(sql, params))
            assert self.db is not None
            return list(self.db.query(sql, params))

    def _rows_where(
        self,
        table: str,
        where: str | None = None,
        params: Sequence[Any] = (),
        *,
        select: str = "*",
        order_by: str | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of one table that match ``where``, as dicts."""
        if self._pg is not None:
            sql = f"SELECT {select} FROM {table}"
            sql += f" WHERE {where}" if where else ""
            sql += f" ORDER BY {order_by}" if order_by else ""
            return self._query(sql, params)
        assert self.db is not None
        with self._reading():
            return list(
                self.db.table(table).rows_where(where, params, order_by=order_by, select=select)
            )

    def _count(self, table: str, where: str, params: Sequence[Any] = ()) -> int:
        """How many rows of one table match ``where``."""
        if self._pg is not None:
            return int(
                self._query(f"SELECT count(*) AS n FROM {table} WHERE {where}", params)[0]["n"]
            )
        assert self.db is not None
        with self._reading():
            return int(self.db.table(table).count_where(where, params))
