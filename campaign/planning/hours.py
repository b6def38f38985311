"""Calling windows: when a recipient may be called, in their own local time.

The legal default is 08:00–21:00 local every day (US federal, 47 CFR 64.1200(c)(1)),
narrowed by the stricter US state rules of ``campaign.planning.states``, closed all day on
the legal holidays of the states that forbid calls on them; a campaign file can only
narrow further. A recipient in several timezones may be called only when it is inside the
window in all of them, and one under several states' rules only when all of them allow it
(fail closed); a recipient in no timezone may never be called.

``us_state`` is one state code (``TX``), several joined by ``+`` (``LA+TX``: the number's
state and the address's), or ``US-?`` (a US number of no known state: every state's rules).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from holidays import country_holidays

from campaign.config.model import DAY_NAMES, CallingHours
from campaign.phones.normalise import UNKNOWN_CA_PROVINCE, UNKNOWN_US_STATE
from campaign.planning.states import (
    FEDERAL_END,
    FEDERAL_START,
    HOLIDAY_STATES,
    JURISDICTIONS,
    PROVINCE_RULES,
    STATE_RULES,
    DayWindow,
    WeekRule,
)

__all__ = ["FEDERAL_END", "FEDERAL_START", "STATE_RULES", "CallingWindow", "calling_window"]

# Three weeks and a day: a weekly pattern opens in two weeks or never, and a run of legal
# holidays (a long weekend, Christmas to New Year) may close up to a week more.
_SEARCH_DAYS = 22
STATE_SEPARATOR = "+"

_FEDERAL: dict[int, DayWindow] = dict.fromkeys(range(7), (FEDERAL_START, FEDERAL_END))


def state_codes(us_state: str | None) -> tuple[str, ...]:
    """The state codes of a row's ``us_state`` (``"LA+TX"`` → ``("LA", "TX")``)."""
    return tuple(us_state.split(STATE_SEPARATOR)) if us_state else ()


def combine_states(codes: Iterable[str]) -> str | None:
    """One ``us_state`` value for a recipient under several states' rules (sorted, unique)."""
    unique = sorted(set(codes))
    return STATE_SEPARATOR.join(unique) or None


def holiday_states(us_state: str | None) -> tuple[str, ...]:
    """The states among ``us_state`` whose legal holidays close the day."""
    codes = state_codes(us_state)
    if UNKNOWN_US_STATE in codes:
        return tuple(sorted(HOLIDAY_STATES))
    return tuple(code for code in codes if code in HOLIDAY_STATES)


@functools.lru_cache(maxsize=256)
def _holidays_of(code: str, year: int) -> dict[date, str]:
    """A state's legal holidays of one year (federal ones included), from ``holidays``."""
    return dict(country_holidays("US", subdiv=code, years=year).items())


def legal_holiday(codes: Sequence[str], day: date) -> tuple[str, str] | None:
    """(state code, holiday name) if ``day`` is a legal holiday of one of ``codes``."""
    for code in codes:
        name = _holidays_of(code, day.year).get(day)
        if name is not None:
            return code, name
    return None


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
    """The weekly local window for one recipient: federal ∩ state rules ∩ campaign hours."""
    rule = _FEDERAL
    codes = state_codes(us_state)
    if UNKNOWN_US_STATE in codes:
        # any US state or territory at all: all of their rules at once
        codes = tuple(code for code in STATE_RULES if code in JURISDICTIONS)
    for code in codes:
        if code in STATE_RULES:
            rule = _narrow(rule, STATE_RULES[code])
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
    holiday_states: tuple[str, ...] = ()  # states whose legal holidays close the day

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
                holiday = legal_holiday(self.holiday_states, local.date())
                if holiday is not None:
                    code, name = holiday
                    return f"closed: {JURISDICTIONS[code].name} legal holiday ({name})"
                window = self.rule[local.weekday()]
                day = DAY_NAMES[local.weekday()]
                state = self._state_words()
                if window is None:
                    return f"no calls on {day} in {zone.key}{state}"
                return (
                    f"outside calling hours in {zone.key}: {local:%H:%M} {day}, window "
                    f"{window[0]:%H:%M}–{window[1]:%H:%M}{state}"
                )
        return "outside calling hours"

    def _state_words(self) -> str:
        codes = state_codes(self.us_state)
        if UNKNOWN_US_STATE in codes:
            return " (US state unknown: the strictest state rules)"
        if UNKNOWN_CA_PROVINCE in codes:
            return " (CRTC rules, province unknown)"
        ruled = [code for code in codes if code in STATE_RULES]
        if ruled and all(code in PROVINCE_RULES for code in ruled):
            return f" ({', '.join(ruled)}: CRTC rules)"
        return f" ({', '.join(ruled)} rules)" if ruled else ""

    def _open_in(self, zone: ZoneInfo, at: datetime) -> bool:
        local = at.astimezone(zone)
        window = self.rule[local.weekday()]
        if window is None or not window[0] <= local.time() < window[1]:
            return False
        return not self.holiday_states or legal_holiday(self.holiday_states, local.date()) is None

    def _starts(self, zone: ZoneInfo, at: datetime) -> list[datetime]:
        today = at.astimezone(zone).date()
        starts = []
        for offset in range(_SEARCH_DAYS):
            day = today + timedelta(days=offset)
            window = self.rule[day.weekday()]
            if window is not None and legal_holiday(self.holiday_states, day) is None:
                starts.append(datetime.combine(day, window[0], tzinfo=zone))
        return starts


def calling_window(
    timezones: Sequence[str],
    us_state: str | None,
    hours: CallingHours | Literal["unrestricted"] | None,
) -> CallingWindow:
    """The calling window of a recipient in ``timezones`` under ``us_state``'s rules."""
    if hours == "unrestricted":
        return CallingWindow((), _FEDERAL, unrestricted=True, us_state=us_state)
    rule = week_rule(us_state, hours)
    closed_on = holiday_states(us_state)
    if not timezones:
        problem = "no timezone known for this number"
        return CallingWindow((), rule, us_state=us_state, problem=problem)
    zones = []
    for name in timezones:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            return CallingWindow((), rule, us_state=us_state, problem=f"unknown timezone {name}")
    if all(rule[day] is None for day in range(7)):
        return CallingWindow(
            tuple(zones), rule, us_state=us_state, problem="calling hours leave no time to call"
        )
    return CallingWindow(tuple(zones), rule, us_state=us_state, holiday_states=closed_on)
