"""A list that is mostly rejected: warn loudly, or refuse the run when the campaign says so.

A wrong region column, a column of landlines marked as mobiles or a mangled export can
reject most rows, and a run that calls the few left would still exit 0. Past
``WARN_REJECT_SHARE`` of the rows rejected, ``validate`` and every run say so in a
WARNING; past ``input.max_reject_share`` a run refuses to start (exit 2).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from campaign.config.model import CampaignConfig
from campaign.errors import InputError
from campaign.planning.plan import PlanCounts
from campaign.store.models import RowIn

log = logging.getLogger("campaign.planning.rejects")

WARN_REJECT_SHARE = 0.20  # documented in the README: "more than 20 % of the rows rejected"
_REASONS_SHOWN = 3


@dataclass(frozen=True)
class RejectShare:
    """How much of the input was rejected, and the commonest reasons."""

    rejected: int
    rows: int
    reasons: tuple[tuple[str, int], ...] = ()

    @property
    def share(self) -> float:
        """Rejected rows over rows read (0 for an empty input)."""
        return self.rejected / self.rows if self.rows else 0.0

    def sentence(self) -> str:
        """'23 of 40 rows (58 %) are rejected — mostly …'."""
        text = f"{self.rejected:,} of {self.rows:,} rows ({self.share:.0%}) are rejected"
        if self.reasons:
            text += " — mostly " + "; ".join(f"{reason} ({n:,})" for reason, n in self.reasons)
        return text


def reject_share(rejected: Counter[str], rows: int) -> RejectShare:
    """The share of rows rejected, from a count of reasons."""
    reasons = tuple(rejected.most_common(_REASONS_SHOWN))
    return RejectShare(sum(rejected.values()), rows, reasons)


def counted_share(counts: PlanCounts) -> RejectShare:
    """The reject share of a plan's counts (what ``validate`` has)."""
    return reject_share(counts.rejected, counts.rows_read)


def reject_warning(config: CampaignConfig, found: RejectShare) -> str | None:
    """The WARNING line for a share past WARN_REJECT_SHARE (or past the campaign's limit)."""
    limit = config.input.max_reject_share
    if found.rows == 0:
        return None
    if limit is not None and found.share > limit:
        return (
            f"{found.sentence()}: over input.max_reject_share {limit:g}, so `campaign run` "
            "refuses to start; fix the input (see the reasons) or raise the limit"
        )
    if found.share > WARN_REJECT_SHARE:
        return (
            f"{found.sentence()}: over {WARN_REJECT_SHARE:.0%} of the list — check the "
            "input (the phone and region columns?) before calling the rest; set "
            "input.max_reject_share to make a run refuse such a list"
        )
    return None


def check_reject_share(config: CampaignConfig, rows: Iterable[RowIn]) -> RejectShare:
    """After planning a run: log a WARNING past 20 % rejected; InputError past the limit."""
    reasons: Counter[str] = Counter()
    total = 0
    for row in rows:
        total += 1
        if row.plan_state == "rejected":
            reasons[row.reason or "rejected"] += 1
    return check_share(config, reject_share(reasons, total))


def check_share(config: CampaignConfig, found: RejectShare) -> RejectShare:
    """``check_reject_share`` of a share already counted (a plan's ``PlanCounts``)."""
    limit = config.input.max_reject_share
    if limit is not None and found.rows and found.share > limit:
        raise InputError(
            f"{found.sentence()}, over input.max_reject_share {limit:g} of "
            f"{config.source_path}; nothing was called — fix the input or raise the limit",
            path=str(config.input.path),
        )
    warning = reject_warning(config, found)
    if warning is not None:
        log.warning("input %s: %s", config.input.path, warning)
    return found
