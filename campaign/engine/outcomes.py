"""What an ended call means for the checkpoint, in either mode.

``decide`` is the retry rule (pure; tested as a table); ``record_call_end`` folds one
ended call in — the row's next state, the attempt's end, and the opt-out list for the
number that was called; ``fetch_sessions`` adds the facts the report needs.

A retry after ``no_answer`` or ``busy`` goes to a part of the recipient's day (morning
08–12, afternoon 12–17, evening 17–21, local time in the row's first timezone) that the
row's calls have not tried yet — someone out every morning may be in every evening. It
falls due at the first moment, at least ``retry.min_interval`` after the call ended, that
lies in such a part and inside the recipient's calling window; when every part has been
tried, the least-tried one (not the last one tried, if another ties). ``retry.dayparts:
any`` keeps the plain rule: due ``min_interval`` after the call ended.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaign.engine.api import SessionReader
from campaign.planning.dayparts import DAYPARTS, Daypart
from campaign.planning.hours import calling_window
from campaign.planning.schedule import CallingWindowLike, WindowFor
from campaign.planning.windows import EpochWindow
from campaign.store.checkpoint import Attempt, CallEnd, RowProgress, Store, StoredRow
from campaign.store.optout import OptOutList

SESSION_FETCH_PARALLEL = 8

# Statuses that say the person was not reached at that time of day.
ROTATED_STATUSES = ("no_answer", "busy")
# A weekly calling window repeats after 7 days: a part not open within 8 never opens.
_SEARCH_DAYS = 8


class RetryRules(Protocol):
    """The parts of the campaign's ``retry:`` settings that decide a row's next state."""

    statuses: list[str]
    max_attempts: int
    min_interval_s: float
    stop_outcomes: list[str]
    dayparts: Literal["rotate", "any"]


@dataclass(frozen=True)
class RowDecision:
    """Where a row goes after one of its calls ended."""

    progress: RowProgress
    reason: str | None = None
    next_due: float | None = None
    void: bool = False


def decide(
    end: CallEnd,
    attempts_used: int,
    retry: RetryRules,
    now: float,
    *,
    timezones: Sequence[str] = (),
    tried: Sequence[Daypart] = (),
    window: CallingWindowLike | None = None,
) -> RowDecision:
    """The row's next state after a terminal call status (pure; tested as a table).

    ``timezones`` are the row's, ``tried`` the parts of the day its calls started in
    (this one included, oldest first), ``window`` its calling window (None: any time).
    """
    if end.status == "failed" and end.failure_reason == "insufficient_funds":
        return RowDecision("pending", "wallet empty: called again after a top-up", void=True)
    if end.status == "completed":
        if end.outcome in retry.stop_outcomes:
            return RowDecision("done", f"stop outcome {end.outcome}: never called again")
        return RowDecision("done", None)
    if end.status in retry.statuses:
        if attempts_used < retry.max_attempts:
            due = (end.ended_at or now) + retry.min_interval_s
            zone = first_zone(timezones)
            if retry.dayparts == "any" or end.status not in ROTATED_STATUSES or zone is None:
                return RowDecision(
                    "retry_scheduled", f"{end.status}; retry scheduled", next_due=due
                )
            due = retry_moment(due, zone, tried, window)
            part = daypart_at(due, zone)
            where = f" in the recipient's {part}" if part else ""
            return RowDecision(
                "retry_scheduled", f"{end.status}; retry scheduled{where}", next_due=due
            )
        return RowDecision("failed", f"{end.status} after {attempts_used} attempts")
    if end.status in ("failed", "canceled"):
        return RowDecision(
            "failed", f"call {end.status}: {end.failure_reason or 'no reason given'}"
        )
    return RowDecision("done", None)


def first_zone(timezones: Sequence[str]) -> ZoneInfo | None:
    """The row's first timezone, the one its day is read in (None if unknown)."""
    if not timezones:
        return None
    try:
        return ZoneInfo(timezones[0])
    except (ZoneInfoNotFoundError, ValueError):
        return None


def daypart_at(moment: float, zone: ZoneInfo) -> Daypart | None:
    """The part of the recipient's day ``moment`` falls in (None: the night, 21–08)."""
    hour = datetime.fromtimestamp(moment, zone).hour
    return next((part for part, start, end in DAYPARTS if start <= hour < end), None)


def retry_moment(
    earliest: float,
    zone: ZoneInfo,
    tried: Sequence[Daypart],
    window: CallingWindowLike | None,
) -> float:
    """The first moment ≥ ``earliest`` in the least-tried part of the day, in the window.

    Parts never tried come first; among parts tried as often, not the last one tried; then
    the earliest. ``earliest`` itself when no part of the day opens within a week.
    """
    counts = Counter(tried)
    last = tried[-1] if tried else None

    def rank(part: Daypart) -> tuple[int, bool]:
        return counts[part], part == last

    best = min(rank(part) for part, _, _ in DAYPARTS)
    seen: set[Daypart] = set()
    candidates: list[tuple[tuple[int, bool], float]] = []
    first_day = datetime.fromtimestamp(earliest, zone).date()
    # Days and their parts are visited in time order: the first part of the best rank
    # found is the answer.
    for offset in range(_SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        for part, start_h, end_h in DAYPARTS:
            if part in seen:
                continue
            start, end = _local(day, start_h, zone), _local(day, end_h, zone)
            if end <= earliest:
                continue
            moment = _first_open(max(start, earliest), end, window)
            if moment is None:
                continue
            if rank(part) == best:
                return moment
            seen.add(part)
            candidates.append((rank(part), moment))
    return min(candidates)[1] if candidates else earliest


def _local(day: date, hour: int, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(hour), zone).timestamp()


def _first_open(start: float, end: float, window: CallingWindowLike | None) -> float | None:
    """The first moment in [start, end) at which the window is open."""
    if window is None or window.is_open(start):
        return start
    opens = window.next_open(start)
    return opens if opens is not None and opens < end else None


@functools.lru_cache(maxsize=1024)
def _legal_window(timezones: tuple[str, ...], us_state: str | None) -> EpochWindow:
    """The legal default window of a recipient (when the caller gives no campaign window)."""
    return EpochWindow(calling_window(list(timezones), us_state, None))


def tried_dayparts(store: Store, attempt: Attempt, zone: ZoneInfo) -> list[Daypart]:
    """The parts of the day the row's calls started in, oldest first, ``attempt`` included."""
    parts = []
    for fact in store.call_facts(attempt.row_key):
        placed = fact.state in ("sent", "ended") or fact.number == attempt.number
        part = daypart_at(fact.started_at, zone) if placed else None
        if part is not None:
            parts.append(part)
    return parts


def _decide_for_row(
    store: Store,
    row: StoredRow,
    attempt: Attempt,
    end: CallEnd,
    retry: RetryRules,
    now: float,
    window_for: WindowFor | None,
) -> RowDecision:
    zone = first_zone(row.timezones)
    if (
        zone is None
        or retry.dayparts == "any"
        or end.status not in ROTATED_STATUSES
        or end.status not in retry.statuses
        or row.attempts_used >= retry.max_attempts
    ):
        return decide(end, row.attempts_used, retry, now)
    window = (
        window_for(row)
        if window_for is not None
        else _legal_window(tuple(row.timezones), row.us_state)
    )
    return decide(
        end,
        row.attempts_used,
        retry,
        now,
        timezones=row.timezones,
        tried=tried_dayparts(store, attempt, zone),
        window=window,
    )


def record_call_end(
    store: Store,
    attempt: Attempt,
    end: CallEnd,
    *,
    dialled: str | None,
    campaign: str,
    retry: RetryRules,
    opt_outs: OptOutList,
    now: float,
    window_for: WindowFor | None = None,
) -> RowDecision:
    """Fold one ended call into the checkpoint: decide, end the attempt, note an opt-out.

    ``dialled`` is the number the API says it rang, when it says; else the attempt's
    recorded number. An opt-out is recorded for that number, whatever the row's number
    is today. ``window_for`` gives the campaign's calling windows, inside which a retry is
    placed; without it, the legal default window (the send gate still checks the
    campaign's window when the retry is sent).
    """
    row = store.row(attempt.row_key)
    decision = _decide_for_row(store, row, attempt, end, retry, now, window_for)
    store.end_attempt(
        attempt.idempotency_key,
        end,
        row_progress=decision.progress,
        row_reason=decision.reason,
        next_due=decision.next_due,
        void=decision.void,
    )
    called = dialled or attempt.phone or row.e164
    if end.outcome == "opted_out" and called:
        opt_outs.add(called, campaign=campaign, row_key=row.row_key, now=now)
    return decision


async def fetch_sessions(
    store: Store, client: SessionReader, *, parallel: int = SESSION_FETCH_PARALLEL
) -> int:
    """Fetch slot values, cost and duration for ended calls that have a session."""
    waiting = store.attempts_needing_session()
    for start in range(0, len(waiting), parallel):
        chunk = waiting[start : start + parallel]
        sessions = await asyncio.gather(*(client.get_session(a.session_id or "") for a in chunk))
        with store.transaction():
            for attempt, session in zip(chunk, sessions, strict=True):
                store.record_session(
                    attempt.idempotency_key,
                    slot_values=session.slot_values,
                    cost=str(session.costs.amount),
                    currency=session.costs.currency,
                    duration_s=session.duration_s,
                )
    return len(waiting)
