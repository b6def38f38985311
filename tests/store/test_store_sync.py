"""The nightly row sync: one transaction, whatever its size, with the merge rules it always had.

The rules themselves (identity across nights, waiting rows follow the plan, finished rows
keep their state, gone rows vanish) are checked against ``_row_by_row_sync`` below: the
row-by-row merge the checkpoint used before the sync became one bulk upsert, kept here
word for word as the reference.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import campaign.store.checkpoint as checkpoint
from campaign.store.checkpoint import CallEnd, RowIn, Store, StoredRow, SyncSummary
from campaign.store.models import WAITING_PROGRESS

T0 = 1_780_000_000.0
NIGHT = 86_400.0


def _night_one(count: int) -> list[RowIn]:
    return [
        RowIn(line=i + 2, row_key=f"k{i}", raw_phone=f"+1{i}", e164=f"+1{i}",
              plan_state="callable", variables={"n": i})
        for i in range(count)
    ]  # fmt: skip


def _night_two(count: int) -> list[RowIn]:
    """Every third row gone, every fifth suppressed, a new number under k1, new rows."""
    rows = [
        RowIn(line=i + 2, row_key=f"k{i}", raw_phone=f"+1{i}", e164=f"+1{i}",
              plan_state="suppressed" if i % 5 == 0 else "callable", variables={"n": i})
        for i in range(count)
        if i % 3
    ]  # fmt: skip
    rows.append(RowIn(count + 2, row_key="k1", raw_phone="+19", e164="+19", plan_state="callable"))
    rows += [
        RowIn(line=count + 3 + j, row_key=f"new-{j}", raw_phone=f"+2{j}", e164=f"+2{j}",
              plan_state="callable")
        for j in range(count)
    ]  # fmt: skip
    return rows


def _called(store: Store, row_key: str, *, retry: bool) -> None:
    key = f"{row_key}-1"
    store.begin_attempt(row_key, 1, key, b"{}", T0 + 60, phone=store.row(row_key).e164)
    store.end_attempt(
        key,
        CallEnd(status="no_answer" if retry else "completed"),
        row_progress="retry_scheduled" if retry else "done",
        next_due=T0 + 3600 if retry else None,
    )


def _everything(store: Store) -> tuple[list[StoredRow], list[Any]]:
    return store.rows(), store.attempts()


def _checkpoint_after_night_one(path: Path, count: int) -> tuple[list[StoredRow], list[Any]]:
    store = Store.open(path)
    try:
        store.sync_rows(_night_one(count), T0)
        _called(store, "k1", retry=False)
        _called(store, "k2", retry=True)
        return _everything(store)
    finally:
        store.close()


def test_a_sync_is_one_transaction_however_many_rows(sqlite_store: Store) -> None:
    store = sqlite_store
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    store.sync_rows(_night_one(1000), T0)
    store.db.conn.set_trace_callback(None)
    commits = [s for s in statements if s.split()[0].upper() in ("BEGIN", "COMMIT", "END")]
    assert commits == ["BEGIN IMMEDIATE", "COMMIT"]
    assert len(store.rows()) == 1000


def test_a_sync_that_fails_midway_leaves_last_nights_rows(checkpoint_path: Path) -> None:
    before = _checkpoint_after_night_one(checkpoint_path, 300)
    store = Store.open(checkpoint_path)
    try:
        # Fails on the 250th new row: by then every changed row and 249 new ones are written.
        store.db.execute(
            "CREATE TEMP TRIGGER fail_mid_sync BEFORE INSERT ON rows "
            "WHEN NEW.row_key = 'new-249' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
            store.sync_rows(_night_two(300), T0 + NIGHT)
        assert _everything(store) == before
        store.db.execute("DROP TRIGGER fail_mid_sync")
        summary = store.sync_rows(_night_two(300), T0 + NIGHT)  # the store still works
        assert (summary.new, summary.known, summary.vanished) == (301, 200, 100)
    finally:
        store.close()


KILLED_SYNC = """
import os, signal, sys
from pathlib import Path
from campaign.store.checkpoint import RowIn, Store

count = int(sys.argv[2])
store = Store.open(Path(sys.argv[1]))
store.db.conn.create_function("die", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
store.db.execute(
    "CREATE TEMP TRIGGER die_mid_sync AFTER INSERT ON rows "
    "WHEN NEW.row_key = 'new-249' BEGIN SELECT die(); END"
)
rows = [
    RowIn(line=i + 2, row_key=f"k{i}", raw_phone=f"+1{i}", e164=f"+1{i}",
          plan_state="suppressed" if i % 5 == 0 else "callable", variables={"n": i})
    for i in range(count) if i % 3
]
rows += [
    RowIn(line=count + 3 + j, row_key=f"new-{j}", raw_phone=f"+2{j}", e164=f"+2{j}",
          plan_state="callable")
    for j in range(count)
]
store.sync_rows(rows, 1_780_086_400.0)
print("the sync ended", flush=True)
"""


def test_a_process_killed_during_a_sync_leaves_last_nights_rows(checkpoint_path: Path) -> None:
    before = _checkpoint_after_night_one(checkpoint_path, 300)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(checkpoint_path), "300"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "the sync ended" not in killed.stdout
    store = Store.open(checkpoint_path)  # checks the file before anything is written
    try:
        assert _everything(store) == before
        assert os.stat(checkpoint_path).st_mode & 0o777 == 0o600
    finally:
        store.close()


# --- the merge rules, against the row-by-row merge they come from ------------------------

_DIALLED = "('sending', 'sent', 'ended', 'withheld')"


def _resolve_key(row: RowIn, existing: dict[str, tuple[str, Any]], touched: set[str]) -> str:
    key = row.row_key
    found = existing.get(key)
    if found is None or key not in touched or found[1] == row.e164:
        return key
    generation = 2
    while True:
        candidate = f"{key}#{generation}"
        found = existing.get(candidate)
        if found is None or found[1] == row.e164 or candidate not in touched:
            return candidate
        generation += 1


def _row_by_row_sync(conn: sqlite3.Connection, planned: list[RowIn], now: float) -> SyncSummary:
    """The merge as the checkpoint did it before the bulk upsert: one statement per row."""
    new = known = 0
    seen: set[str] = set()
    conn.execute("BEGIN IMMEDIATE")
    existing = {
        str(r[0]): (str(r[1]), r[2])
        for r in conn.execute("SELECT row_key, progress, e164 FROM rows")
    }
    callers: dict[str, tuple[str, int, str]] = {}
    for phone, row_key, line, label in conn.execute(
        "SELECT a.phone, r.row_key, r.line, r.label FROM attempts a "
        "JOIN rows r ON r.row_key = a.row_key WHERE a.phone IS NOT NULL "
        f"AND a.state IN {_DIALLED} ORDER BY a.sending_at"
    ):
        callers.setdefault(str(phone), (str(row_key), int(line), str(label)))
    touched = {
        str(r[0])
        for r in conn.execute(f"SELECT DISTINCT row_key FROM attempts WHERE state IN {_DIALLED}")
    }
    for row in planned:
        row_key = _resolve_key(row, existing, touched)
        plan_state, reason, duplicate_of = row.plan_state, row.reason, row.duplicate_of
        caller = callers.get(row.e164 or "")
        if (
            plan_state == "callable"
            and caller is not None
            and caller[0] != row_key
            and row_key not in touched
        ):
            plan_state = "duplicate"
            reason = (
                f"duplicate of line {caller[1]} (key {caller[2]}), which already called this number"
            )
            duplicate_of = str(caller[1])
        seen.add(row_key)
        values = (
            row.label or row.row_key, row.line, row.raw_phone, row.e164,
            json.dumps(row.variables, sort_keys=True), json.dumps(row.timezones), row.us_state,
            row.region, duplicate_of, row.extension, row.note, row.number_type,
        )  # fmt: skip
        if row_key not in existing:
            new += 1
            existing[row_key] = ("pending", row.e164)
            progress = "pending" if plan_state == "callable" else "blocked"
            conn.execute(
                "INSERT INTO rows(label, line, raw_phone, e164, variables, timezones, "
                "us_state, region, duplicate_of, extension, note, number_type, row_key, "
                "plan_state, reason, progress, attempts_used, vanished, first_seen, "
                "last_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,?,?)",
                (*values, row_key, plan_state, reason, progress, now, now),
            )
            continue
        known += 1
        old_progress = existing[row_key][0]
        conn.execute(
            "UPDATE rows SET label=?, line=?, raw_phone=?, e164=?, variables=?, "
            "timezones=?, us_state=?, region=?, duplicate_of=?, extension=?, note=?, "
            "number_type=?, vanished=0, last_seen=? WHERE row_key=?",
            (*values, now, row_key),
        )
        if plan_state != "callable" and old_progress in WAITING_PROGRESS:
            conn.execute(
                "UPDATE rows SET plan_state=?, reason=?, progress='blocked', "
                "next_due=NULL WHERE row_key=?",
                (plan_state, reason, row_key),
            )
        elif plan_state == "callable" and old_progress == "blocked":
            conn.execute(
                "UPDATE rows SET plan_state='callable', reason=NULL, "
                "progress='pending' WHERE row_key=?",
                (row_key,),
            )
        elif old_progress == "in_flight":  # a rejection of today's file, or its end (consent)
            conn.execute(
                "UPDATE rows SET plan_state=?, reason=? WHERE row_key=? "
                "AND 'rejected' IN (plan_state, ?)",
                (plan_state, reason, row_key, plan_state),
            )
    gone = [key for key in existing if key not in seen]
    for key in gone:
        conn.execute("UPDATE rows SET vanished=1 WHERE row_key=?", (key,))
    conn.execute("COMMIT")
    return SyncSummary(new=new, known=known, vanished=len(gone))


KEYS = ["a", "b", "c"]
NUMBERS = ["+1201", "+1202", "+1203", None]
planned_row = st.builds(
    lambda key, number, state, line, kind: RowIn(
        line=line, row_key=key, raw_phone=number or "n/a", e164=number, plan_state=state,
        reason=None if state == "callable" else f"{state} on line {line}",
        variables={"line": line, "é": key}, timezones=["America/New_York"] * (line % 2),
        number_type=kind, label=key.upper() if line % 3 == 0 else None,
    ),
    st.sampled_from(KEYS),
    st.sampled_from(NUMBERS),
    st.sampled_from(["callable", "callable", "suppressed", "rejected", "duplicate"]),
    st.integers(2, 7),
    st.sampled_from([None, "mobile"]),
)  # fmt: skip
# A day of calls after each night: (row, how its attempt ends).
calls = st.lists(
    st.tuples(
        st.sampled_from([*KEYS, *KEYS, "a#2", "b#2"]),
        st.sampled_from(["done", "done", "retry_scheduled", "failed", "in_flight", "void"]),
    ),
    max_size=4,
)


def _a_day_of_calls(store: Store, day: list[tuple[str, str]], now: float) -> None:
    due = {row.row_key: row for row in store.rows_due(now)}
    for row_key, end in day:
        row = due.pop(row_key, None)
        if row is None or row.e164 is None:
            continue
        number = store.next_attempt_number(row_key)
        key = f"{row_key}-{number}"
        store.begin_attempt(row_key, number, key, b"{}", now, phone=row.e164)
        if end != "in_flight":
            store.end_attempt(
                key,
                CallEnd(status="failed" if end == "void" else "no_answer", ended_at=now + 60),
                row_progress="pending" if end == "void" else end,
                next_due=now + 60 if end == "retry_scheduled" else None,
                void=end == "void",
            )


def _row(key: str, number: str, state: str = "callable", line: int = 2) -> RowIn:
    return RowIn(line=line, row_key=key, raw_phone=number, e164=number, plan_state=state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A number called under one key comes back under another: a duplicate of the row that called.
@example([([_row("a", "+1201")], [("a", "done")]), ([_row("b", "+1201")], [])])
# A recycled key: each new number that calls under it is a new person, a#2, then a#3.
@example(
    [
        ([_row("a", "+1201")], [("a", "done")]),
        ([_row("a", "+1202")], [("a#2", "retry_scheduled")]),
        ([_row("a", "+1203"), _row("a", "+1202", line=3)], []),
    ]
)
# A key twice in one file: the later row is applied to what the earlier one left.
@example([([_row("a", "+1201", "suppressed"), _row("a", "+1201", line=3)], [])])
@given(st.lists(st.tuples(st.lists(planned_row, max_size=6), calls), min_size=1, max_size=4))
def test_the_bulk_sync_merges_every_night_as_the_row_by_row_sync_did(
    nights: list[tuple[list[RowIn], list[tuple[str, str]]]],
) -> None:
    bulk, reference = Store.snapshot(None), Store.snapshot(None)
    try:
        for night, (planned, day) in enumerate(nights):
            now = T0 + night * NIGHT
            summary = bulk.sync_rows(planned, now)
            assert summary == _row_by_row_sync(reference.db.conn, planned, now)
            assert sorted(bulk.rows(), key=lambda r: r.row_key) == sorted(
                reference.rows(), key=lambda r: r.row_key
            )
            for store in (bulk, reference):
                _a_day_of_calls(store, day, now + 3600)
    finally:
        bulk.close()
        reference.close()


def _staged_pair(null: object) -> list[tuple[object, ...]]:
    """Two rows in the staged table's shape, ``null`` for each empty text column."""
    blank = {name: None for name in checkpoint._PLANNED}
    rows = [
        {**blank, "row_key": "a", "label": "a", "line": 2, "raw_phone": "0",
         "e164": "+12125550100", "variables": "{}", "timezones": "[]", "us_state": "0",
         "number_type": "0", "plan_state": "callable"},
        {**blank, "row_key": "b", "label": "b", "line": 3, "raw_phone": "", "variables": "{}",
         "timezones": "[]", "plan_state": "rejected", "reason": "no phone number"},
    ]  # fmt: skip
    return [tuple(null if v is None else v for v in row.values()) for row in rows]


def test_a_text_column_staged_as_null_text_is_stored_null_and_text_zero_stays_text(
    store: Store,
) -> None:
    # checkpoint_rows gives NULL_TEXT for an empty text column (it binds faster than
    # None); the text "0" stays text, on either backend
    store.stage_planned(iter(_staged_pair(checkpoint.NULL_TEXT)))
    store.sync_staged(T0)
    first, second = store.rows()
    assert (first.us_state, first.number_type, first.raw_phone) == ("0", "0", "0")
    assert (first.region, first.note, first.extension, first.reason) == (None,) * 4
    assert (second.e164, second.us_state, second.region, second.raw_phone) == (None, None, None, "")
    assert second.reason == "no phone number"


def test_a_row_staged_with_null_text_or_none_is_stored_the_same(tmp_path: Path) -> None:
    stored = []
    for null in (None, checkpoint.NULL_TEXT):
        store = Store.open(tmp_path / f"{null}.sqlite")
        store.stage_planned(iter(_staged_pair(null)))
        store.sync_staged(T0)
        stored.append(store.rows())
        store.close()
    assert stored[0] == stored[1]
