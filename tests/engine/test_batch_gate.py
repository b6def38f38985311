"""Batches mode and the send gate: a re-send is the recorded request or a lookup, never a
guess; nobody is dialled twice, outside their calling hours, or after being suppressed.

Each test plays a crash between runs against the sandbox on a fake clock: the upload of a
batch is committed, maybe executed with its answer lost, and the next run meets it
*uploading* after something changed (the campaign file, the suppression list, the time of
day, the input).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.batches import (
    FAULTS,
    NEW_YORK,
    T0,
    Platform,
    _faulty_platform,
    _platform,
    assert_exactly_once,
    open_store,
    rows,
)

from campaign.config.model import CallingHours
from campaign.engine.batches.plan import BatchMember, recorded_rows
from campaign.engine.gate import SendGate
from campaign.planning.windows import WindowBook
from campaign.sandbox import DEFAULT_PROJECT
from campaign.store.batches import StoredBatch
from campaign.store.checkpoint import RowIn, Store
from campaign.store.optout import OptOutList

HOURS = CallingHours.model_validate({"start": "08:00", "end": "21:00"})
PACIFIC = ["America/Los_Angeles"]
SCENARIOS = {DEFAULT_PROJECT: frozenset({"scn_demo", "scn_v2"})}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def gate_for(
    store: Store, tmp: Path, hours: Any = "unrestricted", suppression: Mapping[str, str] = {}
) -> SendGate:
    return SendGate(
        store=store,
        suppression=dict(suppression),
        opt_outs=OptOutList(tmp),
        window_for=WindowBook(hours).window_for,
        stop_before_close_s=300.0,
    )


def commit_first_batch(platform: Platform, store: Store, now: float, **engine: Any) -> StoredBatch:
    """A run commits a batch of every due row, then dies before its upload is confirmed."""
    members = [BatchMember(r.row_key, r.e164 or "", r.variables) for r in store.rows_due(now)]
    return platform.engine(store, max_rows=len(members), **engine).commit(members, None, now)


async def upload_executes_answer_lost(platform: Platform, stored: StoredBatch) -> None:
    """The upload reached the platform and created the batch; its answer never came back."""
    await platform.client.create_batch(
        stored.csv,
        scenario_id="scn_demo",
        idempotency_key=stored.idempotency_key,
        name="spring #1",
    )


def dials(platform: Platform) -> Counter[str]:
    return Counter(c["phone"] for c in platform.ledger()["calls"])


def batch_ids(platform: Platform) -> set[str]:
    return {c["batch_id"] for c in platform.ledger()["calls"]}


# ---- item 3: the re-send is the recorded request, every part of it --------------------------


async def test_a_scenario_changed_after_a_lost_upload_answer_dials_nobody_twice(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min", scenarios=SCENARIOS):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(8), T0)
        stored = commit_first_batch(platform, store, T0)
        await upload_executes_answer_lost(platform, stored)
        # Before the next run the campaign file's scenario_id changes; then two more runs.
        results = [
            await platform.engine(store, max_rows=8, scenario_id="scn_v2").run() for _ in range(2)
        ]
        assert len(dials(platform)) == 8 and max(dials(platform).values()) == 1
        assert len(batch_ids(platform)) == 1
        assert [r.error for r in results] == [None, None]
        assert store.stored_batch(1).state == "done"


def forget_request_parts(path: Path) -> None:
    """What a checkpoint written before the scenario and name were kept looks like."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE batches SET scenario_id = NULL, name = NULL")
    conn.close()


async def test_an_old_batch_without_its_scenario_is_held_until_a_lookup_finds_it(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min", scenarios=SCENARIOS):
        path = tmp_path / "c.sqlite"
        store = open_store(path)
        store.sync_rows(rows(8), T0)
        stored = commit_first_batch(platform, store, T0)
        await upload_executes_answer_lost(platform, stored)
        forget_request_parts(path)
        # Today's scenario differs and nothing has been dialled yet: the server knows the
        # key, the request cannot be rebuilt, no lookup can find the batch. Rows stay held.
        held = await platform.engine(store, max_rows=8, scenario_id="scn_v2").run()
        assert held.error is not None and "stay held" in str(held.error)
        assert {r.progress for r in store.rows()} == {"in_flight"}
        assert {a.state for a in store.attempts()} == {"sending"}
        assert store.stored_batch(1).state == "uploading"
        # Later the platform has dialled some of its rows: the lookup finds and adopts it.
        platform.clock.advance(60)
        result = await platform.engine(store, max_rows=8, scenario_id="scn_v2").run()
        assert result.error is None
        assert len(dials(platform)) == 8 and max(dials(platform).values()) == 1
        assert len(batch_ids(platform)) == 1
        assert store.stored_batch(1).state == "done"


async def test_an_old_batch_the_platform_never_received_is_planned_again_with_todays_file(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min", scenarios=SCENARIOS):
        path = tmp_path / "c.sqlite"
        store = open_store(path)
        store.sync_rows(rows(5), T0)
        commit_first_batch(platform, store, T0)  # the run died before the upload left
        forget_request_parts(path)
        result = await platform.engine(store, max_rows=5, scenario_id="scn_v2").run()
        assert result.error is None
        assert store.stored_batch(1).state == "failed"
        assert "never created" in (store.stored_batch(1).error or "")
        assert len(dials(platform)) == 5 and max(dials(platform).values()) == 1
        assert store.stored_batch(2).scenario_id == "scn_v2"
        assert all(r.attempts_used == 1 for r in store.rows())


# ---- item 6: a re-send passes the gate for every member, or the batch is looked up ----------


CRASH = _epoch("2026-05-28T23:00:00Z")  # 16:00 in Los Angeles, 19:00 in New York


async def test_a_batch_left_uploading_overnight_is_not_dialled_before_its_window_opens(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, CRASH, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(6, timezones=PACIFIC), CRASH)
        commit_first_batch(platform, store, CRASH, hours=HOURS)  # died before the upload
        # The cron run at 09:00 in New York: 06:00 in Los Angeles.
        platform.clock.advance(14 * 3600)
        gate = gate_for(store, tmp_path, HOURS)
        early = await platform.engine(store, hours=HOURS, gate=gate).run()
        assert early.error is None
        assert platform.ledger()["calls"] == []
        assert {r.progress for r in store.rows()} == {"pending"}
        opens = _epoch("2026-05-29T15:00:00Z")  # 08:00 in Los Angeles
        assert early.next_due == opens
        # At 08:00 the rows go out in a fresh batch, each dialled once, none before 08:00.
        platform.clock.advance(opens - platform.clock.now())
        result = await platform.engine(store, hours=HOURS, gate=gate).run()
        assert result.error is None
        dialled = [c for c in platform.ledger()["calls"] if c["dialed_at"]]
        assert len(dialled) == 6 and max(dials(platform).values()) == 1
        assert min(_epoch(c["dialed_at"]) for c in dialled) >= opens
        assert store.stored_batch(1).state == "failed" and store.stored_batch(2).state == "done"


async def test_a_batch_is_not_resent_when_its_last_rows_would_ring_after_the_window(
    tmp_path: Path,
) -> None:
    # 20:40 in New York: 20 rows at 1 a minute would ring until 21:00, past the margin.
    start = _epoch("2026-05-29T00:40:00Z")
    async for platform in _platform(tmp_path, start, "1/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(20), start)
        commit_first_batch(platform, store, start)  # planned unrestricted, died
        gate = gate_for(store, tmp_path, HOURS)
        result = await platform.engine(store, hours=HOURS, gate=gate, calls_per_min=1).run()
        assert result.error is None
        closes = _epoch("2026-05-29T01:00:00Z")
        late = [c for c in platform.ledger()["calls"] if _epoch(c["created_at"]) > closes - 300]
        assert late == []
        assert store.stored_batch(1).state == "failed"


async def test_a_number_suppressed_while_its_batch_was_left_uploading_is_never_dialled(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(4), T0)
        commit_first_batch(platform, store, T0)  # the run died before the upload left
        # Overnight the number of the second row joined the do-not-call file.
        suppressed = store.row("cust-0001").e164 or ""
        gate = gate_for(store, tmp_path, suppression={suppressed: "do_not_call.csv"})
        result = await platform.engine(store, gate=gate).run()
        assert result.error is None
        assert suppressed not in dials(platform)
        assert len(dials(platform)) == 3 and max(dials(platform).values()) == 1
        row = store.row("cust-0001")
        assert (row.progress, row.plan_state) == ("blocked", "suppressed")
        assert row.reason == "on suppression list do_not_call.csv"
        assert row.attempts_used == 0


async def test_a_batch_created_before_the_crash_is_followed_and_what_it_may_dial_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(4), T0)
        stored = commit_first_batch(platform, store, T0)
        await upload_executes_answer_lost(platform, stored)
        suppressed = store.row("cust-0002").e164 or ""
        gate = gate_for(store, tmp_path, suppression={suppressed: "do_not_call.csv"})
        with caplog.at_level(logging.WARNING, logger="campaign.batches"):
            result = await platform.engine(store, gate=gate).run()
        assert result.error is None
        # No second batch: the one the platform holds is followed to its end.
        assert len(batch_ids(platform)) == 1 and max(dials(platform).values()) == 1
        note = store.stored_batch(1).error or ""
        assert store.stored_batch(1).state == "done"
        assert "no cancel endpoint" in note and "line 4" in note
        assert "do_not_call.csv" in note
        assert any("no cancel endpoint" in r.getMessage() for r in caplog.records)


# ---- item 6: new uploads pass the gate, member by member ------------------------------------


async def test_a_number_opted_out_by_another_campaign_is_left_out_of_the_next_batch(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(4), T0)
        opted = store.row("cust-0002").e164 or ""
        OptOutList(tmp_path).add(opted, campaign="winback", row_key="w-1", now=T0)
        result = await platform.engine(store, gate=gate_for(store, tmp_path)).run()
        assert result.error is None
        assert opted not in dials(platform) and len(dials(platform)) == 3
        row = store.row("cust-0002")
        assert (row.progress, row.plan_state) == ("blocked", "suppressed")
        assert "opted out" in (row.reason or "")


async def test_a_number_a_batch_dialled_is_not_dialled_again_under_a_new_key(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(3), T0)
        gate = gate_for(store, tmp_path)
        assert (await platform.engine(store, gate=gate).run()).error is None
        called = {a.row_key: a.phone for a in store.attempts()}
        assert called == {r.row_key: r.e164 for r in store.rows()}
        # The next night the same numbers arrive under new keys (the CRM re-issued ids).
        renamed = [
            RowIn(r.line, "new-" + r.row_key, r.raw_phone, r.e164, "callable",
                  timezones=NEW_YORK)
            for r in rows(3)
        ]  # fmt: skip
        store.sync_rows(renamed, T0 + 3600)
        platform.clock.advance(3600)
        assert (await platform.engine(store, gate=gate).run()).error is None
        assert max(dials(platform).values()) == 1
        again = store.row("new-cust-0000")
        assert (again.progress, again.plan_state) == ("blocked", "duplicate")
        assert "line 2" in (again.reason or "")


# ---- item 7: the day-old lookup compares the uploaded file, not today's input ---------------


async def test_a_day_old_upload_is_recognised_after_a_number_changed_in_the_input(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        planned = rows(6)
        store.sync_rows(planned, T0)
        stored = commit_first_batch(platform, store, T0)
        await upload_executes_answer_lost(platform, stored)
        # A day later the CRM has another number for one of the rows.
        changed = RowIn(3, "cust-0001", "+14155559999", "+14155559999", "callable",
                        timezones=NEW_YORK)  # fmt: skip
        store.sync_rows([*planned[:1], changed, *planned[2:]], T0 + 25 * 3600)
        platform.clock.advance(25 * 3600)  # the server forgot the key
        result = await platform.engine(store, max_rows=6).run()
        assert result.error is None
        # The uploaded file's six numbers rang once each, all from the one batch; the new
        # number (a new person under that key, campaign.store) gets a call of its own.
        uploaded = [c for c in platform.ledger()["calls"] if c["phone"] != "+14155559999"]
        assert len(uploaded) == 6 and len({c["batch_id"] for c in uploaded}) == 1
        assert max(dials(platform).values()) == 1
        assert store.stored_batch(1).state == "done"


# ---- item 12: a key the file cannot hold as is still maps back --------------------------------


async def test_a_nul_in_the_key_column_loses_no_row_in_batches_mode(tmp_path: Path) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        odd = [
            RowIn(2, "cust\x00-1", "+14155550100", "+14155550100", "callable",
                  timezones=NEW_YORK),
            RowIn(3, "cust-1", "+14155550101", "+14155550101", "callable",
                  timezones=NEW_YORK),
            RowIn(4, "tab\tand\r\nbreak", "+14155550102", "+14155550102", "callable",
                  timezones=NEW_YORK),
        ]  # fmt: skip
        store.sync_rows(odd, T0)
        result = await platform.engine(store).run()
        assert result.error is None
        assert len(dials(platform)) == 3
        assert {r.progress for r in store.rows()} <= {"done", "retry_scheduled", "failed"}
        assert {a.state for a in store.attempts()} == {"ended"}


# ---- all of it at once: faults, interruptions, numbers suppressed between runs -------------


@pytest.mark.parametrize("seed", [4, 7, 17])
async def test_numbers_suppressed_between_interrupted_runs_are_never_dialled_by_a_later_upload(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    # Uploads also fail before executing, so some batches left *uploading* never existed.
    faults = FAULTS + ",POST /v1/batches=error_before@0.6"
    async for platform in _faulty_platform(tmp_path, seed, faults):
        path = tmp_path / "c.sqlite"
        store = open_store(path)
        store.sync_rows(rows(40), T0)
        phones = [r.e164 or "" for r in store.rows()]
        store.close()
        suppressed_at: dict[str, float] = {}
        interruptions = 0
        for _ in range(120):
            store = open_store(path)
            gate = gate_for(store, tmp_path, suppression=dict.fromkeys(suppressed_at, "dnc"))
            task = asyncio.create_task(platform.engine(store, max_rows=8, gate=gate).run())
            for _ in range(rng.randint(1, 40)):
                if task.done():
                    break
                await asyncio.sleep(0)
            finished = task.done()
            if not finished:
                task.cancel()
                interruptions += 1
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if finished and task.result().error is None:
                store.close()
                break
            # Between two runs a number joins the do-not-call file, often one of a batch
            # left *uploading* (the interesting case).
            pending_upload = [
                recorded.phone
                for batch in store.stored_batches("uploading")
                for recorded in recorded_rows(batch.csv)
            ]
            if rng.random() < 0.3 or (pending_upload and rng.random() < 0.7):
                phone = rng.choice(pending_upload or phones)
                suppressed_at.setdefault(phone, platform.clock.now())
            store.close()
        store = open_store(path)
        assert interruptions >= 3 and suppressed_at
        assert not store.stored_batches("uploading", "uploaded", "running")
        assert Counter(r.progress for r in store.rows())["in_flight"] == 0
        ledger = platform.ledger()
        assert_exactly_once(store, ledger)
        # A suppressed number rings only from a batch the platform created before it was
        # suppressed (no cancel endpoint); every other row was dialled or is blocked.
        for call in ledger["calls"]:
            if call["phone"] in suppressed_at:
                batch = await platform.client.get_batch(call["batch_id"])
                assert batch.created_at.timestamp() <= suppressed_at[call["phone"]]
        blocked = {r.e164 for r in store.rows() if r.plan_state == "suppressed"}
        assert {c["phone"] for c in ledger["calls"]} | blocked == set(phones)
        assert blocked <= set(suppressed_at)
