"""Calling windows: when a recipient may be called, in their own local time.

The legal default is 08:00–21:00 local every day (US federal, 47 CFR 64.1200(c)(1)),
narrowed by the stricter US state rules below; a campaign file can only narrow further.
A number in several timezones may be called only when it is inside the window in all of
them (fail closed); a number in none may never be called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaign.config.model import DAY_NAMES, CallingHours
from campaign.phones.normalise import UNKNOWN_US_STATE

# A day's window: (start, end) local time, or None for "no calls that day".
DayWindow = tuple[time, time] | None
WeekRule = Mapping[int, DayWindow]  # weekday 0=Mon..6=Sun → window

FEDERAL_START, FEDERAL_END = time(8, 0), time(21, 0)
_SEARCH_DAYS = 15  # two weeks and a day: a weekly pattern either opens in that time or never


def _week(
    start: time, end: time, exceptions: Mapping[int, DayWindow] | None = None
) -> dict[int, DayWindow]:
    """The same window every day, except the days listed in ``exceptions``."""
    rule: dict[int, DayWindow] = dict.fromkeys(range(7), (start, end))
    rule.update(exceptions or {})
    return rule


_SAT, _SUN = 5, 6


# Stricter state telemarketing hours (recipient-local), narrowing the federal 08:00-21:00.
# Sources: statutes where cited; otherwise the state tables that compliance vendors keep
# (dropcowboy.com/state-compliance, Nov 2025; clickpointsoftware.com state calling hours,
# Jul 2025). Laws change: have compliance review this table before relying on it.
#   FL  Fla. Stat. 501.616(6)(a) (2021 amendment): 8 a.m.-8 p.m.
#   OK  Okla. Stat. tit. 15 §775C.4 (HB 3168, 2022): 8 a.m.-8 p.m.
#   WA  RCW 80.36.390 (HB 1497, 2022): 8 a.m.-8 p.m.
#   LA  La. PSC General Order R-29617 §V(A)(2): 8 a.m.-8 p.m., none on Sundays
#   AL, MS  8 a.m.-8 p.m., none on Sundays (vendor tables)
#   MD, MA  8 a.m.-8 p.m.;  CT, NV  9 a.m.-8 p.m.;  MI, MN, NM  9 a.m.-9 p.m.;
#   KY  10 a.m.-9 p.m.  (vendor tables)
#   TX  Tex. Bus. & Com. Code §301.051: 9 a.m.-9 p.m. Mon-Sat, noon-9 p.m. Sunday
#   RI  R.I. Gen. Laws §5-61-3.6 with §5-61-2(9): 9 a.m.-6 p.m. weekdays, 10 a.m.-5 p.m.
#       Saturday, none on Sundays
#   UT  Utah Code §13-25a-103: 8 a.m.-9 p.m., none on Sundays
# State holidays (on which AL, LA, MS, RI, UT and others forbid calls) are not modelled:
# the operators of a campaign own its holiday calendar.
STATE_RULES: dict[str, dict[int, DayWindow]] = {
    "FL": _week(time(8), time(20)),
    "OK": _week(time(8), time(20)),
    "WA": _week(time(8), time(20)),
    "LA": _week(time(8), time(20), {_SUN: None}),
    "AL": _week(time(8), time(20), {_SUN: None}),
    "MS": _week(time(8), time(20), {_SUN: None}),
    "MD": _week(time(8), time(20)),
    "MA": _week(time(8), time(20)),
    "CT": _week(time(9), time(20)),
    "NV": _week(time(9), time(20)),
    "MI": _week(time(9), time(21)),
    "MN": _week(time(9), time(21)),
    "NM": _week(time(9), time(21)),
    "KY": _week(time(10), time(21)),
    "TX": _week(time(9), time(21), {_SUN: (time(12), time(21))}),
    "RI": _week(time(9), time(18), {_SAT: (time(10), time(17)), _SUN: None}),
    "UT": _week(time(8), time(21), {_SUN: None}),
}
_FEDERAL: dict[int, DayWindow] = _week(FEDERAL_START, FEDERAL_END)


def _narrow(rule: WeekRule, other: WeekRule) -> dict[int, DayWindow]:
    """The intersection of two weekly rules, day by day."""
    narrowed: dict[int, DayWindow] = {}
    for day in range(7):
        first, second = rule.get(day), other.get(day)
        if first is None or second is None:
            narrowed[day] = None
            continue
        start, end = max(first[0], second[0]), min(first[1], second[1])
        narrowed[day] = (start, end) if start < end else None
    return narrowed


def week_rule(us_state: str | None, hours: CallingHours | None) -> dict[int, DayWindow]:
    """The weekly local window for one recipient: federal ∩ state rule ∩ campaign hours."""
    rule = _FEDERAL
    if us_state in STATE_RULES:
        rule = _narrow(rule, STATE_RULES[us_state])
    elif us_state == UNKNOWN_US_STATE:
        for state_rule in STATE_RULES.values():
            rule = _narrow(rule, state_rule)
    if hours is not None:
        campaign = {
            day: (hours.start, hours.end) if day in hours.days else None for day in range(7)
        }
        rule = _narrow(rule, campaign)
    return rule


@dataclass(frozen=True)
class CallingWindow:
    """When one recipient may be called; all datetimes are timezone-aware."""

    zones: tuple[ZoneInfo, ...]
    rule: Mapping[int, DayWindow]
    unrestricted: bool = False
    us_state: str | None = None
    problem: str | None = None  # why it can never open (no timezone known, …)

    def is_open(self, at: datetime) -> bool:
        """True if a call may start at ``at``."""
        if self.unrestricted:
            return True
        if not self.zones or self.problem:
            return False
        return all(self._open_in(zone, at) for zone in self.zones)

    def closes_at(self, at: datetime) -> datetime | None:
        """When the window open at ``at`` closes (None if it is not open, or never closes)."""
        if self.unrestricted or not self.is_open(at):
            return None
        ends = []
        for zone in self.zones:
            local = at.astimezone(zone)
            window = self.rule[local.weekday()]
            assert window is not None  # is_open() held
            ends.append(datetime.combine(local.date(), window[1], tzinfo=zone))
        return min(ends).astimezone(UTC)

    def next_open(self, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` when the window is open; None if never."""
        if self.is_open(at):
            return at
        if self.problem or not self.zones:
            return None
        # An intersection of intervals starts where its latest member starts, so the
        # candidates are the starts of each zone's daily windows.
        candidates = sorted(
            start for zone in self.zones for start in self._starts(zone, at) if start > at
        )
        for candidate in candidates:
            if self.is_open(candidate):
                return candidate.astimezone(UTC)
        return None

    def reason_closed(self, at: datetime) -> str:
        """Human words for why a call cannot start at ``at``."""
        if self.problem:
            return self.problem
        if self.is_open(at):
            return "inside calling hours"
        for zone in self.zones:
            if not self._open_in(zone, at):
                local = at.astimezone(zone)
                window = self.rule[local.weekday()]
                day = DAY_NAMES[local.weekday()]
                state = f" ({self.us_state} rules)" if self.us_state in STATE_RULES else ""
                if self.us_state == UNKNOWN_US_STATE:
                    state = " (US state unknown: the strictest state rules)"
                if window is None:
                    return f"no calls on {day} in {zone.key}{state}"
                return (
                    f"outside calling hours in {zone.key}: {local:%H:%M} {day}, window "
                    f"{window[0]:%H:%M}–{window[1]:%H:%M}{state}"
                )
        return "outside calling hours"

    def _open_in(self, zone: ZoneInfo, at: datetime) -> bool:
        local = at.astimezone(zone)
        window = self.rule[local.weekday()]
        return window is not None and window[0] <= local.time() < window[1]

    def _starts(self, zone: ZoneInfo, at: datetime) -> list[datetime]:
        today = at.astimezone(zone).date()
        starts = []
        for offset in range(_SEARCH_DAYS):
            day = today + timedelta(days=offset)
            window = self.rule[day.weekday()]
            if window is not None:
                starts.append(datetime.combine(day, window[0], tzinfo=zone))
        return starts


def calling_window(
    timezones: Sequence[str],
    us_state: str | None,
    hours: CallingHours | Literal["unrestricted"] | None,
) -> CallingWindow:
    """The calling window of a recipient in ``timezones`` (and US state, if known)."""
    if hours == "unrestricted":
        return CallingWindow((), _FEDERAL, unrestricted=True, us_state=us_state)
    rule = week_rule(us_state, hours)
    if not timezones:
        problem = "no timezone known for this number"
        return CallingWindow((), rule, us_state=us_state, problem=problem)
    zones = []
    for name in timezones:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            return CallingWindow((), rule, us_state=us_state, problem=f"unknown timezone {name}")
    window = CallingWindow(tuple(zones), rule, us_state=us_state)
    if all(rule[day] is None for day in range(7)):
        return CallingWindow(
            tuple(zones), rule, us_state=us_state, problem="calling hours leave no time to call"
        )
    return window
