"""The sandbox's stored objects: plain dataclasses that round-trip through JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "no_answer", "busy", "voicemail", "failed", "canceled"})


@dataclass
class CallRecord:
    """A call with its planned fate (hidden) and its visible state."""

    id: str
    project_id: str
    phone: str
    scenario_id: str
    variables: dict[str, Any]
    caller_id: str | None
    metadata: dict[str, str]
    not_before: float | None
    created_at: float
    updated_at: float
    idempotency_key: str | None
    batch_id: str | None
    batch_row: int | None
    # planned fate (outcomes.CallPlan, flattened)
    final_status: str
    planned_outcome: str | None
    planned_failure: str | None
    dial_at: float
    ring_s: float
    talk_s: float
    tool_calls: int
    slot_values: dict[str, str]
    # visible state
    status: str = "queued"
    dialed_at: float | None = None
    session_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    goal_achieved: bool | None = None
    failure_reason: str | None = None
    cost: str = "0.00"
    minutes: str = "0.00"
    billed_s: float = 0.0

    @property
    def terminal(self) -> bool:
        """Whether the call has reached a terminal status."""
        return self.status in TERMINAL


@dataclass
class BatchRow:
    """One data row of a batch file."""

    row: int
    row_ref: str | None
    phone: str | None
    variables: dict[str, str]
    status: str = "pending"
    call_id: str | None = None
    error: dict[str, str] | None = None


@dataclass
class BatchRecord:
    """A batch upload and its rows."""

    id: str
    project_id: str
    name: str | None
    scenario_id: str
    caller_id: str | None
    not_before: float | None
    created_at: float
    updated_at: float
    ready_at: float
    rows: list[BatchRow] = field(default_factory=list)
    status: str = "validating"
    completed_at: float | None = None
    next_row: int = 0


@dataclass
class WebhookRecord:
    """A webhook subscription (the secret is never rendered after creation)."""

    id: str
    project_id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: float
    secret: str


@dataclass
class KnowledgeFileRecord:
    """An uploaded knowledge file (only its size is kept)."""

    id: str
    project_id: str
    filename: str
    bytes: int
    created_at: float
    ready_at: float


@dataclass
class TransactionRecord:
    """A wallet movement."""

    id: str
    project_id: str
    amount: str
    kind: str
    created_at: float


def to_plain(record: Any) -> dict[str, Any]:
    """A JSON-ready dict of a record."""
    return dataclasses.asdict(record)


def batch_from_plain(raw: dict[str, Any]) -> BatchRecord:
    """Rebuild a BatchRecord (with its rows) from ``to_plain`` output."""
    rows = [BatchRow(**row) for row in raw.get("rows", [])]
    fields = {key: value for key, value in raw.items() if key != "rows"}
    return BatchRecord(rows=rows, **fields)
