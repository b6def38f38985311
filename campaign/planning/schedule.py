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

    def reason_closed(self, at: float) -> str: ...


WindowFor = Callable[[StoredRow], CallingWindowLike]

# The reason ``next_due`` gives when rows can be called at once.
DUE_NOW = "rows are due now"


def next_due(
    store: Store,
    window_for: WindowFor,
    now: float,
    *,
    margin_s: float = 0.0,
    tried_now: bool = False,
) -> tuple[float | None, str | None]:
    """When the next waiting row can be called (retry time or calling window), and why.

    ``now`` is wall-clock time; a window that closes within ``margin_s`` (the
    ``stop_before_close`` kept before a close, plus any slack the mode needs) counts as
    closed. A row that can be called at ``now`` makes the answer ``now`` (``DUE_NOW``): a
    run that stopped early leaves such rows, and a scheduler that trusts this answer must
    rerun at once, not wait for the next retry. With ``tried_now``, every row that could
    go at ``now`` was offered and left out (batches mode: no batch could dial it in time),
    so it is due when its next window opens.

    Rows are looked at per calling window (``Store.waiting_groups``: a group's pending
    rows, and its soonest retry), so the cost is that of the groups, not of the list;
    ``window_for`` must depend on a row's timezones and US state alone, as
    ``WindowBook.window_for`` does. Of two rows due at the same moment, the smaller line
    gives the reason.
    """
    best: tuple[float, int, str] | None = None

    def consider(window: CallingWindowLike, start: float, why: str, line: int) -> None:
        nonlocal best
        due = _due(window, start, why, now, margin_s=margin_s, tried_now=tried_now)
        if due is not None and (best is None or (due[0], line) < best[:2]):
            best = (due[0], line, due[1])

    for attempt in store.attempts("sending"):
        row = store.row(attempt.row_key)
        if row.progress == "in_flight" and not row.vanished:
            consider(window_for(row), now, "calling window opens", row.line)
    for group in store.waiting_groups():
        window = window_for(group.row)
        if group.first_pending_line is not None:
            consider(window, now, "calling window opens", group.first_pending_line)
        if group.retry_due is not None and group.retry_line is not None:
            consider(window, max(group.retry_due, now), "retry", group.retry_line)
    return (None, None) if best is None else (best[0], best[2])


def _due(
    window: CallingWindowLike,
    start: float,
    why: str,
    now: float,
    *,
    margin_s: float,
    tried_now: bool,
) -> tuple[float, str] | None:
    """When a row that may go from ``start`` on can be called, and why; None: never."""
    due: float | None
    if not _open(window, start, margin_s):
        due = _next_open(window, start, margin_s)
    elif start > now:
        due = start
    elif tried_now:
        due = _after_this_window(window, start)
        if due is not None and due <= now:  # a window that never closes
            why = DUE_NOW
    else:
        due, why = now, DUE_NOW
    if due is None:
        if why != "retry":
            return None
        due = start  # a window that never opens again: say when the retry fell due
    return due, why


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
        return _after_this_window(window, at)
    return window.next_open(at)


def _after_this_window(window: CallingWindowLike, at: float) -> float | None:
    """When the window after the one open at ``at`` opens (``at`` if it never closes)."""
    closes = window.closes_at(at)
    return at if closes is None else window.next_open(closes)
