"""The shared allowance's SQLite file: recent sends of every participant, and who takes part.

One small file per (API base URL, key) in the state dir, shared by every process that runs a
campaign on that key. There is no daemon: each decision is one short ``BEGIN IMMEDIATE``
transaction, so two processes never decide on the same stale picture. The file holds no
phone numbers and no key, only send times and campaign names.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from campaign.config.limit import Limit
from campaign.errors import StateError

# Kinds of entries in ``sends``: a plain request, a POST /calls (a request and a call), the
# giving back of the call slot of an earlier entry at the same time (a replay), and a dial
# the platform will make for a batch (a call slot only, often at a future time).
REQUEST, CALL, RELEASE, RESERVE = 0, 1, -1, 2

# How long a writer waits for another process's transaction before giving up (ms); the
# transactions themselves last about a millisecond.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    priority REAL NOT NULL,
    limits TEXT NOT NULL,
    joined REAL NOT NULL,
    heartbeat REAL NOT NULL,
    vtime REAL NOT NULL DEFAULT 0,
    waiting INTEGER NOT NULL DEFAULT 0,
    ready_at REAL,
    call_due REAL,
    last_call REAL,
    calls_sent INTEGER NOT NULL DEFAULT 0,
    requests_sent INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    participant TEXT NOT NULL,
    kind INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_at ON sends (at);
"""


@dataclass(frozen=True)
class Participant:
    """One campaign's row: identity, liveness, fair-share bookkeeping and declared limits."""

    name: str
    host: str
    pid: int
    priority: float
    requests: tuple[Limit, ...]
    calls: tuple[Limit, ...]
    joined: float
    heartbeat: float
    vtime: float
    waiting: int
    ready_at: float | None
    call_due: float | None
    last_call: float | None
    calls_sent: int
    requests_sent: int
    state: str

    def is_live(self, now: float, ttl_s: float) -> bool:
        """Whether the run still takes part: a fresh heartbeat and, on this host, a live pid."""
        if self.state == "gone" or self.heartbeat < now - ttl_s:
            return False
        return self.host != socket.gethostname() or pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _limits_json(requests: Sequence[Limit], calls: Sequence[Limit]) -> str:
    return json.dumps(
        {
            "requests": [[lim.count, lim.window] for lim in requests],
            "calls": [[lim.count, lim.window] for lim in calls],
        }
    )


def _limits_from_json(text: str) -> tuple[tuple[Limit, ...], tuple[Limit, ...]]:
    data = json.loads(text)
    requests = tuple(Limit(int(c), float(w)) for c, w in data.get("requests", []))
    calls = tuple(Limit(int(c), float(w)) for c, w in data.get("calls", []))
    return requests, calls


class AllowanceDb:
    """SQL access to one allowance file; every method runs inside ``transaction()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open(path)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot use the shared allowance file {path}: {exc}") from exc

    def _open(self, path: Path) -> None:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the write lock is
        # taken before the first read and every decision sees the latest committed sends.
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000.0
        )
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._use_wal()
        # A lost send record after a power cut only makes the next run a little bolder for
        # one window; NORMAL keeps each decision cheap (no fsync per transaction in WAL).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            # statement by statement: executescript() would COMMIT our BEGIN IMMEDIATE
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    def _use_wal(self) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers a race
        # between two processes doing it with SQLITE_BUSY at once, without the busy handler.
        for _ in range(200):
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.01)
        self._conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        """Close the connection (again is harmless)."""
        self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any exception.

        SQLite failures (a full disk, a lock held for longer than the busy timeout) surface
        as ``StateError``, so a run ends with a clear message instead of a traceback.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot use the shared allowance file {self.path}: {exc}") from exc

    def put_participant(self, p: Participant) -> None:
        """Insert or replace the row of ``p.name``."""
        self._conn.execute(
            "INSERT OR REPLACE INTO participants (name, host, pid, priority, limits, joined,"
            " heartbeat, vtime, waiting, ready_at, call_due, last_call, calls_sent,"
            " requests_sent, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.name,
                p.host,
                p.pid,
                p.priority,
                _limits_json(p.requests, p.calls),
                p.joined,
                p.heartbeat,
                p.vtime,
                p.waiting,
                p.ready_at,
                p.call_due,
                p.last_call,
                p.calls_sent,
                p.requests_sent,
                p.state,
            ),
        )

    def participants(self) -> list[Participant]:
        """Every participant ever registered in this file (live or not)."""
        rows = self._conn.execute(
            "SELECT name, host, pid, priority, limits, joined, heartbeat, vtime, waiting,"
            " ready_at, call_due, last_call, calls_sent, requests_sent, state FROM participants"
            " ORDER BY name"
        ).fetchall()
        result = []
        for row in rows:
            requests, calls = _limits_from_json(row[4])
            result.append(
                Participant(
                    name=row[0],
                    host=row[1],
                    pid=row[2],
                    priority=row[3],
                    requests=requests,
                    calls=calls,
                    joined=row[5],
                    heartbeat=row[6],
                    vtime=row[7],
                    waiting=row[8],
                    ready_at=row[9],
                    call_due=row[10],
                    last_call=row[11],
                    calls_sent=row[12],
                    requests_sent=row[13],
                    state=row[14],
                )
            )
        return result

    def sends_after(self, last_id: int, since: float) -> list[tuple[int, float, int]]:
        """(id, time, kind) of the entries added after ``last_id`` and timed after ``since``.

        The table is append-only (a replay's call is given back by a ``RELEASE`` entry, not
        an update), so a reader that remembers the last id it saw needs only what is new.
        """
        rows = self._conn.execute(
            "SELECT id, at, kind FROM sends WHERE id > ? AND at > ? ORDER BY id",
            (last_id, since),
        ).fetchall()
        return [(int(row_id), float(at), int(kind)) for row_id, at, kind in rows]

    def count_sends(self, name: str, at: float, kind: int) -> int:
        """How many entries of ``kind`` at exactly ``at`` ``name`` has recorded."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM sends WHERE participant = ? AND at = ? AND kind = ?",
            (name, at, kind),
        ).fetchone()
        return int(row[0])

    def record_send(self, name: str, at: float, kind: int) -> int:
        """Add one entry (``REQUEST``, ``CALL``, ``RELEASE`` or ``RESERVE``) of ``name``;
        return its id."""
        cursor = self._conn.execute(
            "INSERT INTO sends (at, participant, kind) VALUES (?, ?, ?)", (at, name, kind)
        )
        return int(cursor.lastrowid or 0)

    def calls_since(self, since: float) -> dict[str, int]:
        """Calls each participant sent after ``since`` (replays given back not counted)."""
        rows = self._conn.execute(
            "SELECT participant, SUM(CASE kind WHEN ? THEN 1 WHEN ? THEN -1 ELSE 0 END)"
            " FROM sends WHERE at > ? GROUP BY participant",
            (CALL, RELEASE, since),
        ).fetchall()
        return {name: int(count) for name, count in rows}

    def prune(self, before: float, forget_before: float) -> None:
        """Forget sends that can no longer count, and participants gone since long ago."""
        self._conn.execute("DELETE FROM sends WHERE at <= ?", (before,))
        self._conn.execute("DELETE FROM participants WHERE heartbeat < ?", (forget_before,))
