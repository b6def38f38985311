"""``campaign run A.yaml B.yaml …``: several campaigns in one process over one allowance.

Each campaign runs exactly as it would alone (its own lock, checkpoint, outputs and exit
code); they meet only in the shared allowance of their state dir (or state database) and
key, which divides the limits between them by priority. One stop event (the CLI sets it
on SIGINT/SIGTERM) stops them all the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from campaign.clock import Clock
from campaign.config.model import CampaignConfig
from campaign.errors import CampaignError
from campaign.pipeline.report import RunReport, failed_report, report_run
from campaign.pipeline.runner import RunOptions

log = logging.getLogger("campaign.pipeline.runner")

# Worst first: the overall exit code of several campaigns is the first of these that any of
# them returned. Files that need fixing (2, 4) outrank other failures (1), which outrank a
# campaign skipped because another run holds it (75), which outranks stopping early (3).
EXIT_CODE_ORDER = (2, 4, 1, 75, 3, 0)


@dataclass(frozen=True)
class CampaignOutcome:
    """How one of several campaigns ended: its label (the name, else the file) and report."""

    label: str
    report: RunReport

    @property
    def exit_code(self) -> int:
        """The campaign's own exit code."""
        return self.report.exit_code


def worst_exit_code(codes: Sequence[int]) -> int:
    """The overall exit code: the worst by ``EXIT_CODE_ORDER`` (unknown codes rank as 1)."""
    ranked = [code if code in EXIT_CODE_ORDER else 1 for code in codes]
    return min(ranked, key=EXIT_CODE_ORDER.index, default=0)


async def run_campaigns_async(
    entries: Sequence[tuple[str, CampaignConfig | CampaignError]],
    options: RunOptions,
    *,
    clock: Clock,
) -> list[CampaignOutcome]:
    """Run every loaded campaign concurrently; one outcome per entry, in the order given.

    The campaigns share ``options.stop`` (one is made if it is None) and, like a single run,
    show progress as log lines only.
    """
    shared = dataclasses.replace(options, stop=options.stop or asyncio.Event(), progress=None)
    outcomes = await asyncio.gather(
        *(_run_one(label, entry, shared, clock) for label, entry in entries)
    )
    return list(outcomes)


async def _run_one(
    label: str, entry: CampaignConfig | CampaignError, options: RunOptions, clock: Clock
) -> CampaignOutcome:
    if isinstance(entry, CampaignError):
        return CampaignOutcome(label, failed_report(entry))
    try:
        report = await report_run(entry, options, clock=clock)
    except Exception as exc:  # one campaign's bug must not take the others down
        log.exception("unexpected error in campaign %s", entry.campaign)
        bug = CampaignError(f"unexpected {type(exc).__name__}: {exc}")
        return CampaignOutcome(entry.campaign, failed_report(bug, campaign=entry.campaign))
    return CampaignOutcome(entry.campaign, report)
