"""When a run must stop, as the library and the CLI accept it: ``until`` and ``max_duration``.

A bad value is the caller's mistake, found before anything is done: ``ValueError`` (the CLI
turns it into a usage error naming the option).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_HH_MM = re.compile(r"^(\d{1,2}):(\d{2})$")


def until_timestamp(until: datetime | str | None, *, now: float) -> float | None:
    """``until`` as epoch seconds: an aware datetime, or ``"HH:MM"`` local time today.

    A moment that has already passed is refused: the run would stop before it starts.
    """
    if until is None:
        return None
    if isinstance(until, str):
        return _today_at(until, now)
    if not isinstance(until, datetime):
        raise TypeError(f"until must be a datetime or 'HH:MM', not {type(until).__name__}")
    if until.tzinfo is None or until.utcoffset() is None:
        raise ValueError(
            f"until={until.isoformat()} has no timezone: pass an aware datetime "
            "(datetime.now(UTC) + timedelta(hours=2)) or 'HH:MM' for local time today"
        )
    moment = until.timestamp()
    if moment <= now:
        raise ValueError(f"until={until.isoformat()} has already passed")
    return moment


def _today_at(text: str, now: float) -> float:
    match = _HH_MM.match(text.strip())
    local_now = datetime.fromtimestamp(now).astimezone()
    try:
        if match is None:
            raise ValueError
        hour, minute = int(match[1]), int(match[2])
        moment = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise ValueError(f"{text!r} is not HH:MM") from None
    if moment.timestamp() <= now:
        raise ValueError(
            f"{text} has already passed today (local time {local_now:%H:%M}); the run stops "
            "at that time today, so give a later time or a maximum duration"
        )
    return moment.timestamp()


def duration_seconds(value: float | timedelta | str | None) -> float | None:
    """``max_duration`` in seconds: a number of seconds, a timedelta, or text such as ``2h``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("max_duration must be seconds, a timedelta or text such as '2h'")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        from campaign.config.values import parse_duration

        seconds = parse_duration(value)  # ValueError names the accepted forms
    else:
        raise TypeError(
            f"max_duration must be seconds, a timedelta or text such as '2h', "
            f"not {type(value).__name__}"
        )
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"max_duration must be positive, e.g. '2h' (got {value!r})")
    return seconds
