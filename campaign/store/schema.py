"""The checkpoint's schema as an ordered list of migrations (``PRAGMA user_version``).

Append new migrations at the end; never edit one that has shipped. A migration is a list
of SQL statements, or a function that makes its change with sqlite-utils (below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from sqlite_utils import Database

CALLS_MIGRATION: list[str] = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE rows (
            row_key TEXT PRIMARY KEY,
            label TEXT NOT NULL,
            line INTEGER NOT NULL,
            raw_phone TEXT,
            e164 TEXT,
            plan_state TEXT NOT NULL,
            reason TEXT,
            variables TEXT NOT NULL DEFAULT '{}',
            timezones TEXT NOT NULL DEFAULT '[]',
            us_state TEXT,
            region TEXT,
            duplicate_of TEXT,
            progress TEXT NOT NULL,
            next_due REAL,
            attempts_used INTEGER NOT NULL DEFAULT 0,
            vanished INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        )""",
    "CREATE INDEX rows_progress ON rows(progress, next_due)",
    """CREATE TABLE attempts (
            idempotency_key TEXT PRIMARY KEY,
            row_key TEXT NOT NULL REFERENCES rows(row_key),
            number INTEGER NOT NULL,
            state TEXT NOT NULL,
            body BLOB NOT NULL,
            call_id TEXT,
            status TEXT,
            outcome TEXT,
            goal_achieved INTEGER,
            failure_reason TEXT,
            session_id TEXT,
            session_fetched INTEGER NOT NULL DEFAULT 0,
            slot_values TEXT,
            cost TEXT,
            currency TEXT,
            duration_s REAL,
            error TEXT,
            sending_at REAL NOT NULL,
            sent_at REAL,
            ended_at REAL,
            call_updated_at TEXT,
            UNIQUE (row_key, number)
        )""",
    "CREATE INDEX attempts_state ON attempts(state)",
    "CREATE INDEX attempts_call ON attempts(call_id)",
    "CREATE TABLE send_log (kind TEXT NOT NULL, t REAL NOT NULL)",
    "CREATE INDEX send_log_t ON send_log(t)",
    """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            ended_at REAL,
            exit_code INTEGER,
            command TEXT,
            summary TEXT
        )""",
]


# Batches mode: each batch file, its key and state, and which attempts it carries.
BATCH_MIGRATION: list[str] = [
    """CREATE TABLE batches (
        seq INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        batch_id TEXT,
        csv BLOB NOT NULL,
        content_hash TEXT NOT NULL,
        not_before REAL,
        rows_total INTEGER NOT NULL,
        rows_read INTEGER NOT NULL DEFAULT 0,
        rows_cursor TEXT,
        server_status TEXT,
        queued INTEGER,
        queued_seen_at REAL,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX batches_state ON batches(state)",
    """CREATE TABLE batch_members (
        seq INTEGER NOT NULL REFERENCES batches(seq),
        position INTEGER NOT NULL,
        row_key TEXT NOT NULL,
        attempt_key TEXT NOT NULL UNIQUE REFERENCES attempts(idempotency_key),
        PRIMARY KEY (seq, position)
    )""",
]


# The send gate: which number each attempt dialled (not the row's number today), how many
# times its request left, and every part of a batch upload, so a re-send is the recorded
# request and never one rebuilt from today's campaign file.
SEND_GATE_MIGRATION: list[str] = [
    "ALTER TABLE attempts ADD COLUMN phone TEXT",
    "ALTER TABLE attempts ADD COLUMN sends INTEGER NOT NULL DEFAULT 0",
    """UPDATE attempts SET phone = json_extract(CAST(body AS TEXT), '$.phone')
        WHERE length(body) > 0 AND json_valid(CAST(body AS TEXT))""",
    """UPDATE attempts SET phone = (SELECT e164 FROM rows WHERE rows.row_key = attempts.row_key)
        WHERE phone IS NULL""",
    "CREATE INDEX attempts_phone ON attempts(phone)",
    "CREATE INDEX rows_e164 ON rows(e164)",
    "ALTER TABLE batches ADD COLUMN scenario_id TEXT",
    "ALTER TABLE batches ADD COLUMN name TEXT",
]


# What results.csv shows of a number beyond its E.164 form: the extension written after it
# (which no call dials) and what normalising it did.
ROW_NOTES_MIGRATION: list[str] = [
    "ALTER TABLE rows ADD COLUMN extension TEXT",
    "ALTER TABLE rows ADD COLUMN note TEXT",
]


# The number's type (mobile, fixed_line, …), for the report's "when to call" analysis.
# Rows of an older checkpoint keep it empty until the next run plans them again.
NUMBER_TYPE_MIGRATION: list[str] = [
    "ALTER TABLE rows ADD COLUMN number_type TEXT",
]


# Scheduling from the database (issue 13): the engine takes the next due rows a page at a
# time. Rows share a few calling windows, one per (timezones, US state): ``window_key``
# names a row's, computed by SQLite (so every writer of rows, and every row of an older
# checkpoint, has it without a back-fill), and two partial indexes hold the rows waiting
# for a call: pending ones by line, retries by due time.
SCHEDULING_MIGRATION: list[str] = [
    """ALTER TABLE rows ADD COLUMN window_key TEXT
        GENERATED ALWAYS AS (timezones || '|' || ifnull(us_state, '')) VIRTUAL""",
    """CREATE INDEX rows_pending_queue ON rows(window_key, line)
        WHERE vanished = 0 AND progress = 'pending'""",
    """CREATE INDEX rows_retry_queue ON rows(window_key, next_due)
        WHERE vanished = 0 AND progress = 'retry_scheduled'""",
    # results.csv in input order without sorting the table; status counts from an index
    "CREATE INDEX rows_order ON rows(vanished, line)",
    "CREATE INDEX rows_state ON rows(vanished, progress, plan_state)",
]


# Nightly re-ingest that costs what changed (issue 13): what a row's input looked like,
# so an unchanged row is neither normalised nor rewritten: each normalised (raw cell,
# region) pair as JSON (store/ingest.py), region '' when there is none.
INGEST_MIGRATION: list[str] = [
    """CREATE TABLE phone_memo (
        raw TEXT NOT NULL,
        region TEXT NOT NULL,
        fields TEXT NOT NULL,
        PRIMARY KEY (raw, region)
    ) WITHOUT ROWID""",
]


# A migration written with sqlite-utils takes the open database, for example
#     def add_answered_at(db: Database) -> None:
#         db.table("attempts").add_column("answered_at", float)
#         db.table("attempts").create_index(["answered_at"], index_name="attempts_answered")
# Either kind runs inside the one BEGIN IMMEDIATE transaction that also sets its
# user_version (sqlite-utils nests its own as savepoints), so nothing that must run
# outside a transaction (VACUUM, a change of journal mode) belongs in one.
Migration: TypeAlias = "list[str] | Callable[[Database], None]"


def migrations() -> list[Migration]:
    """Every migration in order; migration N sets ``PRAGMA user_version = N``."""
    return [
        CALLS_MIGRATION,
        BATCH_MIGRATION,
        SEND_GATE_MIGRATION,
        ROW_NOTES_MIGRATION,
        NUMBER_TYPE_MIGRATION,
        SCHEDULING_MIGRATION,
        INGEST_MIGRATION,
    ]


# --- PostgreSQL ------------------------------------------------------------------------
# The same checkpoint in a PostgreSQL schema (store/postgres.py), its own ordered list of
# migrations, numbered in the schema's ``schema_version`` table and applied once, under an
# advisory lock. Version 1 is everything above, as one step. Text columns use the "C"
# collation so that ordering by a key or a number is byte order, as in SQLite. Append new
# steps to both lists.
_T = 'TEXT COLLATE "C"'

PG_CHECKPOINT_V1: list[str] = [
    f"CREATE TABLE meta (key {_T} PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE rows (
            row_key {_T} PRIMARY KEY,
            label {_T} NOT NULL,
            line BIGINT NOT NULL,
            raw_phone {_T},
            e164 {_T},
            plan_state {_T} NOT NULL,
            reason {_T},
            variables TEXT NOT NULL DEFAULT '{{}}',
            timezones {_T} NOT NULL DEFAULT '[]',
            us_state {_T},
            region {_T},
            duplicate_of {_T},
            progress {_T} NOT NULL,
            next_due DOUBLE PRECISION,
            attempts_used BIGINT NOT NULL DEFAULT 0,
            vanished BIGINT NOT NULL DEFAULT 0,
            first_seen DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL,
            extension {_T},
            note {_T},
            number_type {_T},
            window_key {_T} GENERATED ALWAYS AS (timezones || '|' || coalesce(us_state, ''))
                STORED
        )""",
    "CREATE INDEX rows_progress ON rows(progress, next_due)",
    "CREATE INDEX rows_e164 ON rows(e164)",
    """CREATE INDEX rows_pending_queue ON rows(window_key, line)
        WHERE vanished = 0 AND progress = 'pending'""",
    """CREATE INDEX rows_retry_queue ON rows(window_key, next_due)
        WHERE vanished = 0 AND progress = 'retry_scheduled'""",
    "CREATE INDEX rows_order ON rows(vanished, line)",
    "CREATE INDEX rows_state ON rows(vanished, progress, plan_state)",
    f"""CREATE TABLE attempts (
            idempotency_key {_T} PRIMARY KEY,
            row_key {_T} NOT NULL REFERENCES rows(row_key),
            number BIGINT NOT NULL,
            state {_T} NOT NULL,
            body BYTEA NOT NULL,
            call_id {_T},
            status {_T},
            outcome {_T},
            goal_achieved BIGINT,
            failure_reason TEXT,
            session_id {_T},
            session_fetched BIGINT NOT NULL DEFAULT 0,
            slot_values TEXT,
            cost {_T},
            currency {_T},
            duration_s DOUBLE PRECISION,
            error TEXT,
            sending_at DOUBLE PRECISION NOT NULL,
            sent_at DOUBLE PRECISION,
            ended_at DOUBLE PRECISION,
            call_updated_at {_T},
            phone {_T},
            sends BIGINT NOT NULL DEFAULT 0,
            UNIQUE (row_key, number)
        )""",
    "CREATE INDEX attempts_state ON attempts(state)",
    "CREATE INDEX attempts_call ON attempts(call_id)",
    "CREATE INDEX attempts_phone ON attempts(phone)",
    f"CREATE TABLE send_log (kind {_T} NOT NULL, t DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX send_log_t ON send_log(t)",
    """CREATE TABLE runs (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            exit_code BIGINT,
            command TEXT,
            summary TEXT
        )""",
    f"""CREATE TABLE batches (
        seq BIGINT PRIMARY KEY,
        idempotency_key {_T} NOT NULL UNIQUE,
        state {_T} NOT NULL,
        batch_id {_T},
        csv BYTEA NOT NULL,
        content_hash {_T} NOT NULL,
        not_before DOUBLE PRECISION,
        rows_total BIGINT NOT NULL,
        rows_read BIGINT NOT NULL DEFAULT 0,
        rows_cursor TEXT,
        server_status {_T},
        queued BIGINT,
        queued_seen_at DOUBLE PRECISION,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        scenario_id {_T},
        name {_T}
    )""",
    "CREATE INDEX batches_state ON batches(state)",
    f"""CREATE TABLE batch_members (
        seq BIGINT NOT NULL REFERENCES batches(seq),
        position BIGINT NOT NULL,
        row_key {_T} NOT NULL,
        attempt_key {_T} NOT NULL UNIQUE REFERENCES attempts(idempotency_key),
        PRIMARY KEY (seq, position)
    )""",
    f"""CREATE TABLE phone_memo (
        raw {_T} NOT NULL,
        region {_T} NOT NULL,
        fields TEXT NOT NULL,
        PRIMARY KEY (raw, region)
    )""",
]


def pg_migrations() -> list[list[str]]:
    """The PostgreSQL checkpoint's migrations in order; step N sets ``schema_version`` N."""
    return [PG_CHECKPOINT_V1]
