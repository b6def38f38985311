"""What a run leaves behind: the three output files and the printed summary."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaign.clock import Clock, SystemClock, utc
from campaign.config.model import CampaignConfig
from campaign.engine.frame import EngineResult
from campaign.engine.preflight import Preflight
from campaign.errors import CampaignError
from campaign.planning.windows import WindowBook, calling_hours_text
from campaign.reporting.compliance import compliance_summary
from campaign.reporting.files import OutputPaths, RunFacts
from campaign.reporting.results import call_records, progress_counts, run_records
from campaign.reporting.streamed import write_checkpoint_outputs
from campaign.store.checkpoint import Store
from campaign.store.place import StatePlace


@dataclass
class RunTally:
    """What the run did, gathered as it goes: the exit code, the error, the printed summary.

    The runner's own record; callers get a ``campaign.pipeline.report.RunReport`` made from it.
    """

    exit_code: int
    error: CampaignError | None = None
    lines: list[str] = field(default_factory=list)
    outputs: OutputPaths | None = None
    engine: EngineResult | None = None
    preflight: Preflight | None = None
    requests: int = 0
    counts: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _collector_asleep() -> Iterator[None]:
    """Every object made while the outputs are written dies young and holds no cycle (a
    line of results.csv, a call record); with a million of them the cyclic collector would
    wake thousands of times, each time walking all that is alive, so it sleeps meanwhile."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@_collector_asleep()
def write_run_outputs(
    config: CampaignConfig,
    store: Store,
    windows: WindowBook,
    clock: Clock,
    *,
    started: float,
    dry_run: bool,
    engine: EngineResult,
) -> OutputPaths:
    """Write results.csv, summary.json and report.html from the checkpoint."""
    now = clock.now()
    counts = progress_counts(store)
    open_states = ("pending", "retry_scheduled")
    finished = not any(counts["by_state"].get(s, 0) for s in open_states)
    next_due = engine.next_due
    facts = RunFacts(
        campaign=config.campaign,
        mode=config.mode,
        started_at=utc(started),
        ended_at=utc(now),
        finished=finished,
        dry_run=dry_run,
        calls_placed=counts["calls_placed"],
        requests_spent=int(store.get_meta("requests_spent") or 0),
        calling_hours=calling_hours_text(config.calling_hours),
        next_due=None if next_due is None else utc(next_due),
        next_due_reason=engine.next_due_reason,
        key_column=config.input.key_column or "e164",
        variables=list(config.input.variables),
        input_path=str(config.input.path),
        runs=run_records(store),
        cost_estimate=config.cost_estimate,
        compliance=compliance_summary(config, store),
    )
    return write_checkpoint_outputs(
        config.output_dir,
        store,
        call_records(store),
        facts,
        lambda row: windows.pending_reason(row, now),
    )


def summary_lines(
    config: CampaignConfig, report: RunTally, engine: EngineResult, *, now: float
) -> list[str]:
    """The short summary printed at the end of a run."""
    counts = report.counts
    by_state = counts.get("by_state", {})
    states = ", ".join(f"{n} {s}" for s, n in by_state.items()) or "no rows"
    lines = [f"{config.campaign}: {counts.get('rows_total', 0)} rows — {states}"]
    if report.preflight is not None:
        lines.append(f"pre-flight: {report.preflight.describe()}")
    if report.engine is not None:
        lines.append(
            f"this run: {engine.calls_placed} call(s) placed, {report.requests} request(s) "
            f"sent, {counts.get('calls_in_flight', 0)} call(s) still in progress"
        )
    else:
        lines.append("dry run: nothing was sent; rows that would be called show 'pending'")
    if config.calling_hours == "unrestricted":
        lines.append("calling hours: UNRESTRICTED (recipients' local hours not enforced)")
    if report.exit_code == 3:
        lines.append(f"stopped early ({engine.stop_reason}); rerun to resume")
    if engine.next_due is not None:
        lines.append(_next_due_line(engine, report, now=now))
    elif report.engine is not None and not engine.work_left_now and report.exit_code == 0:
        left = by_state.get("pending", 0) + by_state.get("retry_scheduled", 0)
        lines.append("nothing left to do" if not left else f"{left} row(s) cannot be called")
    if report.outputs is not None:
        lines.append(f"report: {report.outputs.report_html} (also results.csv, summary.json)")
    return lines


def _next_due_line(engine: EngineResult, report: RunTally, *, now: float) -> str:
    """When the next work falls due, as the operator (or a scheduler's author) reads it."""
    assert engine.next_due is not None
    wait = wait_in_words(engine.next_due - now)
    if wait != "now":
        return (
            f"next work falls due {_local(engine.next_due)}, {wait} "
            f"({engine.next_due_reason}); rerun then"
        )
    line = f"next work falls due now ({engine.next_due_reason})"
    # An early stop already said "rerun to resume"; a dry run or a refused run needs more
    # than a rerun (drop --dry-run, top up the wallet).
    if report.engine is None or report.exit_code == 3:
        return line
    return f"{line}; rerun to continue"


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def wait_in_words(seconds: float) -> str:
    """A wait in words an operator reads at a glance: 'in 3 h 59 min', 'in 40 s', 'now'."""
    if seconds < 1:
        return "now"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min" if minutes else f"in {secs} s"


def rewrite_outputs(config: CampaignConfig, *, clock: Clock | None = None) -> OutputPaths:
    """``campaign report``: rewrite the outputs from the checkpoint alone."""
    from campaign.errors import StateError

    place = StatePlace.of(config)
    if not place.uses_postgres and not place.checkpoint_path.exists():
        raise StateError(f"no checkpoint at {place.describe()}: run the campaign first")
    clock = clock or SystemClock()
    store = place.reader()
    try:
        runs = store.runs()
        started = runs[-1]["started_at"] if runs else clock.now()
        return write_run_outputs(
            config,
            store,
            WindowBook(config.calling_hours),
            clock,
            started=float(started),
            dry_run=False,
            engine=EngineResult(),
        )
    finally:
        store.close()
