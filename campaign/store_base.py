"""The connection and transaction helpers every part of the checkpoint shares."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database


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
        if self._depth:  # inside batch(): the enclosing transaction commits
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self._conn
        except BaseException:
            self._depth -= 1
            self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        self._conn.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several transitions (say, one page of call updates) into one commit.

        All of them land or none does, so it is as crash-safe as one transition each,
        with one fsync instead of many. Never ``await`` inside a batch.
        """
        with self._tx():
            yield

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
