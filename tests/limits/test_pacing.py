"""Pacing: even spreads the calls over the window, and the exact log keeps both under it.

The sender below decides as the calls engine does, on a fake clock (no sleeps): a call
goes only while the pace and then the sliding-window limiter let it, and it must then
leave at once (an attempt is committed only when it can).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.clock import FakeClock
from campaign.config.limit import Limit, parse_limit
from campaign.limits import CallPacer, Pacing, SlidingWindowLimiter

T0 = 1_780_000_000.0
MARGIN = 0.25
TICK = 0.02  # the calls engine's loop tick


async def send_as_the_engine_does(
    limits: Sequence[Limit], pacing: Pacing, steps: Sequence[tuple[float, int]]
) -> list[float]:
    """Send times: before each step the clock moves by its pause and its calls join the
    waiting ones; then calls go while the pace, then the limiter, let them (a call the pace
    holds stays queued with the limiter, as the engine keeps it)."""
    clock = FakeClock(T0)
    limiter = SlidingWindowLimiter([], limits, clock=clock, margin_s=MARGIN)
    pacer = CallPacer(limits, clock, pacing=pacing, margin_s=MARGIN)
    sends: list[float] = []
    waiting = 0
    for pause, arriving in steps:
        clock.advance(pause)
        waiting += arriving
        while waiting:
            if not pacer.ready():  # held by the pace: the calls stay queued
                limiter.call_ready(pacer.free_at(), waiting)
                break
            if not limiter.call_ready(None, waiting):
                break
            now = clock.now()
            await pacer.take()
            sent = await limiter.acquire_call()  # the fake clock moves if it has to wait
            assert sent == now, "a call the engine let go waited in the limiter"
            sends.append(sent)
            waiting -= 1
    limiter.close()
    return sends


def saturating(seconds: float) -> list[tuple[float, int]]:
    """More calls waiting than can go, looked at every engine tick."""
    return [(TICK, 10**6)] + [(TICK, 0)] * round(seconds / TICK)


def most_within(times: Sequence[float], span: float) -> int:
    """The most of ``times`` (sorted) in any closed interval of ``span`` seconds."""
    return max(
        (bisect.bisect_right(times, t + span + 1e-9) - i for i, t in enumerate(times)), default=0
    )


def most_seen_by_server(arrivals: Sequence[float], limit: Limit) -> int:
    """The most arrivals a server counts in one window (``t - a < W``, as contract §4)."""
    ordered = sorted(arrivals)
    return max(
        (
            j + 1 - bisect.bisect_right(ordered, t - limit.window + 1e-9)
            for j, t in enumerate(ordered)
        ),
        default=0,
    )


# ---- the proof --------------------------------------------------------------------------

limit_st = st.builds(
    Limit,
    count=st.integers(min_value=1, max_value=8),
    window=st.sampled_from([1.0, 1.5, 10.0, 60.0]),
)
step_st = st.tuples(
    # a pause in units of the tightest limit's W/N (ticks, near a slot, idle spells) ...
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.1), st.floats(0.0, 3.0)),
    # ... plus quarter seconds, which land exactly on a window's end (W + margin)
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=4),  # calls that join the waiting ones
)


@settings(max_examples=150, deadline=None)
@given(
    limits=st.lists(limit_st, min_size=1, max_size=2),
    pacing=st.sampled_from(["even", "burst"]),
    backlog=st.integers(min_value=0, max_value=30),
    steps=st.lists(step_st, min_size=10, max_size=250),
    jitter=st.lists(
        st.floats(min_value=0.0, max_value=MARGIN, exclude_max=True), min_size=1, max_size=50
    ),
)
def test_even_pacing_never_puts_three_calls_in_a_slot_and_no_pacing_overfills_a_window(
    limits: list[Limit],
    pacing: Pacing,
    backlog: int,
    steps: list[tuple[float, int, int]],
    jitter: list[float],
) -> None:
    slot = max(lim.window / lim.count for lim in limits)  # 1/N of a window, the tightest
    scaled = [(0.0, backlog)]
    scaled += [(slots * slot + quarters / 4, arriving) for slots, quarters, arriving in steps]
    sends = asyncio.run(send_as_the_engine_does(limits, pacing, scaled))
    if pacing == "even":
        for lim in limits:
            assert most_within(sends, lim.window / lim.count) <= 2, sends
    # The server sees each send after a latency; two latencies differ by less than the
    # margin (the jitter bound the limiter is built on).
    arrivals = [t + jitter[i % len(jitter)] for i, t in enumerate(sends)]
    for lim in limits:
        assert most_seen_by_server(arrivals, lim) <= lim.count, (lim, sends)


# ---- what a user sees -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["5/min", "30/10s", "300/min"])
@pytest.mark.parametrize("pacing", ["even", "burst"])
def test_both_pacings_use_the_whole_allowance(text: str, pacing: Pacing) -> None:
    """After the first N calls, each call reuses the slot of the call N before it: the
    steady rate is N over the mean time between the two (>= 0.97 of N/W)."""
    limit = parse_limit(text)
    sends = asyncio.run(send_as_the_engine_does([limit], pacing, saturating(8 * limit.window)))
    n = limit.count
    gaps = [later - earlier for earlier, later in zip(sends, sends[n:], strict=False)]
    achieved = n / (sum(gaps) / len(gaps))
    assert achieved >= 0.97 * n / limit.window


def test_even_pacing_spreads_a_windows_calls_where_burst_sends_them_at_once() -> None:
    limit = parse_limit("5/min")
    even = asyncio.run(send_as_the_engine_does([limit], "even", saturating(180)))
    burst = asyncio.run(send_as_the_engine_does([limit], "burst", saturating(180)))
    assert burst[:5] == [T0 + TICK] * 5  # the first window's calls ring together
    assert most_within(burst, 12.0) == 5
    assert even[0] == T0 + TICK
    # one call every (60 s + margin) / 5 = 12.05 s, give or take the engine's tick and the
    # 50 ms by which a call may make up for a late one
    assert all(12.0 <= b - a <= 12.1 + TICK for a, b in itertools.pairwise(even))
    assert most_within(even, 12.0) == 1
    assert len(even) >= len(burst) - 1  # and no slower for it


def test_a_restart_paces_from_the_last_call_of_the_crashed_run() -> None:
    clock = FakeClock(T0)
    pacer = CallPacer([parse_limit("5/min")], clock, margin_s=MARGIN)
    asyncio.run(pacer.seed([T0 - 10.0, T0 - 1.0]))
    assert not pacer.ready()
    clock.advance(12.05 - 1.0 - 0.01)  # one interval after it, not before
    assert not pacer.ready()
    clock.advance(0.02)
    assert pacer.ready()


def test_an_old_call_of_a_crashed_run_does_not_hold_the_first_one_back() -> None:
    clock = FakeClock(T0)
    pacer = CallPacer([parse_limit("5/min")], clock, margin_s=MARGIN)
    asyncio.run(pacer.seed([T0 - 30.0]))
    assert pacer.ready()


def test_the_tightest_call_limit_sets_the_pace() -> None:
    pacer = CallPacer([parse_limit("5/min"), parse_limit("100/h")], FakeClock(T0), margin_s=0.0)
    assert pacer.interval_s == 36.0


def test_burst_pacing_never_holds_a_call_back() -> None:
    pacer = CallPacer([parse_limit("5/min")], FakeClock(T0), pacing="burst")

    async def take_many() -> None:
        for _ in range(100):
            assert pacer.ready()
            await pacer.take()

    asyncio.run(take_many())


def test_taking_a_slot_the_pace_has_not_freed_is_refused() -> None:
    pacer = CallPacer([parse_limit("5/min")], FakeClock(T0))

    async def take_twice() -> None:
        await pacer.take()
        await pacer.take()

    with pytest.raises(RuntimeError, match="without ready"):
        asyncio.run(take_twice())


def test_an_unknown_pacing_is_refused() -> None:
    with pytest.raises(ValueError, match="'even' or 'burst'"):
        CallPacer([parse_limit("5/min")], FakeClock(T0), pacing="smooth")  # type: ignore[arg-type]
