"""``campaign status``: progress from the checkpoint alone (no API call)."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from campaign.config.model import CampaignConfig
from campaign.console.words import duration_in_words
from campaign.engine.preflight import projected_seconds
from campaign.errors import StateError
from campaign.limits.status import allowance_lines, allowance_view
from campaign.reporting.results import iso, progress_counts
from campaign.store.place import StatePlace


@dataclass(frozen=True)
class LastRun:
    """The latest run recorded in the checkpoint (RFC 3339 UTC times)."""

    started_at: str | None
    ended_at: str | None  # None: still running, or killed
    exit_code: int | None


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign's progress as its checkpoint records it (``campaign status``)."""

    campaign: str
    checkpoint: str  # the file, or the database URL (without password) and schema
    rows_total: int
    rows_vanished: int  # rows of earlier input files that today's file no longer has
    by_state: dict[str, int]  # rows per results.csv state
    attempts_total: int
    attempts_by_state: dict[str, int]
    calls_placed: int
    calls_in_flight: int
    unconfirmed_sends: int  # attempts sent whose answer was never recorded
    next_retry_due: str | None  # RFC 3339 UTC
    eta_s: int  # seconds to place the pending rows at the call limit
    # Every campaign sharing this one's limits (same state dir or database, base URL, key).
    allowance: list[dict[str, Any]]
    last_run: LastRun | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``--json``)."""
        return dataclasses.asdict(self)


def campaign_status(config: CampaignConfig) -> CampaignStatus:
    """Rows by state, attempts, calls in flight, next due and ETA, read from the checkpoint."""
    place = StatePlace.of(config)
    if not place.uses_postgres and not place.checkpoint_path.exists():
        raise StateError(f"no checkpoint at {place.describe()}: the campaign has not run yet")
    store = place.reader()
    try:
        counts = progress_counts(store)
        runs = store.runs()
    finally:
        store.close()
    waiting = counts["by_state"].get("pending", 0)
    last = runs[-1] if runs else None
    return CampaignStatus(
        campaign=config.campaign,
        checkpoint=place.describe(),
        rows_total=counts["rows_total"],
        rows_vanished=counts["rows_vanished"],
        by_state=counts["by_state"],
        attempts_total=counts["attempts_total"],
        attempts_by_state=counts["attempts_by_state"],
        calls_placed=counts["calls_placed"],
        calls_in_flight=counts["calls_in_flight"],
        unconfirmed_sends=counts["unconfirmed_sends"],
        next_retry_due=iso(counts["next_retry_due"]),
        eta_s=round(projected_seconds(waiting, list(config.limits.calls))),
        allowance=allowance_view(
            place,
            config.campaign,
            config.api.base_url,
            config.api_key(),
            min((lim.window for lim in config.limits.calls), default=60.0),
            time.time(),
        ),
        last_run=None
        if last is None
        else LastRun(
            started_at=iso(last["started_at"]),
            ended_at=iso(last["ended_at"]),
            exit_code=last["exit_code"],
        ),
    )


def render_status(status: CampaignStatus, *, as_json: bool) -> str:
    """The status as text for people or JSON for scripts."""
    if as_json:
        return json.dumps(status.to_dict(), indent=2)
    states = ", ".join(f"{n} {s}" for s, n in status.by_state.items()) or "no rows"
    attempts = ", ".join(f"{n} {s}" for s, n in status.attempts_by_state.items()) or "none"
    lines = [
        f"{status.campaign}: {status.rows_total} rows — {states}",
        f"attempts: {status.attempts_total} ({attempts}); calls placed {status.calls_placed}, "
        f"in progress {status.calls_in_flight}, unconfirmed sends {status.unconfirmed_sends}",
    ]
    if status.next_retry_due:
        lines.append(f"next retry due {status.next_retry_due}")
    if status.by_state.get("pending"):
        eta = duration_in_words(status.eta_s)
        lines.append(f"ETA for pending rows at the call limit: {eta}")
    last = status.last_run
    if last:
        ended = last.ended_at or "(running, or killed)"
        code = "-" if last.exit_code is None else last.exit_code
        lines.append(f"last run: started {last.started_at}, ended {ended}, exit {code}")
    lines.extend(allowance_lines(status.allowance))
    return "\n".join(lines)
