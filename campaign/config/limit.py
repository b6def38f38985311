"""The ``N/<duration>`` limit notation of campaign files: ``5/min``, ``1000/h``, ``30/10s``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_LIMIT_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|min|h)\s*$")


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events in any sliding window of ``window`` seconds."""

    count: int
    window: float

    def __str__(self) -> str:
        return f"{self.count}/{self.window:g}s"


def parse_limit(text: str) -> Limit:
    """Parse ``5/min``, ``1000/h``, ``30/10s``, ``5/2min``, ``100/1.5s``; ValueError if bad."""
    match = _LIMIT_RE.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a limit; write N/<duration> such as 5/min, 1000/h, 30/10s"
        )
    count = int(match.group(1))
    amount = float(match.group(2)) if match.group(2) else 1.0
    window = amount * _UNITS[match.group(3)]
    if count < 1 or window <= 0:
        raise ValueError(f"{text!r}: the count and the duration must be positive")
    return Limit(count=count, window=window)
