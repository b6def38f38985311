"""Moving a checkpoint: SQLite into PostgreSQL (``campaign state copy``) and PostgreSQL into
memory (dry runs); the moved SQLite checkpoint refuses to run."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from campaign.errors import ConfigError, LockedError, StateError
from campaign.store import moving, transfer
from campaign.store.checkpoint import CallEnd, RowIn, Store
from campaign.store.contacts import CallLedger
from campaign.store.lock import CampaignLock
from campaign.store.moving import move_campaign
from campaign.store.optout import OptOutList
from campaign.store.place import StatePlace
from campaign.store.postgres import SHARED_SCHEMA, checkpoint_schema, lock_key
from campaign.store.transfer import snapshot_from

T0 = 1_780_000_000.25
VARIABLES = ["first_name", "plan"]


def _row(line: int, key: str, state: str = "callable", **extra: Any) -> RowIn:
    phone = f"+1212555{line:04d}"
    return RowIn(
        line=line, row_key=key, raw_phone=f"(212) 555-{line:04d}", e164=phone, plan_state=state,
        variables={"first_name": f"Zoë {key} 50% ?:x 'q'\t\\n\n", "plan": ["a", 1]},
        timezones=["America/New_York"], us_state="NY", region="US",
        number_type="mobile", **extra,
    )  # fmt: skip


def fill(store: Store) -> None:
    """Rows in every progress, attempts in every state, a batch with members, send times,
    runs, the phone memo: everything a checkpoint can hold."""
    store.claim_identity("c")
    planned = [_row(2 + i, f"K{i}") for i in range(12)]
    planned += [
        _row(20, "R1", "rejected", reason="invalid number"),
        _row(21, "S1", "suppressed", reason="on do_not_call.csv"),
        _row(22, "D1", "duplicate", reason="duplicate of line 2", duplicate_of="2"),
        _row(23, "X1", extension="12", note="extension kept"),
        _row(24, "GONE"),
    ]
    store.sync_rows(planned, T0)
    store.sync_rows([r for r in planned if r.row_key != "GONE"], T0 + 1.5)  # GONE vanishes

    def body(key: str) -> bytes:
        return json.dumps({"phone": store.row(key).e164, "k": key}).encode()

    def begin(key: str, number: int = 1) -> str:
        ikey = f"c:{key}:{number}"
        store.begin_attempt(key, number, ikey, body(key), T0 + 2, phone=store.row(key).e164)
        return ikey

    begin("K0")  # sending
    store.mark_sent(begin("K1"), "call_1", "queued", T0 + 3)  # sent
    done = begin("K2")
    store.mark_sent(done, "call_2", "queued", T0 + 3)
    store.end_attempt(
        done,
        CallEnd(status="completed", outcome="interested", goal_achieved=True, ended_at=T0 + 60,
                session_id="ses_2", updated_at="2026-05-28T10:00:00Z"),
        row_progress="done",
    )  # fmt: skip
    store.record_session(
        done, slot_values={"plan": "gold"}, cost="0.12", currency="USD", duration_s=41.5
    )
    retry = begin("K3")
    store.mark_sent(retry, "call_3", "queued", T0 + 3)
    store.end_attempt(
        retry,
        CallEnd(status="no_answer", ended_at=T0 + 61),
        row_progress="retry_scheduled",
        next_due=T0 + 3600.5,
    )
    store.fail_attempt(
        begin("K4"), "400 invalid_argument", row_progress="failed", row_reason="refused"
    )
    store.abandon_attempt(begin("K5"), "insufficient_funds")
    store.withhold_attempt(begin("K6"), plan_state="suppressed", reason="opted out since")
    members = [(f"K{i}", 1, f"c:K{i}:1") for i in (7, 8, 9)]
    store.commit_batch(
        seq=1, idempotency_key="c:batch:1", csv=b"phone\n+12125550009\n", content_hash="h1",
        not_before=T0 + 5, members=members, now=T0 + 4, scenario_id="scn", name="batch one",
        phones=[store.row(k).e164 for k, _, _ in members],
    )  # fmt: skip
    store.mark_batch_uploaded(1, "bat_1", "running", 3, T0 + 6)
    store.log_sends([("request", T0 + 1.125), ("call", T0 + 2.5), ("request", T0 + 7)])
    first = store.start_run(T0, "campaign run c.yaml")
    store.end_run(first, T0 + 100, 3, {"done": 1})
    store.start_run(T0 + 200, "campaign run c.yaml")  # killed: never ended
    store.remember_phones([("(212) 555-0002", "US", {"e164": "+12125550002"})])
    store.remember_phones([("0044 20 7946 0000", None, {"e164": "+442079460000"})])
    store.keep_phones()
    store.set_meta("requests_spent", "42")


def snapshot_of(store: Store) -> dict[str, Any]:
    """Everything a user or a run reads of a checkpoint."""
    return {
        "rows": store.rows(),
        "attempts": sorted(store.attempts(), key=lambda a: a.idempotency_key),
        "batches": store.stored_batches(),
        "members": store.batch_members(1) if store.stored_batches() else [],
        "results": list(store.result_cells(VARIABLES)),
        "last": list(store.last_attempt_cells()),
        "runs": store.runs(),
        "sends": store.send_times(0),
        "memo": store.memo_phones([("(212) 555-0002", "US"), ("0044 20 7946 0000", None)]),
        "meta": {k: store.get_meta(k) for k in ("campaign", "requests_spent")},
        "counts": sorted(store.row_counts()),
        "needing_session": [a.idempotency_key for a in store.attempts_needing_session()],
        "tables": {table: _table(store, table) for table in transfer.TABLES},
    }


def _table(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Every cell of a table (the computed window_key apart), rows in a fixed order."""
    cursor = store._conn.execute(f"SELECT * FROM {table}")
    names = [str(d[0]) for d in cursor.description or ()]
    keep = [i for i, name in enumerate(names) if name != "window_key"]
    rows = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
    return sorted(rows, key=repr)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """An SQLite checkpoint of campaign 'c' holding a bit of everything."""
    path = tmp_path / "state" / "c.sqlite"
    store = Store.open(path)
    try:
        fill(store)
    finally:
        store.close()
    return path


def _read(path: Path) -> dict[str, Any]:
    store = Store.open(path)
    try:
        return snapshot_of(store)
    finally:
        store.close()


def _pg(url: str) -> Store:
    return Store.open_postgres(url, "c")


def test_the_copy_holds_every_row_attempt_batch_result_and_run(
    checkpoint: Path, pg_url: str
) -> None:
    before = _read(checkpoint)
    report = move_campaign(checkpoint, to=pg_url, env={})
    copied = _pg(pg_url)
    try:
        assert snapshot_of(copied) == before
        assert copied.start_run(T0 + 300, "next") == 3  # ids go on after the copied ones
    finally:
        copied.close()
    assert report.copied.tables["attempts"] == 10 and report.copied.tables["runs"] == 2
    assert report.copied.tables["batch_members"] == 3 and report.copied.tables["rows"] == 17
    text = "\n".join(report.lines())
    assert "verified:" in text and "17 rows, 10 attempts, 1 batch (3 members)" in text
    assert "is marked as moved" in text


def test_rows_are_copied_a_chunk_at_a_time(
    checkpoint: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK", 3)
    before = _read(checkpoint)
    move_campaign(checkpoint, to=pg_url, env={})
    copied = _pg(pg_url)
    try:
        assert snapshot_of(copied) == before
    finally:
        copied.close()


def test_the_moved_checkpoint_refuses_to_run_and_to_be_copied_again(
    checkpoint: Path, pg_url: str, pg_password: str
) -> None:
    move_campaign(checkpoint, to=pg_url, env={}, now=T0)
    store = Store.open(checkpoint)
    try:
        with pytest.raises(StateError) as refused:
            store.claim_identity("c")  # what a run does first
    finally:
        store.close()
    message = str(refused.value)
    assert "this campaign's state was moved to postgresql://" in message
    assert "on 2026-05-28 " in message and "set state_url/CAMPAIGN_STATE_URL" in message
    assert pg_password not in message
    dry = Store.snapshot(checkpoint)  # a dry run refuses too
    try:
        with pytest.raises(StateError, match="was moved to"):
            dry.claim_identity("c")
    finally:
        dry.close()
    with pytest.raises(StateError, match="was moved to"):
        move_campaign(checkpoint, to=pg_url, env={}, replace=True)


def test_a_target_holding_the_campaign_is_refused_and_the_checkpoint_still_runs(
    checkpoint: Path, pg_url: str
) -> None:
    other = _pg(pg_url)
    try:
        other.claim_identity("c")
        other.sync_rows([_row(2, "NEW")], T0)
    finally:
        other.close()
    with pytest.raises(StateError, match=r"already holds a checkpoint.*--replace") as refused:
        move_campaign(checkpoint, to=pg_url, env={})
    assert refused.value.exit_code == 1
    target = _pg(pg_url)
    try:
        assert [r.row_key for r in target.rows()] == ["NEW"]  # left as it was
    finally:
        target.close()
    store = Store.open(checkpoint)
    try:
        store.claim_identity("c")  # not marked: it still runs here
    finally:
        store.close()
    before = _read(checkpoint)
    move_campaign(checkpoint, to=pg_url, env={}, replace=True)
    target = _pg(pg_url)
    try:
        assert snapshot_of(target) == before
    finally:
        target.close()


def test_replace_refuses_a_target_that_placed_calls_the_checkpoint_does_not_know(
    checkpoint: Path, pg_url: str
) -> None:
    other = _pg(pg_url)
    try:
        other.sync_rows([_row(2, "K0")], T0)
        other.begin_attempt("K0", 9, "c:K0:9", b"{}", T0)
    finally:
        other.close()
    with pytest.raises(StateError, match=r"holds calls that .* does not know of"):
        move_campaign(checkpoint, to=pg_url, env={}, replace=True)
    target = _pg(pg_url)
    try:
        assert [a.idempotency_key for a in target.attempts()] == ["c:K0:9"]
    finally:
        target.close()


def test_a_run_in_progress_makes_the_copy_fail_with_75_and_copies_nothing(
    checkpoint: Path, pg_url: str
) -> None:
    with CampaignLock(checkpoint), pytest.raises(LockedError) as refused:
        move_campaign(checkpoint, to=pg_url, env={})
    assert refused.value.exit_code == 75
    target = _pg(pg_url)
    try:
        assert target.rows() == []
    finally:
        target.close()
    assert Store.open(checkpoint).get_meta(transfer.MOVED_KEY) is None


def test_a_run_in_progress_on_postgresql_makes_the_copy_fail_with_75(
    checkpoint: Path, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as holder:
        key = lock_key(checkpoint_schema("c"), "run")
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        with pytest.raises(LockedError, match="in progress on postgresql://"):
            move_campaign(checkpoint, to=pg_url, env={})
    store = Store.open(checkpoint)
    try:
        store.claim_identity("c")  # the mark was taken back
    finally:
        store.close()


def test_a_failure_before_the_commit_keeps_nothing_in_the_database(
    checkpoint: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(state_dir: Path, target: Store) -> dict[str, tuple[int, int]]:
        raise StateError("the shared lists cannot be read")

    monkeypatch.setattr(moving, "_copy_shared", broken)
    with pytest.raises(StateError, match="shared lists"):
        move_campaign(checkpoint, to=pg_url, env={})
    target = _pg(pg_url)
    try:
        assert target.rows() == [] and target.attempts() == [] and target.runs() == []
    finally:
        target.close()
    assert Store.open(checkpoint).get_meta(transfer.MOVED_KEY) is None


def test_a_copy_killed_before_its_end_leaves_a_checkpoint_that_refuses_to_run(
    checkpoint: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the copy is made, and after a kill between its commit and the end, the SQLite
    checkpoint refuses to run; copying again (--replace) finishes the move."""
    seen: list[str] = []
    original = moving.copy_checkpoint

    def watched(source: Store, target: Store, *, replace: bool = False) -> Any:
        other = Store.open(checkpoint)  # what a run on the old host would open meanwhile
        try:
            with pytest.raises(StateError) as refused:
                other.claim_identity("c")
            seen.append(str(refused.value))
        finally:
            other.close()
        return original(source, target, replace=replace)

    @contextlib.contextmanager
    def killed_after_commit(*_args: Any) -> Iterator[None]:
        yield
        raise KeyboardInterrupt  # the commit has landed; "done" is never written

    monkeypatch.setattr(moving, "copy_checkpoint", watched)
    monkeypatch.setattr(moving, "_run_lock", killed_after_commit)
    with pytest.raises(KeyboardInterrupt):
        move_campaign(checkpoint, to=pg_url, env={})
    assert seen and "the copy did not finish; nothing was run" in seen[0]
    monkeypatch.undo()
    store = Store.open(checkpoint)
    try:
        with pytest.raises(StateError, match="the copy did not finish; nothing was run"):
            store.claim_identity("c")
    finally:
        store.close()
    with pytest.raises(StateError, match="already holds a checkpoint"):
        move_campaign(checkpoint, to=pg_url, env={})
    move_campaign(checkpoint, to=pg_url, env={}, replace=True)
    store = Store.open(checkpoint)
    try:
        with pytest.raises(StateError, match="was moved to"):
            store.claim_identity("c")
    finally:
        store.close()


def test_opt_outs_and_calls_per_number_join_the_shared_schema(
    checkpoint: Path, pg_url: str
) -> None:
    state_dir = checkpoint.parent
    opt_outs = OptOutList(state_dir)
    opt_outs.add("+12125550002", campaign="c", row_key="K0", now=T0)
    opt_outs.add("+12125559999", campaign="other", row_key="Z", now=T0 + 0.5)
    ledger = CallLedger(state_dir)
    ledger.take("+12125550003", "c:K1:1", at=T0, since=0, allow=lambda _t: True,
                campaign="c", row_key="K1")  # fmt: skip
    ledger.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an entry already there stays
        conn.execute(f'CREATE SCHEMA "{SHARED_SCHEMA}"')
        conn.execute(
            f'CREATE TABLE "{SHARED_SCHEMA}".opt_outs (e164 TEXT PRIMARY KEY, campaign TEXT, '
            "row_key TEXT, t DOUBLE PRECISION)"
        )
        conn.execute(
            f"INSERT INTO \"{SHARED_SCHEMA}\".opt_outs VALUES ('+12125550002', 'x', 'y', 1)"
        )
    report = move_campaign(checkpoint, to=pg_url, env={})
    assert report.shared == {"opt_outs": (2, 1), "calls": (1, 1)}
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(
            f'SELECT e164, campaign, t FROM "{SHARED_SCHEMA}".opt_outs ORDER BY e164'
        ).fetchall()
        calls = conn.execute(
            f'SELECT attempt_key, e164, t, campaign, row_key FROM "{SHARED_SCHEMA}".calls'
        ).fetchall()
    assert found == [("+12125550002", "x", 1.0), ("+12125559999", "other", T0 + 0.5)]
    assert calls == [("c:K1:1", "+12125550003", T0, "c", "K1")]


def test_a_checkpoint_path_needs_the_campaign_only_when_it_does_not_name_one(
    tmp_path: Path, pg_url: str
) -> None:
    path = tmp_path / "bare.sqlite"
    Store.open(path).close()
    with pytest.raises(ConfigError, match="--campaign NAME"):
        move_campaign(path, to=pg_url, env={})
    report = move_campaign(path, to=pg_url, campaign="c", env={})
    assert report.copied.tables["rows"] == 0


def test_no_database_named_is_refused_saying_how_to_name_one(checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match=r"give --to postgresql://.*CAMPAIGN_STATE_URL"):
        move_campaign(checkpoint, env={})


def test_a_dry_run_of_a_postgresql_checkpoint_reads_a_copy_in_memory(
    checkpoint: Path, pg_url: str, tmp_path: Path
) -> None:
    place = StatePlace(tmp_path / "elsewhere", "c", pg_url, "shown")
    empty = place.snapshot()  # nothing there yet: an empty checkpoint, as for SQLite
    try:
        assert empty.rows() == [] and empty.path is None
    finally:
        empty.close()
    before = _read(checkpoint)
    move_campaign(checkpoint, to=pg_url, env={})
    dry = place.snapshot()
    try:
        assert snapshot_of(dry) == before
        dry.set_row_progress("K11", "done")  # a dry run's writes stay in memory
    finally:
        dry.close()
    real = _pg(pg_url)
    try:
        assert real.row("K11").progress == "pending"
        again = snapshot_from(real)
        assert again.row("K11").progress == "pending"
        again.close()
    finally:
        real.close()


def test_an_sqlite_place_snapshots_its_file(checkpoint: Path) -> None:
    place = StatePlace(checkpoint.parent, "c")
    dry = place.snapshot()
    try:
        assert snapshot_of(dry) == _read(checkpoint)
        assert dry.path is None
    finally:
        dry.close()
