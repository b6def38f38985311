"""The parts of a recipient's day, for the retry rule and for the report's "when to call".

Local [start, end) hours; they lie inside the legal default window (08:00–21:00). The
retry rule rotates through them; the report counts every other hour as "night".
"""

from __future__ import annotations

from typing import Literal

Daypart = Literal["morning", "afternoon", "evening"]
DAYPARTS: tuple[tuple[Daypart, int, int], ...] = (
    ("morning", 8, 12),
    ("afternoon", 12, 17),
    ("evening", 17, 21),
)
