"""The checkpoint keeps what results.csv shows of a number: its extension and its note."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from campaign.store.checkpoint import RowIn, Store
from campaign.store.schema import migrations

T0 = 1_780_000_000.0
NOTE = "extension 12 not dialled: the call reaches the main number only"


def test_an_extension_and_its_note_survive_in_the_checkpoint(reopen: Callable[[], Store]) -> None:
    store = reopen()
    row = RowIn(
        2, "k1", "415.555.0199 ext 12", "+14155550199", "callable", extension="12", note=NOTE
    )
    store.sync_rows([row], T0)
    store.close()
    reopened = reopen()
    try:
        stored = reopened.row("k1")
        assert (stored.extension, stored.note) == ("12", NOTE)
        # the next night's file wrote the number without it: the checkpoint follows the file
        reopened.sync_rows([RowIn(2, "k1", "415.555.0199", "+14155550199", "callable")], T0 + 1)
        assert (reopened.row("k1").extension, reopened.row("k1").note) == (None, None)
    finally:
        reopened.close()


def test_a_checkpoint_from_before_extensions_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in [s for step in migrations()[:3] for s in step]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version=3")
    conn.execute(
        "INSERT INTO rows(row_key, label, line, raw_phone, e164, plan_state, progress, "
        "first_seen, last_seen) VALUES ('k1', 'k1', 2, '+1', '+1', 'callable', 'pending', 0, 0)"
    )
    conn.close()
    store = Store.open(path)
    try:
        assert [(r.row_key, r.extension, r.note) for r in store.rows()] == [("k1", None, None)]
    finally:
        store.close()
