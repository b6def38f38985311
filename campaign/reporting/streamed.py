"""The outputs of a run written straight from the checkpoint, fast at a million rows.

results.csv is written from the plain tuples of a checkpoint cursor in input order
(``RowQueue.result_cells``): no ``RowResult`` per row, the variables read out of their
JSON by SQLite, and the summary's row figures counted per group of alike rows. The bytes
are those ``files.write_outputs`` writes from ``results.iter_row_results``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO, cast

from campaign.clock import utc
from campaign.reporting.files import (
    _E164,
    _FIXED_COLUMNS,
    _FORMULA_LEADS,
    CallRecord,
    OutputPaths,
    RowResult,
    RowTally,
    RunFacts,
    State,
    results_csv_writer,
    results_header_row,
    spreadsheet_safe,
    write_outputs_with,
)
from campaign.reporting.results import _STATE_OF_PROGRESS, PendingReason, row_result, state_of
from campaign.store.checkpoint import RowProgress, Store
from campaign.store.queue import probe_row

_LEADS = frozenset(_FORMULA_LEADS)
_BLOCKED_STATES = ("rejected", "suppressed", "duplicate")
_MISSING = object()
_FIXED = len(_FIXED_COLUMNS) + 1  # the cells before the variables


def write_checkpoint_outputs(
    output_dir: Path,
    store: Store,
    calls: Iterable[CallRecord],
    facts: RunFacts,
    pending_reason: PendingReason | None = None,
) -> OutputPaths:
    """``write_outputs(output_dir, iter_row_results(store, pending_reason), calls, facts,
    rows_in_order=True)``, the same bytes, reading the checkpoint once in bounded memory."""

    def write_results(handle: TextIO, tally: RowTally) -> None:
        writer = results_csv_writer(handle)
        writer.writerow(results_header_row(facts))
        # A million short-lived lists would wake the cyclic collector thousands of times,
        # each walking every object alive; they hold no cycle, so it sleeps meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            writer.writerows(_result_lines(store, facts.variables, tally, pending_reason))
        finally:
            if collecting:
                gc.enable()

    return write_outputs_with(output_dir, write_results, calls, facts)


def _sql_paths_ok(names: list[str]) -> bool:
    """Whether SQLite's JSON paths can name every variable (``$."name"``). A name that is
    not ASCII cannot: the checkpoint keeps it escaped (``\\u00e9``), and SQLite's paths
    match the key as written, so ``prénom`` would read as absent."""
    return all('"' not in name and "\\" not in name and name.isascii() for name in names)


def _result_lines(
    store: Store, variables: list[str], tally: RowTally, pending_reason: PendingReason | None
) -> Iterator[list[Any]]:
    """results.csv's lines after the header, each row counted into ``tally``."""
    in_sql = _sql_paths_ok(variables)
    reasons: dict[tuple[str, str], str | None] = {}
    groups: dict[tuple[Any, ...], int] = {}
    by_progress = _STATE_OF_PROGRESS
    leads = _LEADS
    safe = spreadsheet_safe
    is_e164 = _E164.match
    blocked_states = _BLOCKED_STATES
    no_attempt = ("", "", "", None)
    attempts_cells = store.last_attempt_cells()
    next_called = next(attempts_cells, None)
    try:
        for (
            line, label, raw, e164, ext, progress, plan_state, attempts,
            reason, note, region, next_due, window_key, *values,
        ) in store.result_cells(variables if in_sql else []):  # fmt: skip
            if next_called is not None and next_called[0] == line:
                call_id, status, outcome, goal = next_called[1:]
                next_called = next(attempts_cells, None)
            else:
                call_id, status, outcome, goal = no_attempt
            state: State | None = by_progress.get(progress)
            if state is None:
                state = state_of(progress, plan_state)
            stored_reason = reason
            if state == "pending" and pending_reason is not None:
                group = (window_key, progress)
                found = reasons.get(group, _MISSING)
                if found is _MISSING:
                    probe = replace(probe_row(window_key), progress=cast(RowProgress, progress))
                    found = reasons[group] = pending_reason(probe)
                reason = found or reason
            goal_cell = "" if goal is None else "true" if goal else "false"
            reason = reason or ""
            cells = [
                line,
                label if label[:1] not in leads else safe(label),
                raw if raw[:1] not in leads or is_e164(raw) else safe(raw),
                e164 if e164[:1] not in leads or is_e164(e164) else safe(e164),
                ext if ext[:1] not in leads else safe(ext),
                state,
                attempts,
                call_id if call_id[:1] not in leads else safe(call_id),
                status if status[:1] not in leads else safe(status),
                outcome if outcome[:1] not in leads else safe(outcome),
                goal_cell,
                reason if reason[:1] not in leads else safe(reason),
                note if note[:1] not in leads else safe(note),
            ]
            if variables:
                add = cells.append
                try:
                    if not in_sql:
                        raise TypeError  # names a JSON path cannot read
                    for v in values:
                        add(v if v[:1] not in leads or is_e164(v) else safe(v))
                except TypeError:  # a value that is not text in the JSON (None)
                    del cells[_FIXED:]
                    full = _full_row(store, line, state, reason)
                    cells += [safe(full.variables.get(name, "")) for name in variables]
            key = (
                state, status, outcome, goal_cell == "true", region, attempts,
                (_not_called_reason(state, stored_reason) if state in blocked_states else None),
                ext != "",
            )  # fmt: skip
            groups[key] = groups.get(key, 0) + 1
            if outcome == "callback_requested":
                if tally.wants_callback_rows():
                    tally.add_callback(_full_row(store, line, state, reason))
                else:
                    tally.callbacks_count += 1
            if state == "retry_scheduled":
                tally.add_retry(None if next_due is None else utc(next_due))
            yield cells
    finally:
        for key, n in groups.items():
            tally.count(*key, n=n)


def _not_called_reason(state: str, reason: str | None) -> str:
    # as files._not_called_reason
    if state == "duplicate":
        return "duplicate of an earlier row"
    return reason or f"{state} (no reason given)"


def _full_row(store: Store, line: int, state: State, reason: str) -> RowResult:
    """The whole ``RowResult`` of the row on ``line`` (for the few rows that need it)."""
    found = store.result_row(line)
    if found is None:  # cannot be: the open cursor keeps the connection's snapshot
        raise LookupError(f"line {line} is gone from the checkpoint")
    return row_result(found, state, reason or None)
