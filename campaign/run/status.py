"""``campaign status``: progress from the checkpoint alone (no API call)."""

from __future__ import annotations

import json
import time
from typing import Any

from campaign.config.model import CampaignConfig
from campaign.engine.preflight import projected_seconds
from campaign.errors import StateError
from campaign.limits.status import allowance_lines, allowance_view
from campaign.reports.results import iso, progress_counts
from campaign.store.checkpoint import Store


def campaign_status(config: CampaignConfig) -> dict[str, Any]:
    """Rows by state, attempts, calls in flight, next due and ETA, read from the checkpoint."""
    if not config.state_path.exists():
        raise StateError(f"no checkpoint at {config.state_path}: the campaign has not run yet")
    store = Store.snapshot(config.state_path)
    try:
        counts = progress_counts(store)
        runs = store.runs()
    finally:
        store.close()
    waiting = counts["by_state"].get("pending", 0)
    last = runs[-1] if runs else None
    return {
        "campaign": config.campaign,
        "checkpoint": str(config.state_path),
        **{k: v for k, v in counts.items() if k != "next_retry_due"},
        "next_retry_due": iso(counts["next_retry_due"]),
        "eta_s": round(projected_seconds(waiting, list(config.limits.calls))),
        # Every campaign sharing this one's limits (same state dir, base URL and key).
        "allowance": allowance_view(
            config.state_dir,
            config.campaign,
            config.api.base_url,
            config.api_key(),
            min((lim.window for lim in config.limits.calls), default=60.0),
            time.time(),
        ),
        "last_run": None
        if last is None
        else {
            "started_at": iso(last["started_at"]),
            "ended_at": iso(last["ended_at"]),
            "exit_code": last["exit_code"],
        },
    }


def render_status(status: dict[str, Any], *, as_json: bool) -> str:
    """The status as text for people or JSON for scripts."""
    if as_json:
        return json.dumps(status, indent=2)
    states = ", ".join(f"{n} {s}" for s, n in status["by_state"].items()) or "no rows"
    lines = [
        f"{status['campaign']}: {status['rows_total']} rows — {states}",
        f"attempts: {status['attempts_total']} "
        f"({', '.join(f'{n} {s}' for s, n in status['attempts_by_state'].items()) or 'none'}); "
        f"calls placed {status['calls_placed']}, in progress {status['calls_in_flight']}, "
        f"unconfirmed sends {status['unconfirmed_sends']}",
    ]
    if status["next_retry_due"]:
        lines.append(f"next retry due {status['next_retry_due']}")
    if status["by_state"].get("pending"):
        lines.append(f"ETA for pending rows at the call limit: ~{status['eta_s'] // 60} min")
    last = status["last_run"]
    if last:
        ended = last["ended_at"] or "(running, or killed)"
        code = "-" if last["exit_code"] is None else last["exit_code"]
        lines.append(f"last run: started {last['started_at']}, ended {ended}, exit {code}")
    lines.extend(allowance_lines(status.get("allowance", [])))
    return "\n".join(lines)
