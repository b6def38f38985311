"""``campaign validate``: what a campaign would do, from the file and input alone (no API)."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from campaign.config.model import CampaignConfig
from campaign.planning.consent import consent_basis
from campaign.planning.hours import calling_window
from campaign.planning.plan import PlanCounts, iter_plan
from campaign.planning.rejects import counted_share, reject_warning
from campaign.planning.suppression import LoadedList, load_suppression, suppression_reason

_Group = tuple[tuple[str, ...], str | None]  # recipients sharing a calling window
_STEP = timedelta(minutes=15)
_HORIZON_DAYS = 366  # a projection beyond a year says "more than a year"


@dataclass(frozen=True)
class Projection:
    """How long the callable rows take at the configured limits and calling hours."""

    calls: int
    calls_per_hour: float
    calling_hours: float  # hours with work left and some recipient's window open
    calling_days: int  # calendar days (UTC) with at least one call
    finishes_at: datetime | None  # if started at ``started_at``; None beyond the horizon
    started_at: datetime
    unrestricted: bool


@dataclass(frozen=True)
class ValidationSummary:
    """Counts of the plan and the projection."""

    campaign: str
    input_path: str
    counts: PlanCounts
    projection: Projection
    suppression_lists: tuple[LoadedList, ...] = ()
    warnings: tuple[str, ...] = ()  # a mostly rejected list (planning.rejects)
    consent: str = ""  # how consent is known (planning.consent.consent_basis)

    def matched_rows(self, listed: LoadedList) -> int:
        """Input rows suppressed because of this list."""
        return self.counts.suppressed[suppression_reason(listed.name)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``--json``)."""
        counts, projection = self.counts, self.projection
        return {
            "campaign": self.campaign,
            "input": self.input_path,
            "rows_read": counts.rows_read,
            "callable": counts.callable,
            "rejected": sum(counts.rejected.values()),
            "rejected_by_reason": dict(counts.rejected.most_common()),
            "reject_share": round(counted_share(counts).share, 4),
            "extensions": counts.extensions,
            "warnings": list(self.warnings),
            "consent_basis": self.consent,
            "duplicates": counts.duplicates,
            "suppressed": sum(counts.suppressed.values()),
            "suppressed_by_list": dict(counts.suppressed.most_common()),
            "suppression_lists": [
                {
                    "list": listed.name,
                    "path": str(listed.path),
                    "column": listed.column,
                    "region": listed.region,
                    "entries": listed.entries,
                    "usable": listed.usable,
                    "unusable": listed.unusable_count,
                    "unusable_by_reason": dict(listed.unusable.most_common()),
                    "unusable_lines": listed.unusable_lines,
                    "matched_rows": self.matched_rows(listed),
                    "format": "registry" if listed.registry else "csv",
                    "files": listed.files,
                    "expired": listed.expired,
                    "not_yet_in_force": listed.not_yet,
                    "unreadable_dates": listed.bad_dates,
                    "unreadable_date_lines": listed.bad_date_lines,
                }
                for listed in self.suppression_lists
            ],
            "by_country": dict(counts.by_country.most_common()),
            "by_timezone": dict(counts.by_timezone.most_common()),
            **(
                {"by_address_zone": dict(counts.by_address_zone.most_common())}
                if counts.by_address_zone
                else {}
            ),
            "projection": {
                "calls": projection.calls,
                "calls_per_hour": round(projection.calls_per_hour, 3),
                "calling_hours": round(projection.calling_hours, 2),
                "calling_days": projection.calling_days,
                "started_at": projection.started_at.isoformat(),
                "finishes_at": projection.finishes_at.isoformat()
                if projection.finishes_at
                else None,
                "calling_hours_unrestricted": projection.unrestricted,
            },
        }


def validate_campaign(
    config: CampaignConfig, *, opted_out: Iterable[str] = (), now: datetime | None = None
) -> ValidationSummary:
    """Plan the input and project the campaign's duration; no API call is made."""
    counts = PlanCounts()
    suppression = load_suppression(config)
    # only the counts are wanted: the rows are dropped as they come (at C speed)
    deque(iter_plan(config, counts, opted_out=opted_out, suppression=suppression), maxlen=0)
    rate = calls_per_hour(config)
    started = (now or datetime.now(UTC)).astimezone(UTC)
    projection = project(counts.by_window, config, rate, started)
    warning = reject_warning(config, counted_share(counts))
    return ValidationSummary(
        config.campaign,
        str(config.input.path),
        counts,
        projection,
        tuple(suppression.lists),
        warnings=() if warning is None else (warning,),
        consent=consent_basis(config),
    )


def calls_per_hour(config: CampaignConfig) -> float:
    """The sustained call rate the tightest limit allows (each call is at least one request)."""
    limits = [*config.limits.calls, *config.limits.requests]
    return min(limit.count / limit.window for limit in limits) * 3600.0


def project(
    groups: Counter[_Group],
    config: CampaignConfig,
    rate: float,
    started: datetime,
) -> Projection:
    """Simulate placing calls in 15-minute steps, each step only to people whose window is open."""
    total = sum(groups.values())
    unrestricted = config.calling_hours == "unrestricted"
    if total == 0:
        return Projection(0, rate, 0.0, 0, started, started, unrestricted)
    if unrestricted:
        hours = total / rate
        finish = started + timedelta(hours=hours)
        day_count = (finish.date() - started.date()).days + 1
        return Projection(total, rate, hours, day_count, finish, started, unrestricted)
    windows = {key: calling_window(*key, config.calling_hours) for key in groups}
    remaining = dict(groups)
    per_step = rate * _STEP.total_seconds() / 3600.0
    credit, hours = 0.0, 0.0
    days: set[date] = set()
    at = started
    for _ in range(math.ceil(_HORIZON_DAYS * 24 * 3600 / _STEP.total_seconds())):
        open_groups = [key for key in remaining if windows[key].is_open(at)]
        if open_groups:
            credit += per_step
            placed = _place(remaining, open_groups, credit)
            credit -= placed
            hours += _STEP.total_seconds() / 3600.0
            if placed:
                days.add(at.date())
        else:
            credit = 0.0  # unused allowance does not accumulate across closed hours
        at += _STEP
        if not remaining:
            return Projection(total, rate, hours, len(days), at, started, unrestricted)
    return Projection(total, rate, hours, len(days), None, started, unrestricted)


def _place(remaining: dict[_Group, int], open_groups: list[_Group], credit: float) -> int:
    """Place whole calls from the credit among open groups; drop groups that are done."""
    placed = 0
    budget = int(credit)
    for group in open_groups:
        if budget <= 0:
            break
        take = min(budget, remaining[group])
        remaining[group] -= take
        budget -= take
        placed += take
        if remaining[group] == 0:
            del remaining[group]
    return placed


def render_text(summary: ValidationSummary) -> str:
    """The human summary printed by ``campaign validate``."""
    counts, projection = summary.counts, summary.projection
    lines = [
        f"campaign {summary.campaign}: {summary.input_path}",
        f"  rows read    {counts.rows_read:>9,}",
        f"  callable     {counts.callable:>9,}",
        f"  rejected     {sum(counts.rejected.values()):>9,}",
    ]
    lines += [f"    {count:>9,}  {reason}" for reason, count in counts.rejected.most_common()]
    if counts.extensions:
        lines.append(
            f"  extensions   {counts.extensions:>9,}  callable rows with an extension after the "
            "number: called on the main number only (see results.csv)"
        )
    if summary.consent:
        lines.append(f"  consent      {summary.consent}")
    lines.append(f"  duplicates   {counts.duplicates:>9,}")
    lines.append(f"  suppressed   {sum(counts.suppressed.values()):>9,}")
    lines += [f"    {count:>9,}  {reason}" for reason, count in counts.suppressed.most_common()]
    lines += _suppression_lines(summary)
    if counts.by_country:
        lines.append("  callable by country")
        lines += [f"    {n:>9,}  {country}" for country, n in counts.by_country.most_common()]
    if counts.by_timezone:
        lines.append("  callable by timezone")
        lines += [f"    {n:>9,}  {zone}" for zone, n in counts.by_timezone.most_common()]
    if counts.by_address_zone:
        lines.append("  callable by address (state/ZIP column; see the note in results.csv)")
        lines += [f"    {n:>9,}  {what}" for what, n in counts.by_address_zone.most_common()]
    lines.append("projection")
    lines.append(
        f"  {projection.calls:,} calls at {projection.calls_per_hour:g} calls/hour "
        f"→ {projection.calling_hours:.1f} calling hours over {projection.calling_days} day(s)"
    )
    if projection.unrestricted:
        lines.append("  calling hours: UNRESTRICTED (calling_hours: unrestricted)")
    if projection.calls and projection.finishes_at is not None:
        lines.append(
            f"  started now ({projection.started_at:%Y-%m-%d %H:%M} UTC) it would finish "
            f"around {projection.finishes_at:%Y-%m-%d %H:%M} UTC"
        )
    elif projection.calls:
        lines.append("  it would take more than a year at these limits and calling hours")
    lines += [f"WARNING: {warning}" for warning in summary.warnings]
    return "\n".join(lines)


def _suppression_lines(summary: ValidationSummary) -> list[str]:
    """Per suppression list: entries read, unusable ones by reason, rows matched."""
    if not summary.suppression_lists:
        return []
    lines = ["  suppression lists"]
    for listed in summary.suppression_lists:
        region = f", region {listed.region}" if listed.region and not listed.registry else ""
        lines.append(
            f"    {listed.name} ({listed.layout}{region}): {listed.entries:,} entries read, "
            f"{listed.unusable_count:,} unusable, {summary.matched_rows(listed):,} row(s) matched"
        )
        dates = listed.describe_dates()
        if dates:
            lines.append(f"                 dates: {dates}")
        for reason, count in listed.unusable.most_common():
            lines.append(f"      {count:>9,}  unusable: {reason}")
        if listed.unusable_lines:
            more = ", …" if listed.unusable_count > len(listed.unusable_lines) else ""
            shown = ", ".join(str(line) for line in listed.unusable_lines)
            lines.append(f"                 unusable lines: {shown}{more}")
    return lines
