"""Who is on a shared allowance: the view ``campaign status`` prints (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaign.limits.allowance import allowance_path
from campaign.limits.fairness import DEFAULT_TTL_S
from campaign.store.allowance import AllowanceDb, AllowanceLocation, Participant
from campaign.store.place import StatePlace

# An allowance as status finds it: the file's path (SQLite), or its location.
Where = Path | AllowanceLocation


def _exists(where: Where) -> bool:
    return where.exists()


def _open(where: Where) -> AllowanceDb:
    return AllowanceDb(where) if isinstance(where, Path) else where.open()


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
    where: Where, now: float, *, window_s: float = 60.0, ttl_s: float = DEFAULT_TTL_S
) -> list[AllowanceMember]:
    """Every campaign seen on the allowance in the last hour, without joining it."""
    if not _exists(where):
        return []
    db = _open(where)
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
    place: Path | StatePlace, campaign: str, base_url: str, api_key: str | None
) -> list[Where]:
    """The allowance(s) a campaign runs on: exact with the key, else found by name.

    ``place`` is the state dir (SQLite files: paths are returned) or the campaign's
    ``StatePlace`` (locations are returned, in PostgreSQL with ``state_url``).
    """
    candidates: list[Where]
    if api_key:
        exact: Where = (
            allowance_path(place, base_url, api_key)
            if isinstance(place, Path)
            else place.allowance(base_url, api_key)
        )
        return [exact] if _exists(exact) else []
    # Without the key (status needs none) the allowance is recognised by its participants.
    if isinstance(place, Path):
        candidates = list(sorted(place.glob("allowance-*.sqlite")))
    else:
        candidates = list(place.allowances())
    found = []
    for where in candidates:
        db = _open(where)
        try:
            with db.transaction():
                names = {p.name for p in db.participants()}
        finally:
            db.close()
        if campaign in names:
            found.append(where)
    return found


def allowance_view(
    place: Path | StatePlace,
    campaign: str,
    base_url: str,
    api_key: str | None,
    window_s: float,
    now: float,
) -> list[dict[str, Any]]:
    """Every campaign on the allowance(s) ``campaign`` runs on, as ``campaign status`` shows
    (``place``: the state dir, or the campaign's ``StatePlace``)."""
    view = []
    for path in allowance_files(place, campaign, base_url, api_key):
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
