"""The shared allowance: one ledger per API key, used by every campaign on that key.

The outbound and request limits belong to the project and the key, not to one campaign.
Every process that runs a campaign with the same state dir, base URL and key keeps its
sends in one small SQLite file (``allowance_path``); with ``state_url``, every process on
the same database, base URL and key keeps them in one PostgreSQL schema
(``StatePlace.allowance``). Each limiter decision is one short ``BEGIN IMMEDIATE``
transaction over the ledger (the SQL is ``campaign.store.allowance``), so there is no daemon
to start and nothing to clean up after ``kill -9``. ``shared_limiter`` opens a campaign's
``SlidingWindowLimiter`` on it, with a ``FairShare`` of the campaign's priority.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from campaign.clock import Clock
from campaign.config.limit import Limit
from campaign.limits.fairness import DEFAULT_POLL_S, DEFAULT_TTL_S, REJOIN_AFTER_S, FairShare
from campaign.limits.ledger import SendKind, SendTimes
from campaign.limits.limiter import SlidingWindowLimiter
from campaign.limits.window import DEFAULT_MARGIN_S
from campaign.store.allowance import (
    CALL,
    RELEASE,
    REQUEST,
    RESERVE,
    AllowanceDb,
    AllowanceLocation,
    Participant,
    allowance_digest,
)

__all__ = [
    "DEFAULT_TTL_S",
    "AllowanceLedger",
    "SharedAllowance",
    "SqliteLedger",
    "allowance_path",
    "shared_limiter",
]

_KINDS: dict[SendKind, int] = {"request": REQUEST, "call": CALL}

# The limiter of a campaign on the shared allowance (the name the pipeline knows).
SharedAllowance = SlidingWindowLimiter


def allowance_path(state_dir: Path, base_url: str, api_key: str) -> Path:
    """The allowance file of one API base URL and key; the name holds no part of the key."""
    return state_dir / f"allowance-{allowance_digest(base_url, api_key)}.sqlite"


def shared_limiter(
    where: Path | AllowanceLocation,
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
) -> SlidingWindowLimiter:
    """``campaign``'s limiter on the allowance at ``where`` (the file's path, or
    ``StatePlace.allowance(...)``); joined; close it to leave."""
    share = FairShare(campaign, priority=priority, ttl_s=ttl_s, poll_s=poll_s, rejoin_s=rejoin_s)
    ledger = SqliteLedger(where) if isinstance(where, Path) else AllowanceLedger(where.open())
    return SlidingWindowLimiter(
        requests, calls, clock, ledger=ledger, share=share, margin_s=margin_s
    )


class AllowanceLedger:
    """A ``SendLedger`` over one allowance ledger (a file, or a PostgreSQL schema), shared
    by every process on the key.

    The ledger is append-only for sends (a replay's call is given back by a ``RELEASE``
    entry, not an update), so this keeps the sends that count in memory and reads only the
    entries added since it last looked.
    """

    def __init__(self, db: AllowanceDb) -> None:
        self.path = db.path
        self._db = db
        self._requests: list[float] = []
        self._calls: list[float] = []
        self._last_id = 0  # the last entry of the file counted in memory
        self._since = float("inf")  # memory holds every entry after this time

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.where!r})"

    def transaction(self) -> AbstractContextManager[None]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` on the file (``StateError`` on failure)."""
        return self._db.transaction()

    def sends(self, since: float) -> SendTimes:
        """The sends after ``since``, brought up to date with the file."""
        if since < self._since:  # an older horizon than memory holds (a longer limit joined)
            self._requests, self._calls, self._last_id = [], [], 0
        else:
            for times in (self._requests, self._calls):
                del times[: bisect.bisect_right(times, since)]
        self._since = since
        self._catch_up()
        return SendTimes(self._requests, self._calls)

    def record_send(self, campaign: str, at: float, kind: SendKind) -> None:
        """Append one send to the file (and to memory)."""
        self._append(campaign, at, _KINDS[kind])

    def release_call(self, campaign: str, at: float) -> None:
        """Append the giving back of the call slot taken at ``at``."""
        self._append(campaign, at, RELEASE)

    def reserve_calls(self, campaign: str, times: Iterable[float]) -> None:
        """Append a reserved dial (a call slot, no request) at each of ``times``."""
        for at in times:
            self._append(campaign, at, RESERVE)

    def count_sends(self, campaign: str, at: float, kind: SendKind) -> int:
        """How many sends of ``kind`` at exactly ``at`` the file holds for ``campaign``."""
        return self._db.count_sends(campaign, at, _KINDS[kind])

    def prune(self, sends_before: float, participants_before: float) -> None:
        """Delete sends that can no longer count, and participants gone since long ago."""
        self._db.prune(sends_before, participants_before)

    def participants(self) -> list[Participant]:
        """Every participant registered in the file (live or not)."""
        return self._db.participants()

    def put_participant(self, participant: Participant) -> None:
        """Insert or replace a participant's row."""
        self._db.put_participant(participant)

    def close(self) -> None:
        """Close the file (again is harmless)."""
        self._db.close()

    def _catch_up(self) -> None:
        """Count the entries added to the file since memory last looked."""
        if self._since == float("inf"):
            return  # nothing read yet: the first ``sends`` reads what it needs
        for row_id, at, kind in self._db.sends_after(self._last_id, self._since):
            self._apply(row_id, at, kind)

    def _append(self, campaign: str, at: float, kind: int) -> None:
        # Caught up inside the writing transaction first: no other process's entry can
        # come between the last one read and this one, so memory stays the file's picture.
        self._catch_up()
        row_id = self._db.record_send(campaign, at, kind)
        if at > self._since:
            self._apply(row_id, at, kind)
        else:
            self._last_id = max(self._last_id, row_id)

    def _apply(self, row_id: int, at: float, kind: int) -> None:
        """Count one entry of the file in memory."""
        self._last_id = max(self._last_id, row_id)
        if kind == RELEASE:
            index = bisect.bisect_left(self._calls, at)
            if index < len(self._calls) and self._calls[index] == at:
                del self._calls[index]
            return
        if kind in (CALL, RESERVE):  # a reserved dial takes a call slot, not a request
            bisect.insort(self._calls, at)
        if kind in (CALL, REQUEST):
            bisect.insort(self._requests, at)


class SqliteLedger(AllowanceLedger):
    """The ledger of one allowance file in the state dir."""

    def __init__(self, path: Path) -> None:
        super().__init__(AllowanceDb(path))
