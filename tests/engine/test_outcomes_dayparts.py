"""Retries after no answer or busy move to a part of the recipient's day not tried yet.

``decide`` as a table across timezones and DST changes, inside calling windows; then the
calls loop on a fake clock placing a row's three attempts in three parts of its day, and
``retry.dayparts: any`` keeping the plain rule.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.engine import FakeApi

from campaign.clock import FakeClock
from campaign.config.limit import parse_limit
from campaign.config.model import CallingHours, RetryConfig
from campaign.engine.calls import CallsEngine
from campaign.engine.frame import EngineDeps, EngineSettings
from campaign.engine.outcomes import Daypart, decide, record_call_end
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import CallEnd, RowIn, Store
from campaign.store.optout import OptOutList

NY, LONDON, KOLKATA, SYDNEY = (
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
)
WEEKDAYS_9_TO_20 = CallingHours(start="09:00", end="20:00", days=[0, 1, 2, 3, 4])
MORNINGS_ONLY = CallingHours(start="09:00", end="12:00")


def at(zone: str, text: str) -> float:
    """An instant given as the wall-clock time of ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def local(zone: str, moment: float) -> str:
    return datetime.fromtimestamp(moment, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("zones", "ended", "interval", "tried", "hours", "due", "why"),
    [
        # 10:00 + 1 h is still the morning, which was tried: the afternoon opens at 12:00.
        ([NY], "2026-06-02 10:00", "1h", ["morning"], None, "2026-06-02 12:00", "afternoon"),
        ([NY], "2026-06-02 10:00", "1h", ["morning", "afternoon"], None,
         "2026-06-02 17:00", "evening"),
        # Every part tried once: the least-tried part that was not the last one, earliest.
        ([NY], "2026-06-02 10:00", "1h", ["afternoon", "evening", "morning"], None,
         "2026-06-02 12:00", "afternoon"),
        ([NY], "2026-06-02 10:00", "1h", ["morning", "morning", "afternoon", "evening"],
         None, "2026-06-02 12:00", "afternoon"),
        # Already in a new part: the plain rule's time.
        ([LONDON], "2026-06-02 16:30", "30min", ["afternoon"], None,
         "2026-06-02 17:00", "evening"),
        ([KOLKATA], "2026-06-02 11:00", "4h", ["morning"], None,
         "2026-06-02 15:00", "afternoon"),
        # 19:00 + 4 h is night: the next part of the day not tried is tomorrow morning.
        ([NY], "2026-06-02 19:00", "4h", ["evening"], None, "2026-06-03 08:00", "morning"),
        # Spring forward (8 Mar 2026): 24 h after 10:00 EST is 11:00 EDT; noon EDT is 16:00 UTC.
        ([NY], "2026-03-07 10:00", "24h", ["morning"], None, "2026-03-08 12:00", "afternoon"),
        # Fall back (1 Nov 2026): 24 h after 10:00 EDT is 09:00 EST.
        ([NY], "2026-10-31 10:00", "24h", ["morning"], None, "2026-11-01 12:00", "afternoon"),
        # Sydney leaves DST on 5 Apr 2026: 18:00 AEDT + 24 h = 17:00 AEST, the evening again.
        ([SYDNEY], "2026-04-04 18:00", "24h", ["evening"], None,
         "2026-04-06 08:00", "morning"),
        # Calling hours Mon-Fri 09-20: Friday evening → Monday, when the window opens.
        ([NY], "2026-06-05 18:30", "1h", ["evening"], WEEKDAYS_9_TO_20,
         "2026-06-08 09:00", "morning"),
        # Only mornings are ever open: the morning again, at the plain rule's time.
        ([NY], "2026-06-02 10:00", "1h", ["morning"], MORNINGS_ONLY,
         "2026-06-02 11:00", "morning"),
        # Several zones: the day is read in the first; the window holds in all of them.
        ([NY, "America/Chicago"], "2026-06-02 10:00", "1h", ["morning"], None,
         "2026-06-02 12:00", "afternoon"),
    ],
)  # fmt: skip
def test_a_retry_goes_to_a_part_of_the_day_not_tried_yet(
    zones: list[str],
    ended: str,
    interval: str,
    tried: list[Daypart],
    hours: CallingHours | None,
    due: str,
    why: str,
) -> None:
    zone = zones[0]
    end = CallEnd("no_answer", ended_at=at(zone, ended))
    window = WindowBook(hours).window_for(_row(zones))
    retry = RetryConfig(min_interval=interval)
    decision = decide(end, 1, retry, 0.0, timezones=zones, tried=tried, window=window)
    assert decision.progress == "retry_scheduled"
    assert decision.next_due is not None
    assert local(zone, decision.next_due) == due
    assert decision.reason == f"no_answer; retry scheduled in the recipient's {why}"


def test_spring_forward_is_counted_in_real_hours() -> None:
    end = CallEnd("busy", ended_at=at(NY, "2026-03-07 10:00"))
    decision = decide(
        end, 1, RetryConfig(min_interval="24h"), 0.0, timezones=[NY], tried=["morning"]
    )
    assert decision.next_due == datetime(2026, 3, 8, 16, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("retry", "end", "zones"),
    [
        (RetryConfig(min_interval="1h", dayparts="any"), CallEnd("no_answer"), [NY]),
        (RetryConfig(min_interval="1h"), CallEnd("no_answer"), []),  # no known timezone
        (RetryConfig(min_interval="1h"), CallEnd("no_answer"), ["Etc/Unknown"]),
        # Only a person not reached moves to another part of the day; a failed call does not.
        (RetryConfig(min_interval="1h", statuses=["failed"]), CallEnd("failed"), [NY]),
    ],
)
def test_the_plain_rule_where_the_part_of_the_day_does_not_apply(
    retry: RetryConfig, end: CallEnd, zones: list[str]
) -> None:
    ended = at(NY, "2026-06-02 10:00")
    end = CallEnd(end.status, ended_at=ended)
    decision = decide(end, 1, retry, 0.0, timezones=zones, tried=["morning"])
    assert decision.progress == "retry_scheduled"
    assert decision.next_due == ended + 3600
    assert decision.reason == f"{end.status}; retry scheduled"


def test_the_last_attempt_fails_the_row_whatever_the_part_of_the_day() -> None:
    end = CallEnd("busy", ended_at=at(NY, "2026-06-02 10:00"))
    decision = decide(end, 3, RetryConfig(), 0.0, timezones=[NY], tried=["morning"] * 3)
    assert (decision.progress, decision.next_due) == ("failed", None)


def _row(zones: list[str]) -> RowIn:
    phone = "+12125550100"
    return RowIn(
        line=2, row_key=phone, raw_phone=phone, e164=phone, plan_state="callable", timezones=zones
    )


def _store(tmp_path: Path, now: float) -> Store:
    store = Store.open(tmp_path / "c.sqlite")
    store.claim_identity("c")
    store.sync_rows([_row([NY])], now)
    return store


def test_record_call_end_reads_the_parts_tried_from_the_checkpoint(tmp_path: Path) -> None:
    """The campaign's window (Mon-Fri 09-20) places the retry, and earlier calls count."""
    store = _store(tmp_path, at(NY, "2026-06-04 09:30"))
    phone = "+12125550100"
    window_for = WindowBook(WEEKDAYS_9_TO_20).window_for
    retry = RetryConfig(min_interval="1h")
    for number, (placed, status) in enumerate(
        [("2026-06-04 09:30", "no_answer"), ("2026-06-04 13:00", "busy")], start=1
    ):
        key = f"k{number}"
        store.begin_attempt(phone, number, key, b"{}", at(NY, placed))
        store.mark_sent(key, f"call_{number}", "queued", at(NY, placed))
        end = CallEnd(status, ended_at=at(NY, placed) + 40)
        decision = record_call_end(
            store, store.attempt(key), end, dialled=None, campaign="c", retry=retry,
            opt_outs=OptOutList(tmp_path), now=at(NY, placed) + 40, window_for=window_for,
        )  # fmt: skip
    # Morning and afternoon tried on Thursday: Thursday evening, at 17:00.
    assert decision.next_due is not None
    assert local(NY, decision.next_due) == "2026-06-04 17:00"
    row = store.row(phone)
    assert row.progress == "retry_scheduled" and row.next_due == decision.next_due
    store.close()


def _engine(store: Store, api: FakeApi, clock: FakeClock, tmp_path: Path, retry: RetryConfig,
            deadline: float) -> CallsEngine:  # fmt: skip
    settings = EngineSettings(
        campaign="c",
        scenario_id="scn_demo",
        retry=retry,
        call_limits=[parse_limit("5/min")],
        request_limits=[parse_limit("60/min"), parse_limit("1000/h")],
        deadline=deadline,
    )
    deps = EngineDeps(
        store=store,
        client=api,
        clock=clock,
        settings=settings,
        window_for=WindowBook(None).window_for,
        opt_outs=OptOutList(tmp_path),
        stop=asyncio.Event(),
    )
    return CallsEngine(deps)


@pytest.mark.parametrize(
    ("dayparts", "placed"),
    [
        ("rotate", ["10:00", "12:00", "17:00"]),  # morning, afternoon, evening
        ("any", ["10", "11", "12"]),  # an hour (and the polling) after each call ended
    ],
)
async def test_the_calls_loop_places_each_retry_in_a_new_part_of_the_day(
    tmp_path: Path, dayparts: str, placed: list[str]
) -> None:
    start = at(NY, "2026-06-02 10:00")  # a Tuesday
    clock = FakeClock(start)
    phone = "+12125550100"
    script = [("no_answer", None, None), ("busy", None, None), ("completed", "declined", None)]
    api = FakeApi(clock, scripts={phone: script})
    store = _store(tmp_path, start)
    retry = RetryConfig.model_validate({"min_interval": "1h", "dayparts": dayparts})
    result = await _engine(store, api, clock, tmp_path, retry, deadline=start + 12 * 3600).run()
    assert result.error is None
    created = [datetime.fromtimestamp(c["created"], ZoneInfo(NY)) for c in api.calls]
    assert [moment.strftime("%H:%M")[: len(placed[0])] for moment in created] == placed
    assert store.row(phone).progress == "done"
    store.close()
