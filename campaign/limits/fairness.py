"""The rules of a shared allowance that need no file: its name, whose turn it is, what to reserve.

Participants queue for call slots by virtual time (start-time fair queueing): the one with
the smallest virtual time that can use a free slot gets it. "Can use" means ready to send
now, or a moment away from asking again (its last call's response is in flight): slots
free in bursts, and a burst must not go to whoever happens to be waiting at that instant.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from campaign.store.allowance import Participant

DEFAULT_TTL_S = 5.0
# How soon a participant that yielded a free slot to a rival looks again.
DEFAULT_POLL_S = 0.05
# A rival that said it was ready this long ago and still has not sent is stuck (a busy event
# loop, a paused process): stop yielding to it.
RIVAL_GRACE_S = 1.0
# A pause in asking for calls longer than this (no work, not just one request's latency)
# forfeits the credit of the slots not asked for.
REJOIN_AFTER_S = 1.0


def allowance_path(state_dir: Path, base_url: str, api_key: str) -> Path:
    """The allowance file of one API base URL and key; the name holds no part of the key."""
    key_fingerprint = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
    digest = hashlib.sha256(f"{base_url}\n{key_fingerprint}".encode()).hexdigest()[:16]
    return state_dir / f"allowance-{digest}.sqlite"


def rival(
    others: list[Participant], vtime: float, name: str, now: float, rejoin_s: float
) -> Participant | None:
    """A live participant whose turn comes before ours and who can take this slot, if any.

    That is one ready to send now, or one that sent a call a moment ago and is about to ask
    again (its response is in flight): slots free in bursts, and a burst must not go to
    whoever happens to be waiting at that instant.
    """
    for other in others:
        if (other.vtime, other.name) >= (vtime, name):
            continue
        if other.waiting > 0:
            if other.ready_at is not None and now - RIVAL_GRACE_S <= other.ready_at <= now:
                return other
        elif (
            other.state == "active"
            and other.last_call is not None
            and now - rejoin_s <= other.last_call
        ):
            return other
    return None


def waiting_calls(me: Participant, others: list[Participant], now: float) -> dict[object, float]:
    """Each waiting call of every live participant -> when its call slot frees."""
    dues: dict[object, float] = {}
    for participant in [me, *others]:
        stale = participant.ready_at is None or participant.ready_at < now - RIVAL_GRACE_S
        if participant.waiting > 0 and participant.call_due is not None and not stale:
            for index in range(participant.waiting):
                dues[(participant.name, index)] = participant.call_due
    return dues
