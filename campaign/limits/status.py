"""Who is on a shared allowance: the view ``campaign status`` prints (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaign.limits.allowance import allowance_path
from campaign.limits.fairness import DEFAULT_TTL_S
from campaign.store.allowance import AllowanceDb, Participant


@dataclass(frozen=True)
class AllowanceMember:
    """One campaign on an allowance, as ``campaign status`` shows it."""

    campaign: str
    priority: float
    # calling (waiting for or taking call slots) | active | idle | left | expired (killed)
    state: str
    pid: int
    host: str
    last_seen: float
    calls_in_window: int
    calls_sent: int
    requests_sent: int


def allowance_members(
    path: Path, now: float, *, window_s: float = 60.0, ttl_s: float = DEFAULT_TTL_S
) -> list[AllowanceMember]:
    """Every campaign seen on the allowance file in the last hour, without joining it."""
    if not path.exists():
        return []
    db = AllowanceDb(path)
    try:
        with db.transaction():
            participants = db.participants()
            recent_calls = db.calls_since(now - window_s)
    finally:
        db.close()
    members = []
    for p in participants:
        if p.heartbeat < now - 3600.0:
            continue
        state = _member_state(p, now, window_s, ttl_s)
        members.append(
            AllowanceMember(
                campaign=p.name,
                priority=p.priority,
                state=state,
                pid=p.pid,
                host=p.host,
                last_seen=p.heartbeat,
                calls_in_window=recent_calls.get(p.name, 0),
                calls_sent=p.calls_sent,
                requests_sent=p.requests_sent,
            )
        )
    return members


def _member_state(p: Participant, now: float, window_s: float, ttl_s: float) -> str:
    if not p.is_live(now, ttl_s):
        return "left" if p.state == "gone" else "expired"
    if p.waiting > 0 and p.ready_at is not None and p.ready_at >= now - window_s:
        return "calling"
    if p.state == "active" and p.last_call is not None and p.last_call >= now - window_s:
        return "calling"
    return p.state


def allowance_files(
    state_dir: Path, campaign: str, base_url: str, api_key: str | None
) -> list[Path]:
    """The allowance file(s) a campaign runs on: exact with the key, else found by name."""
    if api_key:
        path = allowance_path(state_dir, base_url, api_key)
        return [path] if path.exists() else []
    # Without the key (status needs none) the file is recognised by its participants.
    found = []
    for path in sorted(state_dir.glob("allowance-*.sqlite")):
        db = AllowanceDb(path)
        try:
            with db.transaction():
                names = {p.name for p in db.participants()}
        finally:
            db.close()
        if campaign in names:
            found.append(path)
    return found


def allowance_view(
    state_dir: Path, campaign: str, base_url: str, api_key: str | None, window_s: float, now: float
) -> list[dict[str, Any]]:
    """Every campaign on the allowance(s) ``campaign`` runs on, as ``campaign status`` shows."""
    view = []
    for path in allowance_files(state_dir, campaign, base_url, api_key):
        for m in allowance_members(path, now, window_s=window_s):
            view.append(
                {
                    "campaign": m.campaign,
                    "state": m.state,
                    "priority": m.priority,
                    "calls_in_window": m.calls_in_window,
                    "window_s": window_s,
                    "pid": m.pid,
                    "seen_s_ago": max(0, round(now - m.last_seen)),
                }
            )
    return view


def allowance_lines(view: list[dict[str, Any]]) -> list[str]:
    """The allowance part of the status as text, one line per campaign."""
    if not view:
        return []
    lines = ["campaigns on the shared allowance:"]
    for m in view:
        lines.append(
            f"  {m['campaign']}: {m['state']}, priority {m['priority']:g}, "
            f"{m['calls_in_window']} call(s) in the last {m['window_s']:g} s, "
            f"seen {m['seen_s_ago']} s ago (pid {m['pid']})"
        )
    return lines
