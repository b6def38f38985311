"""When rows may be called: the calling-window protocol and the next-due computation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from campaign.store import Store, StoredRow


class CallingWindowLike(Protocol):
    """What the engine asks of a recipient's calling window."""

    def is_open(self, at: float) -> bool: ...

    def closes_at(self, at: float) -> float | None: ...

    def next_open(self, at: float) -> float | None: ...


WindowFor = Callable[[StoredRow], CallingWindowLike]


def next_due(store: Store, window_for: WindowFor, now: float) -> tuple[float | None, str | None]:
    """When the next waiting row can be called (retry time or calling window), and why."""
    soonest: float | None = None
    reason: str | None = None
    unsent = {a.row_key for a in store.attempts("sending")}
    for row in store.rows(include_vanished=False):
        if row.progress == "retry_scheduled" and row.next_due is not None:
            due = row.next_due
            window = window_for(row)
            if not window.is_open(max(due, now)):
                due = window.next_open(max(due, now)) or due
            why = "retry"
        elif row.progress == "pending" or (row.progress == "in_flight" and row.row_key in unsent):
            window = window_for(row)
            if window.is_open(now):
                continue
            opens = window.next_open(now)
            if opens is None:
                continue
            due, why = opens, "calling window opens"
        else:
            continue
        if soonest is None or due < soonest:
            soonest, reason = due, why
    return soonest, reason
