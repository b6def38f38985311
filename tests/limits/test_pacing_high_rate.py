"""At high rates (a pace interval shorter than a few loop ticks) the engine sends several
paced calls in one turn, so a turn that runs late does not lose its calls."""

from __future__ import annotations

import asyncio

import pytest

from campaign.clock import FakeClock
from campaign.config.limit import parse_limit
from campaign.limits import CallPacer

T0 = 1_780_000_000.0
MARGIN = 0.25


async def _sends(rate: str, turn_s: float, seconds: float) -> list[float]:
    """Send times when the engine looks at the pace once per ``turn_s`` (a 20 ms tick
    plus the turn's own work) and sends every call the pace lets go in that turn."""
    clock = FakeClock(T0)
    pacer = CallPacer([parse_limit(rate)], clock, margin_s=MARGIN)
    sends: list[float] = []
    while clock.now() < T0 + seconds:
        while pacer.ready():
            await pacer.take()
            sends.append(clock.now())
        clock.advance(turn_s)
    return sends


@pytest.mark.parametrize("turn_s", [0.02, 0.027, 0.035, 0.045])
def test_two_thousand_calls_a_minute_keep_their_rate_when_loop_turns_run_late(
    turn_s: float,
) -> None:
    limit = parse_limit("2000/min")
    sends = asyncio.run(_sends("2000/min", turn_s, 30.0))
    steady = (len(sends) - 1) / (sends[-1] - sends[0])
    allowed = limit.count / (limit.window + MARGIN)  # the pace the limiter sustains
    assert steady >= 0.99 * allowed
    # a turn sends what fell due since the last one, never a burst beyond two ticks' worth
    per_turn = max(sends.count(t) for t in set(sends))
    assert per_turn <= 1 + int(0.04 / (limit.window / limit.count) + 1e-9) + 1


@pytest.mark.parametrize("rate", ["300/min", "5/min"])
def test_slower_paces_still_send_at_most_one_call_per_turn(rate: str) -> None:
    sends = asyncio.run(_sends(rate, 0.02, 120.0))
    assert len(set(sends)) == len(sends)
