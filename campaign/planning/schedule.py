"""When rows may be called: the calling-window protocol and the next-due computation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from campaign.store.checkpoint import Store, StoredRow


class CallingWindowLike(Protocol):
    """What the engine asks of a recipient's calling window."""

    def is_open(self, at: float) -> bool: ...

    def closes_at(self, at: float) -> float | None: ...

    def next_open(self, at: float) -> float | None: ...


WindowFor = Callable[[StoredRow], CallingWindowLike]


def next_due(
    store: Store, window_for: WindowFor, now: float, *, margin_s: float = 0.0
) -> tuple[float | None, str | None]:
    """When the next waiting row can be called (retry time or calling window), and why.

    ``now`` is wall-clock time; a window that closes within ``margin_s`` (the
    ``stop_before_close`` kept before a close) counts as closed.
    """
    soonest: float | None = None
    reason: str | None = None
    unsent = {a.row_key for a in store.attempts("sending")}
    for row in store.rows(include_vanished=False):
        if row.progress == "retry_scheduled" and row.next_due is not None:
            due = max(row.next_due, now)
            window = window_for(row)
            if not _open(window, due, margin_s):
                due = _next_open(window, due, margin_s) or due
            why = "retry"
        elif row.progress == "pending" or (row.progress == "in_flight" and row.row_key in unsent):
            window = window_for(row)
            if _open(window, now, margin_s):
                continue
            opens = _next_open(window, now, margin_s)
            if opens is None:
                continue
            due, why = opens, "calling window opens"
        else:
            continue
        if soonest is None or due < soonest:
            soonest, reason = due, why
    return soonest, reason


def _open(window: CallingWindowLike, at: float, margin_s: float) -> bool:
    """Open at ``at`` with at least ``margin_s`` left before it closes."""
    if not window.is_open(at):
        return False
    closes = window.closes_at(at)
    return closes is None or at + margin_s <= closes


def _next_open(window: CallingWindowLike, at: float, margin_s: float) -> float | None:
    """The next moment at or after ``at`` that is ``_open``."""
    if _open(window, at, margin_s):
        return at
    if window.is_open(at):  # inside the margin: the next window after this one closes
        closes = window.closes_at(at)
        return None if closes is None else window.next_open(closes)
    return window.next_open(at)
