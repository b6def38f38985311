"""The shared allowance's ledger: recent sends of every participant, and who takes part.

One small SQLite file per (API base URL, key) in the state dir, shared by every process that
runs a campaign on that key; with ``state_url``, one PostgreSQL schema per (base URL, key)
(``allowance:<digest>``), shared by every host on the database. There is no daemon: each
decision is one short ``BEGIN IMMEDIATE`` transaction (in PostgreSQL: a transaction holding
the schema's advisory write lock), so two processes never decide on the same stale picture.
The ledger holds no phone numbers and no key, only send times and campaign names.

Entries of ``sends`` are numbered in the order they are committed (every insert happens
inside such a transaction, one writer at a time), which lets a reader ask only for what is
new since the last id it saw.

A participant is identified by host and pid. In SQLite the host is the host name; in
PostgreSQL it carries a fingerprint of the kernel boot and pid namespace too, so that a run
on another machine that happens to have the same host name is never judged dead because its
pid does not exist here: only a run that shares this machine's pids is checked by pid, any
other by its heartbeat alone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from campaign.config.limit import Limit
from campaign.errors import StateError
from campaign.store.postgres import PgConnection, is_ours, pg_error
from campaign.store.shared import ensure_tables

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
_COLUMNS = (
    "host, pid, priority, limits, joined, heartbeat, vtime, waiting, ready_at, call_due, "
    "last_call, calls_sent, requests_sent, state"
)
_UPDATE_ALL = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", "))


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


@dataclass(frozen=True)
class AllowanceLocation:
    """Where the ledger of one allowance (API base URL and key) lives: the file ``path`` in
    the state dir, or with ``dsn`` the PostgreSQL schema ``namespace``."""

    digest: str
    path: Path
    dsn: str | None = field(default=None, repr=False)  # the secret URL: never shown
    shown_url: str | None = None

    @property
    def namespace(self) -> str:
        """The PostgreSQL schema of this allowance."""
        return allowance_namespace(self.digest)

    def describe(self) -> str:
        """The ledger as messages name it (never with a password)."""
        if self.dsn is not None:
            database = (
                f"the state database {self.shown_url}" if self.shown_url else "the state database"
            )
            return f"the shared allowance in {database} (schema {self.namespace!r})"
        return f"the shared allowance file {self.path}"

    def exists(self) -> bool:
        """Whether some run has used this allowance (nothing is created to find out)."""
        if self.dsn is None:
            return self.path.exists()
        return self.namespace in pg_allowance_namespaces(self.dsn, self.describe())

    def open(self) -> AllowanceDb:
        """The ledger, created if needed (``StateError`` when it cannot be used)."""
        if self.dsn is None:
            return AllowanceDb(self.path)
        return AllowanceDb.postgres(self.dsn, self.namespace, self.describe())


ALLOWANCE_PREFIX = "allowance:"


def allowance_digest(base_url: str, api_key: str) -> str:
    """The name of one base URL and key's allowance; it holds no part of the key."""
    key_fingerprint = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
    return hashlib.sha256(f"{base_url}\n{key_fingerprint}".encode()).hexdigest()[:16]


def allowance_namespace(digest: str) -> str:
    """The PostgreSQL schema of the allowance ``digest``."""
    return f"{ALLOWANCE_PREFIX}{digest}"


def pg_allowance_namespaces(dsn: str, where: str) -> list[str]:
    """The allowance schemas of the database (read only; nothing is created)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=30) as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY nspname",
                (ALLOWANCE_PREFIX,),
            ).fetchall()
    except psycopg.Error as exc:
        raise pg_error(where, exc, dsn) from None
    return [str(r[0]) for r in rows]


@functools.cache
def host_identity() -> str:
    """This host as a PostgreSQL ledger records it: the host name, and a fingerprint of
    the kernel boot and pid namespace (the pids this process can check)."""
    parts = []
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    except OSError:
        parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    scope = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}#{scope}"


class AllowanceDb:
    """SQL access to one allowance ledger; every method runs inside ``transaction()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"the shared allowance file {path}"
        self._dsn: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open(path)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot use the shared allowance file {path}: {exc}") from exc

    @classmethod
    def postgres(cls, dsn: str, namespace: str, where: str) -> AllowanceDb:
        """The ledger in the PostgreSQL schema ``namespace`` (created if missing)."""
        statements = [statement for statement in _SCHEMA.split(";") if statement.strip()]
        ensure_tables(dsn, where, "sends", *statements, namespace=namespace)
        db = cls.__new__(cls)
        db.path = Path(namespace)
        db.where = where
        db._dsn = dsn
        # Typed as sqlite3's: PgConnection speaks the part of it used here.
        db._conn = PgConnection(dsn, namespace, where)  # type: ignore[assignment]
        return db

    @property
    def uses_postgres(self) -> bool:
        """True for a ledger in PostgreSQL."""
        return self._dsn is not None

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
        conn: Any = self._conn
        if isinstance(conn, PgConnection):
            if getattr(self, "_closed", False):
                return
            self._closed = True
        conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any exception.

        Failures of the file or the database (a full disk, a lock held for longer than the
        busy timeout, a lost server) surface as ``StateError``, so a run ends with a clear
        message instead of a traceback.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error, psycopg.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot use the shared allowance file {self.path}: {exc}") from exc
        except psycopg.Error as exc:
            if is_ours(exc):
                raise
            assert self._dsn is not None
            raise pg_error(self.where, exc, self._dsn) from None

    def _stored_host(self, host: str) -> str:
        # In PostgreSQL this host is recorded with its pid scope (see the module doc).
        if self._dsn is not None and host == socket.gethostname():
            return host_identity()
        return host

    def _read_host(self, host: str) -> str:
        # A row of this host (same pid scope) reads as the host name: its pid is checked.
        if self._dsn is not None and host == host_identity():
            return socket.gethostname()
        return host

    def put_participant(self, p: Participant) -> None:
        """Insert or replace the row of ``p.name``."""
        self._conn.execute(
            "INSERT INTO participants (name, host, pid, priority, limits, joined,"
            " heartbeat, vtime, waiting, ready_at, call_due, last_call, calls_sent,"
            " requests_sent, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT(name) DO UPDATE SET {_UPDATE_ALL}",
            (
                p.name,
                self._stored_host(p.host),
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
                    host=self._read_host(row[1]),
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
        row = self._conn.execute(
            "INSERT INTO sends (at, participant, kind) VALUES (?, ?, ?) RETURNING id",
            (at, name, kind),
        ).fetchone()
        return int(row[0])

    def calls_since(self, since: float) -> dict[str, int]:
        """Calls each participant sent after ``since`` (replays given back not counted)."""
        rows = self._conn.execute(
            "SELECT participant, SUM(CASE kind WHEN ? THEN 1 WHEN ? THEN -1 ELSE 0 END)"
            " FROM sends WHERE at > ? GROUP BY participant",
            (CALL, RELEASE, since),
        ).fetchall()
        return {name: int(count or 0) for name, count in rows}

    def prune(self, before: float, forget_before: float) -> None:
        """Forget sends that can no longer count, and participants gone since long ago."""
        self._conn.execute("DELETE FROM sends WHERE at <= ?", (before,))
        self._conn.execute("DELETE FROM participants WHERE heartbeat < ?", (forget_before,))
