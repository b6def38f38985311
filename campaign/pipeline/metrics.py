"""``--metrics-file``: a run's figures in the Prometheus text format, for node_exporter's
textfile collector (the convention for jobs run by cron or a timer).

The file is rewritten at the end of every run, failed and refused ones included, through
``prometheus_client.write_to_textfile`` (a temporary file renamed over the old one, so the
collector never reads half a file). It holds the campaign's name and figures, never the key,
and is made readable by all (0644) for node_exporter. The last success time is carried over
from the file the previous run left, since only a run that exits 0 moves it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from campaign.api.transport import ResponseCounts, counting_responses
from campaign.errors import ConfigError, OutputError

if TYPE_CHECKING:
    from campaign.pipeline.outputs import RunTally
    from campaign.pipeline.report import RunReport

log = logging.getLogger("campaign.pipeline.metrics")

PREFIX = "campaign"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
FILE_MODE = 0o644  # node_exporter runs as another user; the file holds no secret


def check_metrics_path(value: str | os.PathLike[str], *, option: str = "--metrics-file") -> Path:
    """The metrics file's path, if its folder exists and it is not a folder itself.

    Checked before the run starts: a run must not place calls and then fail to say so.
    """
    path = Path(value)
    folder = path.parent
    if path.is_dir():
        example = path / "campaign.prom"
        raise ConfigError(f"{path} is a folder; name a file such as {example}", key=option)
    if not folder.is_dir():
        raise ConfigError(
            f"the folder {folder} of {path} does not exist; create it (node_exporter reads "
            "the folder named by --collector.textfile.directory)",
            key=option,
        )
    if path.suffix != ".prom":
        log.warning("%s: node_exporter's textfile collector reads only *.prom files", option)
    return path


@dataclass(frozen=True)
class RunFigures:
    """What one run's metrics file says. ``None``: not known for this run (omitted)."""

    campaign: str
    mode: str
    started: float  # unix seconds
    ended: float
    exit_code: int
    succeeded: bool  # exit 0 and not a dry run: moves the last success time
    rows_by_state: Mapping[str, int] | None = None
    calls_placed: int | None = None
    requests: int | None = None
    rate_limited: int | None = None
    cost: Mapping[str, float] = field(default_factory=dict)  # by currency


def figures_of(
    *,
    campaign: str,
    mode: str,
    started: float,
    ended: float,
    report: RunReport,
    tally: RunTally | None,
    responses: ResponseCounts | None,
    dry_run: bool,
) -> RunFigures:
    """The figures of a run from its report and, if it opened the checkpoint, its tally."""
    rows: dict[str, int] | None = None
    calls = requests = None
    if tally is not None:
        # Every state the report names, so that a state that emptied shows 0, not nothing.
        states = dict.fromkeys(report.summary.get("by_state", {}), 0)
        states.update(tally.counts.get("by_state", {}))
        rows = {str(state): int(count) for state, count in states.items()}
        calls = 0 if tally.engine is None else tally.engine.calls_placed
        requests = tally.requests
    return RunFigures(
        campaign=campaign,
        mode=mode,
        started=started,
        ended=ended,
        exit_code=report.exit_code,
        succeeded=report.exit_code == 0 and not dry_run,
        rows_by_state=rows,
        calls_placed=calls,
        requests=requests,
        rate_limited=None if responses is None or tally is None else responses.rate_limited,
        cost=_cost(report.summary),
    )


def _cost(summary: Mapping[str, Any]) -> dict[str, float]:
    """The campaign's cost so far by currency, from summary.json (sessions that have one)."""
    cost = summary.get("cost")
    by_currency = cost.get("by_currency") if isinstance(cost, dict) else None
    if not isinstance(by_currency, dict):
        return {}
    amounts: dict[str, float] = {}
    for currency, amount in by_currency.items():
        try:
            amounts[str(currency)] = float(Decimal(str(amount)))
        except InvalidOperation:
            continue
    return amounts


def write_metrics(path: Path, figures: RunFigures) -> None:
    """Write the run's figures to ``path`` atomically, readable by all (OutputError if not)."""
    previous = read_previous(path)
    last_success = figures.ended if figures.succeeded else None
    if last_success is None and previous.get("campaign") == figures.campaign:
        last_success = previous.get("last_success")
    registry = CollectorRegistry()
    labels = {"campaign": figures.campaign, "mode": figures.mode}

    def gauge(name: str, doc: str, value: float | None, **extra: str) -> None:
        if value is None:
            return
        metric = Gauge(f"{PREFIX}_{name}", doc, [*labels, *extra], registry=registry)
        metric.labels(**labels, **extra).set(value)

    gauge("last_run_start_timestamp_seconds", "When the last run started.", figures.started)
    gauge("last_run_end_timestamp_seconds", "When the last run ended.", figures.ended)
    gauge(
        "last_run_duration_seconds",
        "How long the last run took.",
        max(0.0, figures.ended - figures.started),
    )
    gauge(
        "last_run_exit_code",
        "Exit code of the last run: 0 ok, 1 failed, 2 fix the file or input, 3 stopped "
        "early with work left, 4 key refused, 75 another run holds the lock.",
        figures.exit_code,
    )
    gauge(
        "last_success_timestamp_seconds",
        "When a run last ended with exit 0 (dry runs excluded).",
        last_success,
    )
    if figures.rows_by_state is not None:
        rows = Gauge(
            f"{PREFIX}_rows",
            "Rows of the campaign's input by state, at the end of the last run.",
            [*labels, "state"],
            registry=registry,
        )
        for state, count in sorted(figures.rows_by_state.items()):
            rows.labels(**labels, state=state).set(count)
    gauge("last_run_calls_placed", "Calls the last run placed.", figures.calls_placed)
    gauge("last_run_requests", "API requests the last run sent.", figures.requests)
    gauge(
        "last_run_rate_limited_responses",
        "429 (rate_limited) answers the last run got.",
        figures.rate_limited,
    )
    if figures.cost:
        cost = Gauge(
            f"{PREFIX}_cost",
            "What the campaign's calls have cost so far, as the API reported it.",
            [*labels, "currency"],
            registry=registry,
        )
        for currency, amount in sorted(figures.cost.items()):
            cost.labels(**labels, currency=currency).set(amount)
    try:
        write_to_textfile(str(path), registry)
        os.chmod(path, FILE_MODE)
    except OSError as exc:
        raise OutputError(f"--metrics-file {path}: cannot write it: {exc.strerror}") from exc


def read_previous(path: Path) -> dict[str, Any]:
    """The campaign, mode and last success time the file at ``path`` holds, as far as known.

    A missing file is a first run; an unreadable one is logged and read as nothing.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("--metrics-file %s: cannot read the previous figures (%s)", path, exc)
        return {}
    found: dict[str, Any] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith(f"{PREFIX}_"):
                    continue
                found.setdefault("campaign", sample.labels.get("campaign"))
                found.setdefault("mode", sample.labels.get("mode"))
                if sample.name == LAST_SUCCESS and math.isfinite(sample.value):
                    found["last_success"] = float(sample.value)
    except (ValueError, TypeError, IndexError) as exc:
        log.warning(
            "--metrics-file %s: the previous file is not in the Prometheus text format (%s); "
            "the last success time starts again",
            path,
            exc,
        )
        return {}
    return found


class RunMeter:
    """Watches one run for its metrics file: when it started, its tally, the 429s it met.

    Made before anything else is done, so that the start time is the command's.
    """

    def __init__(self, path: Path, *, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.wall = wall
        self.started = wall()
        self.tally: RunTally | None = None
        self.responses: ResponseCounts | None = None

    def take_tally(self, tally: RunTally) -> None:
        """The runner's tally (``report_run``'s ``on_tally``)."""
        self.tally = tally

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Count the run's 429s: enter it on the task that runs the campaign."""
        with counting_responses() as counts:
            self.responses = counts
            yield

    async def measure(
        self,
        run: Callable[[Callable[[RunTally], None]], Awaitable[RunReport]],
        *,
        campaign: str,
        mode: str,
        dry_run: bool,
    ) -> RunReport:
        """Run ``run(on_tally)`` and write the metrics file however it ends.

        A bug still writes exit 1 before it propagates; a failure to write the file is
        logged and leaves the run's exit code alone.
        """
        with self.counting():
            try:
                report = await run(self.take_tally)
            except Exception:
                self.write_refused(1, campaign=campaign, mode=mode)
                raise
        self.write_report(report, campaign=campaign, mode=mode, dry_run=dry_run)
        return report

    def write_report(self, report: RunReport, *, campaign: str, mode: str, dry_run: bool) -> None:
        """Write the figures of a run that got as far as a report."""
        figures = figures_of(
            campaign=campaign,
            mode=mode,
            started=self.started,
            ended=self.wall(),
            report=report,
            tally=self.tally,
            responses=self.responses,
            dry_run=dry_run,
        )
        self._write(figures)

    def write_refused(
        self, exit_code: int, *, campaign: str | None, mode: str | None, source: str = ""
    ) -> None:
        """Write the exit code and times of a run refused before it could run.

        A campaign file that cannot be read has no name: the previous file's is used, else
        ``source`` (the campaign file's name without its suffix).
        """
        previous = read_previous(self.path)
        figures = RunFigures(
            campaign=campaign or previous.get("campaign") or Path(source).stem,
            mode=mode or previous.get("mode") or "unknown",
            started=self.started,
            ended=self.wall(),
            exit_code=exit_code,
            succeeded=False,
        )
        self._write(figures)

    def _write(self, figures: RunFigures) -> None:
        try:
            write_metrics(self.path, figures)
        except OutputError as exc:
            log.error("%s", exc)
