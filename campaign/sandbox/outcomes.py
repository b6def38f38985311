"""Deterministic call fates: what happens to the n-th call to a number, and how long it takes.

The fate of a call is a pure function of (E.164 number, n), where n counts the earlier calls
to that number in the project — so a test can rely on it, and a retry of a ``no_answer`` can
still complete later. Distribution, from ``sha256("<phone>|<n>")``:

- numbers starting ``+1555`` (no such North American area code): ``failed`` /
  ``invalid_number``, every time;
- otherwise, by the hash modulo 100: 0-44 ``completed`` (45%), 45-69 ``no_answer`` (25%),
  70-79 ``busy`` (10%), 80-91 ``voicemail`` (12%), 92-99 ``failed`` / ``carrier_rejected``
  (8%);
- a completed call's outcome, by a second hash modulo 100: 0-49 ``goal_achieved`` (the only
  one with ``goal_achieved: true``), 50-74 ``declined``, 75-89 ``callback_requested``, 90-94
  ``opted_out``, 95-99 ``wrong_person``.

Durations (multiplied by ``time_scale``): queued 1-3 s, ringing 5-25 s, talk 20-180 s.
A session's ``duration_s``, minutes and cost use the unscaled talk time, so a sped-up
sandbox still reports realistic durations and money.
``SandboxConfig.scripted_outcomes`` overrides the fate per number and attempt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

INVALID_PREFIX = "+1555"
_STATUSES = ("completed", "no_answer", "busy", "voicemail", "failed")


@dataclass(frozen=True)
class CallPlan:
    """What a call will do once dialed, and when."""

    final_status: str
    outcome: str | None
    failure_reason: str | None
    queue_s: float
    ring_s: float
    talk_s: float
    tool_calls: int
    slot_values: dict[str, str] = field(default_factory=dict)
    # the talk time as billed and reported: time_scale speeds the clock, not the conversation
    billed_s: float = 0.0


def _digest(phone: str, attempt_index: int) -> bytes:
    return hashlib.sha256(f"{phone}|{attempt_index}".encode()).digest()


def _fate(digest: bytes, phone: str) -> tuple[str, str | None, str | None]:
    if phone.startswith(INVALID_PREFIX):
        return "failed", None, "invalid_number"
    roll = int.from_bytes(digest[0:4], "big") % 100
    if roll < 45:
        pick = int.from_bytes(digest[4:8], "big") % 100
        bounds = ((50, "goal_achieved"), (75, "declined"), (90, "callback_requested"))
        outcome = next((name for bound, name in bounds if pick < bound), None)
        if outcome is None:
            outcome = "opted_out" if pick < 95 else "wrong_person"
        return "completed", outcome, None
    if roll < 70:
        return "no_answer", None, None
    if roll < 80:
        return "busy", None, None
    if roll < 92:
        return "voicemail", None, None
    return "failed", None, "carrier_rejected"


def _scripted(entry: str) -> tuple[str, str | None, str | None]:
    status, _, detail = entry.partition(":")
    if status not in _STATUSES:
        raise ValueError(f"scripted outcome {entry!r}: status must be one of {_STATUSES}")
    if status == "completed":
        return status, detail or "goal_achieved", None
    if status == "failed":
        return status, None, detail or "carrier_rejected"
    return status, None, None


def plan_call(
    phone: str, attempt_index: int, time_scale: float, scripted: list[str] | None = None
) -> CallPlan:
    """The fate and timing of the ``attempt_index``-th (0-based) call to ``phone``."""
    digest = _digest(phone, attempt_index)
    if scripted:
        status, outcome, failure = _scripted(scripted[min(attempt_index, len(scripted) - 1)])
    else:
        status, outcome, failure = _fate(digest, phone)

    def span(offset: int, low: float, high: float, scale: float = time_scale) -> float:
        fraction = int.from_bytes(digest[offset : offset + 2], "big") / 65535
        return round((low + (high - low) * fraction) * scale, 6)

    tool_calls = digest[16] % 4 if status == "completed" else 0
    slots: dict[str, str] = {}
    if status == "completed":
        slots = {"outcome_confirmed": "yes" if outcome == "goal_achieved" else "no"}
        if outcome == "callback_requested":
            slots["preferred_time"] = ("mornings", "afternoons", "evenings")[digest[17] % 3]
    return CallPlan(
        final_status=status,
        outcome=outcome,
        failure_reason=failure,
        queue_s=span(8, 1.0, 3.0),
        ring_s=span(10, 5.0, 25.0),
        talk_s=span(12, 20.0, 180.0),
        tool_calls=tool_calls,
        slot_values=slots,
        billed_s=span(12, 20.0, 180.0, 1.0),
    )


def transcript_turns(outcome: str | None, finished: bool) -> list[dict[str, object]]:
    """A short deterministic transcript for a session (partial while the call runs)."""
    lines = [
        ("agent", "Hello, this is the assistant calling on behalf of the company."),
        ("caller", "Hi, yes, speaking."),
        ("agent", "I am calling about your plan renewal. Do you have a minute?"),
    ]
    closing = {
        "goal_achieved": ("caller", "Yes, please renew it."),
        "declined": ("caller", "No thank you, not interested."),
        "callback_requested": ("caller", "Could you call me back later?"),
        "opted_out": ("caller", "Please do not call me again."),
        "wrong_person": ("caller", "You have the wrong person."),
    }
    if finished:
        lines.append(closing.get(outcome or "", ("caller", "Okay.")))
        lines.append(("agent", "Thank you for your time. Goodbye."))
    else:
        lines = lines[:2]
    return [
        {"speaker": speaker, "text": text, "offset_ms": index * 4500}
        for index, (speaker, text) in enumerate(lines)
    ]
