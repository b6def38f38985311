"""``SlidingWindowLimiter``: every request and call limit at once, over a send ledger.

One limiter per campaign. Its send times live in a ``SendLedger`` (``ledger.py``): in
memory for one campaign alone, or the allowance file that every process on the same key
shares (``allowance.py``). The window rule (``window.py``) applied to the ledger's merged
sends is exact across campaigns and processes, because every check-and-record is one
ledger transaction and all participants read the same host clock. Whose turn a free call
slot is, the limiter asks its ``FairShare`` policy (``fairness.py``).

Calls are the scarce resource: a waiting call (of any campaign on the ledger) gets its
request slot before a plain request that would otherwise take it. A batches campaign
places no calls itself — the platform dials its rows at the project's outbound limit — so
it reserves those dials (``reserve_calls``) and the calls campaigns wait for them instead
of meeting 429s.

The limiter implements ``campaign.api.Limiter``, the Protocol the API client sends
through, and ``call_ready``/``reserve_calls`` for the engine.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from campaign.clock import Clock, SystemClock
from campaign.config.limit import Limit
from campaign.limits.fairness import FairShare, Roster
from campaign.limits.headers import HeaderWatch
from campaign.limits.ledger import MemoryLedger, SendKind, SendLedger, SendTimes
from campaign.limits.window import DEFAULT_MARGIN_S, HEADER_WINDOW_S, Window

log = logging.getLogger("campaign.limits")

# How often the ledger is cleared of sends that can no longer count.
PRUNE_EVERY_S = 10.0
# Sends are kept an hour (the longest documented window) whatever the limits in force: a
# campaign with a 1000/h limit may join the ledger at any moment.
KEEP_SENDS_S = 3600.0
# Participants not heard of for this long are dropped from the ledger (and from status).
FORGET_AFTER_S = 7 * 86400.0


@dataclass(frozen=True)
class _Look:
    """What one decision sees, read inside one ledger transaction."""

    now: float
    roster: Roster
    requests: list[Window]
    calls: list[Window]
    sends: SendTimes


class SlidingWindowLimiter:
    """Exact sliding windows over a send ledger, shared fairly between campaigns."""

    def __init__(
        self,
        requests: Sequence[Limit],
        calls: Sequence[Limit],
        clock: Clock | None = None,
        *,
        ledger: SendLedger | None = None,
        share: FairShare | None = None,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        """Join ``ledger`` (a fresh ``MemoryLedger`` by default; the limiter closes it) as
        ``share``'s campaign; give each limiter on a shared ledger its own ``FairShare``."""
        if margin_s < 0:
            raise ValueError("margin_s must not be negative")
        self._clock: Clock = clock or SystemClock()
        self._ledger: SendLedger = MemoryLedger() if ledger is None else ledger
        # Alone on a private ledger nobody watches its liveness: no TTL, so a waiter
        # never wakes early only to show that it is alive.
        self._share = share or FairShare("campaign", ttl_s=math.inf)
        self.margin_s = margin_s
        self._headers = HeaderWatch(margin_s)
        self._windows: dict[tuple[Limit, ...], list[Window]] = {}
        # The request limits in force at the last look, and how far back sends count.
        self._request_windows: list[Window] = []
        self._horizon_s = HEADER_WINDOW_S
        self._waiting = 0  # this limiter's coroutines inside acquire_call
        self._recheck_at = float("-inf")  # call_ready() answers "no" without a look until then
        self._pruned_at = float("-inf")
        self._closed = False
        try:
            with self._ledger.transaction():
                now = self._clock.now()
                self._share.join(self._ledger, now, requests, calls)
                self._look(now)
        except BaseException:
            self._ledger.close()
            raise

    @property
    def campaign(self) -> str:
        """The campaign this limiter sends for."""
        return self._share.campaign

    def __repr__(self) -> str:
        requests, calls = self._share.declared()
        return (
            f"SlidingWindowLimiter(campaign={self.campaign!r}, "
            f"requests=[{', '.join(map(str, requests))}], calls=[{', '.join(map(str, calls))}], "
            f"ledger={self._ledger!r}, margin_s={self.margin_s})"
        )

    def __enter__(self) -> SlidingWindowLimiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the client's side (campaign.api.Limiter) ----------------------------------------

    async def acquire_request(self) -> float:
        """Wait until one request may be sent; return the send time recorded."""
        while True:
            with self._ledger.transaction():
                look = self._look()
                now = look.now
                at = self._request_at(look)
                if at <= now:
                    self._ledger.record_send(self.campaign, now, "request")
                    self._share.sent_request(self._ledger, look.roster, now)
                    return now
                self._share.seen(self._ledger, look.roster, now)
            await self._clock.sleep(min(at - now, self._share.recheck_s))

    async def acquire_call(self) -> float:
        """Wait for a call slot, a request slot and this campaign's fair turn."""
        self._waiting += 1
        sent = False
        try:
            while True:
                with self._ledger.transaction():
                    look = self._look()
                    now = look.now
                    call_at, ready_at = self._call_times(look)
                    turn = self._share.turn(look.roster, now, self._window_count(look))
                    if ready_at <= now and turn.ours:
                        self._ledger.record_send(self.campaign, now, "call")
                        self._waiting -= 1
                        sent = True
                        self._share.took_call(
                            self._ledger, look.roster, now, turn,
                            call_at=call_at, waiting=self._waiting,
                        )  # fmt: skip
                        return now
                    at = ready_at if ready_at > now else now + self._share.poll_s
                    self._share.wait(
                        self._ledger, look.roster, now, turn,
                        call_at=call_at, ready_at=ready_at, waiting=self._waiting,
                    )  # fmt: skip
                await self._clock.sleep(min(at - now, self._share.recheck_s))
        finally:
            if not sent:
                self._waiting -= 1
                self._leave_queue()

    def release_call(self, sent_at: float) -> None:
        """Give back the call slot (and the fair-share charge) of a send the server did not
        count as a call: a replay, a definite refusal, or a slot taken and then not used.
        The request slot stays counted."""
        with self._ledger.transaction():
            roster = self._share.look(self._ledger, self._clock.now())
            self._ledger.release_call(self.campaign, sent_at)
            self._share.gave_back(self._ledger, roster)

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
        ``limit`` its X-RateLimit-Limit; with both, an observation that the ledger's sends
        fully explain is recognised as such and holds nothing back.
        """
        if remaining is None or reset is None:
            return
        now = self._clock.now()
        sends = self._ledger.sends(now - self._horizon_s)
        self._headers.observe(
            remaining, reset, now=now, sent_at=sent_at, limit=limit,
            windows=self._request_windows, sends=sends.requests,
        )  # fmt: skip

    # --- the engine's side ---------------------------------------------------------------

    def call_ready(self, not_before: float | None = None, queued: int = 1) -> bool:
        """Whether this campaign may place a call now (a free slot and its fair turn).

        Asking also queues the campaign's ``queued`` calls for their turn (one window's
        worth at most), so a caller that commits work only when a slot is free (the run
        engine) is served fairly without waiting in ``acquire_call`` first, and plain
        requests keep a request slot for each of those calls. ``not_before`` is when the
        caller's own pace lets its next call go (even pacing): the answer is no until
        then, but the calls stay queued, so an evenly paced campaign is not starved of
        request slots between two of its calls and keeps its place in the fair queue. A
        "no" is remembered until the answer can change.
        """
        now = self._clock.now()
        if now < self._recheck_at:
            return False
        with self._ledger.transaction():
            look = self._look(now)
            call_at, ready_at = self._call_times(look)
            if not_before is not None:
                call_at, ready_at = max(call_at, not_before), max(ready_at, not_before)
            window_count = self._window_count(look)
            turn = self._share.turn(look.roster, now, window_count)
            free = ready_at <= now and turn.ours
            waiting = max(self._waiting, min(queued, window_count), 1)
            self._share.wait(
                self._ledger, look.roster, now, turn,
                call_at=call_at, ready_at=ready_at, waiting=waiting,
            )  # fmt: skip
        later = ready_at if ready_at > now else now + self._share.poll_s
        self._recheck_at = now if free else min(later, now + self._share.recheck_s)
        return free

    def reserve_calls(self, times: Iterable[float]) -> None:
        """Hold call slots for dials the platform makes for this campaign's batch.

        A batch's rows are dialled by the platform at the project's outbound limit without
        a request of ours, so nothing else would tell the other campaigns. Each is recorded
        at the latest moment it may ring: a call is admitted only while fewer than
        ``count`` call entries lie after ``t - window - margin`` (future ones included), so
        the other campaigns wait for the batch instead of meeting 429s, and the room each
        reserved row needs stays free whenever the platform dials it up to that moment.
        Reserved rows take no request slot and no turn in the fair queue.
        """
        with self._ledger.transaction():
            now = self._clock.now()
            roster = self._share.look(self._ledger, now)
            self._ledger.reserve_calls(self.campaign, sorted(times))
            self._share.seen(self._ledger, roster, now)

    def seed(self, request_times: Iterable[float], call_times: Iterable[float]) -> None:
        """Count the sends of an earlier process (a crash restart) against the windows.

        ``call_times`` are POST /calls sends; each also counts as a request, so pass it only
        in ``call_times``. Sends the ledger already holds (the shared file outlived the
        run) are not counted twice; sends too old to matter are left out.
        """
        with self._ledger.transaction():
            horizon = self._look().now - self._horizon_s
            kinds: tuple[tuple[SendKind, Iterable[float]], ...] = (
                ("call", call_times),
                ("request", request_times),
            )
            for kind, times in kinds:
                wanted = Counter(at for at in times if at > horizon)
                for at, count in sorted(wanted.items()):
                    for _ in range(count - self._ledger.count_sends(self.campaign, at, kind)):
                        self._ledger.record_send(self.campaign, at, kind)

    def idle(self) -> None:
        """Say that this campaign has nothing callable now (its share goes to the others)."""
        with self._ledger.transaction():
            now = self._clock.now()
            roster = self._share.look(self._ledger, now)
            self._share.idle(self._ledger, roster, now, waiting=self._waiting)

    def heartbeat(self) -> None:
        """Keep the registration alive while the campaign works without sending."""
        with self._ledger.transaction():
            now = self._clock.now()
            self._share.seen(self._ledger, self._share.look(self._ledger, now), now)

    async def keep_alive(self) -> None:
        """Refresh the registration every third of the TTL until cancelled (run as a task)."""
        # Real seconds, not the injected clock: a fake clock must not be moved by a
        # background task, and liveness is a wall-clock matter between processes anyway.
        while True:
            await asyncio.sleep(self._share.recheck_s)
            self.heartbeat()

    def close(self) -> None:
        """Leave the allowance: stop holding a share at once (recorded sends keep counting)."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._ledger.transaction():
                roster = self._share.look(self._ledger, self._clock.now())
                self._share.leave(self._ledger, roster)
        finally:
            self._ledger.close()

    # --- the decision --------------------------------------------------------------------

    def _look(self, now: float | None = None) -> _Look:
        """Read the participants and the sends that count (inside a transaction)."""
        now = self._clock.now() if now is None else now
        roster = self._share.look(self._ledger, now)
        request_limits, call_limits = self._share.limits_in_force(roster)
        requests, calls = self._windows_for(request_limits), self._windows_for(call_limits)
        longest = self._longest_span([*requests, *calls])
        self._request_windows, self._horizon_s = requests, longest + HEADER_WINDOW_S
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            keep = max(longest, KEEP_SENDS_S + self.margin_s) + HEADER_WINDOW_S
            self._ledger.prune(now - keep, now - FORGET_AFTER_S)
        return _Look(now, roster, requests, calls, self._ledger.sends(now - self._horizon_s))

    def _request_at(self, look: _Look) -> float:
        """When a plain request may leave, leaving a request slot for each waiting call."""
        now, sends = look.now, look.sends
        expected = self._expected_call_times(look)
        reserved = sum(1 for t in expected if t <= now)
        at = max(
            (w.earliest(sends.requests, now, 1 + reserved) for w in look.requests), default=now
        )
        at = max(at, self._headers.earliest(now, sends.requests))
        if at <= now:
            at = self._first_call_delayed(look, expected[reserved:], reserved)
        return at

    def _expected_call_times(self, look: _Look) -> list[float]:
        """When each waiting call can expect its call slot, earliest first."""
        now, calls = look.now, look.sends.calls
        expected = []
        dues = self._share.waiting_calls(look.roster, now)
        for k, due in enumerate(dues, start=1):
            slot = max(
                (
                    w.earliest(calls, now, k) if k <= w.limit.count else now + w.span
                    for w in look.calls
                ),
                default=now,
            )
            expected.append(max(due, slot))
        return expected

    def _first_call_delayed(self, look: _Look, upcoming: list[float], reserved: int) -> float:
        """``now`` if a request sent now leaves a request slot for each upcoming call;
        else the time of the first call it would delay (look again then)."""
        now = look.now
        if not upcoming:
            return now
        with_now = list(look.sends.requests)  # as if sent now
        bisect.insort(with_now, now)
        for window in look.requests:
            for k, due in enumerate(upcoming, start=1):
                if due >= now + window.span:
                    break  # our send has left that window by then
                if window.earliest(with_now, due, reserved + k) > due:
                    return due
        return now

    def _call_times(self, look: _Look) -> tuple[float, float]:
        """When a call slot frees, and when a call could leave (call, request and header)."""
        now, sends = look.now, look.sends
        call_at = max((w.earliest(sends.calls, now) for w in look.calls), default=now)
        request_at = max((w.earliest(sends.requests, now) for w in look.requests), default=now)
        return call_at, max(call_at, request_at, self._headers.earliest(now, sends.requests))

    def _window_count(self, look: _Look) -> int:
        """One window's worth of call slots (the smallest count of the call limits)."""
        return min((w.limit.count for w in look.calls), default=1)

    def _leave_queue(self) -> None:
        try:
            with self._ledger.transaction():
                now = self._clock.now()
                roster = self._share.look(self._ledger, now)
                self._share.left_queue(self._ledger, roster, now, waiting=self._waiting)
        except Exception:  # a cancelled run closing down: liveness expiry covers this
            log.debug("could not record leaving the call queue", exc_info=True)

    def _windows_for(self, limits: tuple[Limit, ...]) -> list[Window]:
        windows = self._windows.get(limits)
        if windows is None:
            windows = self._windows[limits] = [Window(lim, self.margin_s) for lim in limits]
        return windows

    @staticmethod
    def _longest_span(windows: Sequence[Window]) -> float:
        return max((w.span for w in windows), default=0.0)
