"""From checkpoint to outputs: one RowResult per input row, one CallRecord per call placed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from campaign.clock import utc
from campaign.reporting.files import CallRecord, RowResult, RunRecord, State
from campaign.store.checkpoint import RowProgress, Store, StoredRow
from campaign.store.models import ResultRow
from campaign.store.queue import probe_row

_STATE_OF_PROGRESS: dict[str, State] = {
    "pending": "pending",
    "in_flight": "pending",
    "retry_scheduled": "retry_scheduled",
    "done": "done",
    "failed": "failed",
}
_BLOCKED: dict[str, State] = {
    "rejected": "rejected",
    "suppressed": "suppressed",
    "duplicate": "duplicate",
}

PendingReason = Callable[[StoredRow], str | None]


def row_state(row: StoredRow) -> State:
    """The results.csv state of a row."""
    return state_of(row.progress, row.plan_state)


def row_results(store: Store, pending_reason: PendingReason | None = None) -> list[RowResult]:
    """Every row of the current input, in input order, with its last attempt's facts."""
    return list(iter_row_results(store, pending_reason))


def iter_row_results(
    store: Store, pending_reason: PendingReason | None = None
) -> Iterator[RowResult]:
    """``row_results`` one row at a time, from a checkpoint cursor (never a list).

    ``pending_reason`` is asked once per calling window group and progress (it may read
    a row's progress, timezones and US state only, as ``WindowBook.pending_reason`` does).
    """
    reasons: dict[tuple[str, str], str | None] = {}
    for r in store.result_rows():
        state = state_of(r.progress, r.plan_state)
        reason = r.reason
        if state == "pending" and pending_reason is not None:
            group = (r.window_key, r.progress)
            if group not in reasons:
                progress = cast(RowProgress, group[1])
                reasons[group] = pending_reason(replace(probe_row(group[0]), progress=progress))
            reason = reasons[group] or reason
        yield row_result(r, state, reason)


def row_result(r: ResultRow, state: State, reason: str | None) -> RowResult:
    """The ``RowResult`` of one checkpoint row in this state, with this reason."""
    called = r.sending_at is not None
    goal = r.goal_achieved
    return RowResult(
        line=r.line,
        row_key=r.label,
        raw_phone=r.raw_phone or "",
        e164=r.e164,
        state=state,
        attempts=r.attempts_used,
        last_call_id=r.call_id,
        last_status=r.status,
        outcome=r.outcome,
        goal_achieved=None if goal is None else bool(goal),
        reason=reason,
        variables={
            k: "" if v is None else str(v) for k, v in json.loads(r.variables or "{}").items()
        },
        region=r.region,
        extension=r.extension,
        note=r.note,
        next_due=None if r.next_due is None else utc(r.next_due),
        last_called_at=(
            None if r.call_id is None or r.sending_at is None else utc(r.sent_at or r.sending_at)
        ),
        slot_values=None if not called or r.slot_values is None else json.loads(r.slot_values),
    )


def run_records(store: Store) -> tuple[RunRecord, ...]:
    """The checkpoint's run log, oldest first, for the report's header and runs table."""
    return tuple(
        RunRecord(
            started_at=utc(float(run["started_at"])),
            ended_at=None if run["ended_at"] is None else utc(float(run["ended_at"])),
            exit_code=None if run["exit_code"] is None else int(run["exit_code"]),
            command=run["command"],
        )
        for run in store.runs()
    )


def call_records(store: Store) -> list[CallRecord]:
    """One record per attempt the API acknowledged (has a call id), with its recipient."""
    records = []
    for fact in store.call_facts():
        if fact.call_id is None:
            continue
        records.append(
            CallRecord(
                row_key=fact.row_key,
                attempt=fact.number,
                call_id=fact.call_id,
                placed_at=utc(fact.started_at),
                ended_at=None if fact.ended_at is None else utc(fact.ended_at),
                status=fact.status,
                outcome=fact.outcome,
                goal_achieved=fact.goal_achieved,
                cost=_decimal(fact.cost),
                currency=fact.currency,
                duration_s=None if fact.duration_s is None else int(fact.duration_s),
                failure_reason=fact.failure_reason,
                timezones=tuple(fact.timezones),
                region=fact.region,
                number_type=fact.number_type,
            )
        )
    return records


def _decimal(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def state_of(progress: str, plan_state: str) -> State:
    """The results.csv state of a row in this progress and plan state."""
    if progress == "blocked":
        return _BLOCKED.get(plan_state, "rejected")
    return _STATE_OF_PROGRESS[progress]


def progress_counts(store: Store) -> dict[str, Any]:
    """Rows by results state, attempts by state, calls in flight: what ``status`` shows.

    Counted by SQL (GROUP BY), never by loading the rows.
    """
    by_state: Counter[str] = Counter()
    total = vanished = 0
    for progress, plan_state, gone, n in store.row_counts():
        if gone:
            vanished += n
            continue
        total += n
        by_state[state_of(progress, plan_state)] += n
    attempts = store.attempt_counts()
    by_attempt = {state: n for state, n, _ in attempts}
    return {
        "rows_total": total,
        "rows_vanished": vanished,
        "by_state": dict(sorted(by_state.items())),
        "attempts_total": sum(by_attempt.values()),
        "attempts_by_state": dict(sorted(by_attempt.items())),
        "calls_placed": sum(called for _, _, called in attempts),
        "calls_in_flight": by_attempt.get("sent", 0),
        "unconfirmed_sends": by_attempt.get("sending", 0),
        "next_retry_due": store.soonest_retry(),
    }


def iso(ts: float | None) -> str | None:
    """RFC 3339 text of an epoch, or None."""
    if ts is None:
        return None
    moment: datetime = utc(ts)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
