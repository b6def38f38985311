"""``CallPacer``: calls spread evenly over the window (``limits.pacing: even``), or not.

Two jobs, two tools, asked in this order before a call is committed:

1. the pacer (aiolimiter) says whether a call *should* go now: with even pacing, one call
   every ``(W + margin) / N`` seconds at the tightest call limit ``N/W``, instead of a
   window's worth at once (a burst rings that many agents at the same instant and looks
   like robo-dialling to carrier analytics);
2. the sliding-window limiter (``limiter.py``) says whether it *may* go: the exact log of
   every send on the key's allowance, which alone makes a 429 impossible. A leaky bucket
   cannot be that guard: ``AsyncLimiter(N, W)`` admits N at once and then one call per
   ``W / N``, so up to 2N-1 calls fall in one server window; and it knows nothing of the
   other campaigns on the key, of a crashed run's sends, or of the rows a batch booked.

With ``burst`` only the limiter is asked: calls go as soon as the window admits them.
While the pace holds a call, the engine still tells the limiter when it will go
(``free_at``, passed to ``call_ready``): the limiter keeps request slots for the queued
calls meanwhile, or plain requests (polls, another campaign's) would take every slot
between two paced calls and starve them.

The bucket is ``1 + slack / interval`` sends deep and drains one send per ``interval_s``;
a send needs the level at most ``depth - 1`` and adds 1. So a send may go up to
``slack_s`` (50 ms, at most half an interval) before its turn, making up for one that the
engine's 20 ms loop tick made late: a bucket one send deep would lose that lateness for
good, and the pace would drift below the rate (by 5 % at 300/min). The level drains by at
most ``d / interval_s`` in ``d`` seconds; of ``n`` sends within ``L`` seconds, the first
leaves the level at 1 or more, so before the last it is at least ``n - 1 - L /
interval_s``, which must be at most ``depth - 1``: ``n <= depth + L / interval_s``. With
``depth < 2`` and ``L = W / N < interval_s``, ``n <= 2``: never more than two sends in any
1/N of a window, and two only when one made up for lateness.

At high rates the interval is shorter than a few engine ticks (2000 calls/min: one call
per 30 ms, a tick of 20 ms, and a loop turn often longer). Half an interval of slack would
then lose a send whenever a turn runs late, and the rate would fall to one call per turn
(0.9 of the allowed one). So the slack is at least two ticks there (still at most
``slack_s``): the engine sends the calls that fell due since its last turn in one turn,
up to ``1 + 2 * tick / interval`` of them (3 at 2000/min). The sliding-window limiter
still bounds every window.

Time: aiolimiter tells time by the event loop. The pacer hands it the run's ``Clock``
instead (aiolimiter's own tests patch the loop clock the same way), so tests of a 5/min
pace run on a fake clock without sleeping. Only the non-blocking path is used —
``has_capacity()``, then ``acquire()``, which then returns without waiting — so the engine
decides synchronously whether to commit an attempt and never commits one that then waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, cast

from aiolimiter import AsyncLimiter

from campaign.clock import Clock
from campaign.config.limit import Limit
from campaign.limits.window import DEFAULT_MARGIN_S

Pacing = Literal["even", "burst"]

# How early a send may go to make up for a late one (more than the engine's 20 ms tick).
LATE_SLACK_S = 0.05
# The calls engine's loop tick: it looks at the pace at most once per tick.
ENGINE_TICK_S = 0.02


class _RunClockLoop:
    """The running event loop as aiolimiter sees it, telling time by the run's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.now()

    def is_closed(self) -> bool:
        return False

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any:
        # Only a blocking acquire() sets a timer; the pacer never makes one, but a timer
        # on the run's clock must still fire at the right moment.
        delay = max(0.0, when - self._clock.now())
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio.get_running_loop(), name)


class _Bucket(AsyncLimiter):
    """An ``AsyncLimiter`` that drains on the run's clock."""

    __slots__ = ("_run_loop",)

    def __init__(self, depth: float, period_s: float, clock: Clock) -> None:
        super().__init__(depth, period_s)
        self._run_loop = _RunClockLoop(clock)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return cast(asyncio.AbstractEventLoop, self._run_loop)

    def free_at(self) -> float:
        """When there is room for one more send (now, if there is)."""
        now = self._run_loop.time()
        if self.has_capacity():
            return now
        # has_capacity() has just drained the level to now (aiolimiter 1.3's bucket state)
        return now + (self._level + 1 - self.max_rate) / self._rate_per_sec


class CallPacer:
    """Spaces call sends evenly at the tightest call limit (``even``), or not (``burst``)."""

    def __init__(
        self,
        calls: Sequence[Limit],
        clock: Clock,
        *,
        pacing: Pacing = "even",
        margin_s: float = DEFAULT_MARGIN_S,
        slack_s: float = LATE_SLACK_S,
        tick_s: float = ENGINE_TICK_S,
    ) -> None:
        """``margin_s`` is the sliding-window limiter's: the pace it sustains is ``N`` per
        ``W + margin_s``, so the even pace matches it and the limiter seldom has to wait.
        ``tick_s`` is the engine's loop tick, the least time between two of its turns."""
        if pacing not in ("even", "burst"):
            raise ValueError(f"pacing must be 'even' or 'burst', not {pacing!r}")
        self.pacing: Pacing = pacing
        self._clock = clock
        self.interval_s = 0.0
        if pacing == "even":
            self.interval_s = max(
                ((lim.window + margin_s) / lim.count for lim in calls), default=0.0
            )
        self._bucket: _Bucket | None = None
        self._depth = 1.0
        if self.interval_s > 0:
            # Half an interval at most; but two ticks when the interval is that short, or
            # a loop turn that runs late would lose its sends for good (see above).
            early = min(max(slack_s, 0.0), max(self.interval_s / 2, 2 * tick_s))
            self._depth = 1.0 + early / self.interval_s
            self._bucket = _Bucket(self._depth, self._depth * self.interval_s, clock)

    def __repr__(self) -> str:
        return f"CallPacer(pacing={self.pacing!r}, interval_s={self.interval_s:g})"

    def ready(self) -> bool:
        """Whether the pace lets a call go now (always, with burst pacing)."""
        return self._bucket is None or self._bucket.has_capacity()

    def free_at(self) -> float:
        """When the pace lets the next call go (now, if it does)."""
        return self._clock.now() if self._bucket is None else self._bucket.free_at()

    async def take(self) -> None:
        """Count a call going now. Only after ``ready()`` said yes: it never waits."""
        if self._bucket is None:
            return
        if not self._bucket.has_capacity():
            raise RuntimeError("CallPacer.take() without ready(): the call would wait")
        await self._bucket.acquire()

    async def seed(self, call_times: Iterable[float]) -> None:
        """Pace from the calls of an earlier process (a crash restart): as if the bucket had
        been full right after the latest of them, which can only space the next call more."""
        if self._bucket is None:
            return
        latest = max(call_times, default=None)
        if latest is None:
            return
        level = min(self._depth, self._depth - (self._clock.now() - latest) / self.interval_s)
        if level > 0 and self._bucket.has_capacity(level):  # before the first take
            await self._bucket.acquire(level)
