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

import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _ascii
from pathlib import Path
from typing import Any, TypeVar

from campaign.errors import StateError
from campaign.store.attempts import AttemptJournal
from campaign.store.base import check_header, check_structure, checkpoint_error
from campaign.store.batches import BatchLedger
from campaign.store.ingest import IngestMemo
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
from campaign.store.postgres import PgConnection, checkpoint_schema
from campaign.store.queue import RowQueue
from campaign.store.schema import migrations, pg_migrations

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


class Store(AttemptJournal, BatchLedger, RowQueue, IngestMemo):
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

    @classmethod
    def reader(cls, path: Path) -> Store:
        """The checkpoint opened read-only, in place, for ``status`` and ``report``: a
        big checkpoint is not copied into memory, and a run writing it meanwhile is not
        disturbed (WAL). A checkpoint of an older schema is read from a migrated in-memory
        copy (``snapshot``), never migrated on disk by a reader."""
        try:
            check_header(path)
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        except OSError as exc:
            raise StateError(f"{path}: the checkpoint cannot be read ({exc})") from exc
        except sqlite3.Error as exc:
            raise checkpoint_error(path, exc) from exc
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == len(migrations()):
                check_structure(conn, path)
                return cls(conn, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise checkpoint_error(path, exc) from exc
            raise
        conn.close()
        return cls.snapshot(path)

    @classmethod
    def open_postgres(cls, dsn: str, campaign: str) -> Store:
        """Open (creating and migrating if needed) the campaign's checkpoint in PostgreSQL:
        the schema ``checkpoint_schema(campaign)`` of the database at ``dsn``."""
        conn = PgConnection(dsn, checkpoint_schema(campaign), "state database")
        store = cls(conn, None)
        try:
            with store._reading():
                store._migrate_postgres()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def reader_postgres(cls, dsn: str, campaign: str) -> Store:
        """The campaign's PostgreSQL checkpoint, for ``status`` and ``report``: read-only
        transactions, never migrated by a reader (an older schema is refused)."""
        conn = PgConnection(dsn, checkpoint_schema(campaign), "state database", create=False)
        store = cls(conn, None)
        try:
            with store._reading():
                version = store._pg_version()
                if version == 0:
                    raise StateError(
                        f"no checkpoint in {store.where}: the campaign has not run yet"
                    )
                if version != len(pg_migrations()):
                    raise StateError(
                        f"{store.where}: the checkpoint is at schema version {version}, "
                        f"this program reads {len(pg_migrations())}; run the campaign once "
                        "to migrate it"
                    )
                conn.execute("SET default_transaction_read_only = on")
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the database connection."""
        self._close_connection()

    def _pg_version(self) -> int:
        """The schema's migration number; 0 for a schema with no checkpoint yet."""
        if self._conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        found = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(found[0] or 0)

    def _migrate_postgres(self) -> None:
        assert self._pg is not None
        # Applied once, under a lock of the schema's own: two hosts starting the same
        # campaign at once take turns, and the second finds nothing left to do.
        with self._pg.session_lock("migrate"):
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            version = self._pg_version()
            steps = pg_migrations()
            if version > len(steps):
                raise StateError(
                    f"{self.where}: the checkpoint was written by a newer version of campaign"
                )
            for number, step in enumerate(steps[version:], start=version + 1):
                with self._tx() as conn:
                    for statement in step:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version(version) VALUES (?)", (number,))

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
                    assert self.db is not None  # SQLite's migrations: sqlite-utils steps
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
        with self._tx() as conn:
            conn.execute(_SET_META, (key, value))

    def claim_identity(self, campaign: str) -> None:
        """Tie this file to a campaign name; refuse a file that belongs to another one, or
        one whose state was moved to another database (``campaign state copy``)."""
        from campaign.store.transfer import refuse_moved  # it imports this module

        refuse_moved(self)
        stored = self.get_meta("campaign")
        if stored is None:
            self.set_meta("campaign", campaign)
        elif stored != campaign:
            raise StateError(
                f"{self.path}: this checkpoint belongs to campaign {stored!r}, not {campaign!r}"
            )

    # --- rows ---------------------------------------------------------------------------

    def sync_rows(
        self,
        planned: Iterable[RowIn],
        now: float,
        *,
        meta: Mapping[str, str] | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> SyncSummary:
        """Merge the planned input: new rows join, known rows keep state, gone rows vanish.

        Identity across nights is the number as well as the key: a key whose row has
        called and whose number changed is a new person (a new row ``<key>#2`` under the
        same label, so its attempts get keys of their own), and a number that another row
        has already called is a ``duplicate`` of that row, whatever key it comes with.

        One transaction, worked out a chunk of planned rows at a time: the checkpoint rows
        a chunk names are read by key and the rows it changes written by one bulk upsert,
        so memory stays flat whatever the size of the list, and a crash leaves either last
        night's rows or tonight's, never a mix. ``meta`` (say, the plan's fingerprint) is
        written in that transaction too; ``on_rows`` is told how many planned rows have
        been merged, every 100,000 and at the end.
        """
        zones: dict[tuple[str, ...], str] = {}
        summary = self._sync((_planned(row, zones) for row in planned), now, meta, on_rows)
        return self._analyze_after(summary)

    def stage_rows(self, planned: Iterable[RowIn]) -> int:
        """Hold tonight's planned rows, in file order, for ``sync_staged`` (a temporary table:
        on disk, not in memory). Their ``row_key`` is the key the plan gave them; the sync
        decides which row owns it. Returns how many were staged."""
        zones: dict[tuple[str, ...], str] = {}
        return self.stage_planned(_planned(row, zones) for row in planned)

    def stage_planned(self, planned: Iterable[tuple[Any, ...]]) -> int:
        """``stage_rows`` of rows already in the staged table's shape (``_PLANNED``, as
        ``planned_tuple`` makes them): a run's million rows skip a ``RowIn`` each.

        A text column's NULL may come as the integer 0 instead of None (``NULL_TEXT``):
        sqlite3 binds an int at once, but looks None up in its adapter registry first,
        which costs a second per million rows for each column that is mostly empty."""
        columns = ", ".join(_PLANNED)
        values = _STAGED_VALUES
        if self._pg is not None:  # PostgreSQL would take NULLIF's 0 for an integer column
            planned = map(_none_for_null_text, planned)
            values = ", ".join("?" * len(_PLANNED))
        insert = f"INSERT INTO temp.staged({columns}) VALUES ({values})"
        count = 0
        with self._tx() as conn:
            self._defer_wal_checkpoint()  # the sync that follows writes the whole list
            conn.execute("DROP TABLE IF EXISTS temp.staged")
            conn.execute(f"CREATE TEMP TABLE staged (seq INTEGER PRIMARY KEY, {_STAGED_TYPES})")
            for chunk in _batched(planned, _SYNC_CHUNK):
                conn.executemany(insert, chunk)
                count += len(chunk)
            conn.execute("CREATE INDEX temp.staged_key ON staged(row_key, plan_state, seq)")
        return count

    def sync_staged(
        self,
        now: float,
        *,
        meta: Mapping[str, str] | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> SyncSummary:
        """``sync_rows`` of the staged rows, each under the id that is its in the checkpoint.

        A key identifies one person's row. Callable rows own their key; otherwise the
        first row carrying it does (so a row called yesterday and suppressed today keeps
        its history); later rows sharing a key (duplicates, rejects) are stored under
        ``line:<line>:<key>`` so they never collide with it.
        """
        try:
            if self._conn.execute("SELECT NOT EXISTS (SELECT 1 FROM rows)").fetchone()[0]:
                return self._analyze_after(self._first_sync(now, meta, on_rows))
            return self._analyze_after(self._sync(self._staged(), now, meta, on_rows))
        finally:
            # SQLite frees a dropped table page by page (a million staged rows: seconds
            # before the first call); its temporary file goes with the connection anyway,
            # and the next stage_planned starts with a drop.
            if self._pg is not None:
                with self._tx() as conn:
                    conn.execute("DROP TABLE IF EXISTS temp.staged")

    def _analyze_after(self, summary: SyncSummary) -> SyncSummary:
        """PostgreSQL plans from statistics, which its autovacuum gathers only later: after
        a sync that changed many rows the queue's partial indexes would be passed over for
        a sort of the whole table (seconds per page). SQLite needs none."""
        if self._pg is not None and summary.new + summary.vanished >= _ANALYZE_AFTER_ROWS:
            with self._reading():
                self._conn.execute("ANALYZE rows")
        return summary

    def _first_sync(
        self,
        now: float,
        meta: Mapping[str, str] | None,
        on_rows: Callable[[int], None] | None,
    ) -> SyncSummary:
        """The sync of a checkpoint that holds no row yet, in one statement: with nothing
        known and nothing called, every staged row is new (pending if callable, else
        blocked) under the id ``_SELECT_STAGED`` gives it, as ``_Merger`` would make it."""
        with self._tx() as conn:
            self._defer_wal_checkpoint()
            staged = int(conn.execute("SELECT count(*) FROM temp.staged").fetchone()[0])
            if self._pg is not None:
                conn.execute(_INSERT_FIRST_SYNC_PG, {"now": now})
            else:
                # Filling an empty table, then building its indexes once, is a third
                # cheaper than keeping six indexes up to date row by row (1M rows:
                # 13.9 s → 9.5 s); all in the one transaction, so a crash keeps neither.
                indexes = conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'rows' AND sql IS NOT NULL"
                ).fetchall()
                for name, _ in indexes:
                    conn.execute(f'DROP INDEX "{name}"')
                conn.execute(_INSERT_FIRST_SYNC, {"now": now})
                for _, sql in indexes:
                    conn.execute(sql)
            new = int(conn.execute("SELECT count(*) FROM rows").fetchone()[0])
            for key, value in (meta or {}).items():
                conn.execute(_SET_META, (key, value))
        if on_rows is not None:
            on_rows(staged)
        return SyncSummary(new=new, known=staged - new, vanished=0)

    def _staged(self) -> Iterator[_Planned]:
        after = 0
        while True:
            page = self._conn.execute(_SELECT_STAGED, (after, _SYNC_CHUNK)).fetchall()
            for row in page:
                yield tuple(row[1:])
            if len(page) < _SYNC_CHUNK:
                return
            after = page[-1][0]

    def _sync(
        self,
        planned: Iterable[_Planned],
        now: float,
        meta: Mapping[str, str] | None,
        on_rows: Callable[[int], None] | None,
    ) -> SyncSummary:
        with self._tx() as conn:
            self._defer_wal_checkpoint()
            merger = _Merger(conn, self._upsert_rows, now)
            count = 0
            for chunk in _batched(planned, _SYNC_CHUNK):
                merger.merge(chunk)
                count += len(chunk)
                if on_rows is not None and count % _PROGRESS_ROWS < len(chunk):
                    on_rows(count)
            if on_rows is not None:
                on_rows(count)
            summary = merger.finish()
            for key, value in (meta or {}).items():
                conn.execute(_SET_META, (key, value))
        return summary

    def _upsert_rows(self, rows: list[SyncedRow]) -> None:
        # One prepared statement: sqlite-utils' upsert_all spends more time per cell in
        # Python (about 40 µs a row) than SQLite spends writing it.
        self._conn.executemany(_UPSERT_SYNCED, rows)

    def rows(self, *, include_vanished: bool = True) -> list[StoredRow]:
        """Every row, in input-line order."""
        where = None if include_vanished else "vanished = 0"
        order = "vanished, line, row_key"  # a vanished row may share its line with another
        return [row_from_sql(r) for r in self._rows_where("rows", where, order_by=order)]

    def row(self, row_key: str) -> StoredRow:
        """One row by key."""
        found = self._rows_where("rows", "row_key = ?", (row_key,))
        if not found:
            raise StateError(f"row {row_key!r} is not in the checkpoint")
        return row_from_sql(found[0])

    def rows_due(self, now: float) -> list[StoredRow]:
        """Rows that need a new attempt now (pending, or a retry whose time has come).

        Every one of them, as objects: for tests and small tools. The engine reads them a
        page at a time (``due_groups``, ``due_rows``)."""
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
                "INSERT INTO runs(started_at, command) VALUES (?, ?) RETURNING id", (now, command)
            )
            return int(cursor.fetchone()[0])

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


_T = TypeVar("_T")
_SET_META = (
    "INSERT INTO meta(key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)
_UPSERT_SYNCED = (
    f"INSERT INTO rows({', '.join(SyncedRow._fields)}) "
    f"VALUES ({', '.join('?' * len(SyncedRow._fields))}) ON CONFLICT(row_key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in SyncedRow._fields[1:])
)
_SELECT_SYNCED = f"SELECT {', '.join(SyncedRow._fields)} FROM rows"
_PROGRESS_ROWS = 100_000  # planned rows merged between two progress reports
# One encoder for every row's variables (json.dumps builds one per call when given options).
_SORTED_JSON = json.JSONEncoder(sort_keys=True)


# A planned row as the sync reads it: the first 15 columns of SyncedRow (the row's facts and
# the plan's state and reason), ``row_key`` being the key the plan gave it.
_Planned = tuple[Any, ...]
_PLANNED = SyncedRow._fields[:15]
_SYNC_CHUNK = 5_000  # planned rows merged at a time
_ANALYZE_AFTER_ROWS = 1_000  # rows a sync adds or retires before PostgreSQL re-reads stats
# The staged rows' columns with their types (PostgreSQL needs them; SQLite takes them as
# affinities).
_STAGED_TYPES = ", ".join(f"{name} {'INTEGER' if name == 'line' else 'TEXT'}" for name in _PLANNED)
# What stage_planned binds: a text column given the integer NULL_TEXT is NULL (an integer
# never equals text in SQLite, so no text value, "0" included, is mistaken for it).
NULL_TEXT = 0
_STAGED_VALUES = ", ".join("?" if name == "line" else "NULLIF(?, 0)" for name in _PLANNED)
_LINE = _PLANNED.index("line")


def _none_for_null_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A staged row with None for each text column given as ``NULL_TEXT``."""
    return tuple(
        None if type(value) is int and at != _LINE else value for at, value in enumerate(row)
    )


_KEYS_PER_QUERY = 900  # under SQLite's 999 parameters
# Tonight's staged rows, a page at a time, each under its checkpoint id (see sync_staged).
_SELECT_STAGED = f"""
    SELECT s.seq, CASE
        WHEN s.plan_state = 'callable' THEN s.row_key
        WHEN EXISTS (SELECT 1 FROM temp.staged c
                     WHERE c.row_key = s.row_key AND c.plan_state = 'callable')
          OR EXISTS (SELECT 1 FROM temp.staged e WHERE e.row_key = s.row_key AND e.seq < s.seq)
        THEN 'line:' || s.line || ':' || s.row_key
        ELSE s.row_key END, {", ".join(f"s.{name}" for name in _PLANNED[1:])}
    FROM temp.staged s WHERE s.seq > ? ORDER BY s.seq LIMIT ?"""

# The first sync of an empty checkpoint (see Store._first_sync): the staged rows' ids as
# _SELECT_STAGED gives them; a key met twice keeps the later row, as _Merger does.
_STAGED_ID = _SELECT_STAGED[
    _SELECT_STAGED.index("CASE") : _SELECT_STAGED.index("ELSE s.row_key END")
    + len("ELSE s.row_key END")
]
_INSERT_FIRST_SYNC = f"""
    INSERT INTO rows({", ".join(SyncedRow._fields)})
    SELECT {_STAGED_ID}, {", ".join(f"s.{name}" for name in _PLANNED[1:])},
        CASE WHEN s.plan_state = 'callable' THEN 'pending' ELSE 'blocked' END, NULL, 0, :now, :now
    FROM temp.staged s WHERE true ORDER BY s.seq
    ON CONFLICT(row_key) DO UPDATE SET
    """ + ", ".join(
    f"{name} = excluded.{name}" for name in SyncedRow._fields[1:] if name != "first_seen"
)
# PostgreSQL refuses an INSERT … ON CONFLICT that meets one key twice: the later staged row
# of each id is chosen first (DISTINCT ON), which is what SQLite's conflict clause leaves.
_INSERT_FIRST_SYNC_PG = f"""
    INSERT INTO rows({", ".join(SyncedRow._fields)})
    SELECT {", ".join(SyncedRow._fields)} FROM (
        SELECT DISTINCT ON (1) {_STAGED_ID} AS row_key,
            {", ".join(f"s.{name}" for name in _PLANNED[1:])},
            CASE WHEN s.plan_state = 'callable' THEN 'pending' ELSE 'blocked' END AS progress,
            CAST(NULL AS DOUBLE PRECISION) AS next_due, 0 AS vanished,
            CAST(:now AS DOUBLE PRECISION) AS first_seen,
            CAST(:now AS DOUBLE PRECISION) AS last_seen
        FROM temp.staged s ORDER BY 1, s.seq DESC
    ) latest"""


def encode_variables(variables: Mapping[str, Any]) -> str:
    """A row's variables as the checkpoint keeps them: JSON, keys sorted, ASCII — what
    ``json.dumps(variables, sort_keys=True)`` gives, built directly when every value is text
    (twice as fast: a million rows' worth is seconds of a cold start)."""
    if not variables:
        return "{}"
    try:
        return (
            "{"
            + ", ".join([_ascii(k) + ": " + _ascii(v) for k, v in sorted(variables.items())])
            + "}"
        )
    except TypeError:  # a value that is not text (a number, None): the encoder's way
        return _SORTED_JSON.encode(variables)


def encode_zones(zones: Sequence[str], cache: dict[tuple[str, ...], str]) -> str:
    """A row's timezones as JSON, each distinct list encoded once (``cache``)."""
    key = tuple(zones)
    found = cache.get(key)
    if found is None:
        if len(cache) > 10_000:
            cache.clear()
        found = cache[key] = json.dumps(list(zones))
    return found


def planned_tuple(row: RowIn) -> tuple[Any, ...]:
    """A planned row in the staged table's shape (``_PLANNED``)."""
    return _planned(row, {})


def _planned(row: RowIn, zones_json: dict[tuple[str, ...], str]) -> _Planned:
    return (
        row.row_key,
        row.label or row.row_key,
        row.line,
        row.raw_phone,
        row.e164,
        encode_variables(row.variables),
        encode_zones(row.timezones, zones_json),
        row.us_state,
        row.region,
        row.duplicate_of,
        row.extension,
        row.note,
        row.number_type,
        row.plan_state,
        row.reason,
    )


def _batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class _Merger:
    """The rules of ``sync_rows``, applied to one chunk of planned rows after another.

    The planned rows are applied in file order, each to what the rows before it left, so a
    key that comes twice ends as it always has (the later row wins). Each key's progress
    and number as the identity rule sees them are those the checkpoint held when the sync
    met the key first (a row that joins tonight counts as pending until tomorrow): kept in
    the temporary table ``sync_met``, which also says which rows tonight's file has.
    """

    def __init__(
        self, conn: sqlite3.Connection, upsert: Callable[[list[SyncedRow]], None], now: float
    ) -> None:
        self.conn, self.upsert, self.now = conn, upsert, now
        self.callers: dict[str, tuple[str, int, str]] = {}  # number → the row that called it
        for phone, row_key, line, label in conn.execute(
            "SELECT a.phone, r.row_key, r.line, r.label FROM attempts a "
            "JOIN rows r ON r.row_key = a.row_key WHERE a.phone IS NOT NULL "
            f"AND a.state IN {_DIALLED} ORDER BY a.sending_at, a.idempotency_key"
        ):
            self.callers.setdefault(str(phone), (str(row_key), int(line), str(label)))
        self.touched = {
            str(r[0])
            for r in conn.execute(
                f"SELECT DISTINCT row_key FROM attempts WHERE state IN {_DIALLED}"
            )
        }
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS sync_met "
            "(row_key TEXT PRIMARY KEY, progress TEXT NOT NULL, e164 TEXT) WITHOUT ROWID"
        )
        conn.execute("DELETE FROM temp.sync_met")
        self.new = self.known = 0
        # The chunk's keys: their rows as the chunk leaves them (None: no such row), as
        # they were when it began, and what the identity rule sees of the keys met before.
        self.rows: dict[str, SyncedRow | None] = {}
        self.start: dict[str, SyncedRow | None] = {}
        self.first: dict[str, tuple[str, str | None]] = {}
        self.met: dict[str, tuple[str, str | None]] = {}  # keys met first in this chunk

    def merge(self, chunk: list[_Planned]) -> None:
        """Apply a chunk of planned rows and write the rows it changed."""
        self._load({planned[0] for planned in chunk})
        for planned in chunk:
            self._apply(planned)
        # Unchanged rows are not rewritten; last_seen alone is set by one UPDATE at the end.
        changed = [
            row
            for key, row in self.rows.items()
            if row is not None and ((before := self.start[key]) is None or _moved(row, before))
        ]
        if changed:
            self.upsert(changed)
        self.conn.executemany(
            "INSERT OR IGNORE INTO temp.sync_met(row_key, progress, e164) VALUES (?, ?, ?)",
            [(key, *found) for key, found in self.met.items()],
        )
        self.rows, self.start, self.first, self.met = {}, {}, {}, {}

    def finish(self) -> SyncSummary:
        """Mark the rows tonight's file lacks as vanished; the counts of the sync."""
        unmet = "row_key NOT IN (SELECT row_key FROM temp.sync_met)"
        gone = int(self.conn.execute(f"SELECT count(*) FROM rows WHERE {unmet}").fetchone()[0])
        self.conn.execute(f"UPDATE rows SET vanished = 1 WHERE vanished = 0 AND {unmet}")
        # Every row of tonight's file now has vanished = 0, and every other row 1.
        self.conn.execute("UPDATE rows SET last_seen = ? WHERE vanished = 0", (self.now,))
        self.conn.execute("DELETE FROM temp.sync_met")
        return SyncSummary(new=self.new, known=self.known, vanished=gone)

    def get(self, key: str) -> tuple[str, str | None] | None:
        """A key's progress and number as the identity rule sees them; None: no such row."""
        if key not in self.rows:
            self._load({key})
        found = self.met.get(key) or self.first.get(key)
        if found is not None:
            return found
        row = self.rows[key]  # not met tonight: as the checkpoint holds it
        return None if row is None else (row.progress, row.e164)

    def _load(self, keys: set[str]) -> None:
        wanted = [key for key in keys if key not in self.rows]
        pg = isinstance(self.conn, PgConnection)
        per = _SYNC_CHUNK if pg else _KEYS_PER_QUERY
        for start in range(0, len(wanted), per):
            batch = wanted[start : start + per]
            # PostgreSQL takes the keys as one array: one statement text, prepared once
            where: str = "row_key = ANY(?)" if pg else f"row_key IN ({', '.join('?' * len(batch))})"
            params: Sequence[Any] = (batch,) if pg else batch
            for r in self.conn.execute(f"{_SELECT_SYNCED} WHERE {where}", params):
                row = SyncedRow._make(r)
                self.rows[row.row_key] = self.start[row.row_key] = row
            for key, progress, e164 in self.conn.execute(
                f"SELECT row_key, progress, e164 FROM temp.sync_met WHERE {where}", params
            ):
                self.first[key] = (progress, e164)
        for key in wanted:
            self.rows.setdefault(key, None)
            self.start.setdefault(key, None)

    def _apply(self, planned: _Planned) -> None:
        (key, label, line, raw, e164, variables, zones, us_state, region, duplicate_of) = planned[
            :10
        ]
        extension, note, number_type, plan_state, reason = planned[10:]
        row_key = _resolve_key(key, e164, self.get, self.touched)
        caller = self.callers.get(e164 or "")
        if (
            plan_state == "callable"
            and caller is not None
            and caller[0] != row_key
            and row_key not in self.touched
        ):
            plan_state = "duplicate"
            reason = (
                f"duplicate of line {caller[1]} (key {caller[2]}), which already called this number"
            )
            duplicate_of = str(caller[1])
        facts = (
            label, line, raw, e164, variables, zones, us_state, region, duplicate_of,
            extension, note, number_type,
        )  # fmt: skip
        existing = self.get(row_key)
        now = self.now
        if existing is None:
            self.new += 1
            self.met[row_key] = ("pending", e164)
            progress = "pending" if plan_state == "callable" else "blocked"
            self.rows[row_key] = SyncedRow(
                row_key, *facts, plan_state, reason, progress, None, 0, now, now
            )
            return
        self.known += 1
        if row_key not in self.first:
            self.met.setdefault(row_key, existing)
        before = self.rows[row_key]
        assert before is not None  # get() found it
        state = (before.plan_state, before.reason, before.progress, before.next_due)
        # Rows waiting for a call follow today's plan (the number may have opted out or
        # been suppressed since); rows called to the end keep their state.
        if plan_state != "callable" and existing[0] in WAITING_PROGRESS:
            state = (plan_state, reason, "blocked", None)
        elif plan_state == "callable" and existing[0] == "blocked":
            state = ("callable", None, "pending", before.next_due)
        elif existing[0] == "in_flight" and "rejected" in (plan_state, before.plan_state):
            # Today's file rejects the row itself (consent withdrawn, say), or no longer
            # does: the send gate reads it, so an attempt left sending is not re-sent.
            state = (plan_state, reason, before.progress, before.next_due)
        self.rows[row_key] = SyncedRow(row_key, *facts, *state, 0, before.first_seen, now)


def _moved(row: SyncedRow, before: SyncedRow) -> bool:
    """True if the sync changes anything of the row but when it was last seen."""
    return row[:-1] != before[:-1]  # last_seen is the last column


def _resolve_key(
    key: str,
    e164: str | None,
    existing: Callable[[str], tuple[str, str | None] | None],
    touched: set[str],
) -> str:
    """The checkpoint row a planned row is: its key, or a later person under that key."""
    found = existing(key)
    if found is None or key not in touched or found[1] == e164:
        return key
    # The key's row has called another number: this is a new person. Later people under
    # the same key are <key>#2, #3, … (matched by number, so each keeps its own history).
    generation = 2
    while True:
        candidate = f"{key}#{generation}"
        found = existing(candidate)
        if found is None or found[1] == e164 or candidate not in touched:
            return candidate
        generation += 1
