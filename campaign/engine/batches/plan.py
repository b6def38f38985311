"""Batches mode, the pure parts: batch files, their keys, and how rows are paced into them.

A batch file is a pure function of its members (same rows, same order, same bytes on every
run), and its Idempotency-Key a pure function of (campaign, batch sequence, content hash),
so a resumed run re-sends identical bytes under the same key and the server replays.

The platform dials a batch's rows in file order at the project's outbound limit (contract
§6, §4). Pacing therefore decides which rows go into the next batch and in what order:
soonest-closing calling window first, and only as many rows as can be dialed before their
window closes, given the rows already queued at the platform ahead of them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from campaign.config.limit import Limit

BATCH_KEY_PREFIX = "cmpb-"
MAX_FILE_ROWS = 10_000  # contract §6
MAX_FILE_BYTES = 10 * 1024 * 1024  # contract §6
RESERVED_COLUMNS = ("phone", "row_ref")
# A call must start this long before its window closes: a row is picked, queued and only
# then dialed (seconds at the platform), and our estimate of the queue can be off by a poll.
DEFAULT_MARGIN_S = 120.0
# Only start another batch when the rows already queued at the platform will be dialed
# within this time: rows kept on our side can still be re-ordered as windows open and
# close, and retries and opt-outs are decided before a row is committed.
DEFAULT_QUEUE_LEAD_S = 300.0


@dataclass(frozen=True)
class BatchMember:
    """One row as it goes into a batch file."""

    row_key: str
    phone: str
    variables: Mapping[str, object] = field(default_factory=dict)


def variable_columns(variable_names: Sequence[str]) -> dict[str, str]:
    """The CSV column of each variable; names the API reserves get a ``var_`` prefix."""
    columns: dict[str, str] = {}
    # Other variables keep their own names; only the clashing ones move out of their way.
    taken = set(RESERVED_COLUMNS) | set(variable_names)
    for name in variable_names:
        if name in columns:
            continue
        column = name
        if name in RESERVED_COLUMNS:
            # `phone` and `row_ref` are the batch's own columns (§6): a variable of that
            # name would be read as the number or the reference.
            column = "var_" + name
            while column in taken:
                column = "var_" + column
            taken.add(column)
        columns[name] = column
    return columns


def _cell(value: object) -> str:
    """One CSV cell; NUL would make the server refuse the whole file (not CSV text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\x00", "")


def _row_line(member: BatchMember, variable_names: Sequence[str]) -> list[str]:
    cells = [member.phone, member.row_key]
    cells += [_cell(member.variables.get(name)) for name in variable_names]
    return [_cell(cell) for cell in cells]


def _encode(records: Iterable[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    # QUOTE_MINIMAL quotes commas, quotes and line breaks; \r\n per RFC 4180.
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(records)
    return buffer.getvalue().encode("utf-8")


def _unique_names(variable_names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(variable_names))


def header_line(variable_names: Sequence[str]) -> bytes:
    """The header row: phone, row_ref, then one column per variable."""
    columns = variable_columns(variable_names)
    return _encode([["phone", "row_ref", *columns.values()]])


def render_csv(members: Sequence[BatchMember], variable_names: Sequence[str]) -> bytes:
    """The exact bytes of a batch file (UTF-8, no BOM, header row, rows in member order)."""
    names = _unique_names(variable_names)
    return header_line(names) + _encode(_row_line(m, names) for m in members)


@dataclass(frozen=True)
class RecordedRow:
    """One data row of a batch file as we wrote it: what the platform dials and echoes."""

    position: int  # 0-based data row index, the ``row`` of GET /batches/{id}/rows
    phone: str
    row_ref: str


def recorded_rows(csv_bytes: bytes) -> list[RecordedRow]:
    """The data rows of a batch file we rendered (its own bytes, never today's input).

    The file is the recorded request: the number each row dials and the ``row_ref`` the
    platform echoes back are read from it, so a key that lost a character on the way
    (NUL) or a number changed in today's input cannot hide a row that was uploaded.
    """
    text = csv_bytes.decode("utf-8").removeprefix("\ufeff")
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    if not records:
        return []
    header = records[0]
    phone_at = header.index("phone") if "phone" in header else None
    ref_at = header.index("row_ref") if "row_ref" in header else None
    rows = []
    for position, cells in enumerate(records[1:]):
        phone = cells[phone_at] if phone_at is not None and phone_at < len(cells) else ""
        ref = cells[ref_at] if ref_at is not None and ref_at < len(cells) else ""
        rows.append(RecordedRow(position, phone, ref))
    return rows


def written_ref(row_key: str) -> str:
    """The ``row_ref`` cell a row key becomes in a batch file."""
    return _cell(row_key)


def content_hash(csv_bytes: bytes) -> str:
    """SHA-256 of a batch file, hex."""
    return hashlib.sha256(csv_bytes).hexdigest()


def batch_idempotency_key(campaign: str, sequence: int, csv_bytes: bytes) -> str:
    """The batch's Idempotency-Key: ``cmpb-`` + 40 hex digits of a SHA-256."""
    material = json.dumps([campaign, sequence, content_hash(csv_bytes)], ensure_ascii=True)
    return BATCH_KEY_PREFIX + hashlib.sha256(material.encode("ascii")).hexdigest()[:40]


def split_batches(
    members: Sequence[BatchMember],
    variable_names: Sequence[str],
    *,
    max_rows: int,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[list[BatchMember]]:
    """Consecutive runs of members, each within max_rows, 10,000 rows and max_bytes."""
    names = _unique_names(variable_names)
    row_limit = max(1, min(max_rows, MAX_FILE_ROWS))
    header_bytes = len(header_line(names))
    chunks: list[list[BatchMember]] = []
    chunk: list[BatchMember] = []
    size = header_bytes
    for member in members:
        row_bytes = len(_encode([_row_line(member, names)]))
        if header_bytes + row_bytes > max_bytes:
            raise ValueError(f"row {member.row_key!r} alone is larger than a batch file may be")
        if chunk and (len(chunk) >= row_limit or size + row_bytes > max_bytes):
            chunks.append(chunk)
            chunk, size = [], header_bytes
        chunk.append(member)
        size += row_bytes
    if chunk:
        chunks.append(chunk)
    return chunks


# ---- pacing ------------------------------------------------------------------------------


def seconds_per_call(limits: Sequence[Limit]) -> float:
    """The platform's steady dial spacing under the project's outbound limits."""
    if not limits:
        raise ValueError("no outbound limit configured")
    return max(limit.window / limit.count for limit in limits)


@dataclass(frozen=True)
class Candidate:
    """A row that may go into the next batch, with its calling window as epoch seconds."""

    row_key: str
    opens_at: float  # when its window opens (≤ now if it is open)
    closes_at: float | None  # when that window closes; None = never (unrestricted hours)
    line: int = 0  # input order, to break ties deterministically


@dataclass(frozen=True)
class PacedBatch:
    """The rows of the next batch in dial order, and when the platform should start."""

    row_keys: list[str]
    not_before: float | None  # hold the batch until then (the window opens later)
    first_dial_at: float
    last_dial_at: float


def queue_drains_at(now: float, queued_rows: int, spacing: float) -> float:
    """When rows already queued at the platform will all have been dialed (estimate)."""
    return now + max(0, queued_rows) * spacing


def may_start_batch(
    now: float, queued_rows: int, spacing: float, lead_s: float = DEFAULT_QUEUE_LEAD_S
) -> bool:
    """True unless the batches already running still have a long queue."""
    return queue_drains_at(now, queued_rows, spacing) - now <= lead_s


def plan_next_batch(
    candidates: Iterable[Candidate],
    *,
    now: float,
    spacing: float,
    queued_rows: int,
    max_rows: int,
    margin_s: float = DEFAULT_MARGIN_S,
    hold_horizon_s: float = 0.0,
) -> PacedBatch | None:
    """Rows for the next batch: soonest-closing first, each dialed before its window shuts.

    Rows whose window is open now come first. If none is open, rows whose window opens
    within ``hold_horizon_s`` form a batch held with ``not_before`` until it opens. A row
    that cannot be dialed in the window left to it stays out and waits for its next one.
    """
    pool = list(candidates)
    open_rows = [c for c in pool if c.opens_at <= now and _before_close(c, now, margin_s)]
    start = queue_drains_at(now, queued_rows, spacing)
    not_before: float | None = None
    if not open_rows:
        upcoming = [c for c in pool if now < c.opens_at <= now + hold_horizon_s]
        if not upcoming:
            return None
        opening = min(c.opens_at for c in upcoming)
        open_rows = [c for c in upcoming if c.opens_at == opening]
        not_before = opening
        start = max(start, opening)
    limit = max(1, min(max_rows, MAX_FILE_ROWS))
    chosen: list[Candidate] = []
    for candidate in sorted(open_rows, key=_close_order):
        if len(chosen) >= limit:
            break
        dial_at = start + len(chosen) * spacing
        if _before_close(candidate, dial_at, margin_s):
            chosen.append(candidate)
    if not chosen:
        return None
    return PacedBatch(
        row_keys=[c.row_key for c in chosen],
        not_before=not_before,
        first_dial_at=start,
        last_dial_at=start + (len(chosen) - 1) * spacing,
    )


@dataclass(frozen=True)
class GroupWindow:
    """The calling window shared by a group of due rows (same timezones and US state)."""

    key: str
    opens_at: float
    closes_at: float | None


# Due rows of some groups (by window key), in line order, at most so many: (row key,
# line, window key) each.
RowsOf = Callable[[Sequence[str], int], Sequence[tuple[str, int, str]]]


def batch_candidates(
    groups: Iterable[GroupWindow],
    rows_of: RowsOf,
    *,
    now: float,
    spacing: float,
    queued_rows: int,
    max_rows: int,
    margin_s: float = DEFAULT_MARGIN_S,
    hold_horizon_s: float = 0.0,
) -> list[tuple[GroupWindow, str, int]]:
    """The rows ``plan_next_batch`` can choose from, read per window group: never more
    than a batch's worth, whatever the size of the list.

    The same choice as ``plan_next_batch`` made group by group: the groups it would take
    rows from (open ones, else the earliest to open within ``hold_horizon_s``), soonest
    close first, and from each (or each set closing together, by line) only as many rows
    as can still be dialed before it closes and fit in the batch. ``plan_next_batch`` then
    makes the final choice from these, as it would from every due row.
    """
    pool = list(groups)
    start = queue_drains_at(now, queued_rows, spacing)
    chosen = [g for g in pool if g.opens_at <= now and _fits(g.closes_at, now, margin_s)]
    if not chosen:
        upcoming = [g for g in pool if now < g.opens_at <= now + hold_horizon_s]
        if not upcoming:
            return []
        opening = min(g.opens_at for g in upcoming)
        chosen = [g for g in upcoming if g.opens_at == opening]
        start = max(start, opening)
    limit = max(1, min(max_rows, MAX_FILE_ROWS))
    taken: list[tuple[GroupWindow, str, int]] = []
    by_close = sorted(chosen, key=lambda g: math.inf if g.closes_at is None else g.closes_at)
    for closes, together in itertools.groupby(by_close, key=lambda g: g.closes_at):
        # The k-th row of the batch dials at start + k * spacing, as plan_next_batch counts.
        room = 0
        while len(taken) + room < limit and _fits(
            closes, start + (len(taken) + room) * spacing, margin_s
        ):
            room += 1
        if not room:
            continue
        members = {g.key: g for g in together}
        for row_key, line, key in rows_of(list(members), room):
            taken.append((members[key], row_key, line))
        if len(taken) >= limit:
            break
    return taken


def latest_dial_times(
    start: float, rows: int, *, spacing: float, window: float, slack_s: float
) -> list[float]:
    """The latest moment each row of a batch may ring, for holding its call slots.

    The platform dials greedily, so it is never behind a steady ``spacing`` from ``start``
    except for calls already in the window when it starts (at most one ``window`` late)
    and the time it takes to accept and validate the file (``slack_s``).
    """
    return [start + window + slack_s + index * spacing for index in range(rows)]


def _before_close(candidate: Candidate, dial_at: float, margin_s: float) -> bool:
    return _fits(candidate.closes_at, dial_at, margin_s)


def _fits(closes_at: float | None, dial_at: float, margin_s: float) -> bool:
    return closes_at is None or dial_at + margin_s <= closes_at


def _close_order(candidate: Candidate) -> tuple[float, int, str]:
    closes = math.inf if candidate.closes_at is None else candidate.closes_at
    return closes, candidate.line, candidate.row_key
