"""Typed results of the API (contract §5–§7): frozen dataclasses, Decimal money, aware times.

Each ``from_json`` reads only the fields the contract documents and ignores the rest, so an
additive change on the server is not a breaking one.  A missing or mistyped documented field
raises ``ValueError``; the client turns that into ``UnexpectedResponseError``.  The account
objects (webhooks, knowledge base, billing) live in ``campaign.api.account`` and are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from campaign.api.account import (
    CrawlJob,
    Invoice,
    KnowledgeFile,
    Usage,
    Wallet,
    WalletTransaction,
    Webhook,
)
from campaign.api.fields import (
    read_field,
    read_int,
    read_list,
    read_map,
    read_money,
    read_obj,
    read_opt_bool,
    read_opt_int,
    read_opt_str,
    read_opt_time,
    read_str,
    read_time,
)

CallStatus = Literal[
    "queued",
    "dialing",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "voicemail",
    "failed",
    "canceled",
]
TERMINAL_CALL_STATUSES: frozenset[str] = frozenset(
    {"completed", "no_answer", "busy", "voicemail", "failed", "canceled"}
)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: its items and the cursor of the next page."""

    data: tuple[T, ...]
    next_cursor: str | None


def page_reader(read_item: Callable[[object], T]) -> Callable[[object], Page[T]]:
    """A reader of ``{"data": [...], "next_cursor": ...}`` whose items ``read_item`` reads."""

    def read_page(value: object) -> Page[T]:
        obj = read_obj(value, "page")
        data = tuple(read_item(item) for item in read_list(obj, "data"))
        return Page(data, read_opt_str(obj, "next_cursor"))

    return read_page


@dataclass(frozen=True)
class SessionCosts:
    """What a session cost."""

    minutes: Decimal
    tool_calls: int
    amount: Decimal
    currency: str

    @classmethod
    def from_json(cls, value: object) -> SessionCosts:
        """Read a SessionCosts object."""
        obj = read_obj(value, "costs")
        return cls(
            read_money(obj, "minutes"),
            read_int(obj, "tool_calls"),
            read_money(obj, "amount"),
            read_str(obj, "currency"),
        )


@dataclass(frozen=True)
class Session:
    """One conversation of a call (contract §7)."""

    id: str
    call_id: str
    batch_id: str | None
    phone: str
    scenario_id: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: int | None
    outcome: str | None
    goal_achieved: bool | None
    slot_values: dict[str, Any]
    costs: SessionCosts
    metadata: dict[str, Any]

    @classmethod
    def from_json(cls, value: object) -> Session:
        """Read a Session object."""
        obj = read_obj(value, "session")
        return cls(
            id=read_str(obj, "id"),
            call_id=read_str(obj, "call_id"),
            batch_id=read_opt_str(obj, "batch_id"),
            phone=read_str(obj, "phone"),
            scenario_id=read_str(obj, "scenario_id"),
            started_at=read_time(obj, "started_at"),
            ended_at=read_opt_time(obj, "ended_at"),
            duration_s=read_opt_int(obj, "duration_s"),
            outcome=read_opt_str(obj, "outcome"),
            goal_achieved=read_opt_bool(obj, "goal_achieved"),
            slot_values=read_map(obj, "slot_values"),
            costs=SessionCosts.from_json(read_field(obj, "costs")),
            metadata=read_map(obj, "metadata"),
        )


@dataclass(frozen=True)
class Call:
    """An outbound call (contract §5); ``session`` only from GET /calls/{id}.

    ``replayed`` and ``tries`` are set by ``create_call`` alone: whether the answer was an
    idempotent replay (``Idempotent-Replayed: true``) and how many tries of the request
    left the client in that invocation.  Every other reader leaves the defaults.
    """

    id: str
    status: str
    phone: str
    scenario_id: str
    variables: dict[str, Any]
    caller_id: str | None
    batch_id: str | None
    session_id: str | None
    metadata: dict[str, Any]
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    outcome: str | None
    goal_achieved: bool | None
    failure_reason: str | None
    session: Session | None = None
    replayed: bool = False
    tries: int = 1

    @property
    def is_terminal(self) -> bool:
        """Whether the call has reached a final status."""
        return self.status in TERMINAL_CALL_STATUSES

    @classmethod
    def from_json(cls, value: object) -> Call:
        """Read a Call object."""
        obj = read_obj(value, "call")
        session = obj.get("session")
        return cls(
            id=read_str(obj, "id"),
            status=read_str(obj, "status"),
            phone=read_str(obj, "phone"),
            scenario_id=read_str(obj, "scenario_id"),
            variables=read_map(obj, "variables"),
            caller_id=read_opt_str(obj, "caller_id"),
            batch_id=read_opt_str(obj, "batch_id"),
            session_id=read_opt_str(obj, "session_id"),
            metadata=read_map(obj, "metadata"),
            not_before=read_opt_time(obj, "not_before"),
            created_at=read_time(obj, "created_at"),
            updated_at=read_time(obj, "updated_at"),
            ended_at=read_opt_time(obj, "ended_at"),
            outcome=read_opt_str(obj, "outcome"),
            goal_achieved=read_opt_bool(obj, "goal_achieved"),
            failure_reason=read_opt_str(obj, "failure_reason"),
            session=None if session is None else Session.from_json(session),
        )


CallPage = Page[Call]
read_call_page = page_reader(Call.from_json)


@dataclass(frozen=True)
class BatchProgress:
    """Row counts of a batch by stage."""

    total: int
    invalid: int
    pending: int
    queued: int
    in_progress: int
    done: int

    @classmethod
    def from_json(cls, value: object) -> BatchProgress:
        """Read a BatchProgress object."""
        obj = read_obj(value, "progress")
        return cls(*(read_int(obj, key) for key in _PROGRESS_KEYS))


_PROGRESS_KEYS = ("total", "invalid", "pending", "queued", "in_progress", "done")
_SUMMARY_KEYS = ("completed", "goal_achieved", "no_answer", "busy", "voicemail", "failed")


@dataclass(frozen=True)
class BatchSummary:
    """Outcome counts of a batch."""

    completed: int
    goal_achieved: int
    no_answer: int
    busy: int
    voicemail: int
    failed: int

    @classmethod
    def from_json(cls, value: object) -> BatchSummary:
        """Read a BatchSummary object."""
        obj = read_obj(value, "summary")
        return cls(*(read_int(obj, key) for key in _SUMMARY_KEYS))


@dataclass(frozen=True)
class Batch:
    """A CSV batch (contract §6)."""

    id: str
    status: str
    name: str | None
    scenario_id: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    progress: BatchProgress
    summary: BatchSummary

    @classmethod
    def from_json(cls, value: object) -> Batch:
        """Read a Batch object."""
        obj = read_obj(value, "batch")
        return cls(
            id=read_str(obj, "id"),
            status=read_str(obj, "status"),
            name=read_opt_str(obj, "name"),
            scenario_id=read_str(obj, "scenario_id"),
            created_at=read_time(obj, "created_at"),
            updated_at=read_time(obj, "updated_at"),
            completed_at=read_opt_time(obj, "completed_at"),
            progress=BatchProgress.from_json(read_field(obj, "progress")),
            summary=BatchSummary.from_json(read_field(obj, "summary")),
        )


@dataclass(frozen=True)
class BatchRowError:
    """Why a batch row is invalid."""

    code: str
    message: str


@dataclass(frozen=True)
class BatchRow:
    """One data row of a batch, in file order (``row`` is 0-based)."""

    row: int
    row_ref: str | None
    phone: str | None
    status: str
    call_id: str | None
    session_id: str | None
    outcome: str | None
    goal_achieved: bool | None
    error: BatchRowError | None

    @classmethod
    def from_json(cls, value: object) -> BatchRow:
        """Read a BatchRow object."""
        obj = read_obj(value, "row")
        error = obj.get("error")
        row_error = None
        if error is not None:
            error_obj = read_obj(error, "error")
            row_error = BatchRowError(read_str(error_obj, "code"), read_str(error_obj, "message"))
        return cls(
            row=read_int(obj, "row"),
            row_ref=read_opt_str(obj, "row_ref"),
            phone=read_opt_str(obj, "phone"),
            status=read_str(obj, "status"),
            call_id=read_opt_str(obj, "call_id"),
            session_id=read_opt_str(obj, "session_id"),
            outcome=read_opt_str(obj, "outcome"),
            goal_achieved=read_opt_bool(obj, "goal_achieved"),
            error=row_error,
        )


BatchRowPage = Page[BatchRow]
read_batch_row_page = page_reader(BatchRow.from_json)


SessionPage = Page[Session]
read_session_page = page_reader(Session.from_json)


@dataclass(frozen=True)
class TranscriptTurn:
    """One utterance of a transcript."""

    speaker: str
    text: str
    offset_ms: int


@dataclass(frozen=True)
class Transcript:
    """The turns of a session."""

    session_id: str
    turns: tuple[TranscriptTurn, ...]

    @classmethod
    def from_json(cls, value: object) -> Transcript:
        """Read a Transcript object."""
        obj = read_obj(value, "transcript")
        turns = []
        for item in read_list(obj, "turns"):
            turn = read_obj(item, "turn")
            turns.append(
                TranscriptTurn(
                    read_str(turn, "speaker"), read_str(turn, "text"), read_int(turn, "offset_ms")
                )
            )
        return cls(read_str(obj, "session_id"), tuple(turns))


@dataclass(frozen=True)
class Recording:
    """A short-lived signed URL to a session's audio."""

    url: str
    expires_at: datetime

    @classmethod
    def from_json(cls, value: object) -> Recording:
        """Read a Recording object."""
        obj = read_obj(value, "recording")
        return cls(read_str(obj, "url"), read_time(obj, "expires_at"))


__all__ = [
    "TERMINAL_CALL_STATUSES",
    "Batch",
    "BatchProgress",
    "BatchRow",
    "BatchRowError",
    "BatchRowPage",
    "BatchSummary",
    "Call",
    "CallPage",
    "CallStatus",
    "CrawlJob",
    "Invoice",
    "KnowledgeFile",
    "Recording",
    "Session",
    "SessionCosts",
    "SessionPage",
    "Transcript",
    "TranscriptTurn",
    "Usage",
    "Wallet",
    "WalletTransaction",
    "Webhook",
]
