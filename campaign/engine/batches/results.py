"""Batches mode: what each row of ``GET /batches/{id}/rows`` means for its attempt.

Rows are mapped back by ``row`` (0-based file index), checked against ``row_ref`` as we
wrote it into the file: a row key with a character the file cannot hold (NUL) is written
without it, so the comparison is with the written cell, never the key itself. A row the
server marks ``invalid`` is rejected with the server's reason; a row that was never dialed
(``canceled``, or left ``pending``/``queued`` when its batch ended ``failed``/``canceled``)
goes back to be placed again as a new attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from campaign.api.models import BatchRow
from campaign.store.checkpoint import CallEnd

VerdictKind = Literal["open", "ended", "invalid", "undialed", "unknown"]

BATCH_TERMINAL = frozenset({"completed", "failed", "canceled"})
DIALED_TERMINAL = frozenset({"completed", "no_answer", "busy", "voicemail", "failed"})
_NOT_DIALED = frozenset({"pending", "queued"})


@dataclass(frozen=True)
class RowVerdict:
    """What one batch row tells us about the attempt it carries."""

    kind: VerdictKind
    row_key: str | None  # the member's entry in ``members`` (the written row_ref)
    status: str
    call_id: str | None = None
    end: CallEnd | None = None  # for ``ended``
    reason: str | None = None  # for ``invalid`` and ``undialed``
    position: int | None = None  # the member's index in the file


def member_index(
    row: BatchRow, members: Sequence[str], phones: Sequence[str] | None = None
) -> int | None:
    """The file position a batch row belongs to: by index, confirmed by row_ref (or, when
    the server echoes a row_ref changed on the way, by the number at that index); else the
    member whose row_ref it carries.

    ``members`` are the row_ref cells as written in the file, ``phones`` its numbers.
    """
    in_file = 0 <= row.row < len(members)
    if in_file and row.row_ref in (None, members[row.row]):
        return row.row
    if row.row_ref is not None and row.row_ref in members:
        return members.index(row.row_ref)
    if in_file and phones is not None and row.phone is not None and row.phone == phones[row.row]:
        return row.row
    return None


def member_of(
    row: BatchRow, members: Sequence[str], phones: Sequence[str] | None = None
) -> str | None:
    """The member (its written row_ref) a batch row belongs to, if any."""
    index = member_index(row, members, phones)
    return None if index is None else members[index]


def classify_row(
    row: BatchRow,
    members: Sequence[str],
    batch_status: str,
    *,
    ended_at: float | None = None,
    phones: Sequence[str] | None = None,
) -> RowVerdict:
    """The verdict on one batch row, given the batch's status (pure; tested as a table)."""
    position = member_index(row, members, phones)
    if position is None:
        return RowVerdict("unknown", None, row.status, row.call_id)
    verdict = _classify(row, members[position], batch_status, ended_at)
    return replace(verdict, position=position)


def _classify(row: BatchRow, row_key: str, batch_status: str, ended_at: float | None) -> RowVerdict:
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
