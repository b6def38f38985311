"""The checkpoint: one SQLite file per campaign, the only module that speaks SQL.

WAL with ``synchronous=FULL`` so a committed transition survives ``kill -9`` and power
loss; every state transition is one small ``BEGIN IMMEDIATE`` transaction. The file
holds phone numbers, so it is created with mode 0600. The API key is never stored.

Row progress: ``pending → in_flight → (retry_scheduled → in_flight …) → done | failed``;
rows the plan did not make callable stay ``blocked`` with the plan's state and reason.
Attempt states: ``sending`` (committed with its exact body before the request leaves) →
``sent`` (the API answered with a call id) → ``ended`` (terminal status recorded), or
``failed`` (the API refused it for good) or ``void`` (ended by an empty wallet; the row
gets a new attempt that does not count against ``max_attempts``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from campaign.errors import StateError
from campaign.store_schema import MIGRATIONS

Progress = Literal["blocked", "pending", "in_flight", "retry_scheduled", "done", "failed"]
AttemptState = Literal["sending", "sent", "ended", "failed", "void"]
OPEN_ATTEMPT_STATES: tuple[AttemptState, ...] = ("sending", "sent")


@dataclass(frozen=True)
class RowIn:
    """A planned input row as the store keeps it."""

    line: int
    row_key: str
    raw_phone: str
    e164: str | None
    plan_state: str
    reason: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    timezones: list[str] = field(default_factory=list)
    us_state: str | None = None
    region: str | None = None
    duplicate_of: str | None = None
    label: str | None = None  # the key shown in results.csv when it differs from row_key


@dataclass(frozen=True)
class StoredRow:
    """A row as recorded in the checkpoint."""

    line: int
    row_key: str
    label: str
    raw_phone: str
    e164: str | None
    plan_state: str
    reason: str | None
    variables: dict[str, Any]
    timezones: list[str]
    us_state: str | None
    region: str | None
    duplicate_of: str | None
    progress: Progress
    next_due: float | None
    attempts_used: int
    vanished: bool
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class Attempt:
    """One attempt to call one row, with everything the API told us about it."""

    row_key: str
    number: int
    idempotency_key: str
    state: AttemptState
    body: bytes
    call_id: str | None
    status: str | None
    outcome: str | None
    goal_achieved: bool | None
    failure_reason: str | None
    session_id: str | None
    slot_values: dict[str, Any] | None
    cost: str | None
    currency: str | None
    duration_s: float | None
    error: str | None
    sending_at: float
    sent_at: float | None
    ended_at: float | None
    call_updated_at: str | None


@dataclass(frozen=True)
class CallEnd:
    """The terminal facts of a call, as the collector learned them."""

    status: str
    outcome: str | None = None
    goal_achieved: bool | None = None
    failure_reason: str | None = None
    session_id: str | None = None
    ended_at: float | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class SyncSummary:
    """What changed when the input was merged into the checkpoint."""

    new: int
    known: int
    vanished: int


class Store:
    """The checkpoint of one campaign."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._depth = 0
        self.db = Database(conn)
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating and migrating if needed) the checkpoint at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file 0600 before SQLite does, so phone numbers are never world-readable.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: the checkpoint cannot be opened: {exc}") from exc
        store = cls(conn, path)
        store._migrate()
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)
        return store

    @classmethod
    def snapshot(cls, path: Path | None) -> Store:
        """An in-memory copy of the checkpoint (or an empty one), for dry runs."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        if path is not None and path.exists():
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                source.backup(conn)
            finally:
                source.close()
        store = cls(conn, None)
        store._migrate()
        return store

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StateError(
                f"{self.path}: the checkpoint was written by a newer version of campaign"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")

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

    # --- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored campaign fact (identity, fingerprint, watermark), or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Record a campaign fact."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def claim_identity(self, campaign: str) -> None:
        """Tie this file to a campaign name; refuse a file that belongs to another one."""
        stored = self.get_meta("campaign")
        if stored is None:
            self.set_meta("campaign", campaign)
        elif stored != campaign:
            raise StateError(
                f"{self.path}: this checkpoint belongs to campaign {stored!r}, not {campaign!r}"
            )

    # --- rows ---------------------------------------------------------------------------

    def sync_rows(self, planned: Sequence[RowIn], now: float) -> SyncSummary:
        """Merge the planned input: new rows join, known rows keep state, gone rows vanish."""
        new = known = 0
        seen: set[str] = set()
        with self._tx() as conn:
            existing = {
                r[0]: (r[1], r[2])
                for r in conn.execute("SELECT row_key, progress, attempts_used FROM rows")
            }
            for row in planned:
                seen.add(row.row_key)
                values = (
                    row.label or row.row_key,
                    row.line,
                    row.raw_phone,
                    row.e164,
                    json.dumps(row.variables, sort_keys=True),
                    json.dumps(row.timezones),
                    row.us_state,
                    row.region,
                    row.duplicate_of,
                )
                if row.row_key not in existing:
                    new += 1
                    progress = "pending" if row.plan_state == "callable" else "blocked"
                    conn.execute(
                        "INSERT INTO rows(label, line, raw_phone, e164, variables, timezones, "
                        "us_state, region, duplicate_of, row_key, plan_state, reason, "
                        "progress, attempts_used, vanished, first_seen, last_seen) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,?,?)",
                        (*values, row.row_key, row.plan_state, row.reason, progress, now, now),
                    )
                    continue
                known += 1
                old_progress, used = existing[row.row_key]
                conn.execute(
                    "UPDATE rows SET label=?, line=?, raw_phone=?, e164=?, variables=?, "
                    "timezones=?, us_state=?, region=?, duplicate_of=?, vanished=0, last_seen=? "
                    "WHERE row_key=?",
                    (*values, now, row.row_key),
                )
                # A row nobody has called yet follows today's plan (it may have been
                # suppressed since); a row with history keeps its state.
                if used == 0 and old_progress in ("pending", "blocked"):
                    progress = "pending" if row.plan_state == "callable" else "blocked"
                    conn.execute(
                        "UPDATE rows SET plan_state=?, reason=?, progress=? WHERE row_key=?",
                        (row.plan_state, row.reason, progress, row.row_key),
                    )
            gone = [key for key in existing if key not in seen]
            for key in gone:
                conn.execute("UPDATE rows SET vanished=1 WHERE row_key=?", (key,))
        return SyncSummary(new=new, known=known, vanished=len(gone))

    def rows(self, *, include_vanished: bool = True) -> list[StoredRow]:
        """Every row, in input-line order."""
        sql = "SELECT * FROM rows"
        if not include_vanished:
            sql += " WHERE vanished = 0"
        return [_row(r) for r in self._query(sql + " ORDER BY vanished, line")]

    def row(self, row_key: str) -> StoredRow:
        """One row by key."""
        found = self._query("SELECT * FROM rows WHERE row_key = ?", (row_key,))
        if not found:
            raise StateError(f"row {row_key!r} is not in the checkpoint")
        return _row(found[0])

    def rows_due(self, now: float) -> list[StoredRow]:
        """Rows that need a new attempt now (pending, or a retry whose time has come)."""
        sql = (
            "SELECT * FROM rows WHERE vanished = 0 AND (progress = 'pending' OR "
            "(progress = 'retry_scheduled' AND next_due <= ?)) ORDER BY line"
        )
        return [_row(r) for r in self._query(sql, (now,))]

    def set_row_progress(
        self,
        row_key: str,
        progress: Progress,
        *,
        reason: str | None = None,
        next_due: float | None = None,
    ) -> None:
        """Move a row to another progress state."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE rows SET progress=?, next_due=?, reason=COALESCE(?, reason) "
                "WHERE row_key=?",
                (progress, next_due, reason, row_key),
            )

    # --- attempts -----------------------------------------------------------------------

    def begin_attempt(
        self, row_key: str, number: int, idempotency_key: str, body: bytes, now: float
    ) -> Attempt:
        """Commit an attempt as *sending* with its exact body, before the request leaves."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO attempts(row_key, number, idempotency_key, state, body, "
                "sending_at) VALUES (?, ?, ?, 'sending', ?, ?)",
                (row_key, number, idempotency_key, body, now),
            )
            conn.execute(
                "UPDATE rows SET progress='in_flight', next_due=NULL, "
                "attempts_used=attempts_used+1 WHERE row_key=?",
                (row_key,),
            )
        return self.attempt(idempotency_key)

    def attempt(self, idempotency_key: str) -> Attempt:
        """One attempt by its key."""
        found = self._query("SELECT * FROM attempts WHERE idempotency_key = ?", (idempotency_key,))
        if not found:
            raise StateError(f"attempt {idempotency_key} is not in the checkpoint")
        return _attempt(found[0])

    def attempts(self, *states: AttemptState) -> list[Attempt]:
        """Attempts, optionally only those in the given states, oldest first."""
        sql = "SELECT * FROM attempts"
        params: tuple[str, ...] = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params = tuple(states)
        return [_attempt(r) for r in self._query(sql + " ORDER BY sending_at, number", params)]

    def count_attempts(self, *states: AttemptState) -> int:
        """How many attempts are in the given states (cheap; no bodies loaded)."""
        sql = f"SELECT COUNT(*) FROM attempts WHERE state IN ({','.join('?' * len(states))})"
        return int(self._conn.execute(sql, states).fetchone()[0])

    def oldest_open_attempt(self) -> float | None:
        """The earliest sending_at of attempts still *sending* or *sent*."""
        row = self._conn.execute(
            "SELECT MIN(sending_at) FROM attempts WHERE state IN ('sending', 'sent')"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def count_needing_session(self) -> int:
        """How many ended attempts still need their session facts."""
        sql = (
            "SELECT COUNT(*) FROM attempts WHERE state='ended' AND session_id IS NOT NULL "
            "AND session_fetched=0"
        )
        return int(self._conn.execute(sql).fetchone()[0])

    def next_attempt_number(self, row_key: str) -> int:
        """The number of the row's next attempt (void attempts keep their number)."""
        row = self._conn.execute(
            "SELECT COALESCE(MAX(number), 0) FROM attempts WHERE row_key = ?", (row_key,)
        ).fetchone()
        return int(row[0]) + 1

    def mark_sent(self, idempotency_key: str, call_id: str, status: str, now: float) -> None:
        """The API answered with a call id: the attempt is *sent*."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='sent', call_id=?, status=?, sent_at=? "
                "WHERE idempotency_key=? AND state='sending'",
                (call_id, status, now, idempotency_key),
            )

    def record_status(self, idempotency_key: str, status: str, updated_at: str | None) -> None:
        """A non-terminal status seen while polling."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET status=?, call_updated_at=? WHERE idempotency_key=?",
                (status, updated_at, idempotency_key),
            )

    def end_attempt(
        self,
        idempotency_key: str,
        end: CallEnd,
        *,
        row_progress: Progress,
        row_reason: str | None = None,
        next_due: float | None = None,
        void: bool = False,
    ) -> None:
        """Record a call's terminal facts and the row's next state in one transaction."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state=?, status=?, outcome=?, goal_achieved=?, "
                "failure_reason=?, session_id=COALESCE(?, session_id), ended_at=?, "
                "call_updated_at=? WHERE idempotency_key=?",
                (
                    "void" if void else "ended",
                    end.status,
                    end.outcome,
                    end.goal_achieved,
                    end.failure_reason,
                    end.session_id,
                    end.ended_at,
                    end.updated_at,
                    idempotency_key,
                ),
            )
            if void:
                conn.execute(
                    "UPDATE attempts SET error=? WHERE idempotency_key=?",
                    ("insufficient_funds: the attempt does not count", idempotency_key),
                )
            self._move_row(conn, idempotency_key, row_progress, row_reason, next_due, void)

    def fail_attempt(
        self, idempotency_key: str, error: str, *, row_progress: Progress, row_reason: str
    ) -> None:
        """The API refused the attempt for good (400/409/422): record why, move the row."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='failed', error=? WHERE idempotency_key=?",
                (error, idempotency_key),
            )
            self._move_row(conn, idempotency_key, row_progress, row_reason, None, False)

    def abandon_attempt(self, idempotency_key: str, error: str) -> None:
        """Give the row back untouched (the refusal was the campaign's fault, not the row's)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='void', error=? WHERE idempotency_key=?",
                (error, idempotency_key),
            )
            self._move_row(conn, idempotency_key, "pending", None, None, True)

    def _move_row(
        self,
        conn: sqlite3.Connection,
        idempotency_key: str,
        progress: Progress,
        reason: str | None,
        next_due: float | None,
        void: bool,
    ) -> None:
        conn.execute(
            "UPDATE rows SET progress=?, reason=?, next_due=?, "
            "attempts_used=attempts_used - ? "
            "WHERE row_key=(SELECT row_key FROM attempts WHERE idempotency_key=?)",
            (progress, reason, next_due, 1 if void else 0, idempotency_key),
        )

    def record_session(
        self,
        idempotency_key: str,
        *,
        slot_values: dict[str, Any] | None,
        cost: str | None,
        currency: str | None,
        duration_s: float | None,
    ) -> None:
        """Store the session facts the report needs (slot values, cost, duration)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET slot_values=?, cost=?, currency=?, duration_s=?, "
                "session_fetched=1 WHERE idempotency_key=?",
                (
                    None if slot_values is None else json.dumps(slot_values, sort_keys=True),
                    cost,
                    currency,
                    duration_s,
                    idempotency_key,
                ),
            )

    def attempts_needing_session(self) -> list[Attempt]:
        """Ended attempts with a session whose facts were not fetched yet."""
        sql = (
            "SELECT * FROM attempts WHERE state='ended' AND session_id IS NOT NULL "
            "AND session_fetched=0 ORDER BY ended_at"
        )
        return [_attempt(r) for r in self._query(sql)]

    # --- send log (seeds the limiter after a restart) -----------------------------------

    def log_sends(self, sends: Sequence[tuple[str, float]]) -> None:
        """Append send times (kind ``request`` or ``call``) durably."""
        if not sends:
            return
        with self._tx() as conn:
            conn.executemany("INSERT INTO send_log(kind, t) VALUES (?, ?)", sends)

    def send_times(self, since: float) -> tuple[list[float], list[float]]:
        """Request and call send times at or after ``since`` (oldest first)."""
        requests: list[float] = []
        calls: list[float] = []
        for kind, t in self._conn.execute(
            "SELECT kind, t FROM send_log WHERE t >= ? ORDER BY t", (since,)
        ):
            (calls if kind == "call" else requests).append(float(t))
        return requests, calls

    def prune_send_log(self, before: float) -> None:
        """Forget send times no limit window can still see."""
        with self._tx() as conn:
            conn.execute("DELETE FROM send_log WHERE t < ?", (before,))

    # --- run log ------------------------------------------------------------------------

    def start_run(self, now: float, command: str) -> int:
        """Record that a run started; returns its id."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO runs(started_at, command) VALUES (?, ?)", (now, command)
            )
            return int(cursor.lastrowid or 0)

    def end_run(self, run_id: int, now: float, exit_code: int, summary: dict[str, Any]) -> None:
        """Record how a run ended."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET ended_at=?, exit_code=?, summary=? WHERE id=?",
                (now, exit_code, json.dumps(summary, sort_keys=True, default=str), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        """The run log, oldest first."""
        return self._query("SELECT * FROM runs ORDER BY id")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _row(r: dict[str, Any]) -> StoredRow:
    return StoredRow(
        line=int(r["line"]),
        row_key=r["row_key"],
        label=r["label"],
        raw_phone=r["raw_phone"] or "",
        e164=r["e164"],
        plan_state=r["plan_state"],
        reason=r["reason"],
        variables=json.loads(r["variables"] or "{}"),
        timezones=json.loads(r["timezones"] or "[]"),
        us_state=r["us_state"],
        region=r["region"],
        duplicate_of=r["duplicate_of"],
        progress=r["progress"],
        next_due=r["next_due"],
        attempts_used=int(r["attempts_used"]),
        vanished=bool(r["vanished"]),
        first_seen=float(r["first_seen"]),
        last_seen=float(r["last_seen"]),
    )


def _attempt(r: dict[str, Any]) -> Attempt:
    goal = r["goal_achieved"]
    return Attempt(
        row_key=r["row_key"],
        number=int(r["number"]),
        idempotency_key=r["idempotency_key"],
        state=r["state"],
        body=bytes(r["body"]),
        call_id=r["call_id"],
        status=r["status"],
        outcome=r["outcome"],
        goal_achieved=None if goal is None else bool(goal),
        failure_reason=r["failure_reason"],
        session_id=r["session_id"],
        slot_values=None if r["slot_values"] is None else json.loads(r["slot_values"]),
        cost=r["cost"],
        currency=r["currency"],
        duration_s=r["duration_s"],
        error=r["error"],
        sending_at=float(r["sending_at"]),
        sent_at=r["sent_at"],
        ended_at=r["ended_at"],
        call_updated_at=r["call_updated_at"],
    )
