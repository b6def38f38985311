"""The outputs of a run: ``results.csv``, ``summary.json`` and ``report.html``.

The engine hands over one ``RowResult`` per input data row, one ``CallRecord`` per
attempt that left, and the ``RunFacts`` of the run; ``write_outputs`` writes the three
files private (0600: they hold phone numbers) and atomically (temp file, fsync,
``os.replace``) so that a reader — or a run killed half-way through writing — never sees
a torn file. ``summary.json`` is built once by ``build_summary`` and the HTML page shows
exactly those numbers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from campaign.errors import OutputError
from campaign.reporting.analysis import when_to_call
from campaign.reporting.html import render_report
from campaign.reporting.tables import report_tables

State = Literal[
    "done", "rejected", "suppressed", "duplicate", "pending", "retry_scheduled", "failed"
]
STATES: tuple[State, ...] = get_args(State)

SUMMARY_SCHEMA_VERSION = 1

# Cells starting with these are read as formulas by Excel/LibreOffice/Sheets (CSV injection).
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
# A cell that is exactly "+" and digits (E.164, as our e164 column always is, and as the key
# is when the number is the key) is read by a spreadsheet as a positive number, never as a
# formula, so it is left as it is and stays directly usable (paste into a dialler, VLOOKUP
# against another list). Anything else starting with "+" ("+1 415 …") is escaped.
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass(frozen=True)
class RowResult:
    """The final state of one input data row."""

    line: int
    row_key: str
    raw_phone: str
    e164: str | None
    state: State
    attempts: int
    last_call_id: str | None
    last_status: str | None
    outcome: str | None
    goal_achieved: bool | None
    reason: str | None
    variables: dict[str, str] = field(default_factory=dict)
    region: str | None = None  # the number's country (ISO alpha-2)
    extension: str | None = None  # written after the number; no call dials it
    note: str | None = None  # what normalising the number did
    next_due: datetime | None = None  # when a retry_scheduled row is due
    last_called_at: datetime | None = None  # when its last call was placed
    slot_values: dict[str, Any] | None = None  # what the last call's session collected


@dataclass(frozen=True)
class CallRecord:
    """One attempt that was sent to the API, with what is known about how it ended."""

    row_key: str
    attempt: int
    call_id: str | None
    placed_at: datetime
    ended_at: datetime | None
    status: str | None
    outcome: str | None
    goal_achieved: bool | None
    cost: Decimal | None
    currency: str | None
    duration_s: int | None
    failure_reason: str | None = None
    # The recipient, for "when to call": their row's timezones (the first is the one their
    # day is read in), country (ISO alpha-2) and number type (phonenumbers' name).
    timezones: tuple[str, ...] = ()
    region: str | None = None
    number_type: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run of the campaign, from the checkpoint's run log."""

    started_at: datetime
    ended_at: datetime | None  # None: still running, or killed before it could say
    exit_code: int | None
    command: str | None = None


@dataclass(frozen=True)
class RunFacts:
    """What the run itself knows: identity, timing, budget spent, what comes next."""

    campaign: str
    mode: str
    started_at: datetime
    ended_at: datetime
    finished: bool
    dry_run: bool
    calls_placed: int
    requests_spent: int
    calling_hours: str
    next_due: datetime | None
    next_due_reason: str | None
    key_column: str
    variables: list[str]
    input_path: str
    runs: tuple[RunRecord, ...] = ()  # every run so far, oldest first (this one included)
    cost_estimate: Decimal | None = None  # per call, from the campaign file


@dataclass(frozen=True)
class OutputPaths:
    """Where ``write_outputs`` put the three files."""

    results_csv: Path
    summary_json: Path
    report_html: Path


def rfc3339(moment: datetime | None) -> str | None:
    """``2026-11-29T14:03:12Z`` (UTC, whole seconds); naive datetimes are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def spreadsheet_safe(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate as a formula."""
    if cell.startswith(_FORMULA_LEADS) and not _E164.match(cell):
        return "'" + cell
    return cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_FIXED_COLUMNS = (
    *("line", "phone", "e164", "extension", "state", "attempts", "last_call_id"),
    *("last_status", "outcome", "goal_achieved", "reason", "note"),
)


def results_header(facts: RunFacts) -> list[str]:
    """The column names of results.csv, in order."""
    # Without a key column the key is the number itself: "e164" twice would be ambiguous.
    key = facts.key_column if facts.key_column not in _FIXED_COLUMNS else "row_key"
    fixed = ["line", key, *_FIXED_COLUMNS[1:]]
    # A variable column named like a fixed one (e.g. "state") would make the header ambiguous.
    return fixed + [v if v not in fixed else f"var_{v}" for v in facts.variables]


def render_results_csv(rows: Iterable[RowResult], facts: RunFacts) -> str:
    """results.csv as text: one line per input row in input order, spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(name) for name in results_header(facts)])
    for row in sorted(rows, key=lambda r: r.line):
        cells = [
            str(row.line),
            spreadsheet_safe(row.row_key),
            spreadsheet_safe(row.raw_phone),
            spreadsheet_safe(_cell(row.e164)),
            spreadsheet_safe(_cell(row.extension)),
            row.state,
            str(row.attempts),
            spreadsheet_safe(_cell(row.last_call_id)),
            spreadsheet_safe(_cell(row.last_status)),
            spreadsheet_safe(_cell(row.outcome)),
            _cell(row.goal_achieved),
            spreadsheet_safe(_cell(row.reason)),
            spreadsheet_safe(_cell(row.note)),
        ]
        cells += [spreadsheet_safe(row.variables.get(name, "")) for name in facts.variables]
        writer.writerow(cells)
    return buffer.getvalue()


def _counts(values: Iterable[str | None]) -> dict[str, int]:
    """Counts of non-empty values, largest first, ties by name (stable output)."""
    counter = Counter(v for v in values if v)
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _not_called_reason(row: RowResult) -> str:
    # "duplicate of line 14", "… line 70": one bar per line would bury the real reasons.
    if row.state == "duplicate":
        return "duplicate of an earlier row"
    return row.reason or f"{row.state} (no reason given)"


def _cost(calls: list[CallRecord]) -> dict[str, Any]:
    by_currency: dict[str, Decimal] = {}
    costed = 0
    for call in calls:
        if call.cost is None:
            continue
        costed += 1
        currency = call.currency or ""
        by_currency[currency] = by_currency.get(currency, Decimal("0")) + call.cost
    # One project has one wallet, so one currency; the largest is the headline if not.
    main = max(by_currency.items(), key=lambda item: item[1], default=("", Decimal("0")))
    return {
        "amount": f"{main[1]:.2f}",
        "currency": main[0] or None,
        "calls_costed": costed,
        "by_currency": {cur or "unknown": f"{amount:.2f}" for cur, amount in by_currency.items()},
    }


def _funnel(rows: list[RowResult]) -> dict[str, int]:
    # From rows only, so that a reader can recount every figure from results.csv;
    # "completed" ends a row (never retried), so the last status tells if it was answered.
    counted = [r for r in rows if r.state != "duplicate"]
    return {
        "rows": len(rows),
        "valid": sum(1 for r in rows if r.state != "rejected"),
        "callable": sum(1 for r in rows if r.state not in ("rejected", "suppressed", "duplicate")),
        "called": sum(1 for r in counted if r.attempts > 0),
        "answered": sum(1 for r in counted if r.attempts > 0 and r.last_status == "completed"),
        "goal_achieved": sum(1 for r in counted if r.goal_achieved is True),
    }


def build_summary(
    rows: Iterable[RowResult], calls: Iterable[CallRecord], facts: RunFacts
) -> dict[str, Any]:
    """The content of summary.json (stable keys, documented in the README)."""
    row_list = list(rows)
    call_list = list(calls)
    by_state = {state: 0 for state in STATES}
    by_state.update(Counter(r.state for r in row_list))
    not_called = [r for r in row_list if r.state in ("rejected", "suppressed", "duplicate")]
    cost = _cost(call_list)
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "campaign": facts.campaign,
        "mode": facts.mode,
        "dry_run": facts.dry_run,
        "finished": facts.finished,
        "started_at": rfc3339(facts.started_at),
        "ended_at": rfc3339(facts.ended_at),
        "next_due": rfc3339(facts.next_due),
        "next_due_reason": facts.next_due_reason,
        "calling_hours": facts.calling_hours,
        "input_path": facts.input_path,
        "rows_total": len(row_list),
        "by_state": by_state,
        "by_last_status": _counts(r.last_status for r in row_list),
        "by_outcome": _counts(r.outcome for r in row_list),
        "rejects_by_reason": _counts(_not_called_reason(r) for r in not_called),
        "attempts_total": sum(r.attempts for r in row_list),
        "calls_placed": facts.calls_placed,
        "requests_spent": facts.requests_spent,
        "calls_by_status": _counts(c.status or "unknown" for c in call_list),
        "talk_time_s": sum(c.duration_s or 0 for c in call_list),
        "cost": cost,
        "funnel": _funnel(row_list),
        **report_tables(row_list, call_list, facts, cost["amount"]),
        "when_to_call": when_to_call(call_list),
    }


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) so readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The outputs hold phone numbers, like the checkpoint and the log: private whatever
    # the umask (share a report on purpose). The temp file is born 0600 in the same
    # folder, so os.replace is atomic and no reader ever sees a wider mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(fd, 0o600)  # a umask cannot widen it, but one like 0o277 narrows it
            handle.write(text)
            handle.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power cut could otherwise undo it)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def summary_json_text(summary: Mapping[str, Any]) -> str:
    """summary.json as text (2-space indent, trailing newline)."""
    return json.dumps(summary, indent=2, ensure_ascii=False) + "\n"


def write_outputs(
    output_dir: Path, rows: Iterable[RowResult], calls: Iterable[CallRecord], facts: RunFacts
) -> OutputPaths:
    """Write results.csv, summary.json and report.html into ``output_dir``."""
    row_list = sorted(rows, key=lambda r: r.line)
    call_list = sorted(calls, key=lambda c: (c.placed_at, c.row_key, c.attempt))
    summary = build_summary(row_list, call_list, facts)
    paths = OutputPaths(
        results_csv=output_dir / "results.csv",
        summary_json=output_dir / "summary.json",
        report_html=output_dir / "report.html",
    )
    for target, text in (
        (paths.results_csv, render_results_csv(row_list, facts)),
        (paths.summary_json, summary_json_text(summary)),
        (paths.report_html, render_report(summary, call_list)),
    ):
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            raise OutputError(
                f"{target}: the output cannot be written ({exc.strerror or exc}); the "
                "checkpoint is intact — fix the cause (a full disk, the folder's "
                "permissions), then run `campaign report FILE` to write the outputs again"
            ) from exc
    return paths
