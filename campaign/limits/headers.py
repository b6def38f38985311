"""What the server's X-RateLimit-* headers say beyond the ledger: another client's traffic.

Every authenticated response carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset``
for the key's requests-per-minute limit (contract §4). Our own sends are in the ledger
already; an observation that they fully explain holds nothing back. One they do not
explain (another client on the key, outside every ledger) holds sends until the server's
reset, then releases one per reset as fresh headers arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from campaign.limits.window import HEADER_WINDOW_S, Window, count_between, count_since

# How often a waiter re-checks while it waits for fresh X-RateLimit-* headers.
HEADER_POLL_S = 0.25


@dataclass(frozen=True)
class _Observation:
    remaining: int
    reset_at: float
    sent_at: float
    # Whether ``sent_at`` is the send time of the observed request itself (one of our sends).
    own_send: bool


class HeaderWatch:
    """The latest X-RateLimit observation that our own sends do not explain, if any."""

    def __init__(self, margin_s: float) -> None:
        self.margin_s = margin_s
        self._seen: _Observation | None = None

    def observe(
        self,
        remaining: int,
        reset: datetime,
        *,
        now: float,
        sent_at: float | None,
        limit: int | None,
        windows: Sequence[Window],
        sends: Sequence[float],
    ) -> None:
        """Take one response's headers into account.

        ``sent_at`` is the send time of the request whose response carried them and
        ``limit`` its X-RateLimit-Limit; with both, an observation that our own ``sends``
        (oldest first) explain under one of the request ``windows`` is recognised as such.
        """
        sent = now if sent_at is None else sent_at
        if self._seen is not None and self._seen.sent_at > sent:
            return  # an older response arriving late says nothing new
        if (
            sent_at is not None
            and limit is not None
            and self._own_sends_explain(remaining, limit, sent_at, windows, sends)
        ):
            self._seen = None  # our own ledger is already the stricter account
            return
        # A reset further away than one header window cannot be right (clock skew).
        reset_at = min(reset.timestamp(), now + HEADER_WINDOW_S + self.margin_s)
        self._seen = _Observation(max(0, remaining), reset_at, sent, sent_at is not None)

    def earliest(self, now: float, sends: Sequence[float]) -> float:
        """The earliest instant ``>= now`` the headers let one more request leave."""
        seen = self._seen
        if seen is None:
            return now
        # Our sends after the observed one (the server had not counted them yet). Sends with
        # the very same timestamp count as after it: the cautious side.
        used = max(0, count_since(sends, seen.sent_at) - int(seen.own_send))
        if used < seen.remaining:
            return now
        if now < seen.reset_at:
            return seen.reset_at
        # At reset_at one slot frees; beyond that we only know that everything the server
        # counted has left its window one window after the observation.
        if used < seen.remaining + 1 or now >= seen.sent_at + HEADER_WINDOW_S + self.margin_s:
            return now
        return now + HEADER_POLL_S

    def _own_sends_explain(
        self,
        remaining: int,
        limit: int,
        sent_at: float,
        windows: Sequence[Window],
        sends: Sequence[float],
    ) -> bool:
        """Whether the server has at least as much left as our own count of the same limit."""
        for window in windows:
            if window.limit.count == limit:
                # Our sends of up to one margin later may have overtaken this one on the way
                # (the jitter bound of the window rule), so the server may count them too.
                # Leaving them out took a burst's own reordering for another client's
                # traffic and held every send for a whole header window.
                counted = count_between(sends, sent_at - window.span, sent_at + self.margin_s)
                if remaining >= limit - counted:
                    return True
        return False
