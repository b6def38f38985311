"""One rate-limit allowance shared by every campaign on an API key, fairly divided.

The outbound and request limits belong to the project and the key, not to one campaign.
``SharedAllowance`` is a drop-in for ``ClientLimits`` whose sliding windows hold the sends of
every process using the same state dir, base URL and key: each decision is one short
``BEGIN IMMEDIATE`` transaction over a small SQLite file (``store_allowance``), so there is
no daemon to start and nothing to clean up after ``kill -9``.

Safety is ``ClientLimits``'s proof applied to the merged log: a send is admitted at ``t``
only while fewer than ``count`` sends *of any participant* lie in ``(t - window - margin,
t]``. All participants read the same host clock, and the transaction serialises the
check-and-record, so the proof holds across processes exactly as within one.

Fairness is start-time fair queueing over call sends. Each participant carries a virtual
time that grows by ``1 / priority`` per call it sends; when a call slot is free, a waiting
participant yields it to any live rival that is also ready to send and has a smaller
virtual time (``allowance_rules.rival``). A campaign with nothing to send does not ask, so
it holds no share (work-conserving); one that comes back after a pause keeps at most one
window's share of credit instead of cashing in all the slots it did not ask for. A killed
run's registration stops counting after ``ttl_s`` (at once, when its pid is gone on this
host); its recorded sends keep counting in the windows, because the server counts them too.

A batches campaign places no calls itself: the platform dials its batch rows greedily at
the project's outbound limit. It reserves those dials (``reserve_calls``) at the latest
moment each may ring, and the calls campaigns wait for them instead of meeting 429s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from campaign.clock import Clock
from campaign.config.limit import Limit
from campaign.limits.fairness import (
    DEFAULT_POLL_S,
    DEFAULT_TTL_S,
    REJOIN_AFTER_S,
    allowance_path,
    rival,
    waiting_calls,
)
from campaign.limits.window import (
    DEFAULT_MARGIN_S,
    HEADER_WINDOW_S,
    ClientLimits,
    SlidingWindowLog,
)
from campaign.store.allowance import (
    CALL,
    RELEASE,
    REQUEST,
    RESERVE,
    AllowanceDb,
    Participant,
)

__all__ = ["DEFAULT_TTL_S", "SharedAllowance", "allowance_path"]

log = logging.getLogger("campaign.limits.allowance")

# How often the file is cleared of sends that can no longer count.
PRUNE_EVERY_S = 10.0
# Participants not heard of for this long are dropped from the file (and from status).
FORGET_AFTER_S = 7 * 86400.0


class SharedAllowance(ClientLimits):
    """``ClientLimits`` over windows shared by every campaign on one key, across processes."""

    def __init__(
        self,
        path: Path,
        campaign: str,
        requests: Sequence[Limit],
        calls: Sequence[Limit],
        *,
        priority: float = 1.0,
        clock: Clock | None = None,
        margin_s: float = DEFAULT_MARGIN_S,
        ttl_s: float = DEFAULT_TTL_S,
        poll_s: float = DEFAULT_POLL_S,
        rejoin_s: float = REJOIN_AFTER_S,
    ) -> None:
        super().__init__(requests, calls, clock=clock, margin_s=margin_s)
        if priority <= 0:
            raise ValueError("priority must be positive")
        self.path = path
        self.campaign = campaign
        self.priority = priority
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.rejoin_s = rejoin_s
        self._declared_requests = tuple(dict.fromkeys(requests))
        self._declared_calls = tuple(dict.fromkeys(calls))
        self._waiting = 0  # this instance's coroutines inside acquire_call
        self._recheck_at = float("-inf")  # call_ready() answers "no" without a look until then
        self._warned: set[frozenset[str]] = set()
        self._limits_in_force: tuple[list[Limit], list[Limit]] = ([], [])
        self._last_id = 0  # the last entry of the shared file counted in the logs
        self._pruned_at = float("-inf")
        self._closed = False
        self._db = AllowanceDb(path)
        with self._db.transaction():
            now = self._clock.now()
            others = self._snapshot(now)
            start = min((p.vtime for p in others), default=0.0)
            self._db.register(
                campaign, priority, self._declared_requests, self._declared_calls, now, start
            )

    def __repr__(self) -> str:
        return (
            f"SharedAllowance(campaign={self.campaign!r}, path={str(self.path)!r}, "
            f"priority={self.priority:g}, margin_s={self.margin_s})"
        )

    def __enter__(self) -> SharedAllowance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Leave the allowance: stop holding a share at once (recorded sends keep counting)."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._db.transaction():
                self._db.update(self.campaign, state="gone", waiting=0, ready_at=None)
        finally:
            self._db.close()

    def idle(self) -> None:
        """Say that this campaign has nothing callable now (its share goes to the others)."""
        with self._db.transaction():
            self._db.update(
                self.campaign, state="idle", heartbeat=self._clock.now(), waiting=self._waiting
            )

    def heartbeat(self) -> None:
        """Keep the registration alive while the campaign works without sending."""
        with self._db.transaction():
            self._db.update(self.campaign, heartbeat=self._clock.now())

    async def keep_alive(self) -> None:
        """Refresh the registration every third of the TTL until cancelled (run as a task)."""
        # Real seconds, not the injected clock: a fake clock must not be moved by a
        # background task, and liveness is a wall-clock matter between processes anyway.
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            self.heartbeat()

    def seed(self, request_times: Iterable[float], call_times: Iterable[float]) -> None:
        """Count an earlier run's sends, unless the shared file already has them."""
        with self._db.transaction():
            now = self._clock.now()
            self._snapshot(now)
            horizon = now - self._longest_span() - HEADER_WINDOW_S
            for times, kind in ((call_times, CALL), (request_times, REQUEST)):
                for at in times:
                    if at > horizon and not self._db.has_send(self.campaign, at):
                        self._append(at, kind)

    async def acquire_request(self) -> float:
        """Wait until one request may be sent by this campaign; return the send time recorded."""
        while True:
            with self._db.transaction():
                now = self._clock.now()
                others = self._snapshot(now)
                me = self._me(now)
                self._calls_due = waiting_calls(me, others, now)
                # Same rule as ClientLimits, with every participant's waiting calls reserved.
                expected = self._expected_call_times(now)
                reserved = sum(1 for t in expected if t <= now)
                at = max(
                    (log.earliest(now, 1 + reserved) for log in self._request_logs), default=now
                )
                at = max(at, self._header_earliest(now))
                if at <= now:
                    at = self._first_call_delayed(now, expected[reserved:], reserved)
                if at <= now:
                    self._record_shared(now, call=False)
                    self._db.update(self.campaign, heartbeat=now)
                    return now
                self._db.update(self.campaign, heartbeat=now)
            await self._clock.sleep(min(at - now, self.ttl_s / 3))

    async def acquire_call(self) -> float:
        """Wait for this campaign's fair turn at a call slot (and a request slot)."""
        self._waiting += 1
        sent = False
        try:
            while True:
                with self._db.transaction():
                    now = self._clock.now()
                    others = self._snapshot(now)
                    vtime = self._join_vtime(self._me(now), others, now)
                    call_at, ready_at = self._call_times(now)
                    at = ready_at
                    if at <= now:
                        if rival(others, vtime, self.campaign, now, self.rejoin_s) is None:
                            self._record_shared(now, call=True)
                            self._waiting -= 1
                            sent = True
                            self._db.update(
                                self.campaign,
                                vtime=vtime + 1.0 / self.priority,
                                waiting=self._waiting,
                                ready_at=now if self._waiting else None,
                                call_due=call_at if self._waiting else None,
                                heartbeat=now,
                                last_call=now,
                                state="active",
                            )
                            return now
                        at = now + self.poll_s
                    self._db.update(
                        self.campaign,
                        vtime=vtime,
                        waiting=self._waiting,
                        # "now" while ready: a fresh value tells rivals we are not stuck
                        ready_at=max(ready_at, now),
                        call_due=call_at,
                        heartbeat=now,
                        state="active",
                    )
                await self._clock.sleep(min(at - now, self.ttl_s / 3))
        finally:
            if not sent:
                self._waiting -= 1
                self._leave_waiting()

    def call_ready(self) -> bool:
        """Whether this campaign may place a call now (a free slot and its fair turn).

        Asking also queues the campaign for its turn, so a caller that commits work only
        when a slot is free (the run engine) is served fairly without waiting in
        ``acquire_call`` first. A "no" is remembered until the answer can change.
        """
        now = self._clock.now()
        if now < self._recheck_at:
            return False
        with self._db.transaction():
            others = self._snapshot(now)
            vtime = self._join_vtime(self._me(now), others, now)
            call_at, ready_at = self._call_times(now)
            free = (
                ready_at <= now and rival(others, vtime, self.campaign, now, self.rejoin_s) is None
            )
            self._db.update(
                self.campaign,
                vtime=vtime,
                waiting=max(self._waiting, 1),
                ready_at=max(ready_at, now),
                call_due=call_at,
                heartbeat=now,
                state="active",
            )
        later = ready_at if ready_at > now else now + self.poll_s
        self._recheck_at = now if free else min(later, now + self.ttl_s / 3)
        return free

    def _call_times(self, now: float) -> tuple[float, float]:
        """When a call slot frees, and when a call could leave (call, request and header)."""
        call_at = max((log.earliest(now) for log in self._call_logs), default=now)
        request_at = max((log.earliest(now) for log in self._request_logs), default=now)
        return call_at, max(call_at, request_at, self._header_earliest(now))

    def release_call(self, sent_at: float) -> None:
        """Give back the call slot (and the fair-share charge) of a send that was a replay."""
        with self._db.transaction():
            now = self._clock.now()
            self._snapshot(now)
            self._append(sent_at, RELEASE)
            me = self._me(now)
            self._db.update(
                self.campaign,
                vtime=me.vtime - 1.0 / self.priority,
                calls_sent=max(0, me.calls_sent - 1),
            )

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
        with self._db.transaction():
            now = self._clock.now()
            self._snapshot(now)
            for at in sorted(times):
                self._append(at, RESERVE)
            self._db.update(self.campaign, heartbeat=now)

    def participants(self) -> list[Participant]:
        """Every campaign registered on this allowance, live or not."""
        with self._db.transaction():
            return self._db.participants()

    def _leave_waiting(self) -> None:
        now = self._clock.now()
        try:
            with self._db.transaction():
                self._db.update(
                    self.campaign,
                    waiting=self._waiting,
                    ready_at=None if not self._waiting else now,
                    heartbeat=now,
                )
        except Exception:  # a cancelled run closing down: liveness expiry covers this
            log.debug("could not record leaving the call queue", exc_info=True)

    def _join_vtime(self, me: Participant, others: list[Participant], now: float) -> float:
        """The virtual time to compete with; a returning campaign keeps at most one window's
        share of credit for the slots it did not ask for."""
        asking = me.waiting > 0 and me.ready_at is not None and me.ready_at >= now - self.rejoin_s
        if asking or (me.last_call is not None and me.last_call >= now - self.rejoin_s):
            return me.vtime  # in the queue all along (or between two calls)
        waiting = [p for p in others if p.waiting > 0]
        if not waiting:
            return me.vtime
        # The credit cap also absorbs start-up skew: campaigns started by one cron line
        # reach their first call a few milliseconds apart, and the first must not keep
        # the whole opening burst.
        window_count = min((log.limit.count for log in self._call_logs), default=1)
        active = [p for p in others if p.state == "active"]
        credit = window_count / (self.priority + sum(p.priority for p in active))
        return max(me.vtime, min(p.vtime for p in waiting) - credit)

    def _me(self, now: float) -> Participant:
        for participant in self._db.participants():
            if participant.name == self.campaign:
                return participant
        # The file was removed under us: join again.
        self._db.register(
            self.campaign, self.priority, self._declared_requests, self._declared_calls, now, 0.0
        )
        return self._me(now)

    def _snapshot(self, now: float) -> list[Participant]:
        """Bring the logs up to date with the shared file; return the other live participants.

        Only the entries added since the last snapshot are read (the file is append-only);
        the logs are rebuilt from the file when the set of limits in force changes.
        """
        others = [
            p
            for p in self._db.participants()
            if p.name != self.campaign and p.is_live(now, self.ttl_s)
        ]
        requests, calls = self._effective_limits(others)
        if (requests, calls) != self._limits_in_force:
            self._limits_in_force = (requests, calls)
            self._request_logs = [SlidingWindowLog(limit, self.margin_s) for limit in requests]
            self._call_logs = [SlidingWindowLog(limit, self.margin_s) for limit in calls]
            self._sends = SlidingWindowLog(Limit(1, HEADER_WINDOW_S), self.margin_s)
            self._last_id = 0
        longest = self._longest_span()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            # Keep an hour (the longest documented window) even if the live limits are
            # shorter: a campaign with a 1000/h limit may join at any moment.
            self._db.prune(
                now - max(longest, 3600.0 + self.margin_s) - HEADER_WINDOW_S,
                now - FORGET_AFTER_S,
            )
        for row_id, at, kind in self._db.sends_after(
            self._last_id, now - longest - HEADER_WINDOW_S
        ):
            self._apply(row_id, at, kind)
        self._prune(now)
        return others

    def _longest_span(self) -> float:
        return max((log.span for log in [*self._request_logs, *self._call_logs]), default=0.0)

    def _apply(self, row_id: int, at: float, kind: int) -> None:
        """Count one entry of the shared file in the in-memory logs."""
        self._last_id = max(self._last_id, row_id)
        if kind == RELEASE:
            for call_log in self._call_logs:
                call_log.discard(at)
            return
        if kind == RESERVE:  # a batch row the platform dials: a call slot, no request
            for call_log in self._call_logs:
                call_log.record(at)
            return
        for request_log in self._request_logs:
            request_log.record(at)
        if kind == CALL:
            for call_log in self._call_logs:
                call_log.record(at)
        self._sends.record(at)

    def _append(self, at: float, kind: int) -> None:
        """Add an entry to the shared file and the logs (inside a transaction, after a
        snapshot, so no other process's entry can come in between)."""
        self._apply(self._db.record_send(self.campaign, at, kind), at, kind)

    def _effective_limits(self, others: list[Participant]) -> tuple[list[Limit], list[Limit]]:
        """Every limit any live participant declared: the strictest reading of them all."""
        requests = dict.fromkeys(self._declared_requests)
        calls = dict.fromkeys(self._declared_calls)
        differing = []
        for other in others:
            if set(other.requests) != set(self._declared_requests) or set(other.calls) != set(
                self._declared_calls
            ):
                differing.append(other.name)
            requests.update(dict.fromkeys(other.requests))
            calls.update(dict.fromkeys(other.calls))
        if differing and frozenset(differing) not in self._warned:
            self._warned.add(frozenset(differing))
            log.warning(
                "campaigns sharing one allowance declare different limits (%s and %s); "
                "holding all of them: requests %s, calls %s",
                self.campaign,
                ", ".join(sorted(differing)),
                ", ".join(str(lim) for lim in requests),
                ", ".join(str(lim) for lim in calls),
            )
        return list(requests), list(calls)

    def _record_shared(self, now: float, *, call: bool) -> None:
        self._append(now, CALL if call else REQUEST)
        self._db.count_sent(self.campaign, call)
