"""Sliding-window limiting of sends (the notation lives in ``campaign.config.limit``)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from campaign.clock import Clock, SystemClock
from campaign.config.limit import Limit

# ---------------------------------------------------------------------------------------
# Client-side limiting.
#
# Why an exact sliding log and not aiolimiter: a leaky bucket that starts full admits up to
# 2N-1 events in one window of W seconds (AsyncLimiter(5, 60) admits 9), and the server
# counts a true sliding window by arrival time.  The log keeps every send time and admits a
# send at ``t`` only while fewer than ``count`` earlier sends lie in ``(t - window - margin,
# t]``; so any ``count + 1`` sends span at least ``window + margin`` seconds.  Their arrivals
# at the server then span at least ``window`` as long as the latencies of two requests
# differ by less than ``margin`` (the network jitter bound), and no server window of
# ``window`` seconds can see more than ``count`` of them.  Everything an earlier send freed
# is usable at once, so the allowance is used fully (``count`` per ``window + margin``).
# ---------------------------------------------------------------------------------------

DEFAULT_MARGIN_S = 0.25
# The X-RateLimit-* headers describe the key's requests-per-minute limit (contract §4).
HEADER_WINDOW_S = 60.0
# How often a waiter re-checks while it waits for fresh X-RateLimit-* headers.
_HEADER_POLL_S = 0.25


class SlidingWindowLog:
    """The send times that count against one ``Limit``, with the rule that admits the next."""

    def __init__(self, limit: Limit, margin_s: float) -> None:
        self.limit = limit
        self.span = limit.window + margin_s
        self._times: list[float] = []

    def earliest(self, t: float, room: int = 1) -> float:
        """The earliest instant ``>= t`` at which ``room`` more sends are admitted."""
        keep = max(0, self.limit.count - room)  # sends that may still be in the window then
        in_window = len(self._times) - bisect.bisect_right(self._times, t - self.span)
        if in_window <= keep:
            return t
        return self._times[-(keep + 1)] + self.span

    def record(self, t: float) -> None:
        """Count a send at ``t``."""
        bisect.insort(self._times, t)

    def discard(self, t: float) -> None:
        """Forget one send at exactly ``t`` (the server did not count it)."""
        index = bisect.bisect_left(self._times, t)
        if index < len(self._times) and self._times[index] == t:
            del self._times[index]

    def count_between(self, start: float, end: float) -> int:
        """How many recorded sends happened in ``(start, end]``."""
        return bisect.bisect_right(self._times, end) - bisect.bisect_right(self._times, start)

    def count_since(self, t: float) -> int:
        """How many recorded sends happened at ``t`` or later."""
        return len(self._times) - bisect.bisect_left(self._times, t)

    def prune(self, now: float) -> None:
        """Drop the sends that can no longer count at ``now`` or later."""
        # Entries older than one span cannot hold back a send any more; a minute more is kept
        # so that a late response's X-RateLimit headers can be compared with what we sent.
        cut = bisect.bisect_right(self._times, now - self.span - HEADER_WINDOW_S)
        if cut:
            del self._times[:cut]


@dataclass
class _HeaderObservation:
    remaining: int
    reset_at: float
    sent_at: float
    # Whether ``sent_at`` is the send time of the observed request itself (one of our sends).
    own_send: bool


class ClientLimits:
    """Every configured request and call limit at once, over exact sliding windows."""

    def __init__(
        self,
        requests: Sequence[Limit],
        calls: Sequence[Limit],
        clock: Clock | None = None,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        if margin_s < 0:
            raise ValueError("margin_s must not be negative")
        self._clock: Clock = clock or SystemClock()
        self.margin_s = margin_s
        self._request_logs = [SlidingWindowLog(limit, margin_s) for limit in requests]
        self._call_logs = [SlidingWindowLog(limit, margin_s) for limit in calls]
        self._header: _HeaderObservation | None = None
        # Waiting calls -> when their call slot frees (their claim on the next request slot).
        self._calls_due: dict[object, float] = {}
        # All sends, for relating an X-RateLimit observation to what we sent after it.
        self._sends = SlidingWindowLog(Limit(1, HEADER_WINDOW_S), margin_s)

    def __repr__(self) -> str:
        requests = ", ".join(str(log.limit) for log in self._request_logs)
        calls = ", ".join(str(log.limit) for log in self._call_logs)
        return f"ClientLimits(requests=[{requests}], calls=[{calls}], margin_s={self.margin_s})"

    def seed(self, request_times: Iterable[float], call_times: Iterable[float]) -> None:
        """Count the sends of an earlier process (crash restart) against the windows.

        ``call_times`` are POST /calls sends; each also counts as a request, so pass it only
        in ``call_times`` (passing it in both is merely more cautious).
        """
        calls = list(call_times)
        for t in [*request_times, *calls]:
            for log in self._request_logs:
                log.record(t)
            self._sends.record(t)
        for t in calls:
            for log in self._call_logs:
                log.record(t)

    async def acquire_request(self) -> float:
        """Wait until one request may be sent; return the send time recorded."""
        while True:
            now = self._prune(self._clock.now())
            # Calls are the scarce resource: a waiting call gets its request slot before any
            # plain request that would otherwise take it (due now, or due soon).
            expected = self._expected_call_times(now)
            reserved = sum(1 for t in expected if t <= now)
            at = max((log.earliest(now, 1 + reserved) for log in self._request_logs), default=now)
            at = max(at, self._header_earliest(now))
            if at <= now:
                at = self._first_call_delayed(now, expected[reserved:], reserved)
            if at <= now:
                return self._record(now, self._request_logs)
            await self._clock.sleep(at - now)

    def _expected_call_times(self, now: float) -> list[float]:
        """When each waiting call can expect its call slot, earliest first."""
        expected = []
        for k, due in enumerate(sorted(self._calls_due.values()), start=1):
            slot = max(
                (
                    log.earliest(now, k) if k <= log.limit.count else now + log.span
                    for log in self._call_logs
                ),
                default=now,
            )
            expected.append(max(due, slot))
        return expected

    def _first_call_delayed(self, now: float, upcoming: list[float], reserved: int) -> float:
        """``now`` if a request sent now leaves a request slot for each upcoming call;
        else the time of the first call it would delay (look again then)."""
        for log in self._request_logs:
            log.record(now)  # as if sent; taken back below, with no await in between
            try:
                for k, due in enumerate(upcoming, start=1):
                    if due >= now + log.span:
                        break  # our send has left that window by then
                    if log.earliest(due, reserved + k) > due:
                        return due
            finally:
                log.discard(now)
        return now

    async def acquire_call(self) -> float:
        """Wait until a POST /calls may be sent (a call slot and a request slot)."""
        token = object()
        try:
            while True:
                now = self._prune(self._clock.now())
                call_at = max((log.earliest(now) for log in self._call_logs), default=now)
                request_at = max((log.earliest(now) for log in self._request_logs), default=now)
                at = max(call_at, request_at, self._header_earliest(now))
                if at <= now:
                    return self._record(now, [*self._request_logs, *self._call_logs])
                self._calls_due[token] = call_at
                await self._clock.sleep(at - now)
        finally:
            self._calls_due.pop(token, None)

    def release_call(self, sent_at: float) -> None:
        """Give back the call slot of a send the server did not count as a call.

        A replay, a definite refusal (4xx, a 429 included: refused calls are not created)
        or a slot taken and then not used; the request slot stays counted.
        """
        for log in self._call_logs:
            log.discard(sent_at)

    def observe_headers(
        self,
        remaining: int | None,
        reset: datetime | None,
        *,
        sent_at: float | None = None,
        limit: int | None = None,
    ) -> None:
        """Take the server's X-RateLimit-Remaining/Reset into account (another client).

        ``sent_at`` is the send time of the request whose response carried the headers and
        ``limit`` its X-RateLimit-Limit; with both, an observation that our own sends fully
        explain is recognised as such and holds nothing back.
        """
        if remaining is None or reset is None:
            return
        now = self._clock.now()
        sent = now if sent_at is None else sent_at
        if self._header is not None and self._header.sent_at > sent:
            return  # an older response arriving late says nothing new
        if (
            sent_at is not None
            and limit is not None
            and self._own_sends_explain(remaining, limit, sent_at)
        ):
            self._header = None  # our own log is already the stricter account
            return
        # A reset further away than one header window cannot be right (clock skew).
        reset_at = min(reset.timestamp(), now + HEADER_WINDOW_S + self.margin_s)
        self._header = _HeaderObservation(max(0, remaining), reset_at, sent, sent_at is not None)

    def _own_sends_explain(self, remaining: int, limit: int, sent_at: float) -> bool:
        """Whether the server has at least as much left as our own count of the same limit."""
        for log in self._request_logs:
            if log.limit.count == limit:
                # Our sends of up to one margin later may have overtaken this one on the way
                # (the jitter bound of the proof above), so the server may count them too.
                # Leaving them out took a burst's own reordering for another client's
                # traffic and held every send for a whole header window.
                ours = limit - log.count_between(sent_at - log.span, sent_at + self.margin_s)
                if remaining >= ours:
                    return True
        return False

    def _prune(self, now: float) -> float:
        for log in [*self._request_logs, *self._call_logs]:
            log.prune(now)
        return now

    def _record(self, now: float, logs: list[SlidingWindowLog]) -> float:
        # Called with no await since the check: the check still holds, even with many
        # coroutines acquiring at once.
        for log in logs:
            log.record(now)
        self._sends.record(now)
        return now

    def _header_earliest(self, now: float) -> float:
        header = self._header
        if header is None:
            return now
        self._sends.prune(now)
        # Our sends after the observed one (the server had not counted them yet). Sends with
        # the very same timestamp count as after it: the cautious side.
        used = max(0, self._sends.count_since(header.sent_at) - int(header.own_send))
        if used < header.remaining:
            return now
        if now < header.reset_at:
            return header.reset_at
        # At reset_at one slot frees; beyond that we only know that everything the server
        # counted has left its window one window after the observation.
        if used < header.remaining + 1 or now >= header.sent_at + HEADER_WINDOW_S + self.margin_s:
            return now
        return now + _HEADER_POLL_S
