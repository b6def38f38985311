"""Words for the API's codes, and what a bar's colour means.

The report is read by people who never saw the API: ``callback_requested`` reads
"Callback requested", and a colour says one thing everywhere — green the goal achieved,
amber a follow-up due (a callback, a retry), red a failure, grey anything else.
"""

from __future__ import annotations

from typing import Literal

Tone = Literal["good", "follow_up", "bad", "neutral", "step"]

TONE_COLOURS: dict[Tone, str] = {
    "good": "#16a34a",
    "follow_up": "#d97706",
    "bad": "#dc2626",
    "neutral": "#94a3b8",
    "step": "#475569",
}
TONE_MEANINGS: tuple[tuple[Tone, str], ...] = (
    ("good", "goal achieved"),
    ("follow_up", "follow-up due (callback, retry)"),
    ("bad", "failed or unusable"),
    ("neutral", "other"),
)

# Codes whose plain rewording ("no_answer" → "No answer") would not say enough.
_LABELS = {
    "completed": "Answered (completed)",
    "voicemail": "Voicemail reached",
    "canceled": "Canceled",
    "goal_achieved": "Goal achieved",
    "retry_scheduled": "Retry scheduled",
    "done": "Done",
    "e164": "E.164 number",
}
_GOOD = frozenset({"goal_achieved", "done"})
_FOLLOW_UP = frozenset({"callback_requested", "retry_scheduled"})
_BAD = frozenset(
    {"failed", "rejected", "carrier_rejected", "invalid_number", "insufficient_funds", "error"}
)


def label(code: str) -> str:
    """A code as words: 'callback_requested' → 'Callback requested'."""
    known = _LABELS.get(code)
    if known is not None:
        return known
    words = code.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else code


def tone(code: str) -> Tone:
    """What a code's bar colour says about it."""
    if code in _GOOD:
        return "good"
    if code in _FOLLOW_UP:
        return "follow_up"
    if code in _BAD:
        return "bad"
    return "neutral"


_EXIT_MEANINGS = {
    0: "finished for now",
    1: "stopped by an error",
    2: "refused to start",
    3: "stopped early, work left",
    4: "API key refused",
    75: "another run was going",
}


def run_result(exit_code: int | None, *, this_run: bool) -> str:
    """How a run ended, in words."""
    if exit_code is None:
        return "this run" if this_run else "did not finish (killed?)"
    meaning = _EXIT_MEANINGS.get(exit_code, "ended")
    return f"{meaning} (exit {exit_code})"
