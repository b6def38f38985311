"""The state dir's shared opt-out list: numbers that said stop, honoured by every campaign."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

OPT_OUT_FILE = "opt_outs.sqlite"


class OptOutList:
    """``<state_dir>/opt_outs.sqlite``: E.164 numbers never to call again."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / OPT_OUT_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS opt_outs (e164 TEXT PRIMARY KEY, campaign TEXT, "
            "row_key TEXT, t REAL)"
        )
        return conn

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
        if not self.path.exists():
            return False
        conn = self._connect()
        try:
            return (
                conn.execute("SELECT 1 FROM opt_outs WHERE e164 = ?", (e164,)).fetchone()
                is not None
            )
        finally:
            conn.close()

    def numbers(self) -> list[str]:
        """Every opted-out number."""
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            return [str(r[0]) for r in conn.execute("SELECT e164 FROM opt_outs ORDER BY e164")]
        finally:
            conn.close()
