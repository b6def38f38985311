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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from campaign.errors import OutputError
from campaign.reporting.analysis import when_to_call
from campaign.reporting.html import render_report
from campaign.reporting.tables import _CALLED_STATES as CALLED_STATES
from campaign.reporting.tables import MAX_CALLBACKS, callbacks, report_tables
from campaign.reporting.tables import _aware as aware
from campaign.reporting.tables import _iso as iso_moment

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
    compliance: Mapping[str, Any] | None = None  # campaign.reporting.compliance's section


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


def results_header_row(facts: RunFacts) -> list[str]:
    """results.csv's header line as written (spreadsheet-safe)."""
    return [spreadsheet_safe(name) for name in results_header(facts)]


def results_csv_writer(handle: TextIO) -> Any:
    """The ``csv.writer`` results.csv is written with."""
    return csv.writer(handle, lineterminator="\n")


def _results_writer(handle: TextIO, facts: RunFacts) -> Callable[[RowResult], None]:
    """Writes results.csv's header to ``handle``; returns what writes one row after it."""
    writer = results_csv_writer(handle)
    writer.writerow(results_header_row(facts))
    variables = facts.variables

    def write(row: RowResult) -> None:
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
        cells += [spreadsheet_safe(row.variables.get(name, "")) for name in variables]
        writer.writerow(cells)

    return write


def render_results_csv(rows: Iterable[RowResult], facts: RunFacts) -> str:
    """results.csv as text: one line per input row in input order, spreadsheet-safe."""
    buffer = io.StringIO()
    write = _results_writer(buffer, facts)
    for row in sorted(rows, key=lambda r: r.line):
        write(row)
    return buffer.getvalue()


def _counts(values: Iterable[str | None]) -> dict[str, int]:
    """Counts of non-empty values, largest first, ties by name (stable output)."""
    counter = Counter(v for v in values if v)
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _ordered(counter: Counter[str]) -> dict[str, int]:
    """A counter's non-empty keys, largest first, ties by name (as ``_counts``)."""
    return dict(sorted(((k, n) for k, n in counter.items() if k), key=lambda i: (-i[1], i[0])))


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


class RowTally:
    """Every figure of summary.json that comes from the rows, added up one row at a time,
    so that the outputs of a million rows never hold them all (``build_summary`` and
    ``tables.report_tables`` give the same figures from a list)."""

    def __init__(self) -> None:
        self.rows = 0
        self.by_state: Counter[State] = Counter()
        self.by_last_status: Counter[str] = Counter()
        self.by_outcome: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.attempts_total = 0
        self.funnel = dict.fromkeys(
            ("rows", "valid", "callable", "called", "answered", "goal_achieved"), 0
        )
        self.countries: dict[str, Counter[str]] = {}
        self.callbacks: list[RowResult] = []
        self.callbacks_count = 0
        self.retries_waiting = 0
        self.retries_next: datetime | None = None
        self.retries_by_hour: Counter[str] = Counter()
        self.attempts_per_row: Counter[int] = Counter()
        self.with_extension = 0

    def add(self, row: RowResult) -> None:
        """Count one row."""
        state = row.state
        blocked = state in ("rejected", "suppressed", "duplicate")
        self.count(
            state, row.last_status, row.outcome, row.goal_achieved is True, row.region,
            row.attempts, _not_called_reason(row) if blocked else None, bool(row.extension),
        )  # fmt: skip
        if row.outcome == "callback_requested":
            self.add_callback(row)
        if state == "retry_scheduled":
            self.add_retry(row.next_due)

    def count(
        self,
        state: State,
        last_status: str | None,
        outcome: str | None,
        goal_achieved: bool,
        region: str | None,
        attempts: int,
        not_called_reason: str | None,
        with_extension: bool,
        n: int = 1,
    ) -> None:
        """Count ``n`` rows alike in what the summary counts (``add`` counts one row; a
        row's callback and retry are added by ``add_callback`` and ``add_retry``)."""
        self.rows += n
        self.by_state[state] += n
        if last_status:
            self.by_last_status[last_status] += n
        if outcome:
            self.by_outcome[outcome] += n
        if not_called_reason is not None:
            self.rejects[not_called_reason] += n
        self.attempts_total += attempts * n
        funnel = self.funnel
        funnel["rows"] += n
        funnel["valid"] += n * (state != "rejected")
        funnel["callable"] += n * (state not in ("rejected", "suppressed", "duplicate"))
        country = self.countries.setdefault(region or "unknown", Counter())
        country["rows"] += n
        if state in CALLED_STATES:
            country["callable"] += n
            self.attempts_per_row[attempts] += n
        if state != "duplicate":
            called = attempts > 0
            funnel["called"] += n * called
            funnel["answered"] += n * (called and last_status == "completed")
            funnel["goal_achieved"] += n * goal_achieved
            if called:
                country["called"] += n
                country["answered"] += n * (last_status == "completed")
                country["goal_achieved"] += n * goal_achieved
        self.with_extension += n * with_extension

    def add_callback(self, row: RowResult) -> None:
        """Count a row whose last call ended with a callback request (the first
        ``MAX_CALLBACKS`` are listed)."""
        self.callbacks_count += 1
        if len(self.callbacks) < MAX_CALLBACKS:
            self.callbacks.append(row)

    def wants_callback_rows(self) -> bool:
        """Whether ``add_callback`` would still list a row (else only count it)."""
        return len(self.callbacks) < MAX_CALLBACKS

    def add_retry(self, next_due: datetime | None) -> None:
        """Count a retry_scheduled row due at ``next_due``."""
        self.retries_waiting += 1
        if next_due:
            moment = aware(next_due)
            self.retries_by_hour[moment.strftime("%Y-%m-%dT%H:00:00Z")] += 1
            if self.retries_next is None or moment < self.retries_next:
                self.retries_next = moment

    def row_tables(self) -> dict[str, Any]:
        """The row-based keys of ``report_tables``, as it computes them."""
        keys = ("rows", "callable", "called", "answered", "goal_achieved")
        ordered = sorted(self.countries.items(), key=lambda item: (-item[1]["rows"], item[0]))
        counter = self.attempts_per_row
        return {
            "by_country": {c: {k: counts[k] for k in keys} for c, counts in ordered},
            "callbacks": {**callbacks(self.callbacks), "count": self.callbacks_count},
            "retries_due": {
                "rows": self.retries_waiting,
                "next": iso_moment(self.retries_next),
                "by_hour": dict(sorted(self.retries_by_hour.items())),
            },
            "attempts_per_row": {str(n): counter[n] for n in range(max(counter, default=-1) + 1)},
            "rows_with_extension": self.with_extension,
        }

    def summary(self, calls: Sequence[CallRecord], facts: RunFacts) -> dict[str, Any]:
        """The content of summary.json."""
        by_state = {state: 0 for state in STATES}
        by_state.update(self.by_state)
        cost = _cost(list(calls))
        tables = report_tables([], calls, facts, cost["amount"])
        tables.update(self.row_tables())  # same keys, same order
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
            "rows_total": self.rows,
            "by_state": by_state,
            "by_last_status": _ordered(self.by_last_status),
            "by_outcome": _ordered(self.by_outcome),
            "rejects_by_reason": _ordered(self.rejects),
            "attempts_total": self.attempts_total,
            "calls_placed": facts.calls_placed,
            "requests_spent": facts.requests_spent,
            "calls_by_status": _counts(c.status or "unknown" for c in calls),
            "talk_time_s": sum(c.duration_s or 0 for c in calls),
            "cost": cost,
            "funnel": dict(self.funnel),
            **tables,
            "when_to_call": when_to_call(list(calls)),
            **({"compliance": dict(facts.compliance)} if facts.compliance is not None else {}),
        }


def build_summary(
    rows: Iterable[RowResult], calls: Iterable[CallRecord], facts: RunFacts
) -> dict[str, Any]:
    """The content of summary.json (stable keys, documented in the README)."""
    tally = RowTally()
    for row in rows:
        tally.add(row)
    return tally.summary(list(calls), facts)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) so readers see the old file or the new one."""
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Write ``path`` (mode 0600) as ``write`` fills it, so readers see the old file or
    the new one."""
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
            write(handle)
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
    output_dir: Path,
    rows: Iterable[RowResult],
    calls: Iterable[CallRecord],
    facts: RunFacts,
    *,
    rows_in_order: bool = False,
) -> OutputPaths:
    """Write results.csv, summary.json and report.html into ``output_dir``.

    With ``rows_in_order`` (rows come in line order, say from a checkpoint cursor) the
    rows are read once, each written to results.csv and counted for the summary as it
    comes, and never held together.
    """
    ordered = rows if rows_in_order else sorted(rows, key=lambda r: r.line)

    def write_results(handle: TextIO, tally: RowTally) -> None:
        write = _results_writer(handle, facts)
        for row in ordered:
            write(row)
            tally.add(row)

    return write_outputs_with(output_dir, write_results, calls, facts)


def write_outputs_with(
    output_dir: Path,
    write_results: Callable[[TextIO, RowTally], None],
    calls: Iterable[CallRecord],
    facts: RunFacts,
) -> OutputPaths:
    """``write_outputs`` with results.csv written by ``write_results``, which also counts
    every row it writes into the tally it is given (the summary's row figures)."""
    call_list = sorted(calls, key=lambda c: (c.placed_at, c.row_key, c.attempt))
    paths = OutputPaths(
        results_csv=output_dir / "results.csv",
        summary_json=output_dir / "summary.json",
        report_html=output_dir / "report.html",
    )
    tally = RowTally()
    _write_output(paths.results_csv, lambda handle: write_results(handle, tally))
    summary = tally.summary(call_list, facts)
    _write_output(paths.summary_json, lambda h: h.write(summary_json_text(summary)))
    _write_output(paths.report_html, lambda h: h.write(render_report(summary, call_list)))
    return paths


def _write_output(target: Path, write: Callable[[TextIO], object]) -> None:
    try:
        atomic_write(target, write)
    except OSError as exc:
        raise OutputError(
            f"{target}: the output cannot be written ({exc.strerror or exc}); the "
            "checkpoint is intact — fix the cause (a full disk, the folder's "
            "permissions), then run `campaign report FILE` to write the outputs again"
        ) from exc
