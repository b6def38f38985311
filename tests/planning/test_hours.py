from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from campaign.config.model import CallingHours
from campaign.planning.hours import calling_window

NY = ZoneInfo("America/New_York")


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


# 2026-03-08 is the US spring-forward Sunday; 2026-11-01 the fall-back Sunday.
@pytest.mark.parametrize(
    ("zones", "state", "at", "is_open"),
    [
        (["America/New_York"], "NY", local("America/New_York", 2026, 6, 3, 7, 59), False),
        (["America/New_York"], "NY", local("America/New_York", 2026, 6, 3, 8, 0), True),
        (["America/New_York"], "NY", local("America/New_York", 2026, 6, 3, 20, 59), True),
        (["America/New_York"], "NY", local("America/New_York", 2026, 6, 3, 21, 0), False),
        (["America/New_York"], "FL", local("America/New_York", 2026, 6, 3, 20, 0), False),
        (["America/New_York"], "FL", local("America/New_York", 2026, 6, 3, 19, 59), True),
        (["America/Chicago"], "AL", local("America/Chicago", 2026, 6, 7, 12, 0), False),  # Sun
        (["America/Chicago"], "AL", local("America/Chicago", 2026, 6, 6, 12, 0), True),  # Sat
        (["America/Chicago"], "TX", local("America/Chicago", 2026, 6, 7, 11, 0), False),
        (["America/Chicago"], "TX", local("America/Chicago", 2026, 6, 7, 12, 0), True),
        (["America/New_York"], "RI", local("America/New_York", 2026, 6, 6, 9, 30), False),
        (["America/New_York"], "KY", local("America/New_York", 2026, 6, 3, 9, 30), False),
        (["America/Detroit"], "MI", local("America/Detroit", 2026, 6, 3, 8, 30), False),
        (["America/Detroit"], "MI", local("America/Detroit", 2026, 6, 3, 20, 30), True),
        # DST days: the window follows local clock time, not a fixed UTC offset
        (["America/New_York"], "NY", local("America/New_York", 2026, 3, 8, 8, 0), True),
        (["America/New_York"], "NY", local("America/New_York", 2026, 11, 1, 20, 30), True),
        (["America/New_York"], "NY", local("America/New_York", 2026, 11, 1, 7, 30), False),
    ],
)
def test_default_hours_with_state_rules(
    zones: list[str], state: str, at: datetime, is_open: bool
) -> None:
    assert calling_window(zones, state, None).is_open(at) is is_open


def test_dst_spring_forward_opens_at_local_eight() -> None:
    window = calling_window(["America/New_York"], "NY", None)
    # Saturday 21:30 EST → the next opening is Sunday 08:00 EDT = 12:00 UTC (not 13:00)
    at = local("America/New_York", 2026, 3, 7, 21, 30)
    assert window.next_open(at) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_dst_fall_back_opens_at_local_eight() -> None:
    window = calling_window(["America/New_York"], "NY", None)
    at = local("America/New_York", 2026, 10, 31, 22, 0)
    assert window.next_open(at) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_alabama_skips_sunday() -> None:
    window = calling_window(["America/Chicago"], "AL", None)
    saturday_night = local("America/Chicago", 2026, 6, 6, 20, 30)
    assert window.next_open(saturday_night) == local("America/Chicago", 2026, 6, 8, 8, 0)
    assert "no calls on sun" in window.reason_closed(local("America/Chicago", 2026, 6, 7, 12))


def test_florida_closes_at_eight() -> None:
    window = calling_window(["America/New_York"], "FL", None)
    at = local("America/New_York", 2026, 6, 3, 15, 0)
    assert window.closes_at(at) == local("America/New_York", 2026, 6, 3, 20, 0)
    assert "20:00" in window.reason_closed(local("America/New_York", 2026, 6, 3, 20, 15))


def test_campaign_hours_only_narrow_the_defaults() -> None:
    hours = CallingHours(start=time(7), end=time(22), days=frozenset(range(5)))
    window = calling_window(["Europe/Paris"], None, hours)
    assert not window.is_open(local("Europe/Paris", 2026, 6, 3, 7, 30))  # before 08:00
    assert not window.is_open(local("Europe/Paris", 2026, 6, 3, 21, 30))  # after 21:00
    assert window.is_open(local("Europe/Paris", 2026, 6, 3, 12, 0))
    assert not window.is_open(local("Europe/Paris", 2026, 6, 6, 12, 0))  # Saturday excluded
    narrow = CallingHours(start=time(10), end=time(12))
    assert not calling_window(["Europe/Paris"], None, narrow).is_open(
        local("Europe/Paris", 2026, 6, 3, 12, 0)
    )


def test_several_zones_intersect() -> None:
    # Alaska (Anchorage, Adak) is open only when both are inside 08:00–21:00
    window = calling_window(["America/Adak", "America/Anchorage"], "AK", None)
    assert not window.is_open(local("America/Anchorage", 2026, 6, 3, 8, 30))  # Adak 07:30
    assert window.is_open(local("America/Anchorage", 2026, 6, 3, 9, 0))
    at = local("America/Anchorage", 2026, 6, 3, 8, 30)
    assert window.next_open(at) == local("America/Anchorage", 2026, 6, 3, 9, 0)
    assert window.closes_at(local("America/Anchorage", 2026, 6, 3, 12)) == local(
        "America/Anchorage", 2026, 6, 3, 21, 0
    )


def test_zones_that_never_overlap_never_open() -> None:
    office_hours = CallingHours(start=time(9), end=time(17))
    # UTC+5:30 and UTC-7 (no DST): 12.5 hours apart, so 8-hour windows never meet
    window = calling_window(["Asia/Kolkata", "America/Phoenix"], None, office_hours)
    assert window.next_open(datetime(2026, 6, 3, tzinfo=UTC)) is None
    # the 13-hour default windows of any two zones always share some time
    assert calling_window(["Asia/Kolkata", "America/Phoenix"], None, None).next_open(
        datetime(2026, 6, 3, tzinfo=UTC)
    ) == datetime(2026, 6, 3, 2, 30, tzinfo=UTC)  # Kolkata 08:00, Phoenix 19:30


def test_no_timezone_fails_closed() -> None:
    window = calling_window([], None, None)
    at = datetime(2026, 6, 3, 15, tzinfo=UTC)
    assert not window.is_open(at)
    assert window.next_open(at) is None
    assert window.reason_closed(at) == "no timezone known for this number"


def test_unrestricted_is_always_open() -> None:
    window = calling_window([], None, "unrestricted")
    at = datetime(2026, 6, 7, 3, tzinfo=UTC)
    assert window.unrestricted and window.is_open(at)
    assert window.next_open(at) == at and window.closes_at(at) is None


def test_a_us_number_without_a_state_gets_the_strictest_state_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import campaign.phones.normalise as phones

    # An area code whose geocoding names no state (a new or non-geographic code, or one
    # geocoded per exchange only): the number keeps its zone but no state is known.
    monkeypatch.setattr(phones, "_nanp_state", lambda nsn, kind: None)
    found = phones.normalise_number("+1 312 555 0100", "US")
    assert found.timezones == ("America/Chicago",)
    assert found.us_state == phones.UNKNOWN_US_STATE
    window = calling_window(list(found.timezones), found.us_state, None)
    federal_only = calling_window(list(found.timezones), None, None)
    # Sunday 12:00 in Chicago: the federal window is open, but AL, LA, MS, RI and UT forbid
    # Sunday calls and the person could be in any of them.
    sunday_noon = local("America/Chicago", 2026, 6, 7, 12, 0)
    assert federal_only.is_open(sunday_noon)
    assert not window.is_open(sunday_noon)
    assert "US state unknown" in window.reason_closed(sunday_noon)
    # Monday: 10:00-17:00 (KY's start, ME's end), strict but not never.
    assert not window.is_open(local("America/Chicago", 2026, 6, 8, 9, 30))
    assert window.is_open(local("America/Chicago", 2026, 6, 8, 10, 0))
    assert window.is_open(local("America/Chicago", 2026, 6, 8, 16, 59))
    assert not window.is_open(local("America/Chicago", 2026, 6, 8, 17, 0))
