"""``campaign run A.yaml B.yaml …``: several campaigns in one process over one allowance.

Each campaign runs exactly as it would alone (its own lock, checkpoint, outputs and exit
code); they meet only in the shared allowance of their state dir and key, which divides
the limits between them by priority. One SIGINT/SIGTERM stops them all the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from campaign.clock import Clock, SystemClock
from campaign.config.model import CampaignConfig
from campaign.errors import CampaignError
from campaign.run.runner import RunOptions, _signals, run_campaign_async

log = logging.getLogger("campaign.run.runner")

# Worst first: the overall exit code of several campaigns is the first of these that any of
# them returned. Files that need fixing (2, 4) outrank other failures (1), which outrank a
# campaign skipped because another run holds it (75), which outranks stopping early (3).
EXIT_CODE_ORDER = (2, 4, 1, 75, 3, 0)


@dataclass
class CampaignOutcome:
    """How one of several campaigns ended: its exit code and what to print."""

    label: str
    exit_code: int
    lines: list[str] = field(default_factory=list)
    error: str | None = None


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
    """Run every loaded campaign concurrently; one outcome per entry, in the order given."""
    stop = asyncio.Event()
    shared = dataclasses.replace(options, stop=stop)
    with _signals(stop):
        outcomes = await asyncio.gather(
            *(_run_one(label, entry, shared, clock) for label, entry in entries)
        )
    return list(outcomes)


def run_campaigns(
    entries: Sequence[tuple[str, CampaignConfig | CampaignError]], options: RunOptions
) -> list[CampaignOutcome]:
    """Run several campaigns in this process over their shared allowance."""
    return asyncio.run(run_campaigns_async(entries, options, clock=SystemClock()))


async def _run_one(
    label: str, entry: CampaignConfig | CampaignError, options: RunOptions, clock: Clock
) -> CampaignOutcome:
    if isinstance(entry, CampaignError):
        return CampaignOutcome(label, entry.exit_code, error=str(entry))
    try:
        report = await run_campaign_async(entry, options, clock=clock)
    except CampaignError as exc:
        lines = list(getattr(exc, "summary_lines", []))  # the run wrote its outputs first
        return CampaignOutcome(entry.campaign, exc.exit_code, lines=lines, error=str(exc))
    except Exception as exc:  # one campaign's bug must not take the others down
        log.exception("unexpected error in campaign %s", entry.campaign)
        return CampaignOutcome(entry.campaign, 1, error=f"unexpected {type(exc).__name__}: {exc}")
    return CampaignOutcome(entry.campaign, report.exit_code, lines=report.lines)
