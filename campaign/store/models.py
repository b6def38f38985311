"""The checkpoint's records: what goes in (RowIn), what comes out (StoredRow, Attempt)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

RowProgress = Literal["blocked", "pending", "in_flight", "retry_scheduled", "done", "failed"]
# withheld: left *sending* by an earlier run, then refused a re-send by the send gate
# (the number was suppressed or opted out since); if its call turns up, it is recorded.
AttemptState = Literal["sending", "sent", "ended", "failed", "void", "withheld"]
OPEN_ATTEMPT_STATES: tuple[AttemptState, ...] = ("sending", "sent")
WAITING_PROGRESS = ("pending", "retry_scheduled", "blocked")


@dataclass(frozen=True)
class RowIn:
    """A planned input row as the store keeps it."""

    line: int
    row_key: str
    raw_phone: str
    e164: str | None
    plan_state: str
    reason: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    timezones: list[str] = field(default_factory=list)
    us_state: str | None = None
    region: str | None = None
    duplicate_of: str | None = None
    label: str | None = None  # the key shown in results.csv when it differs from row_key
    extension: str | None = None  # written after the number; calls cannot dial it
    note: str | None = None  # what normalising the number did ("Excel damage repaired")
    number_type: str | None = None  # phonenumbers' type: mobile, fixed_line, voip, …


@dataclass(frozen=True)
class StoredRow:
    """A row as recorded in the checkpoint."""

    line: int
    row_key: str
    label: str
    raw_phone: str
    e164: str | None
    plan_state: str
    reason: str | None
    variables: dict[str, Any]
    timezones: list[str]
    us_state: str | None
    region: str | None
    duplicate_of: str | None
    progress: RowProgress
    next_due: float | None
    attempts_used: int
    vanished: bool
    first_seen: float
    last_seen: float
    extension: str | None = None
    note: str | None = None
    number_type: str | None = None  # None in checkpoints written before it was kept


@dataclass(frozen=True)
class Attempt:
    """One attempt to call one row, with everything the API told us about it."""

    row_key: str
    number: int
    idempotency_key: str
    state: AttemptState
    body: bytes
    call_id: str | None
    status: str | None
    outcome: str | None
    goal_achieved: bool | None
    failure_reason: str | None
    session_id: str | None
    slot_values: dict[str, Any] | None
    cost: str | None
    currency: str | None
    duration_s: float | None
    error: str | None
    sending_at: float
    sent_at: float | None
    ended_at: float | None
    call_updated_at: str | None
    phone: str | None = None  # the number this attempt dials (recorded with its body)
    sends: int = 0  # how many times its request has left (0: never)


@dataclass(frozen=True)
class CallEnd:
    """The terminal facts of a call, as the collector learned them."""

    status: str
    outcome: str | None = None
    goal_achieved: bool | None = None
    failure_reason: str | None = None
    session_id: str | None = None
    ended_at: float | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class CallFact:
    """One attempt and its row's facts, without its request body: what reports analyse."""

    row_key: str
    number: int
    state: AttemptState
    call_id: str | None
    status: str | None
    outcome: str | None
    goal_achieved: bool | None
    failure_reason: str | None
    cost: str | None
    currency: str | None
    duration_s: float | None
    started_at: float  # when its request left (sent_at), else when it was committed
    ended_at: float | None
    timezones: list[str]  # the row's, as planned
    region: str | None
    number_type: str | None


class SyncedRow(NamedTuple):
    """The columns of a checkpoint row that the nightly sync reads and writes, in order.

    What tonight's file says of the row, its state, and when it was seen; ``attempts_used``
    belongs to the attempts and is never written by a sync. The names are the columns.
    """

    row_key: str
    label: str
    line: int
    raw_phone: str | None
    e164: str | None
    variables: str  # JSON, keys sorted
    timezones: str  # JSON
    us_state: str | None
    region: str | None
    duplicate_of: str | None
    extension: str | None
    note: str | None
    number_type: str | None
    plan_state: str
    reason: str | None
    progress: str
    next_due: float | None
    vanished: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class SyncSummary:
    """What changed when the input was merged into the checkpoint."""

    new: int
    known: int
    vanished: int


def row_from_sql(r: dict[str, Any]) -> StoredRow:
    return StoredRow(
        line=int(r["line"]),
        row_key=r["row_key"],
        label=r["label"],
        raw_phone=r["raw_phone"] or "",
        e164=r["e164"],
        plan_state=r["plan_state"],
        reason=r["reason"],
        variables=json.loads(r["variables"] or "{}"),
        timezones=json.loads(r["timezones"] or "[]"),
        us_state=r["us_state"],
        region=r["region"],
        duplicate_of=r["duplicate_of"],
        progress=r["progress"],
        next_due=r["next_due"],
        attempts_used=int(r["attempts_used"]),
        vanished=bool(r["vanished"]),
        first_seen=float(r["first_seen"]),
        last_seen=float(r["last_seen"]),
        extension=r.get("extension"),
        note=r.get("note"),
        number_type=r.get("number_type"),
    )


def attempt_from_sql(r: dict[str, Any]) -> Attempt:
    goal = r["goal_achieved"]
    return Attempt(
        row_key=r["row_key"],
        number=int(r["number"]),
        idempotency_key=r["idempotency_key"],
        state=r["state"],
        body=bytes(r["body"]),
        call_id=r["call_id"],
        status=r["status"],
        outcome=r["outcome"],
        goal_achieved=None if goal is None else bool(goal),
        failure_reason=r["failure_reason"],
        session_id=r["session_id"],
        slot_values=None if r["slot_values"] is None else json.loads(r["slot_values"]),
        cost=r["cost"],
        currency=r["currency"],
        duration_s=r["duration_s"],
        error=r["error"],
        sending_at=float(r["sending_at"]),
        sent_at=r["sent_at"],
        ended_at=r["ended_at"],
        call_updated_at=r["call_updated_at"],
        phone=r.get("phone"),
        sends=int(r.get("sends") or 0),
    )


def call_fact_from_sql(r: dict[str, Any]) -> CallFact:
    goal = r["goal_achieved"]
    return CallFact(
        row_key=r["row_key"],
        number=int(r["number"]),
        state=r["state"],
        call_id=r["call_id"],
        status=r["status"],
        outcome=r["outcome"],
        goal_achieved=None if goal is None else bool(goal),
        failure_reason=r["failure_reason"],
        cost=r["cost"],
        currency=r["currency"],
        duration_s=r["duration_s"],
        started_at=float(r["started_at"]),
        ended_at=r["ended_at"],
        timezones=json.loads(r["timezones"] or "[]"),
        region=r["region"],
        number_type=r["number_type"],
    )


class ResultRow(NamedTuple):
    """What results.csv shows of a current row and of its last attempt (the last one not
    voided by an empty wallet, else its first; its columns None when it has none)."""

    line: int
    label: str
    raw_phone: str | None
    e164: str | None
    progress: str
    plan_state: str
    reason: str | None
    attempts_used: int
    variables: str  # JSON
    region: str | None
    extension: str | None
    note: str | None
    next_due: float | None
    window_key: str  # the row's calling window group (see campaign.store.queue)
    call_id: str | None
    status: str | None
    outcome: str | None
    goal_achieved: int | None
    slot_values: str | None  # JSON
    sending_at: float | None
    sent_at: float | None
