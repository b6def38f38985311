"""The send ledger: every send counted against one allowance, behind one interface.

An allowance is the limits of one API key and project (contract §4). Its ledger holds the
send times of every campaign on it and who those campaigns are; the limiter
(``campaign.limits.limiter``) decides over it, the fairness policy
(``campaign.limits.fairness``) reads and writes the participants. Two ledgers implement
``SendLedger``:

- ``MemoryLedger`` (here): this process's memory; one campaign alone, or several limiters
  in one process sharing it (tests).
- ``AllowanceLedger`` (``campaign.limits.allowance``): the shared allowance of every
  process on the same key, in a file of the state dir (``SqliteLedger``) or, with
  ``state_url``, in a PostgreSQL schema; its SQL lives in ``campaign.store.allowance``.

Both shared ledgers give what the Protocol asks: a transaction that serialises decisions,
an append-only record of sends, a table of participants.
"""

from __future__ import annotations

import bisect
import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

from campaign.store.allowance import Participant

SendKind = Literal["request", "call"]


@dataclass(frozen=True)
class SendTimes:
    """The sends a ledger counts, oldest first; read them, do not keep them across an await."""

    # Every request sent (a POST /calls is a request too).
    requests: Sequence[float]
    # Every call slot taken: calls not given back, and reserved batch dials (maybe future).
    calls: Sequence[float]


class ParticipantTable(Protocol):
    """The campaigns on one allowance: the part of a ledger the fairness policy uses."""

    def participants(self) -> list[Participant]:
        """Every participant ever registered (live or not), by name."""
        ...

    def put_participant(self, participant: Participant) -> None:
        """Insert or replace the row of ``participant.name``."""
        ...


class SendLedger(ParticipantTable, Protocol):
    """The sends and participants of one allowance (one API base URL and key).

    A decision reads and writes inside ``transaction()``: no other limiter on the same
    ledger, in this process or another, decides in between. Reads outside a transaction
    see what was committed.
    """

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic decision (nested use is not supported)."""
        ...

    def sends(self, since: float) -> SendTimes:
        """The sends after ``since`` at least (older ones may be included)."""
        ...

    def record_send(self, campaign: str, at: float, kind: SendKind) -> None:
        """Count one send of ``campaign`` at ``at``: a request, or a call (a request too)."""
        ...

    def release_call(self, campaign: str, at: float) -> None:
        """Give back the call slot of the call sent at exactly ``at`` (its request stays)."""
        ...

    def reserve_calls(self, campaign: str, times: Iterable[float]) -> None:
        """Take a call slot (no request) at each of ``times``: dials the platform makes."""
        ...

    def count_sends(self, campaign: str, at: float, kind: SendKind) -> int:
        """How many sends of ``kind`` at exactly ``at`` ``campaign`` has recorded."""
        ...

    def prune(self, sends_before: float, participants_before: float) -> None:
        """Forget sends at or before ``sends_before`` and participants not heard of since
        ``participants_before``."""
        ...

    def close(self) -> None:
        """Release the ledger's resources (again is harmless)."""
        ...


class MemoryLedger:
    """A ``SendLedger`` in this process's memory.

    Several limiters in one process may share one (each decision runs without an await,
    so the event loop serialises them); ``close`` does nothing.
    """

    def __init__(self) -> None:
        self._requests: list[float] = []
        self._calls: list[float] = []
        self._recorded: Counter[tuple[str, float, SendKind]] = Counter()
        self._participants: dict[str, Participant] = {}

    def __repr__(self) -> str:
        return f"MemoryLedger(requests={len(self._requests)}, calls={len(self._calls)})"

    def transaction(self) -> AbstractContextManager[None]:
        """Nothing to lock: the decisions of one event loop never interleave."""
        return contextlib.nullcontext()

    def sends(self, since: float) -> SendTimes:
        """Every send kept (the ledger is their only copy: it keeps what ``prune`` leaves)."""
        return SendTimes(self._requests, self._calls)

    def record_send(self, campaign: str, at: float, kind: SendKind) -> None:
        """Count one send."""
        bisect.insort(self._requests, at)
        if kind == "call":
            bisect.insort(self._calls, at)
        self._recorded[(campaign, at, kind)] += 1

    def release_call(self, campaign: str, at: float) -> None:
        """Give back one call slot taken at exactly ``at``."""
        index = bisect.bisect_left(self._calls, at)
        if index < len(self._calls) and self._calls[index] == at:
            del self._calls[index]

    def reserve_calls(self, campaign: str, times: Iterable[float]) -> None:
        """Take a call slot at each of ``times``."""
        for at in times:
            bisect.insort(self._calls, at)

    def count_sends(self, campaign: str, at: float, kind: SendKind) -> int:
        """How many sends of ``kind`` at exactly ``at`` ``campaign`` has recorded."""
        return self._recorded[(campaign, at, kind)]

    def prune(self, sends_before: float, participants_before: float) -> None:
        """Forget old sends and long-gone participants."""
        for times in (self._requests, self._calls):
            del times[: bisect.bisect_right(times, sends_before)]
        for key in [key for key in self._recorded if key[1] <= sends_before]:
            del self._recorded[key]
        for name in [n for n, p in self._participants.items() if p.heartbeat < participants_before]:
            del self._participants[name]

    def participants(self) -> list[Participant]:
        """Every participant, by name."""
        return [self._participants[name] for name in sorted(self._participants)]

    def put_participant(self, participant: Participant) -> None:
        """Insert or replace a participant's row."""
        self._participants[participant.name] = participant

    def close(self) -> None:
        """Nothing to release."""
