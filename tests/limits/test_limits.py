"""The client-side sliding-window limiter: never over a server window, full allowance."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.clock import Clock, FakeClock, utc
from campaign.config.limit import Limit
from campaign.limits import SlidingWindowLimiter

T0 = 1_780_000_000.0
MARGIN = 0.25


class SteppingClock:
    """A fake clock whose concurrent sleepers wake at their own instants, in time order.

    (``FakeClock.sleep`` moves time by each sleeper's amount in turn, which is fine for
    one waiter; several waiters need a scheduler.)
    """

    def __init__(self, start: float) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + max(0.0, seconds), wake))
        await wake

    async def drive(self, *tasks: asyncio.Task[Any]) -> None:
        """Run ``tasks`` to completion, jumping time to the next wake-up whenever all wait."""
        while not all(task.done() for task in tasks):
            for _ in range(5):
                await asyncio.sleep(0)
            if not self._sleepers:
                continue
            self._now = max(self._now, min(at for at, _ in self._sleepers))
            due = [(at, wake) for at, wake in self._sleepers if at <= self._now]
            self._sleepers = [(at, wake) for at, wake in self._sleepers if at > self._now]
            for _, wake in due:
                wake.set_result(None)


def limiter(requests: list[Limit], calls: list[Limit], clock: Clock) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(requests, calls, clock=clock, margin_s=MARGIN)


async def test_full_allowance_at_once_then_exactly_one_window_plus_margin() -> None:
    clock = FakeClock(T0)
    limits = limiter([], [Limit(5, 60.0)], clock)
    sends = [await limits.acquire_call() for _ in range(6)]
    assert sends[:5] == [T0] * 5
    assert sends[5] == pytest.approx(T0 + 60.0 + MARGIN, abs=1e-6)


async def test_the_strictest_of_several_limits_wins() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(3, 10.0), Limit(4, 60.0)], [], clock)
    sends = [await limits.acquire_request() for _ in range(5)]
    assert sends[:3] == [T0] * 3
    assert sends[3] == pytest.approx(T0 + 10.25, abs=1e-6)  # the 3/10s window
    assert sends[4] == pytest.approx(T0 + 60.25, abs=1e-6)  # the 4/min window


async def test_a_call_takes_a_call_slot_and_a_request_slot() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(2, 10.0)], [Limit(1, 10.0)], clock)
    assert await limits.acquire_call() == T0
    assert await limits.acquire_request() == T0  # second request slot
    # The next call waits for both: its call slot and a request slot free at T0+10.25.
    assert await limits.acquire_call() == pytest.approx(T0 + 10.25, abs=1e-6)


async def test_requests_do_not_wait_for_call_slots() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(10, 10.0)], [Limit(1, 60.0)], clock)
    await limits.acquire_call()
    assert await limits.acquire_request() == T0


async def test_seeded_sends_of_a_crashed_run_still_count() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(60, 60.0)], [Limit(5, 60.0)], clock)
    limits.seed(request_times=[], call_times=[T0 - 50 + i for i in range(5)])
    # The dead run's five calls left at T0-50..T0-46: the next may go at T0-50+60.25.
    assert await limits.acquire_call() == pytest.approx(T0 + 10.25, abs=1e-6)


async def test_seeded_call_times_also_count_as_requests() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(2, 60.0)], [Limit(5, 60.0)], clock)
    limits.seed(request_times=[T0 - 1], call_times=[T0 - 2])
    assert await limits.acquire_request() == pytest.approx(T0 - 2 + 60.25, abs=1e-6)


async def test_old_seeds_outside_the_window_are_ignored() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(1, 60.0)], [], clock)
    limits.seed(request_times=[T0 - 3600], call_times=[])
    assert await limits.acquire_request() == T0


async def test_server_headers_saying_less_is_left_hold_sends_until_reset() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(60, 60.0)], [], clock)
    sent = await limits.acquire_request()
    # Another client on the key used the rest: 1 left, next slot frees at T0+5.
    limits.observe_headers(1, utc(T0 + 5), sent_at=sent)
    assert await limits.acquire_request() == T0
    assert await limits.acquire_request() == pytest.approx(T0 + 5, abs=1e-6)


async def test_headers_with_more_left_than_our_own_count_change_nothing() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(2, 60.0)], [], clock)
    sent = await limits.acquire_request()
    limits.observe_headers(59, utc(T0 + 1), sent_at=sent)
    await limits.acquire_request()
    assert await limits.acquire_request() == pytest.approx(T0 + 60.25, abs=1e-6)


async def test_headers_our_own_sends_explain_hold_nothing_back() -> None:
    clock = SteppingClock(T0)
    limits = limiter([Limit(2, 10.0)], [], clock)
    await limits.acquire_request()
    sent = await limits.acquire_request()
    # The server's "0 left" is our own two requests: the log alone decides.
    limits.observe_headers(0, utc(T0 + 10), sent_at=sent, limit=2)
    tasks = [asyncio.create_task(limits.acquire_request()) for _ in range(2)]
    await clock.drive(*tasks)
    assert [task.result() for task in tasks] == [T0 + 10.25, T0 + 10.25]


async def test_headers_counting_our_own_overtaking_sends_hold_nothing_back() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(3, 10.0)], [], clock)
    await limits.acquire_request()
    clock.advance(0.05)
    observed = await limits.acquire_request()
    clock.advance(0.05)
    await limits.acquire_request()  # overtakes the observed one on the way to the server
    # The server counted all three when the observed one arrived: "0 left" is ours alone.
    limits.observe_headers(0, utc(T0 + 10), sent_at=observed, limit=3)
    # The log decides (the first send leaves its window), not a header window's stall.
    assert await limits.acquire_request() == pytest.approx(T0 + 10.25, abs=1e-6)


async def test_unexplained_headers_release_one_send_per_reset() -> None:
    clock = SteppingClock(T0)
    limits = limiter([Limit(60, 60.0)], [], clock)
    sent = await limits.acquire_request()
    limits.observe_headers(0, utc(T0 + 10), sent_at=sent, limit=60)  # someone else's traffic
    tasks = [asyncio.create_task(limits.acquire_request()) for _ in range(2)]
    await clock.drive(*tasks)
    first, second = sorted(task.result() for task in tasks)
    assert first == pytest.approx(T0 + 10, abs=1e-6)
    assert second > first  # the second waits for fresh headers (or a whole header window)


async def test_a_reset_far_in_the_future_waits_at_most_one_header_window() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(60, 60.0)], [], clock)
    sent = await limits.acquire_request()
    limits.observe_headers(0, utc(T0) + timedelta(days=1), sent_at=sent)
    assert await limits.acquire_request() <= T0 + 60.0 + MARGIN + 0.5


async def test_a_replay_gives_its_call_slot_back() -> None:
    clock = FakeClock(T0)
    limits = limiter([], [Limit(1, 60.0)], clock)
    sent = await limits.acquire_call()
    limits.release_call(sent)
    assert await limits.acquire_call() == T0


async def test_many_coroutines_at_once_never_share_a_slot() -> None:
    clock = SteppingClock(T0)
    limits = limiter([Limit(4, 10.0)], [Limit(3, 10.0)], clock)
    tasks = [asyncio.create_task(limits.acquire_call()) for _ in range(20)]
    await clock.drive(*tasks)
    ordered = sorted(task.result() for task in tasks)
    assert ordered[:3] == [T0] * 3 and ordered[-1] == pytest.approx(T0 + 6 * 10.25, abs=1e-6)
    assert all(b - a >= 10.25 - 1e-9 for a, b in zip(ordered, ordered[3:], strict=False))


async def test_a_waiting_call_gets_the_next_request_slot_before_plain_requests() -> None:
    clock = SteppingClock(T0)
    limits = limiter([Limit(2, 10.0)], [Limit(1, 5.0)], clock)
    await limits.acquire_call()
    clock.advance(1)
    await limits.acquire_request()  # request slots free again at T0+10.25 and T0+11.25
    clock.advance(5)  # the call slot is free again; the call waits only for a request slot
    requests = [asyncio.create_task(limits.acquire_request()) for _ in range(3)]
    await asyncio.sleep(0)
    call = asyncio.create_task(limits.acquire_call())
    await clock.drive(call, *requests)
    assert call.result() == pytest.approx(T0 + 10.25, abs=1e-6)
    assert sorted(task.result() for task in requests) == pytest.approx(
        [T0 + 11.25, T0 + 20.5, T0 + 21.5], abs=1e-6
    )


async def test_calls_held_by_the_pace_keep_their_request_slots_from_plain_requests() -> None:
    clock = FakeClock(T0)
    limits = limiter([Limit(3, 10.0)], [Limit(5, 60.0)], clock)
    # Two calls queued, the pace lets the first go in a second: not now, but they queue.
    assert not limits.call_ready(T0 + 1.0, 2)
    assert await limits.acquire_request() == T0  # the one slot the calls do not need
    # The next plain request waits for a slot of its own, after the calls have theirs.
    assert await limits.acquire_request() == pytest.approx(T0 + 10.25, abs=1e-6)


async def test_no_limits_means_no_waiting() -> None:
    clock = FakeClock(T0)
    limits = limiter([], [], clock)
    assert [await limits.acquire_call() for _ in range(100)] == [T0] * 100


def test_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter([], [], margin_s=-1)


# ---- the proof: no sequence of acquisitions exceeds any server window ------------------

limit_st = st.builds(
    Limit,
    count=st.integers(min_value=1, max_value=6),
    window=st.sampled_from([1.0, 1.5, 10.0, 60.0]),
)
op_st = st.tuples(
    st.sampled_from(["request", "call"]),
    st.floats(min_value=0.0, max_value=20.0),  # pause before launching
    st.booleans(),  # launch concurrently with the next instead of awaiting it
)


def server_overflows(arrivals: list[float], limit: Limit) -> bool:
    """Whether some arrival sees more than ``count`` arrivals in its trailing window."""
    ordered = sorted(arrivals)
    for j, t in enumerate(ordered):
        # Strictly t - a < W counts; tolerance for float rounding only.
        counted = sum(1 for a in ordered[: j + 1] if t - a < limit.window - 1e-6)
        if counted > limit.count:
            return True
    return False


async def run_ops(
    limits: SlidingWindowLimiter, clock: SteppingClock, ops: list[tuple[str, float, bool]]
) -> list[tuple[str, float]]:
    """Acquire per ``ops``: pause, then launch; awaited at once or together with the next."""
    sends: list[tuple[str, float]] = []
    pending: list[asyncio.Task[tuple[str, float]]] = []

    async def one(kind: str) -> tuple[str, float]:
        acquire = limits.acquire_call if kind == "call" else limits.acquire_request
        return kind, await acquire()

    for kind, pause, concurrent in ops:
        clock.advance(pause)
        pending.append(asyncio.create_task(one(kind)))
        if not concurrent:
            await clock.drive(*pending)
            sends.extend(task.result() for task in pending)
            pending = []
    await clock.drive(*pending)
    sends.extend(task.result() for task in pending)
    return sends


@settings(max_examples=100, deadline=None)
@given(
    requests=st.lists(limit_st, max_size=2),
    calls=st.lists(limit_st, max_size=2),
    before_crash=st.lists(op_st, max_size=12),
    crash_gap=st.floats(min_value=0.0, max_value=30.0),
    ops=st.lists(op_st, min_size=1, max_size=30),
    jitter=st.lists(st.floats(min_value=0.0, max_value=MARGIN * 0.999), min_size=64, max_size=64),
)
def test_no_acquisition_sequence_overfills_any_window_at_the_server(
    requests: list[Limit],
    calls: list[Limit],
    before_crash: list[tuple[str, float, bool]],
    crash_gap: float,
    ops: list[tuple[str, float, bool]],
    jitter: list[float],
) -> None:
    async def run() -> list[tuple[str, float]]:
        # An earlier process sends, dies; a new one starts seeded with its send times.
        dead_clock = SteppingClock(T0)
        dead = await run_ops(limiter(requests, calls, dead_clock), dead_clock, before_crash)
        clock = SteppingClock(dead_clock.now() + crash_gap)
        limits = limiter(requests, calls, clock)
        limits.seed(
            [t for kind, t in dead if kind == "request"], [t for kind, t in dead if kind == "call"]
        )
        return dead + await run_ops(limits, clock, ops)

    sends = asyncio.run(run())
    # Arrival = send + latency; latencies differ by less than the margin (the jitter bound).
    arrivals = [(kind, t + jitter[i % len(jitter)]) for i, (kind, t) in enumerate(sends)]
    for limit in requests:
        assert not server_overflows([t for _, t in arrivals], limit), limit
    for limit in calls:
        assert not server_overflows([t for kind, t in arrivals if kind == "call"], limit), limit


@settings(max_examples=60, deadline=None)
@given(limit=limit_st, rounds=st.integers(min_value=2, max_value=5))
def test_a_saturating_sender_gets_count_per_window_plus_margin(limit: Limit, rounds: int) -> None:
    clock = FakeClock(T0)
    limits = limiter([], [limit], clock)

    async def run() -> list[float]:
        return [await limits.acquire_call() for _ in range(limit.count * rounds)]

    sends = asyncio.run(run())
    # Full use: each round of `count` sends starts exactly one window (+margin) after the last.
    for r in range(rounds):
        block = sends[r * limit.count : (r + 1) * limit.count]
        assert block == pytest.approx([T0 + r * (limit.window + MARGIN)] * limit.count, abs=1e-6)
