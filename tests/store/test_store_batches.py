"""The batch ledger in the checkpoint: committed whole before the upload, one batch per attempt."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import psycopg
import pytest

from campaign.store.checkpoint import RowIn, Store

T0 = 1_780_000_000.0


def rows(count: int) -> list[RowIn]:
    """``count`` callable rows cust-0000… on New York numbers +14155550000…"""
    return [
        RowIn(
            line=i + 2,
            row_key=f"cust-{i:04d}",
            raw_phone=f"+1415555{i:04d}",
            e164=f"+1415555{i:04d}",
            plan_state="callable",
            timezones=["America/New_York"],
        )
        for i in range(count)
    ]


def test_a_batch_and_its_attempts_are_committed_together(
    store: Store, reopen: Callable[[], Store]
) -> None:
    store.sync_rows(rows(3), T0)
    members = [(f"cust-{i:04d}", 1, f"key-{i}") for i in range(3)]
    stored = store.commit_batch(
        seq=1, idempotency_key="cmpb-1", csv=b"phone\r\n", content_hash="h",
        not_before=None, members=members, now=T0,
    )  # fmt: skip
    assert stored.state == "uploading" and stored.rows_total == 3
    assert [m.row_key for m in store.batch_members(1)] == ["cust-0000", "cust-0001", "cust-0002"]
    assert {a.state for a in store.attempts()} == {"sending"}
    assert {r.progress for r in store.rows()} == {"in_flight"}
    store.close()
    # What a resumed run sees: the same bytes under the same key.
    again = reopen().stored_batch(1)
    assert (again.csv, again.idempotency_key) == (b"phone\r\n", "cmpb-1")


def test_an_attempt_cannot_join_a_second_batch(store: Store) -> None:
    store.sync_rows(rows(2), T0)
    store.commit_batch(
        seq=1, idempotency_key="cmpb-1", csv=b"x", content_hash="h", not_before=None,
        members=[("cust-0000", 1, "key-0")], now=T0,
    )  # fmt: skip
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.commit_batch(
            seq=2, idempotency_key="cmpb-2", csv=b"y", content_hash="h2", not_before=None,
            members=[("cust-0001", 1, "key-1"), ("cust-0000", 1, "key-0")], now=T0,
        )  # fmt: skip
    # Nothing of the refused batch was kept: not the batch, not its other attempt.
    assert [b.seq for b in store.stored_batches()] == [1]
    assert store.row("cust-0001").progress == "pending"


def test_upload_and_rejection_move_attempts_and_rows(store: Store) -> None:
    store.sync_rows(rows(2), T0)
    store.commit_batch(
        seq=1, idempotency_key="cmpb-1", csv=b"x", content_hash="h", not_before=None,
        members=[("cust-0000", 1, "key-0"), ("cust-0001", 1, "key-1")], now=T0,
    )  # fmt: skip
    store.mark_batch_uploaded(1, "bat_1", "validating", 2, T0 + 1)
    assert store.stored_batch(1).state == "uploaded" and store.stored_batch(1).batch_id == "bat_1"
    assert {a.state for a in store.attempts()} == {"sent"}
    store.record_batch_progress(1, server_status="running", queued=1, now=T0 + 2)
    assert store.stored_batch(1).state == "running"
    store.reject_batch_row("key-1", "rejected by the API: phone must be a valid E.164 number")
    bad = store.row("cust-0001")
    assert (bad.progress, bad.plan_state) == ("blocked", "rejected")
    assert bad.reason == "rejected by the API: phone must be a valid E.164 number"


def test_a_batch_keeps_every_part_of_its_upload_and_the_number_each_attempt_dials(
    store: Store, reopen: Callable[[], Store]
) -> None:
    store.sync_rows(rows(2), T0)
    store.commit_batch(
        seq=1, idempotency_key="cmpb-1", csv=b"x", content_hash="h", not_before=T0 + 60,
        members=[("cust-0000", 1, "key-0"), ("cust-0001", 1, "key-1")], now=T0,
        scenario_id="scn_demo", name="spring #1", phones=["+14155550000", "+14155550001"],
    )  # fmt: skip
    store.close()
    again = reopen()
    stored = again.stored_batch(1)
    assert (stored.scenario_id, stored.name, stored.not_before) == (
        "scn_demo",
        "spring #1",
        T0 + 60,
    )
    assert stored.request_recorded
    assert {a.row_key: a.phone for a in again.attempts()} == {
        "cust-0000": "+14155550000",
        "cust-0001": "+14155550001",
    }
    # The gate sees the batch's calls: another row with one of these numbers is refused.
    caller = again.caller_of_number("+14155550001", "someone-else")
    assert caller is not None and caller.row_key == "cust-0001"


def test_releasing_a_batch_voids_its_attempts_and_blocks_only_the_refused_rows(
    store: Store,
) -> None:
    store.sync_rows(rows(3), T0)
    store.commit_batch(
        seq=1, idempotency_key="cmpb-1", csv=b"x", content_hash="h", not_before=None,
        members=[(f"cust-{i:04d}", 1, f"key-{i}") for i in range(3)], now=T0,
    )  # fmt: skip
    store.release_batch(
        1,
        error="batch 1 was never created",
        blocked={"cust-0001": ("suppressed", "on suppression list dnc.csv")},
        now=T0 + 1,
    )
    assert store.stored_batch(1).state == "failed"
    assert {a.state for a in store.attempts()} == {"void"}
    assert [(r.progress, r.attempts_used) for r in store.rows()] == [
        ("pending", 0),
        ("blocked", 0),
        ("pending", 0),
    ]
    blocked = store.row("cust-0001")
    assert (blocked.plan_state, blocked.reason) == ("suppressed", "on suppression list dnc.csv")
