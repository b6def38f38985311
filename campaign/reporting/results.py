"""From checkpoint to outputs: one RowResult per input row, one CallRecord per call placed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from campaign.clock import utc
from campaign.reporting.files import CallRecord, RowResult, RunRecord, State
from campaign.store.checkpoint import Attempt, Store, StoredRow

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
    if row.progress == "blocked":
        return _BLOCKED.get(row.plan_state, "rejected")
    return _STATE_OF_PROGRESS[row.progress]


def row_results(store: Store, pending_reason: PendingReason | None = None) -> list[RowResult]:
    """Every row of the current input, in input order, with its last attempt's facts."""
    last: dict[str, Attempt] = {}
    for attempt in store.attempts():
        if attempt.state == "void" and attempt.row_key in last:
            continue
        last[attempt.row_key] = attempt
    results = []
    for row in store.rows(include_vanished=False):
        found = last.get(row.row_key)
        state = row_state(row)
        reason = row.reason
        if state == "pending" and pending_reason is not None:
            reason = pending_reason(row) or reason
        results.append(
            RowResult(
                line=row.line,
                row_key=row.label,
                raw_phone=row.raw_phone,
                e164=row.e164,
                state=state,
                attempts=row.attempts_used,
                last_call_id=found.call_id if found else None,
                last_status=found.status if found else None,
                outcome=found.outcome if found else None,
                goal_achieved=found.goal_achieved if found else None,
                reason=reason,
                variables={k: "" if v is None else str(v) for k, v in row.variables.items()},
                region=row.region,
                extension=row.extension,
                note=row.note,
                next_due=None if row.next_due is None else utc(row.next_due),
                last_called_at=_placed_at(found),
                slot_values=found.slot_values if found else None,
            )
        )
    return results


def _placed_at(attempt: Attempt | None) -> datetime | None:
    if attempt is None or attempt.call_id is None:
        return None
    return utc(attempt.sent_at or attempt.sending_at)


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


def progress_counts(store: Store) -> dict[str, Any]:
    """Rows by results state, attempts by state, calls in flight: what ``status`` shows."""
    rows = store.rows(include_vanished=False)
    attempts = store.attempts()
    by_state = Counter(row_state(r) for r in rows)
    due = [r.next_due for r in rows if r.progress == "retry_scheduled" and r.next_due]
    return {
        "rows_total": len(rows),
        "rows_vanished": sum(1 for r in store.rows() if r.vanished),
        "by_state": dict(sorted(by_state.items())),
        "attempts_total": len(attempts),
        "attempts_by_state": dict(sorted(Counter(a.state for a in attempts).items())),
        "calls_placed": sum(1 for a in attempts if a.call_id),
        "calls_in_flight": sum(1 for a in attempts if a.state == "sent"),
        "unconfirmed_sends": sum(1 for a in attempts if a.state == "sending"),
        "next_retry_due": None if not due else min(due),
    }


def iso(ts: float | None) -> str | None:
    """RFC 3339 text of an epoch, or None."""
    if ts is None:
        return None
    moment: datetime = utc(ts)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
