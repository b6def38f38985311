"""Copying a checkpoint from one backend to the other, and the mark of a moved one.

``copy_checkpoint`` copies every table of one checkpoint into another, empty one, in one
transaction on the target, a few thousand rows at a time (``COPY`` into PostgreSQL), ids
kept, then checks the copy (rows per table; every attempt's key, state, row, number, call
id and sends) before it commits. Two uses:

- ``campaign state copy`` (store/moving.py) copies an SQLite checkpoint into PostgreSQL
  and marks it as moved (meta ``moved_to``): a run of it refuses (``refuse_moved``, asked
  by ``Store.claim_identity``), so a cron job left on the old host never calls again;
- a dry run of a campaign kept in PostgreSQL: ``snapshot_postgres`` copies it into memory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import sql as pgsql

from campaign.errors import StateError
from campaign.store.checkpoint import Store
from campaign.store.postgres import PgConnection, checkpoint_schema, translate

TABLES = (
    "meta", "rows", "attempts", "batches", "batch_members", "send_log", "runs", "phone_memo",
)  # fmt: skip
_GENERATED = frozenset({"window_key"})  # computed by the database itself
_CHUNK = 5_000
MOVED_KEY = "moved_to"  # meta of an SQLite checkpoint copied elsewhere
# Attempt states whose request may have made a phone ring.
_DIALLED = ("sending", "sent", "ended", "withheld")


@dataclass(frozen=True)
class CopyReport:
    """What ``copy_checkpoint`` copied: rows per table, and the attempts' fingerprint
    (the same on both sides, or the copy was rolled back)."""

    tables: dict[str, int]
    attempts_digest: str


# --- the copy ------------------------------------------------------------------------


def copy_checkpoint(source: Store, target: Store, *, replace: bool = False) -> CopyReport:
    """Copy every table of ``source`` into ``target`` in one transaction, and check it.

    The target must hold nothing (``StateError`` otherwise), unless ``replace``: then it
    is emptied first, in the same transaction, provided it holds no call the source does
    not know (forgetting one could call that person again). The source is read in one
    read transaction, so a reader's view of it is one moment's.
    """
    with _read_snapshot(source), target._tx():
        columns = {table: _columns(source, table, target) for table in TABLES}
        held = _held(target)
        if held:
            if not replace:
                raise StateError(
                    f"{target.where}: already holds a checkpoint of this campaign "
                    f"({held}); nothing was copied — give --replace to overwrite it, only if "
                    "no run has used it since"
                )
            _refuse_unknown_calls(source, target)
            for table in reversed(TABLES):
                target._conn.execute(f"DELETE FROM {table}")
        written = {table: _copy_table(source, target, table, columns[table]) for table in TABLES}
        if target._pg is not None:
            target._conn.execute(
                "SELECT setval(pg_get_serial_sequence('runs', 'id'), "
                "coalesce(max(id), 0) + 1, false) FROM runs"
            )
        report = _verify(source, target, written)
    return report


def _columns(source: Store, table: str, target: Store) -> list[str]:
    """The table's columns (generated ones apart); both sides must have the same."""
    mine, theirs = _names(source, table), _names(target, table)
    if set(mine) != set(theirs):
        raise StateError(
            f"{source.where} and {target.where}: table {table} differs ({', '.join(mine)} "
            f"against {', '.join(theirs)}); run this version of campaign on both first"
        )
    return mine


def _names(store: Store, table: str) -> list[str]:
    cursor = store._conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return [str(d[0]) for d in cursor.description or () if str(d[0]) not in _GENERATED]


def _filter(table: str) -> str:
    # The mark of a moved checkpoint stays where it was made.
    return f" WHERE key <> '{MOVED_KEY}'" if table == "meta" else ""


def _held(target: Store) -> str:
    """What the target already holds ("" if nothing)."""
    found = []
    for table in TABLES:
        count = int(target._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        if count:
            found.append(f"{count} in {table}")
    return ", ".join(found)


def _refuse_unknown_calls(source: Store, target: Store) -> None:
    """Refuse to replace a target that placed calls the source does not know of."""
    marks = ", ".join("?" * len(_DIALLED))
    query = f"SELECT idempotency_key FROM attempts WHERE state IN ({marks}) ORDER BY 1"
    for chunk in _chunks(target, query, _DIALLED):
        keys = [str(r[0]) for r in chunk]
        for start in range(0, len(keys), 900):
            part = keys[start : start + 900]
            known = {
                str(r[0])
                for r in source._conn.execute(
                    "SELECT idempotency_key FROM attempts WHERE idempotency_key IN "
                    f"({', '.join('?' * len(part))})",
                    part,
                )
            }
            unknown = [key for key in part if key not in known]
            if unknown:
                raise StateError(
                    f"{target.where}: holds calls that {source.where} does not know of "
                    f"(attempt {unknown[0]}, and maybe more): a run has used it since it was "
                    "copied, and replacing it would forget those calls; nothing was copied"
                )


def _copy_table(source: Store, target: Store, table: str, columns: list[str]) -> int:
    query = f"SELECT {', '.join(columns)} FROM {table}{_filter(table)}"
    count = 0
    if target._pg is None:
        insert = (
            f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        for chunk in _chunks(source, query):
            target._conn.executemany(insert, chunk)
            count += len(chunk)
        return count
    blobs = _bytea_columns(target, table, columns)
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    )
    with target._pg.raw.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in _chunks(source, query):
            for row in chunk:
                copy.write_row(_with_bytes(row, blobs) if blobs else row)
            count += len(chunk)
    return count


def _bytea_columns(target: Store, table: str, columns: list[str]) -> list[int]:
    """The positions of the columns PostgreSQL keeps as bytes (SQLite may hold text in
    a BLOB column: it goes as its UTF-8 bytes)."""
    found = target._conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = ? AND data_type = 'bytea'",
        (table,),
    ).fetchall()
    names = {str(r[0]) for r in found}
    return [i for i, name in enumerate(columns) if name in names]


def _with_bytes(row: tuple[Any, ...], blobs: list[int]) -> tuple[Any, ...] | list[Any]:
    if not any(isinstance(row[i], str) for i in blobs):
        return row
    values = list(row)
    for i in blobs:
        if isinstance(values[i], str):
            values[i] = values[i].encode()
    return values


def _verify(source: Store, target: Store, written: Mapping[str, int]) -> CopyReport:
    """Refuse (the transaction rolls back) unless both sides hold the same."""
    for table in TABLES:
        query = f"SELECT count(*) FROM {table}{_filter(table)}"
        there = int(source._conn.execute(query).fetchone()[0])
        here = int(target._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        if not there == here == written[table]:
            raise StateError(
                f"{target.where}: the copy does not match {source.where} (table {table}: "
                f"{there} row(s) there, {written[table]} copied, {here} here); nothing was kept"
            )
    mine, theirs = _attempts_digest(source), _attempts_digest(target)
    if mine != theirs:
        raise StateError(
            f"{target.where}: the copied attempts differ from those of {source.where}; "
            "nothing was kept"
        )
    return CopyReport(dict(written), mine)


def _attempts_digest(store: Store) -> str:
    digest = hashlib.sha256()
    query = (
        "SELECT idempotency_key, state, row_key, number, call_id, sends FROM attempts "
        "ORDER BY idempotency_key"
    )
    for chunk in _chunks(store, query):
        for row in chunk:
            digest.update(repr(row).encode())
    return digest.hexdigest()


_cursor_names = itertools.count(1)


def _chunks(store: Store, query: str, params: Any = ()) -> Iterator[list[tuple[Any, ...]]]:
    """A query's rows a chunk at a time (a server-side cursor in PostgreSQL, inside the
    transaction the caller holds)."""
    if store._pg is None:
        cursor = store._conn.execute(query, params)
        while chunk := cursor.fetchmany(_CHUNK):
            yield [tuple(row) for row in chunk]
        return
    name = f"campaign_copy_{next(_cursor_names)}"
    with store._pg.raw.cursor(name=name) as server_side:
        server_side.execute(translate(query), params if params else None)
        while page := server_side.fetchmany(_CHUNK):
            yield page


@contextmanager
def _read_snapshot(store: Store) -> Iterator[None]:
    """One read transaction on the source: every table as of one moment."""
    with store._reading():
        if store._pg is not None:
            store._pg.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            store._conn.execute("BEGIN")
    try:
        yield
    finally:
        with store._reading():
            store._conn.execute("ROLLBACK")  # nothing was written


# --- dry runs -------------------------------------------------------------------------


def snapshot_from(source: Store) -> Store:
    """An in-memory SQLite copy of ``source`` (a PostgreSQL checkpoint) for a dry run."""
    target = Store.snapshot(None)
    try:
        copy_checkpoint(source, target)
    except BaseException:
        target.close()
        raise
    return target


def snapshot_postgres(dsn: str, campaign: str) -> Store:
    """The campaign's PostgreSQL checkpoint copied into memory; empty if it has none yet."""
    probe = Store(
        PgConnection(dsn, checkpoint_schema(campaign), "state database", create=False), None
    )
    try:
        with probe._reading():
            found = probe._conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            version = 0
            if found.fetchone()[0]:
                row = probe._conn.execute("SELECT max(version) FROM schema_version").fetchone()
                version = int(row[0] or 0)
    finally:
        probe.close()
    if not version:
        return Store.snapshot(None)
    reader = Store.reader_postgres(dsn, campaign)
    try:
        return snapshot_from(reader)
    finally:
        reader.close()


# --- the mark of a moved checkpoint ---------------------------------------------------


def refuse_moved(store: Store) -> None:
    """Refuse to run a checkpoint that was copied elsewhere (``campaign state copy``)."""
    found = store.get_meta(MOVED_KEY)
    if found is None:
        return
    url, at, stage = mark_of(found)
    if stage != "done":
        raise StateError(
            f"{store.where}: this campaign's state was being copied to {url} on {at} and the "
            "copy did not finish; nothing was run — run `campaign state copy` again to "
            "finish it (with --replace if the database holds the copy already)"
        )
    raise StateError(
        f"{store.where}: this campaign's state was moved to {url} on {at}; set "
        "state_url/CAMPAIGN_STATE_URL to run it there"
    )


def mark_of(value: str) -> tuple[str, str, str]:
    """A moved checkpoint's mark: (URL without password, when, "copying" or "done")."""
    try:
        mark = json.loads(value)
        return str(mark["url"]), str(mark["at"]), str(mark.get("stage", "done"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return value, "an unknown date", "done"
