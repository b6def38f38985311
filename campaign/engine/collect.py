"""Collecting outcomes: poll ``GET /calls?updated_since=…`` a page at a time, decide retries.

One list request covers up to 100 changed calls, so the request cost per row stays near
one POST plus (optionally) one session fetch. The watermark is the newest ``updated_at``
the server showed us, less a second of overlap (inclusive, server time, so our clock's
skew does not matter); it is stored after each poll, once what it taught us is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from campaign.engine.attempts import idempotency_key, metadata_matches
from campaign.store.checkpoint import CallEnd, Progress, Store
from campaign.store.optout import OptOutList

log = logging.getLogger("campaign.engine.collect")

TERMINAL_STATUSES = frozenset({"completed", "no_answer", "busy", "voicemail", "failed", "canceled"})
PAGE_LIMIT = 100
WATERMARK_KEY = "collect_watermark"
SESSION_FETCH_PARALLEL = 8
WATERMARK_OVERLAP_S = 1.0


class RetryPolicy(Protocol):
    """The parts of the campaign's ``retry:`` settings the collector needs."""

    statuses: list[str]
    max_attempts: int
    min_interval_s: float
    stop_outcomes: list[str]


@dataclass(frozen=True)
class RowDecision:
    """Where a row goes after one of its calls ended."""

    progress: Progress
    reason: str | None = None
    next_due: float | None = None
    void: bool = False


def decide(end: CallEnd, attempts_used: int, retry: RetryPolicy, now: float) -> RowDecision:
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


def timestamp(value: object) -> float | None:
    """Epoch seconds from a datetime or an RFC 3339 string (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def rfc3339(value: object) -> str:
    """RFC 3339 UTC text (with fractions when present) from a datetime, string or epoch."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        text = moment.astimezone(UTC).isoformat()
        return text.replace("+00:00", "Z")
    return str(value)


@dataclass
class PollResult:
    """What one poll learned."""

    pages: int = 0
    ended: int = 0
    insufficient_funds: int = 0
    ended_keys: list[str] = field(default_factory=list)


class CallsLister(Protocol):
    """The client method the collector uses."""

    async def list_calls(self, **params: Any) -> Any: ...


def apply_call(
    store: Store,
    call: Any,
    *,
    campaign: str,
    retry: RetryPolicy,
    opt_outs: OptOutList,
    now: float,
    result: PollResult,
) -> None:
    """Fold one call seen on the API into the checkpoint (idempotent)."""
    match = metadata_matches(getattr(call, "metadata", None), campaign)
    if match is None:
        return
    row_key, number = match
    key = idempotency_key(campaign, row_key, number)
    try:
        attempt = store.attempt(key)
    except Exception:  # a call of ours the checkpoint does not know (another state dir)
        log.warning("call %s carries this campaign's metadata but no attempt matches", call.id)
        return
    if attempt.state not in ("sending", "sent", "withheld"):
        return
    if attempt.state in ("sending", "withheld"):
        # The response to our POST was lost, but the list shows the call exists.
        store.mark_sent(key, call.id, call.status, now)
    updated = rfc3339(call.updated_at) if getattr(call, "updated_at", None) else None
    if call.status not in TERMINAL_STATUSES:
        if call.status != attempt.status:
            store.record_status(key, call.status, updated)
        return
    end = CallEnd(
        status=call.status,
        outcome=getattr(call, "outcome", None),
        goal_achieved=getattr(call, "goal_achieved", None),
        failure_reason=getattr(call, "failure_reason", None),
        session_id=getattr(call, "session_id", None),
        ended_at=timestamp(getattr(call, "ended_at", None)) or now,
        updated_at=updated,
    )
    row = store.row(row_key)
    decision = decide(end, row.attempts_used, retry, now)
    store.end_attempt(
        key,
        end,
        row_progress=decision.progress,
        row_reason=decision.reason,
        next_due=decision.next_due,
        void=decision.void,
    )
    result.ended += 1
    result.ended_keys.append(key)
    if decision.void:
        result.insufficient_funds += 1
    # The number that was called said stop, whatever the row's number is today.
    called = getattr(call, "phone", None) or attempt.phone or row.e164
    if end.outcome == "opted_out" and called:
        opt_outs.add(called, campaign=campaign, row_key=row_key, now=now)
    log.info(
        "row %s attempt %d ended %s%s",
        row_key,
        number,
        end.status,
        f" ({end.outcome})" if end.outcome else "",
    )


async def poll_once(
    store: Store,
    client: CallsLister,
    *,
    campaign: str,
    retry: RetryPolicy,
    opt_outs: OptOutList,
    now: float,
    default_since: float,
) -> PollResult:
    """Page through calls updated since the watermark and record what changed."""
    result = PollResult()
    watermark = store.get_meta(WATERMARK_KEY) or rfc3339(default_since)
    cursor: str | None = None
    newest = watermark
    while True:
        params: dict[str, Any] = {"updated_since": watermark, "limit": PAGE_LIMIT}
        if cursor:
            params["cursor"] = cursor
        page = await client.list_calls(**params)
        result.pages += 1
        with store.batch():
            for call in page.data:
                apply_call(
                    store,
                    call,
                    campaign=campaign,
                    retry=retry,
                    opt_outs=opt_outs,
                    now=now,
                    result=result,
                )
                if getattr(call, "updated_at", None) is not None:
                    seen = rfc3339(call.updated_at)
                    if (timestamp(seen) or 0.0) > (timestamp(newest) or 0.0):
                        newest = seen
        cursor = page.next_cursor
        if not cursor:
            break
    # Step back a little: an update committed late with an earlier updated_at (another
    # server node, a slow transaction) is then still seen; seeing a call twice is harmless.
    floor = rfc3339((timestamp(newest) or 0.0) - WATERMARK_OVERLAP_S)
    if (timestamp(floor) or 0.0) > (timestamp(watermark) or 0.0) or store.get_meta(
        WATERMARK_KEY
    ) is None:
        store.set_meta(WATERMARK_KEY, floor if newest != watermark else watermark)
    return result


def reset_watermark_before(store: Store, moment: float) -> None:
    """Move the watermark back so calls changed since ``moment`` are seen again."""
    current = store.get_meta(WATERMARK_KEY)
    if current is None or (timestamp(current) or 0.0) > moment:
        store.set_meta(WATERMARK_KEY, rfc3339(moment))


class SessionGetter(Protocol):
    """The client method for session facts."""

    async def get_session(self, session_id: str) -> Any: ...


async def fetch_sessions(
    store: Store, client: SessionGetter, *, parallel: int = SESSION_FETCH_PARALLEL
) -> int:
    """Fetch slot values, cost and duration for ended calls that have a session."""
    waiting = store.attempts_needing_session()
    for start in range(0, len(waiting), parallel):
        chunk = waiting[start : start + parallel]
        sessions = await asyncio.gather(*(client.get_session(a.session_id or "") for a in chunk))
        with store.batch():
            for attempt, session in zip(chunk, sessions, strict=True):
                costs = getattr(session, "costs", None)
                amount = getattr(costs, "amount", None) if costs is not None else None
                store.record_session(
                    attempt.idempotency_key,
                    slot_values=getattr(session, "slot_values", None),
                    cost=None if amount is None else str(amount),
                    currency=getattr(costs, "currency", None) if costs is not None else None,
                    duration_s=getattr(session, "duration_s", None),
                )
    return len(waiting)
