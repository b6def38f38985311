"""Batches mode: what each row of ``GET /batches/{id}/rows`` means for its attempt.

Rows are mapped back by ``row`` (0-based file index), checked against ``row_ref`` (the row
key we wrote into the file). A row the server marks ``invalid`` is rejected with the
server's reason; a row that was never dialed (``canceled``, or left ``pending``/``queued``
when its batch ended ``failed``/``canceled``) goes back to be placed again as a new attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from campaign.api.models import BatchRow
from campaign.store import CallEnd

VerdictKind = Literal["open", "ended", "invalid", "undialed", "unknown"]

BATCH_TERMINAL = frozenset({"completed", "failed", "canceled"})
DIALED_TERMINAL = frozenset({"completed", "no_answer", "busy", "voicemail", "failed"})
_NOT_DIALED = frozenset({"pending", "queued"})


@dataclass(frozen=True)
class RowVerdict:
    """What one batch row tells us about the attempt it carries."""

    kind: VerdictKind
    row_key: str | None
    status: str
    call_id: str | None = None
    end: CallEnd | None = None  # for ``ended``
    reason: str | None = None  # for ``invalid`` and ``undialed``


def member_of(row: BatchRow, members: Sequence[str]) -> str | None:
    """The row key a batch row belongs to: by index, confirmed by row_ref; else by row_ref."""
    if 0 <= row.row < len(members) and row.row_ref in (None, members[row.row]):
        return members[row.row]
    if row.row_ref is not None and row.row_ref in members:
        return row.row_ref
    return None


def classify_row(
    row: BatchRow, members: Sequence[str], batch_status: str, *, ended_at: float | None = None
) -> RowVerdict:
    """The verdict on one batch row, given the batch's status (pure; tested as a table)."""
    row_key = member_of(row, members)
    if row_key is None:
        return RowVerdict("unknown", None, row.status, row.call_id)
    if row.status == "invalid":
        message = row.error.message if row.error else "no reason given"
        return RowVerdict("invalid", row_key, row.status, reason=f"rejected by the API: {message}")
    if row.status == "canceled" or (batch_status in BATCH_TERMINAL and row.status in _NOT_DIALED):
        reason = f"not dialed: batch {batch_status}; placed again as a new attempt"
        return RowVerdict("undialed", row_key, row.status, row.call_id, reason=reason)
    if row.status in DIALED_TERMINAL:
        end = CallEnd(
            status=row.status,
            outcome=row.outcome,
            goal_achieved=row.goal_achieved,
            session_id=row.session_id,
            ended_at=ended_at,
        )
        return RowVerdict("ended", row_key, row.status, row.call_id, end=end)
    return RowVerdict("open", row_key, row.status, row.call_id)


def needs_failure_reason(verdict: RowVerdict) -> bool:
    """A ``failed`` row's reason is not in the rows page; an empty wallet must be told apart."""
    return verdict.kind == "ended" and verdict.status == "failed"


def first_open_row(verdicts: Sequence[RowVerdict], offset: int = 0) -> int:
    """Index (from ``offset``) of the first row not yet settled: rows before it are final."""
    for index, verdict in enumerate(verdicts):
        if verdict.kind == "open":
            return offset + index
    return offset + len(verdicts)


def should_read_rows(
    *, batch_status: str, total: int, settled: int, rows_read: int, page_size: int
) -> bool:
    """Read rows pages only when a page's worth has settled, or the batch has ended.

    ``settled`` is the server's ``progress.done + progress.invalid``; ``rows_read`` the
    rows before our first unsettled one.
    """
    if batch_status in BATCH_TERMINAL:
        return rows_read < total
    return settled - rows_read >= page_size
