"""When to call: answer and goal rates by the recipient's local hour and weekday, part of
the day, country, number type, attempt and night of the campaign — pandas over the calls.

A call counts once it has a final status (in-flight calls, and calls voided by an empty
wallet, are left out). Answered = status ``completed``; goal = ``goal_achieved`` true; both
rates are shares of the calls in the bucket. Local time is the call's start (when its
request left) in the first timezone of the recipient's number; calls whose number has no
known timezone count in the country, number type and attempt tables only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# pandas ships no type information; the `unused-ignore` keeps mypy clean once pyproject
# tells it to ignore pandas' missing stubs.
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from campaign.planning.dayparts import DAYPARTS

if TYPE_CHECKING:
    from campaign.reporting.files import CallRecord

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYPART_NAMES = (*(name for name, _, _ in DAYPARTS), "night")
NUMBER_TYPES = ("mobile", "landline", "other", "unknown")
_FINAL_STATUSES = frozenset({"completed", "no_answer", "busy", "voicemail", "failed", "canceled"})
_DAYPART_OF_HOUR = [
    next((name for name, start, end in DAYPARTS if start <= hour < end), "night")
    for hour in range(24)
]
_COLUMNS = (
    "row_key",
    "attempt",
    "answered",
    "goal",
    "started_at",
    "timezone",
    "country",
    "number_type",
)


def number_type_group(number_type: str | None) -> str:
    """phonenumbers' type → mobile / landline / other; unknown when the checkpoint has none.

    US and Canadian numbers are ``fixed_line_or_mobile`` (their numbering plan does not
    tell the two apart), so they count as other.
    """
    if not number_type:
        return "unknown"
    return {"mobile": "mobile", "fixed_line": "landline"}.get(number_type, "other")


def _known_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def call_frame(calls: Sequence[CallRecord]) -> pd.DataFrame:
    """One row per call with a final status, with its recipient-local hour, weekday (0 =
    Monday), night (local date) and part of the day; the local columns are empty (NA)
    when the recipient's timezone is unknown."""
    ended = [
        c for c in calls if c.status in _FINAL_STATUSES and c.failure_reason != "insufficient_funds"
    ]
    frame = pd.DataFrame.from_records(
        [
            (
                c.row_key,
                c.attempt,
                c.status == "completed",
                c.goal_achieved is True,
                c.placed_at,
                _known_zone(c.timezones[0] if c.timezones else None),
                c.region or "unknown",
                number_type_group(c.number_type),
            )
            for c in ended
        ],
        columns=list(_COLUMNS),
    )
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    frame["hour"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    frame["weekday"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    frame["night"] = pd.Series(pd.NA, index=frame.index, dtype="object")
    for zone, index in frame.groupby("timezone").groups.items():
        local = frame.loc[index, "started_at"].dt.tz_convert(zone)
        frame.loc[index, "hour"] = local.dt.hour.astype("Int64")
        frame.loc[index, "weekday"] = local.dt.day_of_week.astype("Int64")
        frame.loc[index, "night"] = local.dt.strftime("%Y-%m-%d").astype("object")
    frame["daypart"] = frame["hour"].map(
        lambda hour: pd.NA if pd.isna(hour) else _DAYPART_OF_HOUR[int(hour)]
    )
    return frame


def _rates(frame: pd.DataFrame) -> dict[str, Any]:
    """calls, answered, goal_achieved and the two rates (%, one decimal) of some calls."""
    calls = len(frame)
    answered = int(frame["answered"].sum())
    goals = int(frame["goal"].sum())
    return {
        "calls": calls,
        "answered": answered,
        "goal_achieved": goals,
        "answered_pct": round(100 * answered / calls, 1) if calls else None,
        "goal_pct": round(100 * goals / calls, 1) if calls else None,
    }


def _table(frame: pd.DataFrame, column: str, key: Any, order: Any) -> dict[str, Any]:
    """Rates per value of ``column``: keyed by ``key(value)``, in ``order(value)``."""
    groups = frame.dropna(subset=[column]).groupby(column, sort=False)
    values = sorted((value for value, _ in groups), key=order)
    return {key(value): _rates(groups.get_group(value)) for value in values}


def _hour(value: Any) -> str:
    return f"{int(value):02d}"


def _weekday(value: Any) -> str:
    return WEEKDAYS[int(value)]


def _by_hour_weekday(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    local = frame.dropna(subset=["weekday", "hour"])
    return {
        _weekday(day): _table(cells, "hour", _hour, int)
        for day, cells in sorted(local.groupby("weekday"), key=lambda item: int(item[0]))
    }


def _retry_dayparts(frame: pd.DataFrame) -> dict[str, Any]:
    """Calls per attempt and part of the day, and how many retries went to a part of the
    day that the same person's earlier calls had not tried."""
    local = frame.dropna(subset=["daypart"])
    spread = pd.crosstab(local["attempt"], local["daypart"])
    by_attempt = {
        str(int(attempt)): {
            name: int(spread.at[attempt, name]) if name in spread.columns else 0
            for name in DAYPART_NAMES
        }
        for attempt in sorted(spread.index)
    }
    # A part of the day is new for a retry when no earlier attempt of the row was in it.
    first_try = local.groupby(["row_key", "daypart"])["attempt"].transform("min")
    retries = local[local["attempt"] >= 2]
    new = retries[
        (retries["attempt"] == first_try[retries.index]) & (retries["daypart"] != "night")
    ]
    return {"by_attempt": by_attempt, "retries": len(retries), "in_new_daypart": len(new)}


def when_to_call(calls: Sequence[CallRecord]) -> dict[str, Any]:
    """summary.json's ``when_to_call``: rates per bucket, keyed by the bucket."""
    frame = call_frame(calls)
    countries = frame["country"].value_counts()
    return {
        **_rates(frame),
        "calls_without_timezone": int(frame["timezone"].isna().sum()),
        "by_hour_weekday": _by_hour_weekday(frame),
        "by_hour": _table(frame, "hour", _hour, int),
        "by_weekday": _table(frame, "weekday", _weekday, int),
        "by_daypart": _table(frame, "daypart", str, DAYPART_NAMES.index),
        "by_country": _table(
            frame,
            "country",
            str,
            lambda code: (-int(countries[code]), code == "unknown", code),
        ),
        "by_number_type": _table(frame, "number_type", str, NUMBER_TYPES.index),
        "by_attempt": _table(frame, "attempt", lambda n: str(int(n)), int),
        "by_night": _table(frame, "night", str, str),
        "retry_dayparts": _retry_dayparts(frame),
    }
