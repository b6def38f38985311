"""The sandbox's own notion of time and RFC 3339 formatting (shares nothing with the client)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Protocol

_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


class SandboxClock(Protocol):
    """Wall-clock seconds since the epoch, as the emulated platform sees them."""

    def now(self) -> float: ...


class SandboxSystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()


class SandboxFakeClock:
    """A clock that moves only when a test tells it to."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        self._now += max(0.0, float(seconds))

    def set(self, t: float) -> None:
        """Jump to epoch second ``t``."""
        self._now = float(t)


def rfc3339(ts: float) -> str:
    """Format epoch seconds as an RFC 3339 UTC instant with a ``Z`` suffix."""
    moment = datetime.fromtimestamp(round(ts, 6), tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_instant(text: str) -> float | None:
    """Parse a strict RFC 3339 UTC instant (``Z`` suffix); None when malformed."""
    match = _INSTANT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if year == 0:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    fraction = float(match.group(7)) if match.group(7) else 0.0
    return moment.timestamp() + fraction


def parse_date_or_instant(text: str) -> float | None:
    """Parse a bare date (midnight UTC) or an instant; None when malformed."""
    match = _DATE.fullmatch(text)
    if match is None:
        return parse_instant(text)
    year, month, day = (int(g) for g in match.groups())
    if year == 0:
        return None
    try:
        return datetime(year, month, day, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def parse_period(text: str) -> tuple[int, int] | None:
    """Parse ``YYYY-MM``; None when malformed."""
    match = _PERIOD.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1)), int(match.group(2))


def period_of(ts: float) -> str:
    """The ``YYYY-MM`` month an instant falls in."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m")
