"""A small synthetic run (rows, calls, facts) for the report tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from campaign.reporting.files import CallRecord, RowResult, RunFacts, State

START = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def row(
    line: int,
    state: State,
    *,
    key: str | None = None,
    phone: str = "(415) 555-0100",
    e164: str | None = "+14155550100",
    attempts: int = 0,
    status: str | None = None,
    outcome: str | None = None,
    goal: bool | None = None,
    reason: str | None = None,
    first_name: str = "Ana",
) -> RowResult:
    """One RowResult with sensible defaults."""
    return RowResult(
        line=line,
        row_key=key or f"cust-{line:03d}",
        raw_phone=phone,
        e164=e164,
        state=state,
        attempts=attempts,
        last_call_id=f"call_{line:03d}" if attempts else None,
        last_status=status,
        outcome=outcome,
        goal_achieved=goal,
        reason=reason,
        variables={"first_name": first_name, "plan": "gold"},
    )


def sample_run() -> tuple[list[RowResult], list[CallRecord], RunFacts]:
    """Ten rows covering every state, the calls behind them, and the run's facts."""
    rows = [
        row(2, "done", attempts=1, status="completed", outcome="goal_achieved", goal=True),
        row(3, "done", attempts=1, status="completed", outcome="declined", goal=False),
        row(4, "done", attempts=2, status="completed", outcome="goal_achieved", goal=True),
        row(5, "retry_scheduled", attempts=1, status="no_answer", reason="retry after 4h"),
        row(6, "failed", attempts=1, status="failed", reason="carrier_rejected"),
        row(7, "rejected", phone="12345", e164=None, reason="too short"),
        row(8, "rejected", phone="call me", e164=None, reason="not a phone number"),
        row(9, "suppressed", reason="on the do-not-call list"),
        row(10, "duplicate", reason="same number as line 2"),
        row(11, "pending", first_name="<script>alert(1)</script>"),
    ]
    calls: list[CallRecord] = []
    for r in rows:
        for attempt in range(1, r.attempts + 1):
            last = attempt == r.attempts
            status = r.last_status if last else "no_answer"
            placed = START + timedelta(minutes=3 * r.line + 40 * (attempt - 1))
            completed = status == "completed"
            calls.append(
                CallRecord(
                    row_key=r.row_key,
                    attempt=attempt,
                    call_id=f"call_{r.line:03d}_{attempt}",
                    placed_at=placed,
                    ended_at=placed + timedelta(minutes=2),
                    status=status,
                    outcome=r.outcome if last else None,
                    goal_achieved=r.goal_achieved if last else None,
                    cost=Decimal("0.11") if completed else Decimal("0.02"),
                    currency="USD",
                    duration_s=74 if completed else 0,
                )
            )
    facts = RunFacts(
        campaign="spring-renewals-2026",
        mode="calls",
        started_at=START,
        ended_at=START + timedelta(hours=1, seconds=5.5),
        finished=False,
        dry_run=False,
        calls_placed=len(calls),
        requests_spent=42,
        calling_hours="unrestricted (test list)",
        next_due=START + timedelta(hours=5),
        next_due_reason="1 retry after 4h",
        key_column="customer_id",
        variables=["first_name", "plan"],
        input_path="sample_data/spring_contacts.csv",
    )
    return rows, calls, facts
