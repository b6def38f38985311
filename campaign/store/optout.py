"""The state dir's shared opt-out list: numbers that said stop, honoured by every campaign."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from campaign.store.shared import open_shared

OPT_OUT_FILE = "opt_outs.sqlite"


class OptOutList:
    """``<state_dir>/opt_outs.sqlite``: E.164 numbers never to call again."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / OPT_OUT_FILE
        # One reading connection per thread, kept: the send gate asks before every call.
        # In autocommit mode each SELECT sees what other processes have committed.
        self._readers = threading.local()

    def _connect(self) -> sqlite3.Connection:
        return open_shared(
            self.path,
            "CREATE TABLE IF NOT EXISTS opt_outs (e164 TEXT PRIMARY KEY, campaign TEXT, "
            "row_key TEXT, t REAL)",
        )

    def add(self, e164: str, *, campaign: str, row_key: str, now: float) -> None:
        """Add a number (idempotent)."""
        conn = self._connect()
        try:
            conn.execute(
                "INSERT OR IGNORE INTO opt_outs(e164, campaign, row_key, t) VALUES (?,?,?,?)",
                (e164, campaign, row_key, now),
            )
        finally:
            conn.close()

    def contains(self, e164: str) -> bool:
        """True if the number is on the list now (another run may have added it)."""
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            if not self.path.exists():
                return False
            conn = self._connect()
            self._readers.conn = conn
        row = conn.execute("SELECT 1 FROM opt_outs WHERE e164 = ?", (e164,)).fetchone()
        return row is not None

    def close(self) -> None:
        """Close this thread's reading connection, if one is open."""
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is not None:
            conn.close()
            self._readers.conn = None

    def numbers(self, *, besides: str | None = None) -> list[str]:
        """Every opted-out number; with ``besides``, only those another campaign added."""
        if not self.path.exists():
            return []
        sql = "SELECT e164 FROM opt_outs ORDER BY e164"
        params: tuple[str, ...] = ()
        if besides is not None:
            sql = "SELECT e164 FROM opt_outs WHERE campaign IS NOT ? ORDER BY e164"
            params = (besides,)
        conn = self._connect()
        try:
            return [str(r[0]) for r in conn.execute(sql, params)]
        finally:
            conn.close()
