"""A sync of the whole list commits without copying its WAL back into the file; a thread
of its own copies it after the commit.

A million-row first sync leaves some 300 MB of WAL: copied in the COMMIT (SQLite's
automatic checkpoint) it held the first call back by seconds. These tests hold the copy
back at will (``_checkpoint_wal`` waits for an event) to see what the run's own
connection does meanwhile, and kill a process while the copy runs.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import campaign.store.base as base
from campaign.store.checkpoint import RowIn, Store

T0 = 1_780_000_000.0


def _rows(count: int) -> Iterator[RowIn]:
    for i in range(count):
        number = f"+1212{i:07d}"
        yield RowIn(
            line=i + 2, row_key=f"k{i}", raw_phone=number, e164=number, plan_state="callable",
            variables={"name": f"person {i}"},
        )  # fmt: skip


def _autocheckpoint(store: Store) -> int:
    return int(store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])  # type: ignore[union-attr]


def _sync_the_list(store: Store, count: int) -> None:
    """What a run does: stage the plan and sync it, in one transaction."""
    with store.transaction():
        store.stage_rows(_rows(count))
        store.sync_staged(T0)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The background copy waits until the test sets the event."""
    release = threading.Event()
    copy = base._checkpoint_wal

    def waiting(path: Path) -> None:
        assert release.wait(60)
        copy(path)

    monkeypatch.setattr(base, "_checkpoint_wal", waiting)
    yield release
    release.set()


def test_the_sync_commits_without_the_copy_and_a_thread_copies_the_wal(
    tmp_path: Path, held: threading.Event
) -> None:
    path = tmp_path / "c.sqlite"
    store = Store.open(path)
    try:
        _sync_the_list(store, 5_000)
        copying = store._wal_copying
        assert copying is not None and copying.is_alive()
        # committed, and still all in the WAL: the file itself has not grown
        assert os.path.getsize(path) < os.path.getsize(f"{path}-wal") / 4
        # the run's connection goes on committing, and starts no copy of its own
        store.set_meta("after", "1")
        assert _autocheckpoint(store) == 0
        assert os.path.getsize(path) < os.path.getsize(f"{path}-wal") / 4
        reader = Store.reader(path)  # another process sees every row meanwhile
        try:
            assert len(reader.rows()) == 5_000
        finally:
            reader.close()

        held.set()
        copying.join(30)
        assert not copying.is_alive()
        assert os.path.getsize(path) > os.path.getsize(f"{path}-wal") / 4  # copied back
        store.set_meta("later", "1")  # the first transaction after it turns copies back on
        assert store._wal_copying is None
        assert _autocheckpoint(store) == 1000
    finally:
        store.close()
    store = Store.open(path)
    try:
        assert len(store.rows()) == 5_000
        assert (store.get_meta("after"), store.get_meta("later")) == ("1", "1")
    finally:
        store.close()


def test_closing_waits_for_the_copy_and_leaves_no_wal(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = Store.open(path)
    _sync_the_list(store, 3_000)
    store.close()
    assert store._wal_copying is None
    assert not Path(f"{path}-wal").exists() or os.path.getsize(f"{path}-wal") == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == 3_000


def test_a_refused_plan_rolls_back_and_copies_go_on_as_before(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.sqlite")
    try:
        with pytest.raises(RuntimeError, match="refused"), store.transaction():
            store.stage_rows(_rows(100))
            assert _autocheckpoint(store) == 0
            raise RuntimeError("refused")
        assert _autocheckpoint(store) == 1000
        assert store._wal_copying is None
        assert store.rows() == []
    finally:
        store.close()


def test_the_engine_s_transactions_copy_in_their_commit_as_sqlite_does(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.sqlite")
    try:
        store.sync_rows(_rows(10), T0)
        assert store._wal_copying is not None
        store._wal_copying.join(30)
        store.begin_attempt("k1", 1, "k1-1", b"{}", T0 + 60, phone="+12120000001")
        with store.transaction():
            store.set_meta("a", "1")
        assert _autocheckpoint(store) == 1000
        assert store._wal_copying is None
    finally:
        store.close()


KILLED_WHILE_COPYING = """
import os, signal, sys, threading
from pathlib import Path
import campaign.store.base as base
from campaign.store.checkpoint import RowIn, Store

copying = threading.Event()
copy = base._checkpoint_wal

def copy_and_die(path):
    copying.set()
    copy(path)

base._checkpoint_wal = copy_and_die
store = Store.open(Path(sys.argv[1]))
with store.transaction():
    store.stage_rows(
        RowIn(line=i + 2, row_key=f"k{i}", raw_phone=f"+1212{i:07d}", e164=f"+1212{i:07d}",
              plan_state="callable", variables={"name": f"person {i}"})
        for i in range(int(sys.argv[2]))
    )
    store.sync_staged(1_780_000_000.0)
print("committed", flush=True)
assert copying.wait(30)
os.kill(os.getpid(), signal.SIGKILL)  # while the thread copies the WAL back
"""


def test_a_process_killed_while_the_wal_is_copied_keeps_every_committed_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "c.sqlite"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_COPYING, str(path), "20000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "committed" in killed.stdout
    store = Store.open(path)  # checks the file's pages before anything is written
    try:
        rows = store.rows()
        assert len(rows) == 20_000
        assert rows[-1].row_key == "k19999" and rows[-1].variables == {"name": "person 19999"}
        assert os.stat(path).st_mode & 0o777 == 0o600
        store.set_meta("resumed", "1")  # and it takes writes again
    finally:
        store.close()


def test_one_connection_keeps_the_memo_night_after_night(tmp_path: Path) -> None:
    # keep_phones renames its noted table instead of dropping it: a host process that
    # plans twice on one connection notes and keeps afresh each time
    store = Store.open(tmp_path / "c.sqlite")
    try:
        for night, raw in enumerate(["(212) 555-0100", "(212) 555-0101"]):
            with store.transaction():
                store.remember_phones([(raw, "US", ["+1212555010" + str(night)])])
                store.keep_phones()
        assert store.memo_phones([("(212) 555-0100", "US"), ("(212) 555-0101", "US")]) == {
            ("(212) 555-0100", "US"): ["+12125550100"],
            ("(212) 555-0101", "US"): ["+12125550101"],
        }
        assert store.phone_memo_size() == 2
    finally:
        store.close()
