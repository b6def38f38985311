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
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from campaign.errors import StateError

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


class StoreBase:
    """One SQLite connection in autocommit mode; writes go through ``_tx``."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._depth = 0
        # No sqlite-utils plugins on the checkpoint's connection: nothing but this package
        # prepares it.
        self.db = Database(conn, execute_plugins=False)
        self.path = path

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so writers never deadlock."""
        if self._depth:  # inside transaction(): the enclosing transaction commits
            yield self._conn
            return
        try:
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
            except sqlite3.Error:
                # A failed COMMIT (disk full, I/O error) may leave the transaction open.
                self._rollback()
                raise
        except sqlite3.Error as exc:
            if not _is_ours(exc):
                raise
            raise checkpoint_error(self.path, exc) from exc

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR); then
        # ROLLBACK fails, harmlessly, and must not hide the error that caused it.
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several transitions (say, one page of call updates) into one commit.

        All of them land or none does, so it is as crash-safe as one transition each,
        with one fsync instead of many. Never ``await`` inside a transaction.
        """
        with self._tx():
            yield

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Map a failed read of the checkpoint to its ``StateError``."""
        try:
            yield
        except sqlite3.Error as exc:
            if not _is_ours(exc):
                raise
            raise checkpoint_error(self.path, exc) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a read query (joins, aggregates) as dicts."""
        with self._reading():
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
        with self._reading():
            return list(
                self.db.table(table).rows_where(where, params, order_by=order_by, select=select)
            )

    def _count(self, table: str, where: str, params: Sequence[Any] = ()) -> int:
        """How many rows of one table match ``where``."""
        with self._reading():
            return int(self.db.table(table).count_where(where, params))
