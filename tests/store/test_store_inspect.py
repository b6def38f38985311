"""The README's read-only look into a checkpoint with the ``sqlite-utils`` command line.

The SQL below is the README's (Troubleshooting: "Looking inside a checkpoint"), run with
the installed ``sqlite-utils`` against a real checkpoint, during a run and after it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from campaign.store.checkpoint import CallEnd, RowIn, Store

SQLITE_UTILS = Path(sys.executable).parent / "sqlite-utils"
T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC

ROWS_BY_STATE = """
  select progress, plan_state, count(*) as n from rows where vanished = 0
  group by progress, plan_state order by progress, plan_state"""
ATTEMPTS_OF_ONE_ROW = """
  select a.row_key, a.number, a.state, a.status, a.outcome, a.call_id,
         datetime(a.sending_at, 'unixepoch') as sending_utc, a.error
  from attempts a join rows r on r.row_key = a.row_key
  where r.label = :key order by a.sending_at"""
SEND_LOG = """
  select strftime('%Y-%m-%d %H:%M', t, 'unixepoch') as minute_utc, kind, count(*) as sends
  from send_log group by minute_utc, kind order by minute_utc desc, kind limit 20"""


def _sqlite_utils(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SQLITE_UTILS), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _table(output: str) -> list[list[str]]:
    """The cells of ``--table`` output, header and rule left out."""
    return [line.split() for line in output.splitlines()[2:]]


def _a_run_in_progress(path: Path) -> Store:
    store = Store.open(path)
    store.claim_identity("spring")
    store.sync_rows(
        [
            RowIn(2, "C-1", "+1 212 555 0101", "+12125550101", "callable", label="C-1"),
            RowIn(3, "C-2", "+1 212 555 0102", "+12125550102", "callable", label="C-2"),
            RowIn(4, "C-3", "+1 212 555 0103", "+12125550103", "callable", label="C-3"),
            RowIn(5, "line:5", "12", None, "rejected", reason="too short", label="C-4"),
        ],
        T0,
    )
    store.begin_attempt("C-1", 1, "key-c1-1", b"{}", T0, phone="+12125550101")
    store.mark_sent("key-c1-1", "call_1", "queued", T0 + 1)
    store.end_attempt(
        "key-c1-1", CallEnd(status="no_answer"), row_progress="retry_scheduled", next_due=T0 + 60
    )
    store.begin_attempt("C-1", 2, "key-c1-2", b"{}", T0 + 60, phone="+12125550101")
    store.mark_sent("key-c1-2", "call_2", "queued", T0 + 61)
    store.end_attempt(
        "key-c1-2", CallEnd(status="completed", outcome="renewed"), row_progress="done"
    )
    store.begin_attempt("C-2", 1, "key-c2-1", b"{}", T0 + 90, phone="+12125550102")
    store.mark_sent("key-c2-1", "call_3", "queued", T0 + 91)
    store.log_sends(
        [("request", T0 + 1), ("call", T0 + 1), ("request", T0 + 61), ("call", T0 + 61)]
    )
    return store


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / ".campaign-state"


def test_the_readme_commands_show_rows_attempts_and_sends_during_a_run(state_dir: Path) -> None:
    store = _a_run_in_progress(state_dir / "spring.sqlite")  # still open: a run in progress
    try:
        uri = "file:.campaign-state/spring.sqlite?mode=ro"
        cwd = state_dir.parent
        by_state = _sqlite_utils("query", uri, "--table", ROWS_BY_STATE, cwd=cwd)
        assert by_state.returncode == 0, by_state.stderr
        assert _table(by_state.stdout) == [
            ["blocked", "rejected", "1"],
            ["done", "callable", "1"],
            ["in_flight", "callable", "1"],
            ["pending", "callable", "1"],
        ]
        one = _sqlite_utils(
            "query", uri, "--table", "-p", "key", "C-1", ATTEMPTS_OF_ONE_ROW, cwd=cwd
        )
        assert one.returncode == 0, one.stderr
        assert [cells[:6] for cells in _table(one.stdout)] == [
            ["C-1", "1", "ended", "no_answer", "call_1", "2026-05-28"],
            ["C-1", "2", "ended", "completed", "renewed", "call_2"],
        ]
        sends = _sqlite_utils("query", uri, "--table", SEND_LOG, cwd=cwd)
        assert sends.returncode == 0, sends.stderr
        assert _table(sends.stdout) == [
            ["2026-05-28", "20:27", "call", "1"],
            ["2026-05-28", "20:27", "request", "1"],
            ["2026-05-28", "20:26", "call", "1"],
            ["2026-05-28", "20:26", "request", "1"],
        ]
        # Read-only means read-only: SQLite refuses a write, and the run's state is intact.
        write = _sqlite_utils("query", uri, "delete from attempts", cwd=cwd)
        assert write.returncode != 0 and "readonly database" in write.stderr
        assert len(store.attempts()) == 3
    finally:
        store.close()


def test_a_read_only_look_after_a_run_leaves_the_checkpoint_as_it_was(state_dir: Path) -> None:
    path = state_dir / "spring.sqlite"
    _a_run_in_progress(path).close()
    before = path.read_bytes()
    uri = f"file:{path}?mode=ro"
    looked = _sqlite_utils("query", uri, "--table", ROWS_BY_STATE, cwd=state_dir)
    assert looked.returncode == 0, looked.stderr
    assert path.read_bytes() == before
    # SQLite may leave empty -wal/-shm files beside it; they are as private as the file,
    # and the next run opens the checkpoint as usual.
    for side in state_dir.glob("spring.sqlite-*"):
        assert stat.S_IMODE(os.stat(side).st_mode) == 0o600
    store = Store.open(path)
    try:
        assert [r.progress for r in store.rows()] == ["done", "in_flight", "pending", "blocked"]
    finally:
        store.close()


def test_the_private_copy_of_the_readme_is_a_whole_checkpoint(state_dir: Path) -> None:
    store = _a_run_in_progress(state_dir / "spring.sqlite")  # taken while a run is going
    try:
        copy = state_dir.parent / "spring-copy.sqlite"
        vacuum = subprocess.run(
            f"umask 077; {SQLITE_UTILS} query 'file:.campaign-state/spring.sqlite?mode=ro' "
            f"\"vacuum into '{copy}'\"",
            shell=True,
            cwd=state_dir.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert vacuum.returncode == 0, vacuum.stderr
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
        counts = _sqlite_utils("tables", str(copy), "--counts", "--table", cwd=state_dir)
        assert counts.returncode == 0, counts.stderr
        tables = {cells[0]: int(cells[1]) for cells in _table(counts.stdout)}
        assert (tables["rows"], tables["attempts"], tables["send_log"]) == (4, 3, 4)
    finally:
        store.close()
