"""The state dir's small shared files: one opener for their SQLite connections."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_shared(path: Path, *schema: str) -> sqlite3.Connection:
    """A connection to a file every campaign of the state dir shares: created private
    (0600), WAL so that readers never wait, synchronous FULL so that a committed line
    survives a power cut, autocommit unless a caller begins; ``schema`` is run each time
    (``CREATE … IF NOT EXISTS``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in schema:
        conn.execute(statement)
    return conn
