"""Sliding windows over arrival times, as the platform counts requests and calls."""

from __future__ import annotations

import math
from collections import deque


class SlidingWindow:
    """Arrival times of counted events; an event at ``a`` counts at ``t`` while ``t - a < W``."""

    def __init__(self, limit: int, window_s: float, arrivals: list[float] | None = None) -> None:
        self.limit = limit
        self.window_s = window_s
        self._arrivals: deque[float] = deque(sorted(arrivals or []))

    def _expired(self, now: float) -> int:
        # How many of the oldest arrivals no longer count at ``now``; never mutates, so a
        # look-ahead query (a batch held until later) cannot drop arrivals counted today.
        expired = 0
        for arrival in self._arrivals:
            if now - arrival < self.window_s:
                break
            expired += 1
        return expired

    def count(self, now: float) -> int:
        """Events counted at ``now``."""
        return len(self._arrivals) - self._expired(now)

    def has_room(self, now: float) -> bool:
        """Whether one more event at ``now`` stays within the limit."""
        return self.count(now) < self.limit

    def record(self, now: float) -> int:
        """Count an event arriving at ``now``; return the count including it."""
        for _ in range(self._expired(now)):
            self._arrivals.popleft()
        self._arrivals.append(now)
        return len(self._arrivals)

    def next_room_at(self, now: float) -> float:
        """Earliest instant >= now at which one more event would be admitted."""
        count = self.count(now)
        if count < self.limit:
            return now
        # The (count - limit + 1)-th oldest must leave the window first.
        oldest = self._arrivals[self._expired(now) + count - self.limit]
        room_at = oldest + self.window_s
        # Float rounding can leave (oldest + W) - oldest just below W: step to the first
        # instant at which the oldest arrival really no longer counts.
        while room_at - oldest < self.window_s:
            room_at = math.nextafter(room_at, math.inf)
        return room_at

    def retry_after(self, now: float) -> int:
        """Integer seconds (>= 1) until one more event would be admitted."""
        return max(1, math.ceil(self.next_room_at(now) - now - 1e-9))

    def reset_at(self, now: float) -> float:
        """Instant at which the count next drops by one (``now`` when nothing is counted)."""
        expired = self._expired(now)
        if expired == len(self._arrivals):
            return now
        return self._arrivals[expired] + self.window_s

    def snapshot(self) -> list[float]:
        """Arrival times, oldest first (for persistence)."""
        return list(self._arrivals)
