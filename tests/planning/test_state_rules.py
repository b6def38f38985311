"""Every state rule at its edges, on ordinary days, forbidden days, holidays and DST days.

The expectations are written out here by hand (local clock times with the UTC offset the
place has on that date), not read from campaign.planning.states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from campaign.phones.normalise import UNKNOWN_US_STATE
from campaign.planning.hours import calling_window
from campaign.planning.states import JURISDICTIONS, PROVINCE_RULES, STATE_RULES

ET, CT, MT, PT = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"
Hours = tuple[int, int] | None  # (start hour, end hour) local, or closed all day


@dataclass(frozen=True)
class Expected:
    zone: str
    weekday: tuple[int, int]
    saturday: Hours
    sunday: Hours
    holiday: tuple[int, int, int, int, str] | None = None  # y, m, d, UTC offset, name


# The states that narrow 08:00–21:00, as their laws read (see the README's Compliance chapter).
EXPECTED: dict[str, Expected] = {
    "AL": Expected(CT, (8, 20), (8, 20), None, (2026, 4, 27, -5, "Confederate Memorial Day")),
    "CT": Expected(ET, (9, 20), (9, 20), (9, 20)),
    "FL": Expected(ET, (8, 20), (8, 20), (8, 20)),
    "IL": Expected(CT, (9, 21), (9, 21), (9, 21)),
    "KY": Expected(ET, (10, 21), (10, 21), (10, 21)),
    "LA": Expected(CT, (8, 20), (8, 20), None, (2026, 2, 17, -6, "Mardi Gras")),
    "MD": Expected(ET, (8, 20), (8, 20), (8, 20)),
    "ME": Expected(ET, (9, 17), None, None),
    "MA": Expected(ET, (8, 20), (8, 20), (8, 20)),
    "MI": Expected("America/Detroit", (9, 21), (9, 21), (9, 21)),
    "MN": Expected(CT, (9, 21), (9, 21), (9, 21)),
    "MS": Expected(CT, (8, 20), (8, 20), None, (2026, 4, 27, -5, "Confederate Memorial Day")),
    "NV": Expected(PT, (9, 20), (9, 20), (9, 20)),
    "NM": Expected(MT, (9, 21), (9, 21), None, (2026, 11, 27, -7, "Presidents' Day")),
    "OK": Expected(CT, (8, 20), (8, 20), (8, 20)),
    "RI": Expected(ET, (9, 18), (10, 17), None, (2026, 8, 10, -4, "Victory Day")),
    "TX": Expected(CT, (9, 21), (9, 21), (12, 21)),
    "UT": Expected(MT, (8, 21), (8, 21), None, (2026, 7, 24, -6, "Pioneer Day")),
    "WA": Expected(PT, (8, 20), (8, 20), (8, 20)),
}

# Jurisdictions with no hour rule beyond federal, and a zone of each with its June offset.
FEDERAL_ONLY: dict[str, tuple[str, int]] = {
    "AK": ("America/Anchorage", -8), "AZ": ("America/Phoenix", -7), "AR": (CT, -5),
    "CA": (PT, -7), "CO": (MT, -6), "DE": (ET, -4), "DC": (ET, -4), "GA": (ET, -4),
    "HI": ("Pacific/Honolulu", -10), "ID": ("America/Boise", -6),
    "IN": ("America/Indiana/Indianapolis", -4), "IA": (CT, -5), "KS": (CT, -5),
    "MO": (CT, -5), "MT": (MT, -6), "NE": (CT, -5), "NH": (ET, -4),
    "NJ": (ET, -4), "NY": (ET, -4), "NC": (ET, -4), "ND": (CT, -5), "OH": (ET, -4),
    "OR": (PT, -7), "PA": (ET, -4), "SC": (ET, -4), "SD": (CT, -5), "TN": (CT, -5),
    "VT": (ET, -4), "VA": (ET, -4), "WV": (ET, -4), "WI": (CT, -5), "WY": (MT, -6),
    "PR": ("America/Puerto_Rico", -4), "GU": ("Pacific/Guam", 10),
    "VI": ("America/St_Thomas", -4), "AS": ("Pacific/Pago_Pago", -11),
    "MP": ("Pacific/Saipan", 10),
}  # fmt: skip

# UTC offsets in June (daylight time where observed)
JUNE = {ET: -4, CT: -5, MT: -6, PT: -7, "America/Detroit": -4}
# 2026-03-08 after 02:00 (daylight time begins) and 2026-11-01 after 02:00 (it ends)
SPRING = {ET: -4, CT: -5, MT: -6, PT: -7, "America/Detroit": -4}
FALL = {ET: -5, CT: -6, MT: -7, PT: -8, "America/Detroit": -5}


def at(y: int, m: int, d: int, hh: int, mm: int, offset: int) -> datetime:
    """A local clock time at a fixed UTC offset (no zone database involved)."""
    return datetime(y, m, d, hh, mm, tzinfo=timezone(timedelta(hours=offset)))


def edges(day: tuple[int, int, int], hours: Hours, offset: int) -> list[tuple[datetime, bool]]:
    """One minute before start, start, one minute before end, end; or noon if closed."""
    if hours is None:
        return [(at(*day, 12, 0, offset), False)]
    start, end = hours
    return [
        (at(*day, start - 1, 59, offset), False),
        (at(*day, start, 0, offset), True),
        (at(*day, end - 1, 59, offset), True),
        (at(*day, end, 0, offset), False),
    ]


def _cases() -> list[tuple[str, datetime, bool]]:
    cases = []
    for code, rule in EXPECTED.items():
        offset = JUNE[rule.zone]
        days = [((2026, 6, 10), rule.weekday), ((2026, 6, 13), rule.saturday)]
        days.append(((2026, 6, 14), rule.sunday))
        for day, hours in days:
            cases += [(code, moment, is_open) for moment, is_open in edges(day, hours, offset)]
        if rule.sunday is not None:  # the DST Sundays
            cases += [(code, m, o) for m, o in edges((2026, 3, 8), rule.sunday, SPRING[rule.zone])]
            cases += [(code, m, o) for m, o in edges((2026, 11, 1), rule.sunday, FALL[rule.zone])]
        else:
            cases += [(code, at(2026, 3, 8, 12, 0, SPRING[rule.zone]), False)]
            cases += [(code, at(2026, 11, 1, 12, 0, FALL[rule.zone]), False)]
    return cases


@pytest.mark.parametrize(("code", "moment", "is_open"), _cases())
def test_each_state_rule_at_its_edges(code: str, moment: datetime, is_open: bool) -> None:
    window = calling_window([EXPECTED[code].zone], code, None)
    assert window.is_open(moment) is is_open, f"{code} at {moment.isoformat()}"


@pytest.mark.parametrize("code", [code for code in EXPECTED if EXPECTED[code].holiday])
def test_a_legal_holiday_closes_the_whole_day(code: str) -> None:
    rule = EXPECTED[code]
    assert rule.holiday is not None
    y, m, d, offset, name = rule.holiday
    window = calling_window([rule.zone], code, None)
    for hh, mm in ((0, 0), (rule.weekday[0], 0), (12, 0), (rule.weekday[1] - 1, 59)):
        assert not window.is_open(at(y, m, d, hh, mm, offset)), f"{code} {hh:02}:{mm:02}"
    reason = window.reason_closed(at(y, m, d, 12, 0, offset))
    assert reason == f"closed: {JURISDICTIONS[code].name} legal holiday ({name})"
    # the day after is an ordinary working day (none of these holidays is on a Saturday)
    assert window.is_open(at(y, m, d + 1, 12, 0, offset))
    # a state that does not forbid holiday calls stays open that day
    assert calling_window([rule.zone], "OK", None).is_open(at(y, m, d, 12, 0, offset))


@pytest.mark.parametrize("code", [code for code in EXPECTED if EXPECTED[code].sunday is None])
def test_sunday_closed_states_reopen_on_monday_across_dst(code: str) -> None:
    rule = EXPECTED[code]
    window = calling_window([rule.zone], code, None)
    start = rule.weekday[0]
    # Saturday night in standard time → Monday's start in daylight time, and the reverse
    spring = window.next_open(at(2026, 3, 7, 21, 30, FALL[rule.zone]))
    assert spring == at(2026, 3, 9, start, 0, SPRING[rule.zone])
    fall = window.next_open(at(2026, 10, 31, 21, 30, SPRING[rule.zone]))
    assert fall == at(2026, 11, 2, start, 0, FALL[rule.zone])


@pytest.mark.parametrize(("zone", "offset"), [("America/Phoenix", -7), ("Pacific/Honolulu", -10)])
@pytest.mark.parametrize("day", [(2026, 3, 8), (2026, 11, 1), (2026, 6, 14)])
def test_arizona_and_hawaii_keep_their_clock_on_dst_days(
    zone: str, offset: int, day: tuple[int, int, int]
) -> None:
    code = "AZ" if zone == "America/Phoenix" else "HI"
    window = calling_window([zone], code, None)
    for moment, is_open in edges(day, (8, 21), offset):
        assert window.is_open(moment) is is_open, moment.isoformat()


@pytest.mark.parametrize("code", sorted(FEDERAL_ONLY))
def test_federal_only_jurisdictions_keep_eight_to_nine(code: str) -> None:
    zone, offset = FEDERAL_ONLY[code]
    window = calling_window([zone], code, None)
    for day in ((2026, 6, 10), (2026, 6, 14)):  # a Wednesday and a Sunday
        for moment, is_open in edges(day, (8, 21), offset):
            assert window.is_open(moment) is is_open, f"{code} {moment.isoformat()}"
    assert window.is_open(at(2026, 7, 3, 12, 0, offset))  # a federal holiday: not closed


def test_the_table_reviews_every_state_dc_and_territory() -> None:
    assert len(JURISDICTIONS) == 56
    assert set(JURISDICTIONS) == set(EXPECTED) | set(FEDERAL_ONLY)
    assert set(STATE_RULES) == set(EXPECTED) | set(PROVINCE_RULES)
    for code, rule in JURISDICTIONS.items():
        assert rule.source, code
        assert rule.zones, code
        if code in FEDERAL_ONLY:
            assert rule.status == "federal", code
            assert "no state calling-hours rule stricter than federal" in rule.source
        else:
            assert rule.status in ("confirmed", "unconfirmed"), code


def test_unknown_state_closes_on_every_forbidding_states_holidays() -> None:
    window = calling_window([CT], UNKNOWN_US_STATE, None)
    # Monday 2026-04-27: Confederate Memorial Day in AL and MS
    assert not window.is_open(at(2026, 4, 27, 12, 0, -5))
    assert "legal holiday (Confederate Memorial Day)" in window.reason_closed(
        at(2026, 4, 27, 12, 0, -5)
    )
    assert window.is_open(at(2026, 4, 28, 12, 0, -5))


def test_several_states_combine_to_the_strictest() -> None:
    window = calling_window([CT], "LA+TX", None)
    assert not window.is_open(at(2026, 6, 10, 8, 30, -5))  # TX opens at 09:00
    assert not window.is_open(at(2026, 6, 10, 20, 30, -5))  # LA closes at 20:00
    assert window.is_open(at(2026, 6, 10, 19, 59, -5))
    assert not window.is_open(at(2026, 6, 14, 13, 0, -5))  # LA: no Sundays
    assert not window.is_open(at(2026, 2, 17, 12, 0, -6))  # LA: Mardi Gras
    assert calling_window([CT], "TX", None).is_open(at(2026, 2, 17, 12, 0, -6))
    assert "(LA, TX rules)" in window.reason_closed(at(2026, 6, 10, 8, 30, -5))


def test_a_run_of_closed_days_is_searched_past() -> None:
    # Louisiana, Friday 3 July (Independence Day observed), Saturday 4 July, Sunday: closed
    window = calling_window([CT], "LA", None)
    thursday_night = at(2026, 7, 2, 20, 30, -5)
    assert window.next_open(thursday_night) == at(2026, 7, 6, 8, 0, -5)
    assert window.closes_at(at(2026, 7, 2, 15, 0, -5)) == at(2026, 7, 2, 20, 0, -5)


def test_campaign_days_and_holidays_together_need_a_long_search() -> None:
    from campaign.config.model import CallingHours

    fridays = CallingHours(days=frozenset({4}))
    window = calling_window([CT], "LA", fridays)
    # Fridays 25 Dec (Christmas) and 1 Jan (New Year) are closed: 8 Jan, 20 days on
    opens = window.next_open(at(2026, 12, 19, 12, 0, -6))
    assert opens == at(2027, 1, 8, 8, 0, -6)
    assert opens is not None and opens.tzinfo is UTC


# Canada (CRTC, automatic dialing-announcing devices): 09:30–21:30 weekdays and
# 10:30–18:00 weekends, inside the 08:00–21:00 default: 09:30–21:00 on weekdays.
@pytest.mark.parametrize("code", ["ON", "QC", "BC", "CA-?"])
def test_canadian_numbers_get_the_crtc_hours(code: str) -> None:
    window = calling_window(["America/Toronto"], code, None)
    wednesday, sunday = (2026, 6, 10), (2026, 6, 14)
    expected = [
        (at(*wednesday, 9, 29, -4), False),
        (at(*wednesday, 9, 30, -4), True),
        (at(*wednesday, 20, 59, -4), True),
        (at(*wednesday, 21, 0, -4), False),
        (at(*sunday, 10, 29, -4), False),
        (at(*sunday, 10, 30, -4), True),
        (at(*sunday, 17, 59, -4), True),
        (at(*sunday, 18, 0, -4), False),
    ]
    for moment, is_open in expected:
        assert window.is_open(moment) is is_open, moment.isoformat()
    assert "CRTC" in window.reason_closed(at(*sunday, 19, 0, -4))


def test_an_unknown_us_state_does_not_take_the_canadian_rules() -> None:
    window = calling_window([ET], UNKNOWN_US_STATE, None)
    # Canadian rules would close 10:00–10:30 on a Wednesday; US-? opens at 10:00
    assert window.is_open(at(2026, 6, 10, 10, 0, -4))
    # Maine's weekday-only rule (unconfirmed, applied) closes the weekend
    assert not window.is_open(at(2026, 6, 13, 12, 0, -4))
