"""The calls-mode loop at its edges: an API that cannot be read, a clock that is corrected,
an opt-out after the number changed, a window that closes while a send is retried."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.engine import FakeApi, make_call, store_with_rows

from campaign.api.models import Call, Page
from campaign.clock import FakeClock
from campaign.config.limit import parse_limit
from campaign.config.model import CallingHours, RetryConfig
from campaign.engine.attempts import idempotency_key
from campaign.engine.calls import CallsEngine
from campaign.engine.calls.collect import POLL_OUTAGE_S, PollResult, apply_call
from campaign.engine.frame import EngineDeps, EngineSettings
from campaign.engine.gate import SendGate
from campaign.errors import PollOutageError, SendWindowClosedError, UnavailableError
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import Store
from campaign.store.optout import OptOutList

NY = ["America/New_York"]
NOON_NY = datetime(2026, 6, 2, 16, 0, tzinfo=UTC).timestamp()  # Tuesday 12:00 in New York
PHONES = [f"+1212555{n:04d}" for n in range(3)]


def _engine(
    store: Store,
    api: Any,
    clock: FakeClock,
    tmp_path: Path,
    *,
    deadline: float | None = None,
    until: float | None = None,
    hours: CallingHours | None = None,
) -> CallsEngine:
    windows = WindowBook(hours or CallingHours())
    opt_outs = OptOutList(tmp_path)
    deps = EngineDeps(
        store=store,
        client=api,
        clock=clock,
        settings=EngineSettings(
            campaign="c",
            scenario_id="scn_demo",
            retry=RetryConfig(),
            call_limits=[parse_limit("5/min")],
            request_limits=[parse_limit("60/min"), parse_limit("1000/h")],
            deadline=deadline,
            until=until,
        ),
        window_for=windows.window_for,
        opt_outs=opt_outs,
        stop=asyncio.Event(),
        gate=SendGate(
            store=store,
            suppression={},
            opt_outs=opt_outs,
            window_for=windows.window_for,
            stop_before_close_s=300.0,
        ),
    )
    return CallsEngine(deps)


class PollingDown(FakeApi):
    """Calls are created, but every GET /calls fails as an unreachable API would."""

    async def list_calls(self, **params: Any) -> Page[Call]:
        self.gets += 1
        await self.clock.sleep(10.0)  # the client's own retries take time
        raise UnavailableError("503 from the proxy", http_status=503)


async def test_a_polling_outage_ends_the_run_with_an_error_instead_of_hanging(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOON_NY)
    api = PollingDown(clock)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    started = clock.now()
    result = await _engine(store, api, clock, tmp_path).run()
    assert isinstance(result.error, PollOutageError)
    assert "could not be read" in str(result.error)
    # It gave up within the five minutes (plus one poll's worth), and kept what it knew.
    assert clock.now() - started <= POLL_OUTAGE_S + 60.0
    assert result.calls_placed == len(PHONES)
    assert store.count_attempts("sent") == len(PHONES)


async def test_calling_hours_follow_the_wall_clock_when_it_is_corrected(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    clock.wall_offset = 12 * 3600.0  # NTP corrected the wall clock: it is midnight in NY
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    result = await _engine(store, api, clock, tmp_path, deadline=clock.now() + 60).run()
    assert api.calls == []
    assert result.calls_placed == 0
    assert result.next_due is not None and result.next_due > clock.wall()


async def test_until_is_read_on_the_wall_clock(tmp_path: Path) -> None:
    clock = FakeClock(NOON_NY)
    api = FakeApi(clock)
    store = store_with_rows(tmp_path, PHONES, clock.now())
    clock.wall_offset = 3600.0  # the wall clock is already past --until
    result = await _engine(store, api, clock, tmp_path, until=NOON_NY + 600).run()
    assert result.stopped_early and api.calls == []


class WindowClosesDuringOutage(FakeApi):
    """POST /calls fails until after the window closes; the client honours send_by."""

    send_bys: list[float | None]

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call:
        self.send_bys.append(send_by)
        while True:
            if send_by is not None and self.clock.now() >= send_by:
                raise SendWindowClosedError("the recipient's calling window closes")
            if self.clock.now() >= self.recovers_at:
                return await super().create_call(body, idempotency_key)
            await self.clock.sleep(5.0)


async def test_a_call_is_never_created_after_the_window_closes(tmp_path: Path) -> None:
    # 20:50 in New York; the window closes at 21:00 and keeps 5 minutes before close.
    start = datetime(2026, 6, 3, 0, 50, tzinfo=UTC).timestamp()
    clock = FakeClock(start)
    api = WindowClosesDuringOutage(clock)
    api.send_bys = []
    api.recovers_at = start + 16 * 60  # 21:06 local
    store = store_with_rows(tmp_path, PHONES[:1], start)
    result = await _engine(store, api, clock, tmp_path, deadline=start + 30 * 60).run()
    closes = datetime(2026, 6, 3, 1, 0, tzinfo=UTC).timestamp()
    assert api.send_bys and all(s is not None and s <= closes - 300 for s in api.send_bys)
    assert api.calls == []  # nothing was created after 20:55
    assert store.count_attempts("sending") == 1  # re-sent, same key, in the next window
    assert result.error is None


def test_an_opt_out_is_recorded_for_the_number_that_was_called(tmp_path: Path) -> None:
    old, new = PHONES[0], PHONES[1]
    store = store_with_rows(tmp_path, [old], NOON_NY)
    key = idempotency_key("c", old, 1)
    store.begin_attempt(old, 1, key, b"{}", NOON_NY, phone=old)
    store.mark_sent(key, "call_1", "queued", NOON_NY)
    # A checkpoint whose row shows another number than the one its call rang (written
    # before numbers were recorded per attempt, or edited since).
    store._conn.execute("UPDATE rows SET e164 = ? WHERE row_key = ?", (new, old))
    opt_outs = OptOutList(tmp_path)
    call = make_call(
        id="call_1",
        phone=old,
        status="completed",
        outcome="opted_out",
        goal_achieved=False,
        metadata={"campaign": "c", "row_key": old, "attempt": "1"},
    )
    apply_call(
        store, call, campaign="c", retry=RetryConfig(), opt_outs=opt_outs, now=NOON_NY,
        result=PollResult(),
    )  # fmt: skip
    assert opt_outs.contains(old)
    assert not opt_outs.contains(new)


class LostAnswerThenWeekend(FakeApi):
    """The first try creates the call, its answer is lost, and the window closes before
    another try may leave; the server forgets keys 24 h after it first saw them."""

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call:
        for key, (_, index) in list(self.keys.items()):
            if self.clock.now() - self.calls[index]["created"] >= 24 * 3600:
                del self.keys[key]
        first = not self.calls
        call = await super().create_call(body, idempotency_key)
        if first:
            raise SendWindowClosedError("answer lost, and no try may leave after the close")
        return call


async def test_a_send_whose_answer_was_lost_as_the_window_closed_is_never_placed_twice(
    tmp_path: Path,
) -> None:
    # Friday 2026-06-05 20:50 in New York; calls only Monday to Friday. The send's answer
    # is lost and the window closes before another try may leave: the run keeps the
    # attempt *sending* (no error), finds the call, and never places a second one, though
    # the server forgets the key over the weekend.
    start = datetime(2026, 6, 6, 0, 50, tzinfo=UTC).timestamp()
    clock = FakeClock(start)
    api = LostAnswerThenWeekend(clock)
    store = store_with_rows(tmp_path, PHONES[:1], start)
    hours = CallingHours.model_validate({"days": "mon-fri"})
    engine = _engine(store, api, clock, tmp_path, deadline=start + 3 * 86400, hours=hours)
    result = await engine.run()
    assert result.error is None
    assert len(api.calls) == 1
    assert store.count_attempts("sending") == 0
    assert store.count_attempts("ended") == 1
