"""How one run ended, as the Python API returns it and the CLI prints it: ``RunReport``.

A run that fails in an expected way (``CampaignError``: a bad file, a refused key, a held
lock, an API outage…) still returns a report, with ``error`` set and the exit code the CLI
would use; whatever the run wrote (the outputs, ``summary``) is in it. Only bugs raise.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from campaign.clock import Clock
from campaign.config.model import CampaignConfig
from campaign.errors import CampaignError, LowBalanceError
from campaign.pipeline.outputs import RunTally
from campaign.pipeline.runner import RunOptions, run_campaign_async
from campaign.reporting.files import OutputPaths

Outcome = Literal[
    "finished",  # exit 0: no row is pending or waiting for a retry
    "waiting",  # exit 0: the rest waits for a retry time or a calling window (summary's next_due)
    "dry_run",  # exit 0: a dry run; nothing was sent
    "stopped",  # exit 3: stopped early (until, max_duration, the stop event) with work left
    "invalid",  # exit 2: the campaign file, the input or a suppression list is unusable
    "low_balance",  # exit 2: the estimated cost exceeds the wallet balance
    "unauthorized",  # exit 4: the API refused the key (401) or its scopes (403)
    "locked",  # exit 75: another run holds the campaign's lock; nothing was done
    "failed",  # exit 1: anything else (API unreachable, wallet ran dry, checkpoint unusable…)
]


@dataclass(frozen=True, repr=False)
class RunReport:
    """How a run ended: exit code, outcome, summary.json, the error if there was one."""

    campaign: str | None  # None when the campaign file could not be read
    exit_code: int  # the CLI's: 0, 1, 2, 3, 4 or 75
    outcome: Outcome
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json; {} if not written
    error: CampaignError | None = None
    lines: tuple[str, ...] = ()  # the summary the CLI prints
    outputs: OutputPaths | None = None  # results.csv, summary.json, report.html

    @property
    def ok(self) -> bool:
        """True for exit 0: nothing left to do now."""
        return self.exit_code == 0

    def __repr__(self) -> str:
        error = None if self.error is None else f"{type(self.error).__name__}({str(self.error)!r})"
        return (
            f"RunReport(campaign={self.campaign!r}, exit_code={self.exit_code}, "
            f"outcome={self.outcome!r}, error={error})"
        )


def outcome_of(
    exit_code: int, error: CampaignError | None, summary: dict[str, Any], *, dry_run: bool
) -> Outcome:
    """The outcome that goes with an exit code (and, for exit 0, with the summary)."""
    if exit_code == 0:
        if dry_run:
            return "dry_run"
        return "finished" if summary.get("finished") else "waiting"
    by_code: dict[int, Outcome] = {3: "stopped", 4: "unauthorized", 75: "locked"}
    if exit_code == 2:
        return "low_balance" if isinstance(error, LowBalanceError) else "invalid"
    return by_code.get(exit_code, "failed")


def failed_report(error: CampaignError, *, campaign: str | None = None) -> RunReport:
    """The report of a run that ended before it wrote anything."""
    return RunReport(
        campaign=campaign,
        exit_code=error.exit_code,
        outcome=outcome_of(error.exit_code, error, {}, dry_run=False),
        error=error,
    )


async def report_run(
    config: CampaignConfig,
    options: RunOptions,
    *,
    clock: Clock,
    on_tally: Callable[[RunTally], None] | None = None,
) -> RunReport:
    """Run the campaign once and report how it ended; only bugs raise.

    ``on_tally`` gets the runner's tally of a run that opened the checkpoint (the metrics
    file reads it)."""
    try:
        tally = await run_campaign_async(config, options, clock=clock)
    except CampaignError as exc:  # before the checkpoint was open: nothing was written
        return without_key(failed_report(exc, campaign=config.campaign), config.api_key())
    if on_tally is not None:
        on_tally(tally)
    summary: dict[str, Any] = {}
    if tally.outputs is not None:
        summary = json.loads(tally.outputs.summary_json.read_text(encoding="utf-8"))
    report = RunReport(
        campaign=config.campaign,
        exit_code=tally.exit_code,
        outcome=outcome_of(tally.exit_code, tally.error, summary, dry_run=options.dry_run),
        summary=summary,
        error=tally.error,
        lines=tuple(tally.lines),
        outputs=tally.outputs,
    )
    return without_key(report, config.api_key())


def without_key(report: RunReport, key: str | None) -> RunReport:
    """``report`` with anything shaped like an API key, or ``key`` itself, out of its error.

    Errors never name the key by design; this is the last line of defence, as in the log.
    """
    from campaign.console.logs import RedactSecrets

    error = report.error
    redactor = RedactSecrets([key] if key else [])
    if error is None or redactor.redact(str(error)) == str(error):
        return report
    clean = copy.copy(error)  # same type and exit code, attributes included
    clean.args = tuple(redactor.redact(a) if isinstance(a, str) else a for a in error.args)
    for name, value in vars(clean).items():
        if isinstance(value, str):
            setattr(clean, name, redactor.redact(value))
    return dataclasses.replace(report, error=clean)
