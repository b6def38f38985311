"""The sliding-window rule: when the next send is admitted, given the send times so far.

Why an exact sliding log guards every send, and aiolimiter only paces calls
(``pacing.py``): a leaky bucket admits its whole depth at once and then one event per
``W / N``, so ``AsyncLimiter(N, W)`` admits up to 2N-1 events in one window of W seconds
(AsyncLimiter(5, 60) admits 9), while the server counts a true sliding window by arrival
time (contract §4). The rule admits a send at ``t`` only while fewer than ``count`` earlier
sends lie in ``(t - window - margin, t]`` (later ones too: a reserved dial may lie in the
future); so any ``count + 1`` sends span at least ``window + margin`` seconds. Their
arrivals at the server then span at least ``window`` as long as the latencies of two
requests differ by less than ``margin`` (the network jitter bound), and no server window of
``window`` seconds can see more than ``count`` of them. Everything an earlier send freed is
usable at once, so the allowance is used fully (``count`` per ``window + margin``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from campaign.config.limit import Limit

DEFAULT_MARGIN_S = 0.25
# The X-RateLimit-* headers describe the key's requests-per-minute limit (contract §4).
HEADER_WINDOW_S = 60.0


@dataclass(frozen=True)
class Window:
    """One ``Limit`` as the client enforces it: ``count`` sends per ``window + margin_s``."""

    limit: Limit
    margin_s: float

    @property
    def span(self) -> float:
        """The client's window: the server's plus the jitter margin."""
        return self.limit.window + self.margin_s

    def earliest(self, times: Sequence[float], t: float, room: int = 1) -> float:
        """The earliest instant ``>= t`` at which ``room`` more sends are admitted.

        ``times`` are the sends counted so far, oldest first.
        """
        keep = max(0, self.limit.count - room)  # sends that may still be in the window then
        in_window = len(times) - bisect.bisect_right(times, t - self.span)
        if in_window <= keep:
            return t
        return times[-(keep + 1)] + self.span


def count_between(times: Sequence[float], start: float, end: float) -> int:
    """How many of ``times`` (oldest first) lie in ``(start, end]``."""
    return bisect.bisect_right(times, end) - bisect.bisect_right(times, start)


def count_since(times: Sequence[float], t: float) -> int:
    """How many of ``times`` (oldest first) lie at ``t`` or later."""
    return len(times) - bisect.bisect_left(times, t)


def __getattr__(name: str) -> Any:
    # ``ClientLimits`` was the in-memory limiter; it is ``SlidingWindowLimiter`` (over a
    # ``MemoryLedger`` by default) now. The old name stays importable from here until the
    # engine's tests (tests/support/engine.py, tests/engine/) move to the new one; the
    # import is deferred because campaign.limits.limiter imports this module.
    if name == "ClientLimits":
        from campaign.limits.limiter import SlidingWindowLimiter

        return SlidingWindowLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
