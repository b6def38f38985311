"""Migrations: every earlier checkpoint opens; a migration written with sqlite-utils lands
with its version number, or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

import campaign.store.checkpoint as checkpoint
from campaign.store.checkpoint import RowIn, Store
from campaign.store.schema import migrations

T0 = 1_780_000_000.0


def _checkpoint_at(path: Path, version: int) -> None:
    """A checkpoint as a release whose schema stopped at ``version`` left it, with one row."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in migrations()[:version]:
        assert isinstance(step, list), "a shipped migration is SQL: it never changes"
        for statement in step:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute(
        "INSERT INTO rows(row_key, label, line, raw_phone, e164, plan_state, progress, "
        "first_seen, last_seen) VALUES ('k1', 'k1', 2, '+1', '+1', 'callable', 'pending', ?, ?)",
        (T0, T0),
    )
    conn.close()


@pytest.mark.parametrize("version", range(1, len(migrations())))
def test_a_checkpoint_of_every_earlier_version_opens_and_keeps_its_rows(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.sqlite"
    _checkpoint_at(path, version)
    store = Store.open(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(migrations())
        assert [(r.row_key, r.progress) for r in store.rows()] == [("k1", "pending")]
        summary = store.sync_rows([RowIn(3, "k1", "+1", "+1", "callable")], T0 + 1)
        assert (summary.new, summary.known, store.row("k1").line) == (0, 1, 3)
    finally:
        store.close()


def _answered_at(db: Database) -> None:
    db.table("attempts").add_column("answered_at", float)
    db.table("attempts").create_index(["answered_at"], index_name="attempts_answered")


def test_a_migration_written_with_sqlite_utils_runs_like_a_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.sqlite"
    _checkpoint_at(path, len(migrations()))
    monkeypatch.setattr(checkpoint, "migrations", lambda: [*migrations(), _answered_at])
    store = Store.open(path)
    try:
        attempts = store.db.table("attempts")
        assert attempts.columns_dict["answered_at"] is float
        assert "attempts_answered" in {index.name for index in attempts.indexes}
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(migrations()) + 1
    finally:
        store.close()


def test_a_migration_that_fails_halfway_leaves_the_checkpoint_at_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.sqlite"
    _checkpoint_at(path, len(migrations()))

    def half_done(db: Database) -> None:
        db.table("attempts").add_column("answered_at", float)
        raise RuntimeError("the second half of the migration failed")

    with monkeypatch.context() as patched:
        patched.setattr(checkpoint, "migrations", lambda: [*migrations(), half_done])
        with pytest.raises(RuntimeError, match="second half"):
            Store.open(path)
    store = Store.open(path)  # today's schema: the file is as the failed migration found it
    try:
        assert "answered_at" not in store.db.table("attempts").columns_dict
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(migrations())
        assert [r.row_key for r in store.rows()] == ["k1"]
    finally:
        store.close()
