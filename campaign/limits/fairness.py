"""Fairness between campaigns on one allowance: the policy the limiter consults.

The limiter (``campaign.limits.limiter``) knows *when* a call slot is free; ``FairShare``
says *whose* it is. It is start-time fair queueing over call sends: each participant
carries a virtual time that grows by ``1 / priority`` per call it sends; when a call slot
is free, a waiting participant yields it to any live rival that is also ready to send and
has a smaller virtual time (``rival``). "Ready" means ready now, or a moment away from
asking again (its last call's response is in flight): slots free in bursts, and a burst
must not go to whoever happens to be waiting at that instant.

A campaign with nothing to send does not ask, so it holds no share (work-conserving); one
that comes back after a pause keeps at most one window's share of credit instead of
cashing in all the slots it did not ask for. A killed run's registration stops counting
after ``ttl_s`` (at once, when its pid is gone on this host); its recorded sends keep
counting in the windows, because the server counts them too.

Every method that takes a ``ParticipantTable`` runs inside the ledger's transaction, with
the ``Roster`` read in that same transaction: each write is a whole row, read and written
in one decision.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

from campaign.config.limit import Limit
from campaign.limits.ledger import ParticipantTable
from campaign.store.allowance import Participant

log = logging.getLogger("campaign.limits")

DEFAULT_TTL_S = 5.0
# How soon a participant that yielded a free slot to a rival looks again.
DEFAULT_POLL_S = 0.05
# A rival that said it was ready this long ago and still has not sent is stuck (a busy event
# loop, a paused process): stop yielding to it.
RIVAL_GRACE_S = 1.0
# A pause in asking for calls longer than this (no work, not just one request's latency)
# forfeits the credit of the slots not asked for.
REJOIN_AFTER_S = 1.0


@dataclass(frozen=True)
class Roster:
    """The participants as one decision sees them: this campaign's row and the live others."""

    me: Participant
    others: list[Participant]


@dataclass(frozen=True)
class Turn:
    """Where this campaign stands in the queue for call slots."""

    # The virtual time it competes with (its own, or a rejoining campaign's capped credit).
    vtime: float
    # No live rival ahead of it could take a slot that is free now.
    ours: bool


class FairShare:
    """Start-time fair queueing of call slots between the campaigns on one ledger."""

    def __init__(
        self,
        campaign: str,
        *,
        priority: float = 1.0,
        ttl_s: float = DEFAULT_TTL_S,
        poll_s: float = DEFAULT_POLL_S,
        rejoin_s: float = REJOIN_AFTER_S,
    ) -> None:
        if priority <= 0:
            raise ValueError("priority must be positive")
        self.campaign = campaign
        self.priority = priority
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.rejoin_s = rejoin_s
        self._requests: tuple[Limit, ...] = ()
        self._calls: tuple[Limit, ...] = ()
        self._warned: set[frozenset[str]] = set()

    def __repr__(self) -> str:
        return f"FairShare(campaign={self.campaign!r}, priority={self.priority:g})"

    @property
    def recheck_s(self) -> float:
        """The longest a waiter goes without a look (which keeps its registration live)."""
        return self.ttl_s / 3

    def declared(self) -> tuple[tuple[Limit, ...], tuple[Limit, ...]]:
        """The request and call limits this campaign declared when it joined."""
        return self._requests, self._calls

    def limits_in_force(self, roster: Roster) -> tuple[tuple[Limit, ...], tuple[Limit, ...]]:
        """Every request and call limit any live participant declared: the strictest
        reading of them all (with a warning, once, when they differ)."""
        requests = dict.fromkeys(self._requests)
        calls = dict.fromkeys(self._calls)
        differing = []
        for other in roster.others:
            if set(other.requests) != set(self._requests) or set(other.calls) != set(self._calls):
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
        return tuple(requests), tuple(calls)

    def join(
        self, table: ParticipantTable, now: float, requests: Sequence[Limit], calls: Sequence[Limit]
    ) -> None:
        """Register (or re-register after a crash), starting level with the live others."""
        self._requests = tuple(dict.fromkeys(requests))
        self._calls = tuple(dict.fromkeys(calls))
        others = self._live_others(table.participants(), now)
        self._register(table, now, min((p.vtime for p in others), default=0.0))

    def look(self, table: ParticipantTable, now: float) -> Roster:
        """This campaign's row and the live others (joining again if the row is gone)."""
        everyone = table.participants()
        me = next((p for p in everyone if p.name == self.campaign), None)
        if me is None:  # the allowance file was removed under us
            me = self._register(table, now, 0.0)
        return Roster(me, self._live_others(everyone, now))

    def waiting_calls(self, roster: Roster, now: float) -> list[float]:
        """When each waiting call of every live participant expects its call slot, in order."""
        dues: list[float] = []
        for p in [roster.me, *roster.others]:
            stale = p.ready_at is None or p.ready_at < now - RIVAL_GRACE_S
            if p.waiting > 0 and p.call_due is not None and not stale:
                dues.extend([p.call_due] * p.waiting)
        return sorted(dues)

    def turn(self, roster: Roster, now: float, window_count: int) -> Turn:
        """Whether a call slot free now is this campaign's (``window_count``: the smallest
        count of the call limits, one window's worth of slots)."""
        vtime = self._join_vtime(roster, now, window_count)
        return Turn(vtime, rival(roster.others, vtime, self.campaign, now, self.rejoin_s) is None)

    def wait(
        self,
        table: ParticipantTable,
        roster: Roster,
        now: float,
        turn: Turn,
        *,
        call_at: float,
        ready_at: float,
        waiting: int,
    ) -> None:
        """Stand in the queue: ``waiting`` calls, ready to leave at ``ready_at``."""
        table.put_participant(
            replace(
                roster.me,
                vtime=turn.vtime,
                waiting=waiting,
                # "now" while ready: a fresh value tells rivals we are not stuck
                ready_at=max(ready_at, now),
                call_due=call_at,
                heartbeat=now,
                state="active",
            )
        )

    def took_call(
        self,
        table: ParticipantTable,
        roster: Roster,
        now: float,
        turn: Turn,
        *,
        call_at: float,
        waiting: int,
    ) -> None:
        """Charge a call sent now; ``waiting`` calls of this campaign still wait."""
        me = roster.me
        table.put_participant(
            replace(
                me,
                vtime=turn.vtime + 1.0 / self.priority,
                waiting=waiting,
                ready_at=now if waiting else None,
                call_due=call_at if waiting else None,
                heartbeat=now,
                last_call=now,
                state="active",
                calls_sent=me.calls_sent + 1,
                requests_sent=me.requests_sent + 1,
            )
        )

    def sent_request(self, table: ParticipantTable, roster: Roster, now: float) -> None:
        """Count a plain request sent now."""
        me = roster.me
        table.put_participant(replace(me, heartbeat=now, requests_sent=me.requests_sent + 1))

    def gave_back(self, table: ParticipantTable, roster: Roster) -> None:
        """Refund the charge of a call the server did not count (a replay)."""
        me = roster.me
        table.put_participant(
            replace(me, vtime=me.vtime - 1.0 / self.priority, calls_sent=max(0, me.calls_sent - 1))
        )

    def seen(self, table: ParticipantTable, roster: Roster, now: float) -> None:
        """Keep the registration alive."""
        table.put_participant(replace(roster.me, heartbeat=now))

    def left_queue(
        self, table: ParticipantTable, roster: Roster, now: float, *, waiting: int
    ) -> None:
        """A waiting call gave up (cancelled, or its window closed); ``waiting`` remain."""
        table.put_participant(
            replace(roster.me, waiting=waiting, ready_at=now if waiting else None, heartbeat=now)
        )

    def idle(self, table: ParticipantTable, roster: Roster, now: float, *, waiting: int) -> None:
        """Nothing callable now: the share goes to the others."""
        table.put_participant(replace(roster.me, state="idle", heartbeat=now, waiting=waiting))

    def leave(self, table: ParticipantTable, roster: Roster) -> None:
        """Stop holding a share at once (recorded sends keep counting)."""
        table.put_participant(replace(roster.me, state="gone", waiting=0, ready_at=None))

    def _register(self, table: ParticipantTable, now: float, vtime: float) -> Participant:
        old = next((p for p in table.participants() if p.name == self.campaign), None)
        me = Participant(
            name=self.campaign,
            host=socket.gethostname(),
            pid=os.getpid(),
            priority=self.priority,
            requests=self._requests,
            calls=self._calls,
            joined=now,
            heartbeat=now,
            # a restarted run keeps the turns it already had (no credit for a crash)
            vtime=vtime if old is None else max(old.vtime, vtime),
            waiting=0,
            ready_at=None,
            call_due=None,
            last_call=None if old is None else old.last_call,
            calls_sent=0 if old is None else old.calls_sent,
            requests_sent=0 if old is None else old.requests_sent,
            state="active",
        )
        table.put_participant(me)
        return me

    def _live_others(self, everyone: list[Participant], now: float) -> list[Participant]:
        return [p for p in everyone if p.name != self.campaign and p.is_live(now, self.ttl_s)]

    def _join_vtime(self, roster: Roster, now: float, window_count: int) -> float:
        """The virtual time to compete with; a returning campaign keeps at most one window's
        share of credit for the slots it did not ask for."""
        me, others = roster.me, roster.others
        asking = me.waiting > 0 and me.ready_at is not None and me.ready_at >= now - self.rejoin_s
        if asking or (me.last_call is not None and me.last_call >= now - self.rejoin_s):
            return me.vtime  # in the queue all along (or between two calls)
        waiting = [p for p in others if p.waiting > 0]
        if not waiting:
            return me.vtime
        # The credit cap also absorbs start-up skew: campaigns started by one cron line
        # reach their first call a few milliseconds apart, and the first must not keep
        # the whole opening burst.
        active = [p for p in others if p.state == "active"]
        credit = window_count / (self.priority + sum(p.priority for p in active))
        return max(me.vtime, min(p.vtime for p in waiting) - credit)


def rival(
    others: list[Participant], vtime: float, name: str, now: float, rejoin_s: float
) -> Participant | None:
    """A live participant whose turn comes before ours and who can take this slot, if any.

    That is one ready to send now, or one that sent a call a moment ago and is about to ask
    again (its response is in flight).
    """
    for other in others:
        if (other.vtime, other.name) >= (vtime, name):
            continue
        if other.waiting > 0:
            if other.ready_at is not None and now - RIVAL_GRACE_S <= other.ready_at <= now:
                return other
        elif (
            other.state == "active"
            and other.last_call is not None
            and now - rejoin_s <= other.last_call
        ):
            return other
    return None
