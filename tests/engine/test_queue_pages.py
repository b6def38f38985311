"""A big list starts calling at once: the queue reads a page of rows per refresh, never the
whole list, and still calls the soonest-closing calling window first, then by line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.engine import FakeApi

import campaign.store.checkpoint as checkpoint_module
import campaign.store.queue as queue_module
from campaign.clock import FakeClock
from campaign.config.limit import parse_limit
from campaign.config.model import CallingHours, RetryConfig
from campaign.engine.calls import CallsEngine
from campaign.engine.calls.loop import QUEUE_PAGE
from campaign.engine.frame import EngineDeps, EngineSettings
from campaign.limits import CallPacer
from campaign.limits.window import ClientLimits
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import RowIn, Store
from campaign.store.optout import OptOutList

# Tuesday 2026-06-02 17:00 UTC: 13:00 in New York, 12:00 in Chicago, 10:00 in Los Angeles.
# With hours 08:00-21:00 New York's window closes first, then Chicago's, then LA's.
NOW = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()
ZONES = ["America/Los_Angeles", "America/New_York", "America/Chicago"]
CLOSE_ORDER = ["America/New_York", "America/Chicago", "America/Los_Angeles"]
ROWS = 20_000


def _phone(i: int) -> str:
    return f"+1212{i:07d}"


def _big_store(path: Path) -> Store:
    """20,000 due rows over three time zones (interleaved by line); a few hundred of the
    Chicago rows are retries (due now, or in an hour)."""
    store = Store.open(path)
    store.claim_identity("c")
    store.sync_rows(
        [
            RowIn(
                line=i + 2,
                row_key=_phone(i),
                raw_phone=_phone(i),
                e164=_phone(i),
                plan_state="callable",
                timezones=[ZONES[i % 3]],
            )
            for i in range(ROWS)
        ],
        NOW - 86_400,
    )
    with store.transaction():
        for i in range(2, 1200, 3):  # Chicago rows
            due = NOW - 60 if i % 2 else NOW + 3600
            store.set_row_progress(_phone(i), "retry_scheduled", next_due=due)
    return store


def _expected_order(store: Store, now: float) -> list[str]:
    """Every row due at ``now``: window by window in closing order, then by line."""
    due = [
        r
        for r in store.rows(include_vanished=False)
        if r.progress == "pending"
        or (r.progress == "retry_scheduled" and r.next_due is not None and r.next_due <= now)
    ]
    due.sort(key=lambda r: (CLOSE_ORDER.index(r.timezones[0]), r.line))
    return [r.row_key for r in due]


@pytest.fixture
def materialised(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts what the store reads per refresh: [StoredRow objects built, queue rows read]."""
    counts = [0, 0]
    build = checkpoint_module.row_from_sql

    def counting_build(r: dict[str, Any]) -> Any:
        counts[0] += 1
        return build(r)

    arm = queue_module.RowQueue._arm

    def counting_arm(self: Any, *args: Any) -> Iterator[Any]:
        for item in arm(self, *args):
            counts[1] += 1
            yield item

    monkeypatch.setattr(checkpoint_module, "row_from_sql", counting_build)
    monkeypatch.setattr(queue_module.RowQueue, "_arm", counting_arm)
    yield counts


CALLS, REQUESTS = [parse_limit("60/min")], [parse_limit("6000/min")]


def _engine(
    store: Store, api: FakeApi, clock: FakeClock, tmp_path: Path, deadline: float
) -> CallsEngine:
    calls, requests = CALLS, REQUESTS
    settings = EngineSettings(
        campaign="c",
        scenario_id="scn_demo",
        retry=RetryConfig(),
        call_limits=calls,
        request_limits=requests,
        deadline=deadline,
    )
    deps = EngineDeps(
        store=store,
        client=api,
        clock=clock,
        settings=settings,
        window_for=WindowBook(CallingHours()).window_for,
        opt_outs=OptOutList(tmp_path),
        stop=asyncio.Event(),
    )
    return CallsEngine(deps, pacer=CallPacer(calls, clock))


def test_a_twenty_thousand_row_list_is_queued_a_page_at_a_time_in_closing_window_order(
    tmp_path: Path, materialised: list[int]
) -> None:
    store = _big_store(tmp_path / "c.sqlite")
    expected = _expected_order(store, NOW)
    assert len(expected) > 19_000
    clock = FakeClock(NOW)
    engine = _engine(store, FakeApi(clock), clock, tmp_path, deadline=NOW + 30)
    materialised[:] = [0, 0]
    engine._refresh_queue(NOW, force=True)
    assert materialised[0] <= QUEUE_PAGE, "the refresh built a StoredRow per due row"
    # a page of index entries, plus the one each group's cursors read ahead
    assert materialised[1] <= QUEUE_PAGE + 2 * len(ZONES)
    assert [key for _, key in engine._queue] == expected[:QUEUE_PAGE]


async def test_calls_go_soonest_closing_window_first_reading_a_page_per_refresh_across_a_rerun(
    tmp_path: Path, materialised: list[int]
) -> None:
    path = tmp_path / "c.sqlite"
    _big_store(path).close()
    placed: list[str] = []
    clock = FakeClock(NOW)
    api = FakeApi(clock)  # one server for both runs
    for _ in range(2):  # a rerun continues where the first run stopped
        store = Store.open(path)
        expected = _expected_order(store, clock.now())
        before = len(api.calls)
        api.limits = ClientLimits(REQUESTS, CALLS, clock)
        engine = _engine(store, api, clock, tmp_path, deadline=clock.now() + 30)
        refresh = engine._refresh_queue
        per_refresh: list[tuple[int, int]] = []

        def counted(
            now: float, *, force: bool = False, refresh: Any = refresh, seen: Any = per_refresh
        ) -> None:
            before = list(materialised)
            refresh(now, force=force)
            seen.append((materialised[0] - before[0], materialised[1] - before[1]))

        engine._refresh_queue = counted  # type: ignore[method-assign]
        result = await engine.run()
        assert result.stopped_early and result.error is None
        now_placed = [c["phone"] for c in api.calls[before:]]
        assert len(now_placed) >= 25  # 60/min, paced evenly, for 30 s
        assert now_placed == expected[: len(now_placed)]
        assert not set(now_placed) & set(placed), "a rerun called a row again"
        placed += now_placed
        assert per_refresh and max(built for built, _ in per_refresh) <= QUEUE_PAGE
        assert max(read for _, read in per_refresh) <= QUEUE_PAGE + 2 * len(ZONES)
        store.close()
