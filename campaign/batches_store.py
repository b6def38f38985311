"""The checkpoint's batch ledger: each batch file, its key, its state, and its attempts.

A batch is committed as *uploading* (bytes, key, one *sending* attempt per row) in one
transaction before the upload leaves, so a resumed run re-sends identical bytes under
the same key, and an attempt belongs to exactly one batch. The SQL runs on the store's
own connection inside ``Store.batch()`` transactions; the tables come from the store's
migrations (``BATCH_MIGRATION``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from campaign.errors import StateError
from campaign.store import Store

BatchState = Literal["uploading", "uploaded", "running", "done", "failed"]
ACTIVE_STATES: tuple[BatchState, ...] = ("uploaded", "running")

BATCH_MIGRATION: list[str] = [
    """CREATE TABLE batches (
        seq INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        batch_id TEXT,
        csv BLOB NOT NULL,
        content_hash TEXT NOT NULL,
        not_before REAL,
        rows_total INTEGER NOT NULL,
        rows_read INTEGER NOT NULL DEFAULT 0,
        rows_cursor TEXT,
        server_status TEXT,
        queued INTEGER,
        queued_seen_at REAL,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX batches_state ON batches(state)",
    """CREATE TABLE batch_members (
        seq INTEGER NOT NULL REFERENCES batches(seq),
        position INTEGER NOT NULL,
        row_key TEXT NOT NULL,
        attempt_key TEXT NOT NULL UNIQUE REFERENCES attempts(idempotency_key),
        PRIMARY KEY (seq, position)
    )""",
]


@dataclass(frozen=True)
class StoredBatch:
    """One batch as the checkpoint records it."""

    seq: int
    idempotency_key: str
    state: BatchState
    batch_id: str | None
    csv: bytes
    content_hash: str
    not_before: float | None
    rows_total: int
    rows_read: int
    rows_cursor: str | None
    server_status: str | None
    queued: int | None
    queued_seen_at: float | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Member:
    """One row of a batch file: its position, row key and attempt key."""

    position: int
    row_key: str
    attempt_key: str


class BatchBook:
    """Batch bookkeeping on top of a campaign's ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.store.batch():
            self.store.db.conn.execute(sql, params)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.store.db.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def next_seq(self) -> int:
        """The sequence number of the next batch (1, 2, …)."""
        found = self._select("SELECT COALESCE(MAX(seq), 0) AS seq FROM batches")
        return int(found[0]["seq"]) + 1

    def commit_uploading(
        self,
        *,
        seq: int,
        idempotency_key: str,
        csv: bytes,
        content_hash: str,
        not_before: float | None,
        members: Sequence[tuple[str, int, str]],
        now: float,
    ) -> StoredBatch:
        """Record the batch as *uploading* with one *sending* attempt per member, atomically."""
        with self.store.batch():
            for row_key, number, attempt_key in members:
                self.store.begin_attempt(row_key, number, attempt_key, b"", now)
            conn = self.store.db.conn
            conn.execute(
                "INSERT INTO batches(seq, idempotency_key, state, csv, content_hash, "
                "not_before, rows_total, created_at, updated_at) "
                "VALUES (?, ?, 'uploading', ?, ?, ?, ?, ?, ?)",
                (seq, idempotency_key, csv, content_hash, not_before, len(members), now, now),
            )
            conn.executemany(
                "INSERT INTO batch_members(seq, position, row_key, attempt_key) "
                "VALUES (?, ?, ?, ?)",
                [
                    (seq, position, row_key, attempt_key)
                    for position, (row_key, _, attempt_key) in enumerate(members)
                ],
            )
        return self.batch(seq)

    def mark_uploaded(
        self, seq: int, batch_id: str, server_status: str, queued: int, now: float
    ) -> None:
        """The server accepted the file: its attempts are now with the platform."""
        with self.store.batch():
            conn = self.store.db.conn
            conn.execute(
                "UPDATE batches SET state='uploaded', batch_id=?, server_status=?, queued=?, "
                "queued_seen_at=?, updated_at=? WHERE seq=? AND state='uploading'",
                (batch_id, server_status, queued, now, now, seq),
            )
            conn.execute(
                "UPDATE attempts SET state='sent', sent_at=? WHERE state='sending' AND "
                "idempotency_key IN (SELECT attempt_key FROM batch_members WHERE seq=?)",
                (now, seq),
            )

    def record_progress(self, seq: int, *, server_status: str, queued: int, now: float) -> None:
        """What the last GET /batches/{id} said."""
        state = "running" if server_status == "running" else None
        self._execute(
            "UPDATE batches SET server_status=?, queued=?, queued_seen_at=?, updated_at=?, "
            "state=CASE WHEN state='uploaded' AND ? IS NOT NULL THEN ? ELSE state END "
            "WHERE seq=?",
            (server_status, queued, now, now, state, state, seq),
        )

    def advance_rows(self, seq: int, rows_read: int, cursor: str | None, now: float) -> None:
        """Rows before ``rows_read`` are final; ``cursor`` fetches the page starting there."""
        self._execute(
            "UPDATE batches SET rows_read=?, rows_cursor=?, updated_at=? WHERE seq=?",
            (rows_read, cursor, now, seq),
        )

    def finish(self, seq: int, state: BatchState, now: float, error: str | None = None) -> None:
        """The batch is over and every row of it has been read."""
        self._execute(
            "UPDATE batches SET state=?, error=COALESCE(?, error), updated_at=? WHERE seq=?",
            (state, error, now, seq),
        )

    def batch(self, seq: int) -> StoredBatch:
        """One batch by its sequence number."""
        found = self._select("SELECT * FROM batches WHERE seq=?", (seq,))
        if not found:
            raise StateError(f"batch {seq} is not in the checkpoint")
        return _batch(found[0])

    def batches(self, *states: BatchState) -> list[StoredBatch]:
        """Batches (in the given states), oldest first."""
        sql = "SELECT * FROM batches"
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
        return [_batch(r) for r in self._select(sql + " ORDER BY seq", states)]

    def members(self, seq: int) -> list[Member]:
        """The batch's rows in file order."""
        found = self._select(
            "SELECT position, row_key, attempt_key FROM batch_members WHERE seq=? "
            "ORDER BY position",
            (seq,),
        )
        return [Member(r["position"], r["row_key"], r["attempt_key"]) for r in found]

    def note_call(self, attempt_key: str, call_id: str, status: str) -> None:
        """A batch row got a call id (it is being or has been dialed)."""
        self.store.db.conn.execute(
            "UPDATE attempts SET call_id=?, status=? WHERE idempotency_key=?",
            (call_id, status, attempt_key),
        )

    def reject_row(self, attempt_key: str, reason: str) -> None:
        """The server marked the row ``invalid``: the row is rejected with its reason."""
        with self.store.batch():
            conn = self.store.db.conn
            conn.execute(
                "UPDATE attempts SET state='failed', status='invalid', error=? "
                "WHERE idempotency_key=?",
                (reason, attempt_key),
            )
            conn.execute(
                "UPDATE rows SET progress='blocked', plan_state='rejected', reason=?, "
                "next_due=NULL WHERE row_key=(SELECT row_key FROM attempts "
                "WHERE idempotency_key=?)",
                (reason, attempt_key),
            )


def _batch(r: dict[str, Any]) -> StoredBatch:
    return StoredBatch(
        seq=int(r["seq"]),
        idempotency_key=r["idempotency_key"],
        state=r["state"],
        batch_id=r["batch_id"],
        csv=bytes(r["csv"]),
        content_hash=r["content_hash"],
        not_before=r["not_before"],
        rows_total=int(r["rows_total"]),
        rows_read=int(r["rows_read"]),
        rows_cursor=r["rows_cursor"],
        server_status=r["server_status"],
        queued=r["queued"],
        queued_seen_at=r["queued_seen_at"],
        error=r["error"],
        created_at=float(r["created_at"]),
        updated_at=float(r["updated_at"]),
    )
