"""The checkpoint: transitions, resume facts, file safety, the lock and the opt-out list."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.postgres import Backend, acquire_when_free

from campaign.engine.attempts import call_body, idempotency_key, metadata_matches
from campaign.errors import LockedError, StateError
from campaign.store.checkpoint import CallEnd, RowIn, Store
from campaign.store.lock import CampaignLock
from campaign.store.place import StatePlace

T0 = 1_780_000_000.0


def _rows(*keys: str) -> list[RowIn]:
    return [
        RowIn(line=i + 2, row_key=k, raw_phone=k, e164=k, plan_state="callable")
        for i, k in enumerate(keys)
    ]


def test_file_is_private_and_in_wal_mode(sqlite_store: Store) -> None:
    store = sqlite_store
    assert store.path is not None
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_checkpoint_of_another_campaign_is_refused(store: Store) -> None:
    with pytest.raises(StateError, match="belongs to campaign 'c'"):
        store.claim_identity("other")


def test_grown_input_adds_rows_and_known_rows_keep_state(store: Store) -> None:
    store.sync_rows(_rows("+1a", "+1b"), T0)
    key = idempotency_key("c", "+1a", 1)
    store.begin_attempt("+1a", 1, key, b"{}", T0)
    store.mark_sent(key, "call_1", "queued", T0)
    summary = store.sync_rows(_rows("+1a", "+1b", "+1c"), T0 + 10)
    assert (summary.new, summary.known, summary.vanished) == (1, 2, 0)
    progress = {r.row_key: r.progress for r in store.rows()}
    assert progress == {"+1a": "in_flight", "+1b": "pending", "+1c": "pending"}
    summary = store.sync_rows(_rows("+1b"), T0 + 20)
    assert summary.vanished == 2
    vanished = {r.row_key for r in store.rows() if r.vanished}
    assert vanished == {"+1a", "+1c"}
    assert store.attempt(key).call_id == "call_1"
    assert [r.row_key for r in store.rows_due(T0 + 30)] == ["+1b"]


def test_unstarted_row_follows_todays_plan(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    suppressed = RowIn(line=2, row_key="+1a", raw_phone="x", e164="+1a", plan_state="suppressed")
    store.sync_rows([suppressed], T0 + 1)
    assert store.row("+1a").progress == "blocked"
    assert store.rows_due(T0 + 2) == []


def test_attempt_lifecycle_and_retry_due(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    key = idempotency_key("c", "+1a", 1)
    attempt = store.begin_attempt("+1a", 1, key, b'{"phone":"+1a"}', T0)
    assert attempt.state == "sending" and attempt.body == b'{"phone":"+1a"}'
    assert [a.idempotency_key for a in store.attempts("sending")] == [key]
    store.mark_sent(key, "call_1", "queued", T0 + 1)
    store.end_attempt(
        key,
        CallEnd(status="no_answer", ended_at=T0 + 60),
        row_progress="retry_scheduled",
        next_due=T0 + 3600,
    )
    assert store.rows_due(T0 + 3599) == []
    assert [r.row_key for r in store.rows_due(T0 + 3600)] == ["+1a"]
    assert store.next_attempt_number("+1a") == 2
    assert store.row("+1a").attempts_used == 1


def test_void_attempt_does_not_count(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    key = idempotency_key("c", "+1a", 1)
    store.begin_attempt("+1a", 1, key, b"{}", T0)
    store.end_attempt(
        key,
        CallEnd(status="failed", failure_reason="insufficient_funds"),
        row_progress="pending",
        void=True,
    )
    row = store.row("+1a")
    assert (row.progress, row.attempts_used) == ("pending", 0)
    assert store.next_attempt_number("+1a") == 2
    assert store.attempt(key).state == "void"


def test_same_attempt_cannot_be_begun_twice(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    key = idempotency_key("c", "+1a", 1)
    store.begin_attempt("+1a", 1, key, b"{}", T0)
    # SQLite's words, or PostgreSQL's: a constraint breach keeps its driver's type
    with pytest.raises(Exception, match=r"UNIQUE|unique constraint"):
        store.begin_attempt("+1a", 1, key, b"{}", T0)


def test_send_log_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = Store.open(path)
    store.log_sends([("call", T0), ("request", T0 + 1), ("request", T0 - 7200)])
    store.close()
    reopened = Store.open(path)
    requests, calls = reopened.send_times(T0 - 3600)
    assert (requests, calls) == ([T0 + 1], [T0])


def test_snapshot_does_not_touch_the_file(sqlite_store: Store) -> None:
    store = sqlite_store
    store.sync_rows(_rows("+1a"), T0)
    assert store.path is not None
    copy = Store.snapshot(store.path)
    copy.sync_rows(_rows("+1a", "+1b"), T0)
    assert len(copy.rows()) == 2
    assert len(store.rows()) == 1


def test_key_is_pure_printable_and_bounded() -> None:
    key = idempotency_key("spring", "cust-1", 2)
    assert key == idempotency_key("spring", "cust-1", 2)
    assert key != idempotency_key("spring", "cust-1", 3)
    assert key != idempotency_key("spring2", "cust-1", 2)
    assert 1 <= len(key) <= 255 and key.isascii() and key.isprintable()


def test_body_is_canonical_and_carries_metadata() -> None:
    body = call_body(
        campaign="c", scenario_id="scn", row_key="k", number=1, phone="+1", variables={"b": 1}
    )
    assert body == (
        b'{"metadata":{"attempt":"1","campaign":"c","row_key":"k"},'
        b'"phone":"+1","scenario_id":"scn","variables":{"b":1}}'
    )
    assert metadata_matches({"campaign": "c", "row_key": "k", "attempt": "1"}, "c") == ("k", 1)
    assert metadata_matches({"campaign": "other", "row_key": "k", "attempt": "1"}, "c") is None


def test_second_lock_is_refused_and_dead_holder_does_not_block(
    tmp_path: Path, state_backend: Backend
) -> None:
    place = StatePlace(tmp_path, "c", state_backend.url, state_backend.url_no_password)
    db = place.checkpoint_path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,sys,time; from pathlib import Path; "
            "from campaign.store.place import StatePlace;"
            f"lock = StatePlace(Path({str(tmp_path)!r}), 'c', os.environ.get('H3_DSN') or None)"
            ".lock(); lock.acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "H3_DSN": state_backend.url or ""},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match="another run") as refused:
            place.lock().acquire()
        assert not db.exists()
        if state_backend.is_postgres:
            assert "campaign 'c'" in str(refused.value)
            assert str(state_backend.url_no_password) in str(refused.value)
            assert str(state_backend.password) not in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops a flock at once; the server notices the closed connection a moment
    # later: wait for that, not for a fixed time.
    acquire_when_free(place)


def test_opt_outs_are_shared_across_campaigns(tmp_path: Path, state_backend: Backend) -> None:
    place = StatePlace(tmp_path, "a", state_backend.url, state_backend.url_no_password)
    place.opt_outs().add("+14155550100", campaign="a", row_key="k", now=T0)
    place.opt_outs().add("+14155550100", campaign="b", row_key="k", now=T0)
    place.opt_outs().add("+14155550199", campaign="b", row_key="k2", now=T0)
    assert place.opt_outs().numbers() == ["+14155550100", "+14155550199"]
    assert place.opt_outs().numbers(besides="b") == ["+14155550100"]
    assert place.opt_outs().numbers(besides="a") == ["+14155550199"]
    assert place.opt_outs().contains("+14155550199")
    assert not place.opt_outs().contains("+14155550101")
    if state_backend.is_postgres:
        assert not (tmp_path / "opt_outs.sqlite").exists()  # nothing in the state dir
    else:
        assert stat.S_IMODE(os.stat(tmp_path / "opt_outs.sqlite").st_mode) == 0o600


def test_a_waiting_row_whose_number_opted_out_is_not_called_again(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    key = idempotency_key("c", "+1a", 1)
    store.begin_attempt("+1a", 1, key, b"{}", T0)
    store.end_attempt(
        key, CallEnd(status="no_answer"), row_progress="retry_scheduled", next_due=T0 + 60
    )
    opted = RowIn(line=2, row_key="+1a", raw_phone="+1a", e164="+1a", plan_state="suppressed",
                  reason="opted out")  # fmt: skip
    store.sync_rows([opted], T0 + 10)
    row = store.row("+1a")
    assert (row.progress, row.plan_state, row.attempts_used) == ("blocked", "suppressed", 1)
    assert store.rows_due(T0 + 3600) == []


def test_a_finished_row_keeps_its_state_when_the_plan_changes(store: Store) -> None:
    store.sync_rows(_rows("+1a"), T0)
    key = idempotency_key("c", "+1a", 1)
    store.begin_attempt("+1a", 1, key, b"{}", T0)
    store.end_attempt(key, CallEnd(status="completed", outcome="opted_out"), row_progress="done")
    opted = RowIn(line=2, row_key="+1a", raw_phone="+1a", e164="+1a", plan_state="suppressed")
    store.sync_rows([opted], T0 + 10)
    assert store.row("+1a").progress == "done"


def test_a_full_disk_is_reported_in_words_and_loses_no_committed_state(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    store.sync_rows(_rows("+1a"), T0)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL
    many = [
        RowIn(line=i + 3, row_key=f"+1{i}", raw_phone="x" * 200, e164=None, plan_state="rejected")
        for i in range(500)
    ]
    with pytest.raises(
        StateError, match=r"c\.sqlite: the checkpoint cannot be written: the disk is full"
    ):
        store.sync_rows(_rows("+1a") + many, T0 + 1)
    assert [r.row_key for r in store.rows()] == ["+1a"]  # the failed sync left nothing half-done
    store.set_row_progress("+1a", "done")  # rolled back cleanly: the store still works
    assert store.row("+1a").progress == "done"


def test_a_damaged_checkpoint_is_refused_at_open_and_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = Store.open(path)
    store.sync_rows(_rows(*(f"+1{i}" for i in range(300))), T0)
    store.close()
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 5] = b"\x00\xff" * 4096  # the rows table and its key index
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="the checkpoint is damaged"):
        Store.open(path)
    with pytest.raises(StateError, match="the checkpoint is damaged"):
        Store.snapshot(path)
    assert path.read_bytes() == bytes(data)


@pytest.mark.parametrize("planted", ["symlink", "hardlink", "directory"])
def test_a_lock_path_that_is_not_a_plain_file_is_refused_and_nothing_is_written(
    tmp_path: Path, planted: str
) -> None:
    db = tmp_path / "c.sqlite"
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    lock = Path(str(db) + ".lock")
    if planted == "symlink":
        lock.symlink_to(target)
    elif planted == "hardlink":
        os.link(target, lock)
    else:
        lock.mkdir()
    problem = {"symlink": "is a symbolic link", "hardlink": "has other hard links"}
    with pytest.raises(StateError, match=problem.get(planted, "is not a regular file")):
        CampaignLock(db).acquire()
    assert target.read_text() == "root:x:0:0\n"
