"""``campaign state copy``: a campaign's SQLite checkpoint moves into PostgreSQL.

``move_campaign`` holds the campaign's lock (its file lock, and its run lock in the
database) so that no run calls meanwhile, copies the checkpoint (``copy_checkpoint``) and
the state dir's opt-outs and calls per number in one transaction, and marks the SQLite
checkpoint as moved, so that a run of it refuses from then on. The mark is written before
the copy is committed ("copying") and completed after ("done"): a copy killed in between
leaves a checkpoint that refuses to run until the copy is made again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from campaign.errors import ConfigError, LockedError, StateError
from campaign.store.checkpoint import Store
from campaign.store.contacts import CALLS_DDL, CALLS_FILE
from campaign.store.lock import CampaignLock
from campaign.store.optout import OPT_OUT_FILE, OPT_OUTS_DDL
from campaign.store.postgres import SHARED_SCHEMA, checkpoint_schema, lock_key, pg_error
from campaign.store.shared import ensure_tables, qualified
from campaign.store.transfer import MOVED_KEY, CopyReport, copy_checkpoint, mark_of, refuse_moved

_CHUNK = 5_000  # entries of a shared list inserted at a time

# The state dir's shared lists: their files, and their tables in the schema campaign_shared
# (the same columns; made by the code that keeps them, store/optout.py and contacts.py).
_SHARED = ((OPT_OUT_FILE, "opt_outs", (OPT_OUTS_DDL,)), (CALLS_FILE, "calls", CALLS_DDL))


@dataclass(frozen=True)
class MoveReport:
    """What ``move_campaign`` did, for the command's output (no password anywhere)."""

    campaign: str
    checkpoint: Path
    target: str  # the URL without its password, and the schema
    copied: CopyReport
    shared: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (read, new)
    replaced: bool = False

    def lines(self) -> list[str]:
        """The command's summary."""
        t = self.copied.tables
        lines = [
            f"copied {self.checkpoint} to {self.target}"
            + (" (its previous content replaced)" if self.replaced else "")
            + f": {_n(t['rows'], 'row')}, {_n(t['attempts'], 'attempt')}, "
            f"{_n(t['batches'], 'batch', 'batches')} ({_n(t['batch_members'], 'member')}), "
            f"{_n(t['send_log'], 'send time')}, {_n(t['runs'], 'run')}, "
            f"{_n(t['phone_memo'], 'remembered number')}, "
            f"{_n(t['meta'], 'meta entry', 'meta entries')}",
            "verified: every table holds as many rows in PostgreSQL as in the SQLite "
            "checkpoint, and every attempt has the same key, state, row, number, call id "
            "and sends",
        ]
        for table, (read, new) in self.shared.items():
            file_name = OPT_OUT_FILE if table == "opt_outs" else CALLS_FILE
            lines.append(
                f"{file_name}: {_n(read, 'entry', 'entries')} copied into "
                f"{SHARED_SCHEMA}.{table} ({new} new)"
            )
        lines.append(
            f"{self.checkpoint} is marked as moved: a run of it now refuses; run the "
            "campaign with state_url (or CAMPAIGN_STATE_URL) set to the database"
        )
        return lines


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def move_campaign(
    path: Path,
    *,
    to: str | None = None,
    campaign: str | None = None,
    replace: bool = False,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
) -> MoveReport:
    """``campaign state copy``: the SQLite checkpoint of ``path`` (a campaign file, or a
    checkpoint ``.sqlite``) into the PostgreSQL database of ``to`` (else
    ``CAMPAIGN_STATE_URL``, else the campaign file's ``state_url``)."""
    from campaign.config.model import STATE_URL_ENV, load_campaign, redact_url

    env = os.environ if env is None else env
    dsn = (to or "").strip() or env.get(STATE_URL_ENV, "").strip()
    if _is_checkpoint(path):
        checkpoint, state_dir = path, path.parent
    else:
        config = load_campaign(path, env=env)
        if campaign is not None and campaign != config.campaign:
            raise ConfigError(
                f"--campaign {campaign} differs from the file's campaign {config.campaign}",
                path=str(path),
            )
        checkpoint, state_dir, campaign = config.state_path, config.state_dir, config.campaign
        if not dsn and config.uses_postgres:
            dsn = config.state_dsn()
    if not dsn:
        raise ConfigError(
            f"no database to copy to: give --to postgresql://user@host:5432/dbname, or set "
            f"{STATE_URL_ENV}",
            path=str(path),
        )
    if not dsn.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{redact_url(dsn)} is not a PostgreSQL URL such as postgresql://user@host:5432/dbname",
            key="--to",
        )
    if not checkpoint.exists():
        raise StateError(f"no checkpoint at {checkpoint}: there is nothing to copy")
    shown = redact_url(dsn)
    _check_reachable(dsn, shown)
    moment = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    with CampaignLock(checkpoint):  # no run of it now, and none starts until we are done
        source = Store.open(checkpoint)
        try:
            name = _campaign_of(source, campaign, checkpoint)
            return _move(source, checkpoint, state_dir, name, dsn, shown, replace, moment)
        finally:
            source.close()


def _check_reachable(dsn: str, shown: str) -> None:
    """Fail at once, with the server's reason, when the database cannot be used (the pool
    would retry for its whole timeout and then say only that it gave up)."""
    try:
        psycopg.connect(dsn, connect_timeout=15).close()
    except psycopg.Error as exc:
        raise pg_error(shown, exc, dsn) from None


def _is_checkpoint(path: Path) -> bool:
    """True for an SQLite file (a checkpoint), False for anything else (a campaign file)."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return path.suffix == ".sqlite"


def _campaign_of(source: Store, given: str | None, checkpoint: Path) -> str:
    stored = source.get_meta("campaign")
    if stored is not None and given is not None and stored != given:
        raise StateError(
            f"{checkpoint}: this checkpoint belongs to campaign {stored!r}, not {given!r}"
        )
    name = given or stored
    if not name:
        raise ConfigError(
            "the checkpoint does not say which campaign it belongs to: give --campaign NAME",
            path=str(checkpoint),
        )
    return name


def _move(
    source: Store,
    checkpoint: Path,
    state_dir: Path,
    campaign: str,
    dsn: str,
    shown: str,
    replace: bool,
    moment: datetime,
) -> MoveReport:
    before = source.get_meta(MOVED_KEY)
    if before is not None and mark_of(before)[2] == "done":
        refuse_moved(source)  # moved already: its state there is the campaign's now
    at = moment.strftime("%Y-%m-%d %H:%M UTC")
    # Marked first: were this process killed before the end, the SQLite checkpoint would
    # refuse to run rather than call people the copy may call too.
    source.set_meta(MOVED_KEY, json.dumps({"url": shown, "at": at, "stage": "copying"}))
    committing = False
    try:
        for _file, table, ddl in _SHARED:  # before the copy's transaction, on their own
            ensure_tables(dsn, shown, table, *ddl)
        target = Store.open_postgres(dsn, campaign)
        try:
            with _run_lock(target, campaign, shown), target.transaction():
                copied = copy_checkpoint(source, target, replace=replace)
                shared = _copy_shared(state_dir, target)
                committing = True
        finally:
            target.close()
    except BaseException:
        if not committing:  # nothing reached the database: the checkpoint is as it was
            _restore_mark(source, before)
        raise
    source.set_meta(MOVED_KEY, json.dumps({"url": shown, "at": at, "stage": "done"}))
    where = f"{shown} (schema {checkpoint_schema(campaign)!r})"
    return MoveReport(campaign, checkpoint, where, copied, shared, replaced=replace)


def _restore_mark(source: Store, before: str | None) -> None:
    with source._tx() as conn:
        if before is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (MOVED_KEY,))
        else:
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (before, MOVED_KEY))


@contextmanager
def _run_lock(target: Store, campaign: str, shown: str) -> Iterator[None]:
    """The campaign's run lock in the database: no run there while the copy is made."""
    assert target._pg is not None
    key = lock_key(checkpoint_schema(campaign), "run")
    with target._reading():
        got = target._pg.raw.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if not got or not got[0]:
        raise LockedError(
            f"a run of campaign {campaign} is in progress on {shown}; nothing was copied"
        )
    try:
        yield
    finally:
        with target._reading():
            target._pg.raw.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _copy_shared(state_dir: Path, target: Store) -> dict[str, tuple[int, int]]:
    """The state dir's opt-outs and calls per number, every campaign's (both are honoured
    across campaigns), into campaign_shared; entries already there are kept."""
    assert target._pg is not None
    conn = target._conn
    # Writers of the shared lists take turns under this lock (a check-then-insert of the
    # calls per number stays atomic).
    conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(SHARED_SCHEMA, "write"),))
    counts: dict[str, tuple[int, int]] = {}
    for file_name, table, _ddl in _SHARED:
        name = qualified(table)
        path = state_dir / file_name
        if not path.exists():
            continue
        before = int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        read = 0
        local = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cursor = local.execute(f"SELECT * FROM {table}")
            columns = [str(d[0]) for d in cursor.description]
            insert = (
                f"INSERT OR IGNORE INTO {name}({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            while chunk := cursor.fetchmany(_CHUNK):
                conn.executemany(insert, chunk)
                read += len(chunk)
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot be read ({exc}); nothing was copied") from exc
        finally:
            local.close()
        after = int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        counts[table] = (read, after - before)
    return counts
