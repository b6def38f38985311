"""The checkpoint's batch ledger: each batch file, its key, its state, and its attempts.

A mixin of ``Store``. A batch is committed as *uploading* (bytes, key, one *sending*
attempt per row) in one transaction before the upload leaves, so a resumed run re-sends
identical bytes under the same key, and an attempt belongs to exactly one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from campaign.errors import StateError
from campaign.store.base import StoreBase

BatchState = Literal["uploading", "uploaded", "running", "done", "failed"]
ACTIVE_STATES: tuple[BatchState, ...] = ("uploaded", "running")


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
    # The other parts of the recorded upload (None: recorded before they were kept, so a
    # re-send cannot be rebuilt and the batch is looked up first).
    scenario_id: str | None = None
    name: str | None = None

    @property
    def request_recorded(self) -> bool:
        """True if every part of the upload request is in the checkpoint."""
        return self.scenario_id is not None


@dataclass(frozen=True)
class Member:
    """One row of a batch file: its position, row key and attempt key."""

    position: int
    row_key: str
    attempt_key: str


class BatchLedger(StoreBase):
    """Batches: committed *uploading*, then uploaded, running, and done or failed."""

    def next_batch_seq(self) -> int:
        """The sequence number of the next batch (1, 2, …)."""
        return int(self._query("SELECT COALESCE(MAX(seq), 0) AS seq FROM batches")[0]["seq"]) + 1

    def commit_batch(
        self,
        *,
        seq: int,
        idempotency_key: str,
        csv: bytes,
        content_hash: str,
        not_before: float | None,
        members: Sequence[tuple[str, int, str]],
        now: float,
        scenario_id: str | None = None,
        name: str | None = None,
        phones: Sequence[str | None] = (),
    ) -> StoredBatch:
        """Record the batch as *uploading* with one *sending* attempt per member, atomically.

        ``members`` are (row key, attempt number, attempt key) in file order, ``phones`` the
        number each dials; the batch keeps every part of its upload request (file,
        scenario_id, name, not_before), so a re-send is that request and nothing else.
        """
        if phones and len(phones) != len(members):
            raise ValueError("one phone per member")
        numbers = list(phones) or [None] * len(members)
        with self._tx() as conn:
            # The same transitions as begin_attempt (body: the batch file holds the bytes).
            conn.executemany(
                "INSERT INTO attempts(row_key, number, idempotency_key, state, body, "
                "sending_at, phone) VALUES (?, ?, ?, 'sending', ?, ?, ?)",
                [
                    (row_key, number, key, b"", now, phone)
                    for (row_key, number, key), phone in zip(members, numbers, strict=True)
                ],
            )
            conn.executemany(
                "UPDATE rows SET progress='in_flight', next_due=NULL, "
                "attempts_used=attempts_used+1 WHERE row_key=?",
                [(row_key,) for row_key, _, _ in members],
            )
            conn.execute(
                "INSERT INTO batches(seq, idempotency_key, state, csv, content_hash, "
                "not_before, rows_total, created_at, updated_at, scenario_id, name) "
                "VALUES (?, ?, 'uploading', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq, idempotency_key, csv, content_hash, not_before, len(members),
                    now, now, scenario_id, name,
                ),
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO batch_members(seq, position, row_key, attempt_key) "
                "VALUES (?, ?, ?, ?)",
                [
                    (seq, position, row_key, attempt_key)
                    for position, (row_key, _, attempt_key) in enumerate(members)
                ],
            )
        return self.stored_batch(seq)

    def mark_batch_uploaded(
        self, seq: int, batch_id: str, server_status: str, queued: int, now: float
    ) -> None:
        """The server accepted the file: its attempts are now with the platform."""
        with self._tx() as conn:
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

    def record_batch_progress(
        self, seq: int, *, server_status: str, queued: int, now: float
    ) -> None:
        """What the last GET /batches/{id} said."""
        running = "running" if server_status == "running" else None
        with self._tx() as conn:
            conn.execute(
                "UPDATE batches SET server_status=?, queued=?, queued_seen_at=?, updated_at=?, "
                "state=CASE WHEN state='uploaded' AND CAST(? AS TEXT) IS NOT NULL "
                "THEN CAST(? AS TEXT) ELSE state END "
                "WHERE seq=?",
                (server_status, queued, now, now, running, running, seq),
            )

    def advance_batch_rows(self, seq: int, rows_read: int, cursor: str | None, now: float) -> None:
        """Rows before ``rows_read`` are final; ``cursor`` fetches the page starting there."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE batches SET rows_read=?, rows_cursor=?, updated_at=? WHERE seq=?",
                (rows_read, cursor, now, seq),
            )

    def finish_batch(
        self, seq: int, state: BatchState, now: float, error: str | None = None
    ) -> None:
        """The batch is over and every row of it has been read."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE batches SET state=?, error=COALESCE(?, error), updated_at=? WHERE seq=?",
                (state, error, now, seq),
            )

    def release_batch(
        self,
        seq: int,
        *,
        error: str,
        blocked: Mapping[str, tuple[str, str]],
        now: float,
    ) -> None:
        """The batch provably never reached the platform: void its attempts, free its rows.

        ``blocked`` maps row keys the send gate refused for good to (plan state, reason);
        those rows are blocked, the others go back to *pending* to be planned afresh. One
        transaction, so a crash leaves either the held batch or the released rows.
        """
        with self._tx() as conn:
            members = [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT m.row_key, m.attempt_key FROM batch_members m JOIN attempts a "
                    "ON a.idempotency_key = m.attempt_key WHERE m.seq=? AND a.state='sending'",
                    (seq,),
                )
            ]
            for row_key, attempt_key in members:
                conn.execute(
                    "UPDATE attempts SET state='void', error=? WHERE idempotency_key=?",
                    (error, attempt_key),
                )
                plan_state, reason = blocked.get(row_key, (None, None))
                conn.execute(
                    "UPDATE rows SET progress=?, plan_state=COALESCE(?, plan_state), reason=?, "
                    "next_due=NULL, attempts_used=MAX(0, attempts_used - 1) WHERE row_key=?",
                    ("blocked" if plan_state else "pending", plan_state, reason, row_key),
                )
            conn.execute(
                "UPDATE batches SET state='failed', error=?, updated_at=? WHERE seq=? "
                "AND state='uploading'",
                (error, now, seq),
            )

    def note_batch(self, seq: int, note: str, now: float) -> None:
        """Keep a fact about the batch a user must be able to read later (``error``)."""
        with self._tx() as conn:
            conn.execute("UPDATE batches SET error=?, updated_at=? WHERE seq=?", (note, now, seq))

    def stored_batch(self, seq: int) -> StoredBatch:
        """One batch by its sequence number."""
        found = self._rows_where("batches", "seq = ?", (seq,))
        if not found:
            raise StateError(f"batch {seq} is not in the checkpoint")
        return _batch(found[0])

    def stored_batches(self, *states: BatchState) -> list[StoredBatch]:
        """Batches (in the given states), oldest first."""
        where = f"state IN ({', '.join('?' * len(states))})" if states else None
        return [_batch(r) for r in self._rows_where("batches", where, states, order_by="seq")]

    def batch_members(self, seq: int) -> list[Member]:
        """The batch's rows in file order."""
        found = self._rows_where("batch_members", "seq = ?", (seq,), order_by="position")
        return [Member(r["position"], r["row_key"], r["attempt_key"]) for r in found]

    def note_batch_call(self, attempt_key: str, call_id: str, status: str) -> None:
        """A batch row got a call id (it is being or has been dialed)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET call_id=?, status=? WHERE idempotency_key=?",
                (call_id, status, attempt_key),
            )

    def reject_batch_row(self, attempt_key: str, reason: str) -> None:
        """The server marked the row ``invalid``: the row is rejected with its reason."""
        with self._tx() as conn:
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
        scenario_id=r.get("scenario_id"),
        name=r.get("name"),
    )
