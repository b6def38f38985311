"""The tables a manager asks for, as summary.json keys (report.html shows the same).

Each is a pure function of the rows of results.csv, the calls placed and the run's facts:
the campaign's span and its runs, rows per country, the callbacks requested, why calls
failed, when retries are due, the cost estimate beside the actual cost, attempts per row.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign.reporting.files import CallRecord, RowResult, RunFacts

MAX_CALLBACKS = 200  # listed in summary.json and report.html; all are in results.csv
_CALLED_STATES = ("done", "pending", "retry_scheduled", "failed")
_ANSWERED_STATUS = "completed"


def report_tables(
    rows: Sequence[RowResult], calls: Sequence[CallRecord], facts: RunFacts, actual_cost: str
) -> dict[str, Any]:
    """The summary.json keys added after ``funnel`` (stable names, documented)."""
    return {
        "span": campaign_span(calls),
        "runs": run_log(calls, facts),
        "by_country": by_country(rows),
        "callbacks": callbacks(rows),
        "failure_reasons": failure_reasons(calls),
        "retries_due": retries_due(rows),
        "cost_estimate": cost_estimate(facts, actual_cost),
        "attempts_per_row": attempts_per_row(rows),
        "rows_with_extension": sum(1 for r in rows if r.extension),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def campaign_span(calls: Sequence[CallRecord]) -> dict[str, Any]:
    """First call → last call over every run (not only this one)."""
    placed = [_aware(call.placed_at) for call in calls]
    return {
        "first_call_at": _iso(min(placed, default=None)),
        "last_call_at": _iso(max(placed, default=None)),
        "calls": len(placed),
    }


def run_log(calls: Sequence[CallRecord], facts: RunFacts) -> list[dict[str, Any]]:
    """Every run, oldest first, with the calls placed while it ran."""
    stamps = sorted(_aware(call.placed_at) for call in calls)
    runs = []
    for index, run in enumerate(facts.runs):
        started = _aware(run.started_at)
        current = (
            run.ended_at is None and abs((started - _aware(facts.started_at)).total_seconds()) < 1
        )
        ended = _aware(facts.ended_at) if current else run.ended_at
        following = facts.runs[index + 1].started_at if index + 1 < len(facts.runs) else None
        until = ended or (None if following is None else _aware(following))
        last = len(stamps) if until is None else bisect.bisect_right(stamps, until)
        placed = max(last - bisect.bisect_left(stamps, started), 0)
        runs.append(
            {
                "started_at": _iso(started),
                "ended_at": _iso(ended),
                "exit_code": run.exit_code,
                "this_run": current,
                "calls_placed": placed,
                "command": run.command,
            }
        )
    return runs


def by_country(rows: Sequence[RowResult]) -> dict[str, dict[str, int]]:
    """Rows per country of their number: read, callable, called, answered, goal achieved."""
    table: dict[str, Counter[str]] = {}
    for row in rows:
        counts = table.setdefault(row.region or "unknown", Counter())
        counts["rows"] += 1
        if row.state in _CALLED_STATES:
            counts["callable"] += 1
        if row.state == "duplicate":
            continue  # a duplicate may echo its first row's call: never counted twice
        if row.attempts:
            counts["called"] += 1
            counts["answered"] += row.last_status == _ANSWERED_STATUS
            counts["goal_achieved"] += row.goal_achieved is True
    keys = ("rows", "callable", "called", "answered", "goal_achieved")
    ordered = sorted(table.items(), key=lambda item: (-item[1]["rows"], item[0]))
    return {country: {key: counts[key] for key in keys} for country, counts in ordered}


def callbacks(rows: Sequence[RowResult]) -> dict[str, Any]:
    """People whose last call ended with a callback request: who, when, what they said."""
    asked = [row for row in rows if row.outcome == "callback_requested"]
    return {
        "count": len(asked),
        "rows": [
            {
                "line": row.line,
                "key": row.row_key,
                "e164": row.e164,
                "variables": dict(row.variables),
                "asked_at": _iso(row.last_called_at),
                "slot_values": dict(row.slot_values or {}),
            }
            for row in asked[:MAX_CALLBACKS]
        ],
    }


def failure_reasons(calls: Sequence[CallRecord]) -> dict[str, int]:
    """Calls that failed (every attempt), per failure reason the API gave."""
    counter = Counter(
        call.failure_reason or "no reason given" for call in calls if call.status == "failed"
    )
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def retries_due(rows: Sequence[RowResult]) -> dict[str, Any]:
    """Rows waiting for a retry, per hour (UTC) they fall due."""
    due = sorted(_aware(r.next_due) for r in rows if r.state == "retry_scheduled" and r.next_due)
    waiting = sum(1 for r in rows if r.state == "retry_scheduled")
    by_hour: Counter[str] = Counter()
    for moment in due:
        by_hour[moment.strftime("%Y-%m-%dT%H:00:00Z")] += 1
    return {
        "rows": waiting,
        "next": _iso(due[0]) if due else None,
        "by_hour": dict(sorted(by_hour.items())),
    }


def cost_estimate(facts: RunFacts, actual: str) -> dict[str, Any] | None:
    """The campaign file's cost_estimate × calls placed, beside what the calls cost."""
    if facts.cost_estimate is None:
        return None
    estimate = facts.cost_estimate * facts.calls_placed
    difference = Decimal(actual) - estimate
    return {
        "per_call": f"{facts.cost_estimate:.2f}",
        "calls": facts.calls_placed,
        "amount": f"{estimate:.2f}",
        "actual": actual,
        "difference": f"{difference:+.2f}",
    }


def attempts_per_row(rows: Sequence[RowResult]) -> dict[str, int]:
    """Rows that could be called, per number of attempts made ("0", "1", …)."""
    counter = Counter(r.attempts for r in rows if r.state in _CALLED_STATES)
    return {str(n): counter[n] for n in range(max(counter, default=-1) + 1)}
