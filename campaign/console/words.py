"""Durations as an operator reads them: rounded honestly, never "~0 min"."""

from __future__ import annotations


def duration_in_words(seconds: float) -> str:
    """``< 1 min``, ``4 min``, ``1 h 30 min``, ``4 h`` — to the nearest minute."""
    if seconds < 60:
        return "< 1 min"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def elapsed_in_words(seconds: float) -> str:
    """How long a stage took: ``0.4 s``, ``12 s``, ``2 min 10 s``, ``1 h 5 min``."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
