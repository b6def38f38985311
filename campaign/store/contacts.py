"""The state dir's shared ledger of calls per number, for frequency caps across campaigns.

Every campaign sharing the state dir records here each call it sends, keyed by the
attempt's idempotency key: a re-send of the same attempt (after a crash, or a batch sent
again) is one call. Checking the cap and recording the call is one ``BEGIN IMMEDIATE``
transaction, so two runs at once cannot both take the last free slot.

With ``state_url`` the ledger is the table ``calls`` of the PostgreSQL schema
``campaign_shared``; its ``BEGIN IMMEDIATE`` takes the schema's advisory write lock
(``campaign.store.postgres``), so a check-and-record stays one decision across hosts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from campaign.store.checkpoint import Store
from campaign.store.postgres import SHARED_SCHEMA, PgConnection
from campaign.store.shared import ensure_tables, open_shared, pg_errors, shared_where

CALLS_FILE = "calls_per_number.sqlite"

CALLS_DDL = (
    "CREATE TABLE IF NOT EXISTS calls (attempt_key TEXT PRIMARY KEY, "
    "e164 TEXT NOT NULL, t REAL NOT NULL, campaign TEXT, row_key TEXT)",
    "CREATE INDEX IF NOT EXISTS calls_by_number ON calls(e164, t)",
)


@dataclass(frozen=True)
class Take:
    """The ledger's answer to ``take``: recorded (now or before), and the calls it saw."""

    recorded: bool
    already: bool  # this attempt was recorded before: the same call, not a new one
    times: tuple[float, ...]  # the number's calls at or after ``since``, oldest first


class CallLedger:
    """``<state_dir>/calls_per_number.sqlite`` (or, with ``dsn``, the database's shared
    table): one entry per call sent, by any campaign.

    One connection per thread, kept open: opening one costs more than a transaction.
    ``batch()`` makes the takes inside it one transaction (one sync to disk for a batch
    file's members instead of one per member).
    """

    def __init__(
        self, state_dir: Path, *, dsn: str | None = None, shown_url: str | None = None
    ) -> None:
        self.path = state_dir / CALLS_FILE
        self._dsn = dsn  # the secret URL: never shown
        self.where = (
            shared_where("the calls-per-number ledger", shown_url) if dsn else str(self.path)
        )
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"CallLedger({self.where!r})"

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if isinstance(conn, PgConnection) and conn.raw.closed:  # the server went away
            conn.close()
            conn = None
        if conn is not None:
            return conn
        if self._dsn is not None:
            ensure_tables(self._dsn, self.where, "calls", *CALLS_DDL)
            # Typed as sqlite3's: PgConnection speaks the part of it used here.
            conn = PgConnection(self._dsn, SHARED_SCHEMA, self.where)  # type: ignore[assignment]
        else:
            conn = open_shared(self.path, *CALLS_DDL)
        self._local.conn = conn
        assert conn is not None
        return conn

    def _errors(self) -> AbstractContextManager[None]:
        """PostgreSQL's failures as ``StateError`` (SQLite's stay as they are)."""
        return nullcontext() if self._dsn is None else pg_errors(self.where, self._dsn)

    def close(self) -> None:
        """Close this thread's connection (a later call opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every ``take`` inside is part of one ``BEGIN IMMEDIATE`` transaction."""
        if getattr(self._local, "batch", False):
            yield
            return
        with self._errors():
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
        self._local.batch = True
        try:
            yield
        except BaseException:
            self._local.batch = False
            with self._errors():
                conn.execute("ROLLBACK")
            raise
        self._local.batch = False
        with self._errors():
            conn.execute("COMMIT")

    def take(
        self,
        e164: str,
        attempt_key: str,
        *,
        at: float,
        since: float,
        allow: Callable[[Sequence[float]], bool],
        campaign: str,
        row_key: str,
    ) -> Take:
        """Record a call at ``at`` if ``allow(times)`` says yes; one transaction.

        An attempt already recorded is the same call: it is never refused, and its time
        moves to ``at`` if later (the window counts from its last send).
        """
        with self.batch():
            conn = self._connect()
            with self._errors():
                known = conn.execute(
                    "SELECT 1 FROM calls WHERE attempt_key = ?", (attempt_key,)
                ).fetchone()
                if known is not None:
                    conn.execute(
                        "UPDATE calls SET t = ? WHERE attempt_key = ? AND t < ?",
                        (at, attempt_key, at),
                    )
                    return Take(True, True, ())
                times = tuple(
                    float(r[0])
                    for r in conn.execute(
                        "SELECT t FROM calls WHERE e164 = ? AND t >= ? ORDER BY t",
                        (e164, since),
                    )
                )
            ok = allow(times)
            if ok:
                with self._errors():
                    conn.execute(
                        "INSERT OR IGNORE INTO calls(attempt_key, e164, t, campaign, row_key) "
                        "VALUES (?,?,?,?,?)",
                        (attempt_key, e164, at, campaign, row_key),
                    )
            return Take(ok, False, times)

    def times(self, e164: str, since: float) -> list[float]:
        """The number's recorded calls at or after ``since``, oldest first."""
        if self._dsn is None and not self.path.exists():
            return []
        with self._errors():
            conn = self._connect()
            return [
                float(r[0])
                for r in conn.execute(
                    "SELECT t FROM calls WHERE e164 = ? AND t >= ? ORDER BY t", (e164, since)
                )
            ]

    def distribution(self, campaign: str | None = None) -> dict[int, int]:
        """How many numbers got 1, 2, 3… calls (from ``campaign``, or from every one)."""
        if self._dsn is None and not self.path.exists():
            return {}
        where, args = ("WHERE campaign = ?", (campaign,)) if campaign is not None else ("", ())
        with self._errors():
            found = self._connect().execute(
                f"SELECT n, COUNT(*) FROM (SELECT COUNT(*) AS n FROM calls {where} "
                "GROUP BY e164) AS per_number GROUP BY n ORDER BY n",
                args,
            )
            return {int(n): int(count) for n, count in found}


# --- compliance counts over a campaign's checkpoint (the report's compliance section) ------


_HELD = (
    "vanished = 0 AND reason IS NOT NULL AND (plan_state IN ('rejected', 'suppressed') OR "
    "progress = 'retry_scheduled')"
)


def held_back(store: Store, rules: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Rows held back by each rule, by SQL: a rule's rows are those not called (rejected,
    suppressed) or waiting for a retry time whose reason starts with one of its prefixes."""
    names = list(rules)
    if not names:
        return {}
    sums, params = [], []
    for name in names:
        likes = " OR ".join("reason LIKE ? ESCAPE '\\'" for _ in rules[name]) or "0"
        sums.append(f"SUM(CASE WHEN {likes} THEN 1 ELSE 0 END)")
        params += [_like_prefix(prefix) for prefix in rules[name]]
    found = store._query(f"SELECT {', '.join(sums)} FROM rows WHERE {_HELD}", params)
    values = list(found[0].values()) if found else []
    return {name: int(value or 0) for name, value in zip(names, values, strict=False)}


def held_back_reasons(store: Store, *, limit: int = 100) -> list[tuple[str, str, int]]:
    """(state, reason, rows) of the rows not called or waiting for a retry, commonest first.

    ``state`` is ``rejected``, ``suppressed`` or ``waiting``; a reason is cut at its first
    ``;`` so that "callable again at …" does not split one rule into a line per row.
    """
    sql = (
        "SELECT CASE WHEN plan_state IN ('rejected', 'suppressed') THEN plan_state "
        "ELSE 'waiting' END AS state, "
        "substr(reason, 1, instr(reason || ';', ';') - 1) AS why, count(*) AS n "
        f"FROM rows WHERE {_HELD} GROUP BY state, why ORDER BY n DESC, why LIMIT ?"
    )
    return [(str(r["state"]), str(r["why"]), int(r["n"])) for r in store._query(sql, (limit,))]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def zone_counts(store: Store) -> list[tuple[str | None, int]]:
    """(us_state, rows) of the rows a campaign may call or has called, by SQL."""
    sql = (
        "SELECT us_state, count(*) AS n FROM rows WHERE vanished = 0 AND plan_state NOT IN "
        "('rejected', 'duplicate') GROUP BY us_state ORDER BY us_state"
    )
    return [
        (None if r["us_state"] is None else str(r["us_state"]), int(r["n"]))
        for r in store._query(sql)
    ]
