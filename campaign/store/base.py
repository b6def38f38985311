"""The connection and transaction helpers every part of the checkpoint shares.

SQLite's own errors never leave the checkpoint: ``checkpoint_error`` turns them into one
``StateError`` sentence saying what happened to the file and what to do, and ``_tx`` and
``_query`` are where the store's writes and reads go through it.
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
        self.db = Database(conn)
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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        except sqlite3.Error as exc:
            if not _is_ours(exc):
                raise
            raise checkpoint_error(self.path, exc) from exc
