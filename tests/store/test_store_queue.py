"""The queue's reads: due rows by window group and line, from indexes, on new checkpoints
and on checkpoints written before the scheduling migration; counts by SQL; results read
from a cursor in input order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from campaign.errors import StateError
from campaign.store.checkpoint import RowIn, Store
from campaign.store.queue import _PENDING, _rows_by, probe_row
from campaign.store.schema import SCHEDULING_MIGRATION, migrations

T0 = 1_780_000_000.0
NY, LA = '["America/New_York"]', '["America/Los_Angeles"]'


def _rows(n: int) -> list[RowIn]:
    return [
        RowIn(
            line=i + 2,
            row_key=f"k{i}",
            raw_phone=f"+1212555{i:04d}",
            e164=f"+1212555{i:04d}",
            plan_state="callable",
            timezones=["America/New_York"] if i % 2 else ["America/Los_Angeles"],
            us_state="NY" if i % 4 == 1 else None,
        )
        for i in range(n)
    ]


def test_due_rows_come_by_group_rank_then_line_and_skip_what_is_not_due(store: Store) -> None:
    store.sync_rows(_rows(12), T0)
    store.set_row_progress("k0", "retry_scheduled", next_due=T0 + 100)  # not due yet
    store.set_row_progress("k2", "retry_scheduled", next_due=T0 - 1)  # due
    store.set_row_progress("k4", "done")
    keys = store.due_groups(T0)
    assert keys == sorted({f"{NY}|NY", f"{NY}|", f"{LA}|"})
    ranked = [(2.0, f"{LA}|"), (1.0, f"{NY}|NY"), (1.0, f"{NY}|")]
    page = store.due_rows(ranked, T0, limit=100, skip={"k3"})
    # New York's groups rank first (merged by line), then Los Angeles by line
    assert [key for key, _, _ in page] == ["k1", "k5", "k7", "k9", "k11", "k2", "k6", "k8", "k10"]
    assert [k for k, _, _ in store.due_rows(ranked, T0, limit=3)] == ["k1", "k3", "k5"]
    assert store.due_rows(ranked, T0 + 200, limit=100)[-1][0] == "k10"
    assert "k0" in [k for k, _, _ in store.due_rows(ranked, T0 + 200, limit=100)]
    assert probe_row(f"{NY}|NY").timezones == ["America/New_York"]
    assert probe_row(f"{LA}|").us_state is None


def test_counts_come_from_group_by_and_agree_with_the_rows(store: Store) -> None:
    store.sync_rows(_rows(10), T0)
    store.set_row_progress("k0", "retry_scheduled", next_due=T0 + 100)
    store.set_row_progress("k2", "retry_scheduled", next_due=T0 - 1)
    store.block_row("k4", plan_state="suppressed", reason="opted out")
    counts = {(p, s, v): n for p, s, v, n in store.row_counts()}
    assert counts[("pending", "callable", 0)] == 7
    assert counts[("blocked", "suppressed", 0)] == 1
    groups = {key: (now, later) for key, now, later in store.group_counts(T0)}
    assert groups[f"{LA}|"] == (3, 1)  # k2 due, k6, k8 pending; k0 later
    assert sum(now for now, _ in groups.values()) == 8
    assert store.soonest_retry() == T0 - 1


def test_a_checkpoint_from_before_the_scheduling_migration_queues_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    conn = _checkpoint_before_scheduling(path)
    for i, zones in enumerate([NY, LA, NY]):
        conn.execute(
            "INSERT INTO rows(row_key, label, line, raw_phone, e164, plan_state, progress, "
            "timezones, us_state, first_seen, last_seen) "
            "VALUES (?, ?, ?, '+1', '+1', 'callable', 'pending', ?, ?, ?, ?)",
            (f"k{i}", f"k{i}", i + 2, zones, "NY" if i == 2 else None, T0, T0),
        )
    conn.close()
    store = Store.open(path)
    try:
        assert store.due_groups(T0) == [f"{LA}|", f"{NY}|", f"{NY}|NY"]
        page = store.due_rows([(0.0, key) for key in store.due_groups(T0)], T0, limit=10)
        assert [k for k, _, _ in page] == ["k0", "k1", "k2"]
        plan = " ".join(
            str(r[-1])
            for r in store.db.execute(
                "EXPLAIN QUERY PLAN SELECT line, row_key FROM "
                f"{_rows_by(_PENDING + ' AND window_key = ?')} ORDER BY line",
                [f"{NY}|"],
            ).fetchall()
        )
        assert "rows_pending_queue" in plan and "TEMP B-TREE" not in plan
        # a sync after the migration keeps the group column right for new rows
        store.sync_rows([RowIn(9, "k9", "+2", "+2", "callable", timezones=["Europe/London"])], T0)
        assert '["Europe/London"]|' in store.due_groups(T0)
    finally:
        store.close()


def test_results_are_read_in_input_order_with_the_last_attempt_that_was_not_voided(
    store: Store,
) -> None:
    store.sync_rows(list(reversed(_rows(4))), T0)
    first = store.begin_attempt("k1", 1, "key-1", b"{}", T0, phone="+1")
    store.mark_sent(first.idempotency_key, "call_1", "queued", T0 + 1)
    store.begin_attempt("k1", 2, "key-2", b"{}", T0 + 5, phone="+1")
    store.abandon_attempt("key-2", "wallet empty")
    read = list(store.result_rows())
    assert [row.label for row in read] == ["k0", "k1", "k2", "k3"]
    assert read[0].sending_at is None and read[0].call_id is None  # never called
    # the voided attempt 2 is not the last one: attempt 1's call is
    assert (read[1].call_id, read[1].sending_at) == ("call_1", T0)


def test_status_and_report_read_the_checkpoint_in_place_and_never_write_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    store = Store.open(path)
    store.claim_identity("c")
    store.sync_rows(_rows(3), T0)
    store.close()
    reader = Store.reader(path)
    try:
        assert [row.row_key for row in reader.rows()] == ["k0", "k1", "k2"]
        assert reader.path == path  # the file itself, not an in-memory copy
        with pytest.raises(StateError):
            reader.set_meta("x", "y")
    finally:
        reader.close()


def test_a_reader_of_an_older_checkpoint_reads_a_migrated_copy_and_leaves_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    conn = _checkpoint_before_scheduling(path)
    conn.close()
    reader = Store.reader(path)
    try:
        assert reader.path is None  # the migrated copy
        assert reader.due_groups(T0) == []
    finally:
        reader.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations().index(
        SCHEDULING_MIGRATION
    )
    conn.close()


def _checkpoint_before_scheduling(path: Path) -> sqlite3.Connection:
    """A checkpoint file as the version before the scheduling migration left it."""
    version = migrations().index(SCHEDULING_MIGRATION)
    conn = sqlite3.connect(path, isolation_level=None)
    for step in migrations()[:version]:
        assert isinstance(step, list)
        for statement in step:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version}")
    return conn
