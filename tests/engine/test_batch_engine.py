"""The batches-mode loop against the sandbox on a fake clock: exactly once, paced, resumable."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.batches import (
    NEW_YORK,
    T0,
    Platform,
    _epoch,
    _faulty_platform,
    _platform,
    assert_exactly_once,
    open_store,
    rows,
)

from campaign.api import AitelierClient
from campaign.config.model import CallingHours
from campaign.engine.attempts import idempotency_key
from campaign.engine.batches.plan import BatchMember
from campaign.sandbox import RunningSandbox
from campaign.store.checkpoint import RowIn
from campaign.store.optout import OptOutList


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    async for p in _platform(tmp_path, T0, "60/min"):
        yield p


async def test_every_row_is_batched_dialed_and_folded_back(platform: Platform) -> None:
    store = open_store(platform.tmp / "c.sqlite")
    store.sync_rows(rows(35), T0)
    # An hour's run: long enough to wait for the retries (10 min after a no_answer).
    result = await platform.engine(store, max_rows=10, deadline=T0 + 3600).run()
    assert result.error is None
    assert len(store.stored_batches()) >= 5  # 35 first attempts in batches of ≤ 10, then retries
    assert {b.state for b in store.stored_batches()} == {"done"}
    progress = Counter(r.progress for r in store.rows())
    assert progress["in_flight"] == 0 and progress["pending"] == 0
    ledger = platform.ledger()
    assert ledger["max_outbound_in_window"] <= 60
    assert_exactly_once(store, ledger)
    # Retried rows went into later batches as new attempts with new keys.
    batch_of = {
        member.attempt_key: batch.seq
        for batch in store.stored_batches()
        for member in store.batch_members(batch.seq)
    }
    retried = [a for a in store.attempts() if a.number == 2]
    assert retried, "the sandbox answers some calls no_answer: those rows are retried"
    for again in retried:
        first = store.attempt(idempotency_key("spring", again.row_key, 1))
        assert again.idempotency_key != first.idempotency_key
        assert batch_of[again.idempotency_key] > batch_of[first.idempotency_key]
    # The variable named "phone" travelled as var_phone, not as the number.
    first = store.stored_batches()[0].csv.decode().splitlines()[0]
    assert first == "phone,row_ref,first_name,var_phone"


async def test_server_invalid_rows_become_rejected_with_its_reason(platform: Platform) -> None:
    store = open_store(platform.tmp / "c.sqlite")
    planned = rows(4)
    # A number our side accepted but the server's E.164 check refuses.
    planned[2] = RowIn(4, "cust-bad", "+1", "+1", "callable", timezones=NEW_YORK)
    store.sync_rows(planned, T0)
    result = await platform.engine(store).run()
    assert result.error is None
    bad = store.row("cust-bad")
    assert (bad.progress, bad.plan_state) == ("blocked", "rejected")
    assert bad.reason is not None and "E.164" in bad.reason
    assert "+1" not in {c["phone"] for c in platform.ledger()["calls"]}
    assert result.rejected == ["cust-bad"]


class FailsFirstBatch:
    """The client, except that the first batch is failed by the platform right away."""

    def __init__(self, inner: AitelierClient, sandbox: RunningSandbox) -> None:
        self.inner, self.sandbox, self.failed = inner, sandbox, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_batch(self, batch_id: str) -> Any:
        if not self.failed:
            self.failed = True
            url = f"{self.sandbox.root_url}/_sandbox/batches/{batch_id}/fail"
            async with aiohttp.ClientSession() as http, http.post(url) as reply:
                assert reply.status == 200
        return await self.inner.get_batch(batch_id)


async def test_a_failed_batch_gives_its_undialed_rows_a_new_attempt(platform: Platform) -> None:
    store = open_store(platform.tmp / "c.sqlite")
    store.sync_rows(rows(12), T0)
    # Slow dialing (5/min) so most of the first batch is still undialed when it fails.
    client = FailsFirstBatch(platform.client, platform.sandbox)
    result = await platform.engine(store, max_rows=12, client=client, calls_per_min=60).run()
    assert result.error is None
    first, *later = store.stored_batches()
    assert first.state == "failed" and later
    void = [a for a in store.attempts() if a.state == "void"]
    assert void, "undialed rows of the failed batch keep a fresh attempt"
    for attempt in void:
        again = [
            a
            for a in store.attempts()
            if a.row_key == attempt.row_key and a.number > attempt.number
        ]
        assert again and again[0].state != "void"
    assert store.row(void[0].row_key).attempts_used >= 1
    assert Counter(r.progress for r in store.rows())["pending"] == 0
    assert_exactly_once(store, platform.ledger())


@pytest.fixture
async def evening(tmp_path: Path) -> AsyncIterator[Platform]:
    # 20:50 in New York: the federal window closes at 21:00, ten minutes from now.
    async for p in _platform(tmp_path, T0 + 4 * 3600 + 23 * 60 + 20, "5/min"):
        yield p


async def test_a_window_closing_mid_batch_stops_dialing_in_time(evening: Platform) -> None:
    store = open_store(evening.tmp / "c.sqlite")
    store.sync_rows(rows(60), evening.clock.now())
    closes = evening.clock.now() + 600
    engine = evening.engine(
        store,
        hours=CallingHours.model_validate({"start": "08:00", "end": "21:00"}),
        max_rows=500,
        calls_per_min=5,
    )
    result = await engine.run()
    assert result.error is None
    dialed = [c for c in evening.ledger()["calls"] if c["dialed_at"] is not None]
    assert dialed and len(dialed) < 60
    assert max(_epoch(c["dialed_at"]) for c in dialed) < closes
    waiting = [r for r in store.rows() if r.progress == "pending"]
    assert len(waiting) + len(dialed) == 60
    assert result.next_due is not None and result.next_due > closes + 10 * 3600


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_interrupted_at_random_moments_every_row_is_dialed_once_per_attempt(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    async for platform in _faulty_platform(tmp_path, seed):
        path = tmp_path / "c.sqlite"
        store = open_store(path)
        store.sync_rows(rows(40), T0)
        store.close()
        interruptions = 0
        for _ in range(80):
            store = open_store(path)
            task = asyncio.create_task(platform.engine(store, max_rows=8).run())
            for _ in range(rng.randint(1, 80)):
                if task.done():
                    break
                await asyncio.sleep(0)
            finished = task.done()
            if not finished:
                task.cancel()
                interruptions += 1
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            store.close()
            if finished and task.result().error is None:
                break
        store = open_store(path)
        assert interruptions >= 3
        assert not store.stored_batches("uploading", "uploaded", "running")
        assert Counter(r.progress for r in store.rows())["in_flight"] == 0
        assert_exactly_once(store, platform.ledger())
        dialed_rows = {c["phone"] for c in platform.ledger()["calls"]}
        assert len(dialed_rows) == 40  # nothing lost


async def test_stop_outcomes_are_final_and_opt_outs_join_the_list(tmp_path: Path) -> None:
    scripts = {"+14155550000": ["completed:opted_out"], "+14155550001": ["no_answer"]}
    async for platform in _platform(tmp_path, T0, "60/min", scripted_outcomes=scripts):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(3), T0)
        result = await platform.engine(store).run()
        assert result.error is None
        opted = store.row("cust-0000")
        assert opted.progress == "done" and "stop outcome opted_out" in (opted.reason or "")
        assert OptOutList(tmp_path).numbers() == ["+14155550000"]
        retry = store.row("cust-0001")
        assert retry.progress == "retry_scheduled" and retry.next_due is not None


async def test_an_empty_wallet_burns_no_row(tmp_path: Path) -> None:
    async for platform in _platform(tmp_path, T0, "60/min", wallet_balance="0.00"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(5), T0)
        result = await platform.engine(store, max_rows=5).run()
        assert result.insufficient_funds
        assert all(r.attempts_used == 0 for r in store.rows())
        assert {a.state for a in store.attempts()} <= {"void", "sent"}


async def test_an_upload_older_than_the_servers_memory_is_found_not_sent_again(
    tmp_path: Path,
) -> None:
    async for platform in _platform(tmp_path, T0, "60/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(6), T0)
        engine = platform.engine(store, max_rows=6)
        members = [BatchMember(r.row_key, r.e164 or "", r.variables) for r in store.rows_due(T0)]
        stored = engine.commit(members, None, T0)
        # The upload reached the server, then the process died before recording it.
        await platform.client.create_batch(
            stored.csv,
            scenario_id="scn_demo",
            idempotency_key=stored.idempotency_key,
            name="spring #1",
        )
        platform.clock.advance(25 * 3600)  # the server forgot the key
        result = await engine.run()
        assert result.error is None
        assert len({c["batch_id"] for c in platform.ledger()["calls"]}) == 1
        assert Counter(c["phone"] for c in platform.ledger()["calls"]).most_common(1)[0][1] == 1
        assert store.stored_batch(1).state == "done"


async def test_no_new_batch_while_the_platform_still_has_a_long_queue(tmp_path: Path) -> None:
    async for platform in _platform(tmp_path, T0, "5/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(120), T0)  # 16:26 in New York: hours of window left
        engine = platform.engine(store, max_rows=20, calls_per_min=5)
        result = await engine.run()
        assert result.error is None
        batches = [b for b in store.stored_batches() if b.seq <= 6]
        owner = {b.batch_id: b.seq for b in batches}
        dialed = [
            (owner[c["batch_id"]], _epoch(c["dialed_at"]))
            for c in platform.ledger()["calls"]
            if c["dialed_at"] and c["batch_id"] in owner
        ]
        assert len(dialed) == 120
        for batch in batches[1:]:
            # Rows of earlier batches still waiting at the platform when this one went up.
            ahead = sum(1 for seq, t in dialed if seq < batch.seq and t > batch.created_at)
            assert ahead * engine.spacing <= engine.lead_s + 20 * engine.spacing, batch.seq
        # Without pacing all six would have gone up at once; 120 rows take 24 minutes.
        assert batches[-1].created_at - batches[0].created_at >= 5 * 60
