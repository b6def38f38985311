"""Time as a dependency: the real clock, and a fake one tests can move by hand.

The limiter, the run loop and calling-window logic take a ``Clock`` so that tests of a
5-per-minute limit run in milliseconds instead of minutes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch two ways, and a way to wait.

    ``now()`` advances with the monotonic clock (rate windows, intervals, timeouts);
    ``wall()`` is the wall clock read afresh (calling hours, ``--until``, every decision
    about the calendar), so a clock correction or a suspended machine moves it at once.
    """

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: wall-clock time read once, then advanced by the monotonic clock.

    Limits are sliding windows over send times; a wall clock stepped by NTP during a run
    would otherwise make recent sends look older (and overshoot a limit) or newer (and
    stall). Anchoring keeps intervals exact within a process while staying comparable to
    the epoch times that earlier runs wrote to the checkpoint.
    """

    def __init__(self) -> None:
        self._wall_anchor = time.time()
        self._mono_anchor = time.monotonic()

    def now(self) -> float:
        return self._wall_anchor + (time.monotonic() - self._mono_anchor)

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = float(start)
        self.wall_offset = 0.0  # a wall clock stepped away from the monotonic one

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self.wall_offset

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)
