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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from campaign.errors import StateError
from campaign.store.attempts import AttemptJournal
from campaign.store.base import check_header, check_structure, checkpoint_error
from campaign.store.batches import BatchLedger
from campaign.store.models import (
    OPEN_ATTEMPT_STATES,
    WAITING_PROGRESS,
    Attempt,
    AttemptState,
    CallEnd,
    RowIn,
    RowProgress,
    StoredRow,
    SyncedRow,
    SyncSummary,
    row_from_sql,
)
from campaign.store.schema import migrations

__all__ = [
    "OPEN_ATTEMPT_STATES",
    "Attempt",
    "AttemptState",
    "CallEnd",
    "RowIn",
    "RowProgress",
    "Store",
    "StoredRow",
    "SyncSummary",
]


class Store(AttemptJournal, BatchLedger):
    """The checkpoint of one campaign."""

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating and migrating if needed) the checkpoint at ``path``.

        A damaged file is refused before anything is written to it: never migrated,
        never rewritten, so whatever can still be read from it stays there.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Create the file 0600 before SQLite does: phone numbers are never world-readable.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
            check_header(path)
        except OSError as exc:
            raise StateError(f"{path}: the checkpoint cannot be opened ({exc})") from exc
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise checkpoint_error(path, exc) from exc
        try:
            check_structure(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(conn, path)
            store._migrate()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise checkpoint_error(path, exc) from exc
            raise
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)
        return store

    @classmethod
    def snapshot(cls, path: Path | None) -> Store:
        """An in-memory copy of the checkpoint (or an empty one), for dry runs."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            if path is not None and path.exists():
                check_header(path)
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    source.backup(conn)
                finally:
                    source.close()
                check_structure(conn, path)
            store = cls(conn, None)
            store._migrate()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise checkpoint_error(path, exc) from exc
            if isinstance(exc, OSError):
                raise StateError(f"{path}: the checkpoint cannot be read ({exc})") from exc
            raise
        return store

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        steps = migrations()
        if version > len(steps):
            raise StateError(
                f"{self.path}: the checkpoint was written by a newer version of campaign"
            )
        for number, step in enumerate(steps[version:], start=version + 1):
            # A step and its version number commit together, or neither does.
            with self._tx() as conn:
                if callable(step):
                    step(self.db)
                else:
                    for statement in step:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")

    # --- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored campaign fact (identity, fingerprint, watermark), or None."""
        found = self._rows_where("meta", "key = ?", (key,), select="value")
        return None if not found else str(found[0]["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Record a campaign fact."""
        with self._tx():
            self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

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
        """Merge the planned input: new rows join, known rows keep state, gone rows vanish.

        Identity across nights is the number as well as the key: a key whose row has
        called and whose number changed is a new person (a new row ``<key>#2`` under the
        same label, so its attempts get keys of their own), and a number that another row
        has already called is a ``duplicate`` of that row, whatever key it comes with.

        One transaction: the merge is worked out in memory from what the checkpoint holds,
        then the rows it changes are written by one bulk upsert, so a crash leaves either
        last night's rows or tonight's, never a mix.
        """
        with self._tx() as conn:
            stored = {r[0]: SyncedRow._make(r) for r in conn.execute(_SELECT_SYNCED)}
            callers: dict[str, tuple[str, int, str]] = {}  # number → the row that called it
            for phone, row_key, line, label in conn.execute(
                "SELECT a.phone, r.row_key, r.line, r.label FROM attempts a "
                "JOIN rows r ON r.row_key = a.row_key WHERE a.phone IS NOT NULL "
                f"AND a.state IN {_DIALLED} ORDER BY a.sending_at"
            ):
                callers.setdefault(str(phone), (str(row_key), int(line), str(label)))
            touched = {
                str(r[0])
                for r in conn.execute(
                    f"SELECT DISTINCT row_key FROM attempts WHERE state IN {_DIALLED}"
                )
            }
            merged, summary = _merge(planned, stored, callers, touched, now)
            # Unchanged rows are not rewritten; last_seen alone is set by one UPDATE below.
            changed = [
                row for key, row in merged.items() if key not in stored or _moved(row, stored[key])
            ]
            self.db.table("rows").upsert_all([SyncedRow._fields, *changed], pk="row_key")
            # Every row of tonight's file now has vanished = 0, and every other row 1.
            conn.execute("UPDATE rows SET last_seen = ? WHERE vanished = 0", (now,))
        return summary

    def rows(self, *, include_vanished: bool = True) -> list[StoredRow]:
        """Every row, in input-line order."""
        where = None if include_vanished else "vanished = 0"
        return [row_from_sql(r) for r in self._rows_where("rows", where, order_by="vanished, line")]

    def row(self, row_key: str) -> StoredRow:
        """One row by key."""
        found = self._rows_where("rows", "row_key = ?", (row_key,))
        if not found:
            raise StateError(f"row {row_key!r} is not in the checkpoint")
        return row_from_sql(found[0])

    def rows_due(self, now: float) -> list[StoredRow]:
        """Rows that need a new attempt now (pending, or a retry whose time has come)."""
        due = (
            "vanished = 0 AND (progress = 'pending' OR "
            "(progress = 'retry_scheduled' AND next_due <= ?))"
        )
        return [row_from_sql(r) for r in self._rows_where("rows", due, (now,), order_by="line")]

    def set_row_progress(
        self,
        row_key: str,
        progress: RowProgress,
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
        for send in self._rows_where("send_log", "t >= ?", (since,), order_by="t"):
            (calls if send["kind"] == "call" else requests).append(float(send["t"]))
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
        return self._rows_where("runs", order_by="id")


# Attempt states whose request may have made a phone ring.
_DIALLED = "('sending', 'sent', 'ended', 'withheld')"


_SELECT_SYNCED = f"SELECT {', '.join(SyncedRow._fields)} FROM rows"
# One encoder for every row's variables (json.dumps builds one per call when given options).
_SORTED_JSON = json.JSONEncoder(sort_keys=True)


def _merge(
    planned: Sequence[RowIn],
    stored: dict[str, SyncedRow],
    callers: dict[str, tuple[str, int, str]],
    touched: set[str],
    now: float,
) -> tuple[dict[str, SyncedRow], SyncSummary]:
    """Every checkpoint row as tonight's file leaves it, by the rules of ``sync_rows``.

    The planned rows are applied in file order, each to what the rows before it left, so a
    key that comes twice ends as it always has (the later row wins).
    """
    merged = dict(stored)
    # Each key's progress and number as the identity rule sees them: a row that joins
    # tonight counts as pending until tomorrow.
    existing = {key: (row.progress, row.e164) for key, row in stored.items()}
    seen: set[str] = set()
    zones_json: dict[tuple[str, ...], str] = {}  # a file has few distinct timezone lists
    new = known = 0
    for row in planned:
        row_key = _resolve_key(row, existing, touched)
        plan_state, reason, duplicate_of = row.plan_state, row.reason, row.duplicate_of
        caller = callers.get(row.e164 or "")
        if (
            plan_state == "callable"
            and caller is not None
            and caller[0] != row_key
            and row_key not in touched
        ):
            plan_state = "duplicate"
            line, label = caller[1], caller[2]
            reason = f"duplicate of line {line} (key {label}), which already called this number"
            duplicate_of = str(line)
        seen.add(row_key)
        zones = tuple(row.timezones)
        if zones not in zones_json:
            zones_json[zones] = json.dumps(row.timezones)
        facts = (
            row.label or row.row_key,
            row.line,
            row.raw_phone,
            row.e164,
            _SORTED_JSON.encode(row.variables),
            zones_json[zones],
            row.us_state,
            row.region,
            duplicate_of,
            row.extension,
            row.note,
            row.number_type,
        )
        if row_key not in existing:
            new += 1
            existing[row_key] = ("pending", row.e164)
            progress = "pending" if plan_state == "callable" else "blocked"
            merged[row_key] = SyncedRow(
                row_key, *facts, plan_state, reason, progress, None, 0, now, now
            )
            continue
        known += 1
        before = merged[row_key]
        state = (before.plan_state, before.reason, before.progress, before.next_due)
        # Rows waiting for a call follow today's plan (the number may have opted out or
        # been suppressed since); rows called to the end keep their state.
        if plan_state != "callable" and existing[row_key][0] in WAITING_PROGRESS:
            state = (plan_state, reason, "blocked", None)
        elif plan_state == "callable" and existing[row_key][0] == "blocked":
            state = ("callable", None, "pending", before.next_due)
        merged[row_key] = SyncedRow(row_key, *facts, *state, 0, before.first_seen, now)
    gone = [key for key in existing if key not in seen]
    for key in gone:
        merged[key] = merged[key]._replace(vanished=1)
    return merged, SyncSummary(new=new, known=known, vanished=len(gone))


def _moved(row: SyncedRow, before: SyncedRow) -> bool:
    """True if the sync changes anything of the row but when it was last seen."""
    return row[:-1] != before[:-1]  # last_seen is the last column


def _resolve_key(row: RowIn, existing: dict[str, tuple[str, str | None]], touched: set[str]) -> str:
    """The checkpoint row a planned row is: its key, or a later person under that key."""
    key = row.row_key
    found = existing.get(key)
    if found is None or key not in touched or found[1] == row.e164:
        return key
    # The key's row has called another number: this is a new person. Later people under
    # the same key are <key>#2, #3, … (matched by number, so each keeps its own history).
    generation = 2
    while True:
        candidate = f"{key}#{generation}"
        found = existing.get(candidate)
        if found is None or found[1] == row.e164 or candidate not in touched:
            return candidate
        generation += 1
