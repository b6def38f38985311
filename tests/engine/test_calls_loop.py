"""The calls-mode loop against an in-memory API on a fake clock: hours, retries, exactly-once."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.engine import FakeApi, store_with_rows

from campaign.clock import Clock, FakeClock
from campaign.config.limit import parse_limit
from campaign.config.model import CallingHours, RetryConfig
from campaign.engine.attempts import call_body, idempotency_key
from campaign.engine.calls import CallsEngine
from campaign.engine.frame import EngineDeps, EngineResult, EngineSettings
from campaign.limits import CallPacer
from campaign.limits.window import ClientLimits
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import RowIn, Store
from campaign.store.optout import OptOutList

NY = ["America/New_York"]
# Tuesday 2026-06-02 14:00 UTC = 10:00 in New York.
NOON_NY = datetime(2026, 6, 2, 14, 0, tzinfo=UTC).timestamp()
NIGHT_NY = datetime(2026, 6, 2, 7, 0, tzinfo=UTC).timestamp()  # 03:00 in New York


def _engine(
    store: Store,
    api: FakeApi,
    clock: Clock,
    tmp_path: Path,
    *,
    deadline: float | None = None,
    retry: RetryConfig | None = None,
    hours: CallingHours | None = None,
    **pace: Any,
) -> CallsEngine:
    settings = EngineSettings(
        campaign="c",
        scenario_id="scn_demo",
        retry=retry or RetryConfig(),
        call_limits=[parse_limit("5/min")],
        request_limits=[parse_limit("60/min"), parse_limit("1000/h")],
        deadline=deadline,
    )
    deps = EngineDeps(
        store=store,
        client=api,
        clock=clock,
        settings=settings,
        window_for=WindowBook(hours).window_for,
        opt_outs=OptOutList(tmp_path),
        stop=asyncio.Event(),
    )
    return CallsEngine(deps, **pace)  # call_turn, pacer, call_times


PHONES = [f"+1212555{n:04d}" for n in range(7)]


async def test_every_row_is_called_once_within_the_call_limit(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(
        clock, limits=ClientLimits([parse_limit("60/min")], [parse_limit("5/min")], clock)
    )
    store = store_with_rows(tmp_path, PHONES, clock.now())
    result = await _engine(store, api, clock, tmp_path).run()
    assert result.error is None and not result.work_left_now
    assert api.created_per_attempt() == {(p, "1"): 1 for p in PHONES}
    created = sorted(c["created"] for c in api.calls)
    assert created[5] - created[0] >= 60.0, "a 6th call inside one minute breaks 5/min"
    assert {r.progress for r in store.rows()} == {"done"}
    assert {a.cost for a in store.attempts()} == {"0.11"}


class SchedulingClock:
    """A fake clock whose sleepers wake in time order, for exact timings: ``FakeClock``
    moves time by each sleeper's amount in turn, so the collector's polls would carry the
    sender's clock along with them."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), wake))
        await wake

    async def run(self, engine: CallsEngine) -> EngineResult:
        """Run the engine, moving time to the next wake-up whenever every task waits."""
        task = asyncio.create_task(engine.run())
        while not task.done():
            for _ in range(20):
                await asyncio.sleep(0)
            if task.done() or not self._sleepers:
                continue
            at, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, at)
            if not wake.done():
                wake.set_result(None)
        return task.result()


def _five_a_minute(clock: Clock) -> ClientLimits:
    return ClientLimits([parse_limit("60/min")], [parse_limit("5/min")], clock)


def _left_at_once(api: FakeApi, store: Store) -> bool:
    """Whether every call was created at the moment its attempt was committed (it did not
    wait in the client's limiter with its calling window checked long before)."""
    created = {
        (c["metadata"]["row_key"], c["metadata"]["attempt"]): c["created"] for c in api.calls
    }
    return all(created[(a.row_key, str(a.number))] == a.sending_at for a in store.attempts())


async def test_even_pacing_spreads_the_calls_over_the_minute(tmp_path: Path) -> None:
    clock = SchedulingClock(NOON_NY)
    limits = _five_a_minute(clock)
    api = FakeApi(clock, limits=limits)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    engine = _engine(store, api, clock, tmp_path, call_turn=limits.call_ready)
    assert (await clock.run(engine)).error is None
    created = sorted(c["created"] for c in api.calls)
    assert created[0] == NOON_NY and len(created) == len(PHONES)
    # one call every (60 s + margin) / 5 = 12.05 s, give or take the loop's 20 ms tick and
    # the 50 ms by which a call may make up for a late one; never five at once
    assert all(12.0 <= b - a <= 12.1 + 0.02 for a, b in itertools.pairwise(created))
    assert _left_at_once(api, store)


async def test_burst_pacing_places_a_windows_calls_at_once_and_none_waits(
    tmp_path: Path,
) -> None:
    clock = SchedulingClock(NOON_NY)
    limits = _five_a_minute(clock)
    api = FakeApi(clock, limits=limits)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    pacer = CallPacer([parse_limit("5/min")], clock, pacing="burst")
    engine = _engine(store, api, clock, tmp_path, call_turn=limits.call_ready, pacer=pacer)
    assert (await clock.run(engine)).error is None
    created = sorted(c["created"] for c in api.calls)
    assert created[:5] == [NOON_NY] * 5
    # the next ones as soon as the window (60 s + margin) admits them, within a loop tick
    assert NOON_NY + 60.25 <= created[5] <= created[6] <= NOON_NY + 60.25 + 0.02 + 1e-6
    # Each call was committed only when the limiter could let it go at once.
    assert _left_at_once(api, store)


async def test_a_restart_keeps_the_pace_of_the_run_it_resumes(tmp_path: Path) -> None:
    clock = SchedulingClock(NOON_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES[:1], clock.now())
    engine = _engine(store, api, clock, tmp_path, call_times=[NOON_NY - 2.0])
    assert (await clock.run(engine)).error is None
    # one interval (12.05 s) after the crashed run's last call, within a loop tick
    assert NOON_NY + 10.05 <= api.calls[0]["created"] <= NOON_NY + 10.05 + 0.02 + 1e-6


async def test_closed_window_places_nothing_and_says_when_it_opens(tmp_path: Path) -> None:
    clock = FakeClock(NIGHT_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES[:1], clock.now())
    result = await _engine(store, api, clock, tmp_path).run()
    assert api.calls == []
    assert result.next_due == datetime(2026, 6, 2, 12, 0, tzinfo=UTC).timestamp()  # 08:00 NY
    assert result.next_due_reason == "calling window opens"
    assert not result.work_left_now


async def test_with_a_deadline_the_run_waits_for_the_window_then_calls(tmp_path: Path) -> None:
    clock = FakeClock(NIGHT_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES[:1], clock.now())
    hours = CallingHours(start="09:00", end="20:00")
    deadline = datetime(2026, 6, 2, 14, 0, tzinfo=UTC).timestamp()
    await _engine(store, api, clock, tmp_path, deadline=deadline, hours=hours).run()
    assert len(api.calls) == 1
    placed_local = datetime.fromtimestamp(api.calls[0]["created"], tz=UTC)
    assert placed_local.hour == 13  # 09:00 in New York, not earlier


async def test_retry_after_min_interval_with_a_new_key(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    phone = PHONES[0]
    api = FakeApi(
        clock, scripts={phone: [("no_answer", None, None), ("completed", "declined", None)]}
    )
    store = store_with_rows(tmp_path, [phone], clock.now())
    # dayparts: any — this is about min_interval, not which part of the day a retry takes
    retry = RetryConfig(min_interval="1h", dayparts="any")
    result = await _engine(store, api, clock, tmp_path, retry=retry).run()
    assert store.row(phone).progress == "retry_scheduled"
    assert result.next_due is not None and result.next_due_reason == "retry"
    assert not result.work_left_now
    clock.advance(3600)
    await _engine(store, api, clock, tmp_path, retry=retry).run()
    assert api.created_per_attempt() == {(phone, "1"): 1, (phone, "2"): 1}
    assert store.row(phone).progress == "done"
    assert store.row(phone).attempts_used == 2


async def test_retries_stop_at_max_attempts(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    phone = PHONES[0]
    api = FakeApi(clock, scripts={phone: [("busy", None, None)]})
    store = store_with_rows(tmp_path, [phone], clock.now())
    retry = RetryConfig(min_interval="10min", max_attempts=2, dayparts="any")
    await _engine(store, api, clock, tmp_path, retry=retry, deadline=clock.now() + 7200).run()
    assert len(api.calls) == 2
    row = store.row(phone)
    assert row.progress == "failed" and row.reason == "busy after 2 attempts"


async def test_stop_outcome_is_never_retried_and_joins_the_opt_out_list(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    phone = PHONES[0]
    api = FakeApi(clock, scripts={phone: [("completed", "opted_out", None)]})
    store = store_with_rows(tmp_path, [phone], clock.now())
    retry = RetryConfig(min_interval="1min")
    await _engine(store, api, clock, tmp_path, retry=retry, deadline=clock.now() + 3600).run()
    assert len(api.calls) == 1
    assert store.row(phone).progress == "done"
    assert OptOutList(tmp_path).numbers() == [phone]


async def test_insufficient_funds_stops_placing_and_burns_no_row(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock, scripts={p: [("failed", None, "insufficient_funds")] for p in PHONES})
    store = store_with_rows(tmp_path, PHONES, clock.now())
    result = await _engine(store, api, clock, tmp_path).run()
    assert result.insufficient_funds
    assert len(api.calls) < len(PHONES)
    ended = [r for r in store.rows() if store.next_attempt_number(r.row_key) > 1]
    assert ended and all(r.progress in ("pending", "in_flight") for r in ended)
    assert all(r.attempts_used == 0 for r in ended if r.progress == "pending")


async def test_lost_response_is_resent_with_the_same_key_and_creates_nothing_new(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock, ambiguous_next=1)
    store = store_with_rows(tmp_path, PHONES[:2], clock.now())
    first = await _engine(store, api, clock, tmp_path).run()
    assert first.error is not None  # the API "did not answer": the run stops, exit 1
    # The collector may already have found the call by its metadata; either way a rerun
    # finishes without a second call for the same attempt.
    await _engine(store, api, clock, tmp_path).run()
    assert api.created_per_attempt() == {(p, "1"): 1 for p in PHONES[:2]}


async def test_sending_older_than_server_memory_is_looked_up_before_resending(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOON_NY - 26 * 3600)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES[:2], clock.now())
    # Both attempts were committed as sending 26 h ago; only the first reached the API.
    for phone in PHONES[:2]:
        body = call_body(
            campaign="c", scenario_id="scn_demo", row_key=phone, number=1, phone=phone, variables={}
        )
        store.begin_attempt(phone, 1, idempotency_key("c", phone, 1), body, clock.now())
    await api.create_call(store.attempt(idempotency_key("c", PHONES[0], 1)).body, "x")
    api.calls[0]["metadata"] = {"campaign": "c", "row_key": PHONES[0], "attempt": "1"}
    clock.advance(26 * 3600)
    api.forget_keys()
    await _engine(store, api, clock, tmp_path).run()
    assert api.created_per_attempt() == {(PHONES[0], "1"): 1, (PHONES[1], "1"): 1}
    assert store.row(PHONES[0]).progress == "done"


async def test_idempotency_conflict_fails_the_attempt_and_never_rekeys(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES[:1], clock.now())
    key = idempotency_key("c", PHONES[0], 1)
    api.keys[key] = (b"something else", 0)
    api.calls.append({"id": "call_x", "phone": "+1", "metadata": {}, "created": 0.0,
                      "final": ("completed", None, None)})  # fmt: skip
    result: EngineResult = await _engine(store, api, clock, tmp_path).run()
    assert result.rejected == [PHONES[0]]
    assert store.attempt(key).state == "failed"
    row = store.row(PHONES[0])
    assert row.progress == "failed" and "idempotency conflict" in (row.reason or "")
    assert len(api.calls) == 1


@pytest.mark.parametrize("signal_after", [0.0])
async def test_stop_event_ends_the_run_early_with_work_left(
    tmp_path: Path, signal_after: float
) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    engine = _engine(store, api, clock, tmp_path)
    engine.stop.set()
    result = await engine.run()
    assert result.stopped_early and result.work_left_now
    assert api.calls == []


async def test_a_resend_after_an_edited_input_sends_the_committed_bytes(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock)
    phone = PHONES[0]
    store = store_with_rows(tmp_path, [phone], clock.now())
    body = call_body(
        campaign="c", scenario_id="scn_demo", row_key=phone, number=1, phone=phone, variables={}
    )
    key = idempotency_key("c", phone, 1)
    store.begin_attempt(phone, 1, key, body, clock.now())
    await api.create_call(body, key)  # reached the server; then the process was killed
    edited = RowIn(line=2, row_key=phone, raw_phone=phone, e164=phone, plan_state="callable",
                   timezones=NY, variables={"first_name": "Renamed"})  # fmt: skip
    store.sync_rows([edited], clock.now())
    result = await _engine(store, api, clock, tmp_path).run()
    assert result.rejected == [] and result.error is None
    assert api.created_per_attempt() == {(phone, "1"): 1}
    assert store.row(phone).progress == "done"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.2, "now"), (40, "in 40 s"), (600, "in 10 min"), (4 * 3600 - 30, "in 3 h 59 min")],
)
def test_the_next_due_time_is_said_as_a_wait(seconds: float, words: str) -> None:
    from campaign.pipeline.outputs import wait_in_words

    assert wait_in_words(seconds) == words
