"""The shared pieces of state (opt-outs, calls per number): one opener for each backend.

In SQLite they are small files in the state dir; with ``state_url`` they are tables of the
PostgreSQL schema ``campaign_shared``, so that campaigns on different hosts sharing only the
database see one opt-out list and one calls-per-number ledger.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import PoolTimeout

from campaign.store.postgres import (
    SHARED_SCHEMA,
    is_ours,
    lock_key,
    pg_error,
    pool,
    translate,
)


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


# --- PostgreSQL ------------------------------------------------------------------------

_ready: set[tuple[str, str, str]] = set()
_ready_lock = threading.Lock()


def shared_where(what: str, shown_url: str | None, namespace: str = SHARED_SCHEMA) -> str:
    """How messages name a shared piece kept in PostgreSQL (never with a password)."""
    database = f"the state database {shown_url}" if shown_url else "the state database"
    return f"{what} in {database} (schema {namespace!r})"


def ensure_tables(
    dsn: str, where: str, table: str, *schema: str, namespace: str = SHARED_SCHEMA
) -> None:
    """Create ``namespace`` and ``table`` (with its indexes: ``schema``, SQLite's DDL) once
    per process, on a connection of its own.

    The DDL runs only when the table is missing, under a lock of its own: a run that asks
    while another connection of this process is inside a write transaction on the table
    (a batch of the calls ledger) never waits for itself. The connection is not the pool's,
    so a server that refuses it says why at once (the pool would retry for its timeout).
    """
    key = (dsn, namespace, table)
    if key in _ready:
        return
    with _ready_lock:
        if key in _ready:
            return
        with (
            pg_errors(where, dsn),
            psycopg.connect(
                dsn, autocommit=True, connect_timeout=30, application_name="campaign"
            ) as conn,
        ):
            found = conn.execute("SELECT to_regclass(%s)", (qualified(table, namespace),))
            row = found.fetchone()
            if row is None or row[0] is None:
                name = pgsql.Identifier(namespace)
                # another process may create it at the same moment
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(namespace, "ddl"),))
                    conn.execute(pgsql.SQL("SET LOCAL search_path TO {}").format(name))
                    for statement in schema:
                        conn.execute(translate(statement).replace("%%", "%"))
        _ready.add(key)


@contextmanager
def pg_errors(where: str, dsn: str) -> Iterator[None]:
    """A failure of the state database inside the block as ``StateError`` (no password)."""
    try:
        yield
    except psycopg.Error as exc:
        if is_ours(exc):
            raise
        raise pg_error(where, exc, dsn) from None


@contextmanager
def pooled(dsn: str, where: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection of the pool for one short use (autocommit; tables named with their
    schema), given back at the end; failures as ``StateError``."""
    with pg_errors(where, dsn):
        try:
            with pool(dsn).connection() as conn:
                yield conn
        except PoolTimeout as exc:  # every connection in use for too long, or none made
            raise pg_error(where, exc, dsn) from None


def qualified(table: str, namespace: str = SHARED_SCHEMA) -> str:
    """``"schema".table`` for SQL run outside the namespace's ``search_path``."""
    return f"{pgsql.Identifier(namespace).as_string()}.{table}"
