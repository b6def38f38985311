"""What an ended call means for the checkpoint, in either mode.

``decide`` is the retry rule (pure; tested as a table); ``record_call_end`` folds one
ended call in — the row's next state, the attempt's end, and the opt-out list for the
number that was called; ``fetch_sessions`` adds the facts the report needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from campaign.engine.api import SessionReader
from campaign.store.checkpoint import Attempt, CallEnd, RowProgress, Store
from campaign.store.optout import OptOutList

SESSION_FETCH_PARALLEL = 8


class RetryRules(Protocol):
    """The parts of the campaign's ``retry:`` settings that decide a row's next state."""

    statuses: list[str]
    max_attempts: int
    min_interval_s: float
    stop_outcomes: list[str]


@dataclass(frozen=True)
class RowDecision:
    """Where a row goes after one of its calls ended."""

    progress: RowProgress
    reason: str | None = None
    next_due: float | None = None
    void: bool = False


def decide(end: CallEnd, attempts_used: int, retry: RetryRules, now: float) -> RowDecision:
    """The row's next state after a terminal call status (pure; tested as a table)."""
    if end.status == "failed" and end.failure_reason == "insufficient_funds":
        return RowDecision("pending", "wallet empty: called again after a top-up", void=True)
    if end.status == "completed":
        if end.outcome in retry.stop_outcomes:
            return RowDecision("done", f"stop outcome {end.outcome}: never called again")
        return RowDecision("done", None)
    if end.status in retry.statuses:
        if attempts_used < retry.max_attempts:
            due = (end.ended_at or now) + retry.min_interval_s
            return RowDecision("retry_scheduled", f"{end.status}; retry scheduled", next_due=due)
        return RowDecision("failed", f"{end.status} after {attempts_used} attempts")
    if end.status in ("failed", "canceled"):
        return RowDecision(
            "failed", f"call {end.status}: {end.failure_reason or 'no reason given'}"
        )
    return RowDecision("done", None)


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
) -> RowDecision:
    """Fold one ended call into the checkpoint: decide, end the attempt, note an opt-out.

    ``dialled`` is the number the API says it rang, when it says; else the attempt's
    recorded number. An opt-out is recorded for that number, whatever the row's number
    is today.
    """
    row = store.row(attempt.row_key)
    decision = decide(end, row.attempts_used, retry, now)
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
