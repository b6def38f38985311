"""The scalar values of a campaign file: durations, limits, regions, times and days.

Each parser raises ValueError with a sentence naming the value (cut short by ``shown``,
so a hostile value never fills an error message) and the fix.
"""

from __future__ import annotations

import re
import reprlib
from datetime import time
from typing import Annotated

import phonenumbers
from pydantic import BeforeValidator

from campaign.config.limit import Limit, parse_limit

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_HHMM_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_SHOWN = reprlib.Repr()
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxlevel = 60, 60, 5, 4, 2


def shown(value: object) -> str:
    """A value as an error message shows it: its repr, cut short whatever its size."""
    text = _SHOWN.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``30min``, ``4h``, ``1.5h``, ``2d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration; write e.g. 90s, 30min, 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{shown(value)} is not a duration; write e.g. 90s, 30min, 4h or 1.5h")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{shown(value)}: a duration cannot be negative")
    return seconds


def _parse_limits(value: object) -> list[Limit]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("at least one limit is needed, e.g. 5/min")
    limits = []
    for item in items:
        if isinstance(item, Limit):
            limits.append(item)
        else:
            limits.append(parse_limit(str(item)))
    return limits


def _parse_region(value: object) -> str | None:
    if value is None:
        return None
    region = str(value).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{shown(value)} is not an ISO 3166 alpha-2 region code such as US, GB, FR"
        )
    return region


def _parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal integer 540
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = _HHMM_RE.match(str(value).strip())
    if not match:
        raise ValueError(f'{shown(value)} is not a time of day; write HH:MM such as "09:00"')
    return time(int(match.group(1)), int(match.group(2)))


def _parse_days(value: object) -> frozenset[int]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset) or not items:
        raise ValueError("days must be a list such as [mon, tue, wed, thu, fri]")
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
            continue
        text = str(item).strip().lower()[:3] if "-" not in str(item) else str(item).lower()
        if "-" in text:  # a range such as mon-fri
            first, _, last = (part.strip()[:3] for part in text.partition("-"))
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"{shown(item)} is not a day range; write e.g. mon-fri")
            start, end = DAY_NAMES.index(first), DAY_NAMES.index(last)
            days.update(
                range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            )
        elif text in DAY_NAMES:
            days.add(DAY_NAMES.index(text))
        else:
            raise ValueError(f"{shown(item)} is not a day; use mon, tue, wed, thu, fri, sat, sun")
    return frozenset(days)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Limits = Annotated[list[Limit], BeforeValidator(_parse_limits)]
Region = Annotated[str | None, BeforeValidator(_parse_region)]
TimeOfDay = Annotated[time, BeforeValidator(_parse_hhmm)]
Days = Annotated[frozenset[int], BeforeValidator(_parse_days)]
