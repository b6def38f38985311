"""The shared allowance: never over a window across campaigns, fair by priority, crash-safe."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.postgres import Backend

from campaign.clock import Clock, SystemClock
from campaign.config.limit import Limit
from campaign.engine.batches.plan import latest_dial_times
from campaign.errors import StateError
from campaign.limits import (
    FairShare,
    MemoryLedger,
    SlidingWindowLimiter,
    SqliteLedger,
    allowance_path,
    shared_limiter,
)
from campaign.limits.allowance import AllowanceLedger
from campaign.limits.fairness import RIVAL_GRACE_S
from campaign.limits.status import (
    allowance_files,
    allowance_lines,
    allowance_members,
    allowance_view,
)
from campaign.store.allowance import CALL, AllowanceDb, AllowanceLocation, Participant
from campaign.store.place import StatePlace

T0 = 1_780_000_000.0
MARGIN = 0.25
CALLS = [Limit(5, 60.0)]
REQUESTS = [Limit(60, 60.0), Limit(1000, 3600.0)]


class VirtualClock:
    """A fake clock for many concurrent sleepers: when every task waits, time jumps to the
    earliest wake-up, so each sleeper wakes exactly when it asked to."""

    def __init__(self, start: float = T0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), self._seq, wake))
        await wake

    async def drive(self, tasks: Sequence[asyncio.Task[Any]]) -> None:
        """Run ``tasks`` to completion on virtual time."""
        while not all(task.done() for task in tasks):
            for _ in range(50):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
                running = sum(not task.done() for task in tasks)
                if len([s for s in self._sleepers if not s[2].done()]) >= running:
                    break
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                continue
            wake_at, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake_at)
            wake.set_result(None)
        for task in tasks:
            task.result()  # surface any exception


def shared(
    path: Where,
    name: str,
    clock: Clock,
    *,
    priority: float = 1.0,
    calls: Sequence[Limit] = CALLS,
    requests: Sequence[Limit] = REQUESTS,
    ttl_s: float = 5.0,
) -> SlidingWindowLimiter:
    return shared_limiter(
        path,
        name,
        requests,
        calls,
        priority=priority,
        clock=clock,
        margin_s=MARGIN,
        ttl_s=ttl_s,
    )


# Where an allowance's ledger lives: a file in the state dir (SQLite), or a schema of the
# state database (PostgreSQL, state_url). ``at(name)``: a distinct allowance per name.
Where = Path | AllowanceLocation
At = Callable[..., Where]


@pytest.fixture
def at(tmp_path: Path, state_backend: Backend) -> At:
    """The test's allowance ``name`` on its backend."""
    place = StatePlace(tmp_path, "any", state_backend.url, state_backend.url_no_password)

    def where(name: str = "a") -> Where:
        if state_backend.url is None:
            return tmp_path / f"{name}.sqlite"
        return place.allowance(f"https://{name}.example/v1", "avp_test_key")

    return where


def open_db(where: Where) -> AllowanceDb:
    return AllowanceDb(where) if isinstance(where, Path) else where.open()


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most sends any server window ``[t, t + window)`` holds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def call_loop(
    allowance: SlidingWindowLimiter,
    clock: VirtualClock,
    until: float,
    sink: list[tuple[str, float]],
    latency: float = 0.05,
) -> None:
    """A campaign with endless work: send a call, wait for the response, ask for the next."""
    while clock.now() < until:
        sent_at = await allowance.acquire_call()
        sink.append((allowance.campaign, sent_at))
        await clock.sleep(latency)
    allowance.idle()  # out of work


async def engine_loop(
    allowance: SlidingWindowLimiter,
    clock: VirtualClock,
    until: float,
    sink: list[tuple[str, float]],
    latency: float = 0.05,
) -> None:
    """Like the run engine: commit a call only when ``call_ready`` says a slot is ours now."""
    while clock.now() < until:
        if not allowance.call_ready():
            await clock.sleep(0.02)
            continue
        asked_at = clock.now()
        sent_at = await allowance.acquire_call()
        assert sent_at == asked_at  # a "yes" is a slot at once, not a wait
        sink.append((allowance.campaign, sent_at))
        await clock.sleep(latency)
    allowance.idle()


def test_allowance_file_is_per_key_and_base_url_and_never_names_the_key(tmp_path: Path) -> None:
    key = "avp_live_s3cr3t_value"
    path = allowance_path(tmp_path, "https://api.aitelier.org/v1", key)
    assert path.parent == tmp_path and path.name.startswith("allowance-")
    assert key not in str(path) and "s3cr3t" not in str(path)
    assert path == allowance_path(tmp_path, "https://api.aitelier.org/v1", key)
    assert path != allowance_path(tmp_path, "https://api.aitelier.org/v1", key + "x")
    assert path != allowance_path(tmp_path, "http://127.0.0.1:8787/v1", key)


async def test_a_campaign_alone_gets_the_whole_allowance(at: At) -> None:
    clock = VirtualClock()
    allowance = shared(at("a"), "spring", clock)
    sink: list[tuple[str, float]] = []
    task = asyncio.create_task(call_loop(allowance, clock, T0 + 600.0, sink))
    await clock.drive([task])
    times = [t for _, t in sink]
    assert max_in_window(times, 60.0) == 5
    # 5 calls per window + margin: ten minutes hold 5 * 600 / 60.25 ≈ 49.8 call slots
    assert len(times) >= 49


async def test_two_campaigns_together_never_exceed_a_window(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    sink: list[tuple[str, float]] = []
    tasks = [
        asyncio.create_task(call_loop(shared(path, name, clock), clock, T0 + 300.0, sink))
        for name in ("spring", "winback")
    ]
    await clock.drive(tasks)
    times = [t for _, t in sink]
    assert max_in_window(times, 60.0) <= 5
    assert len(times) >= 24  # together they still use the whole allowance


@pytest.mark.parametrize("ledger", ["sqlite", "memory", "postgresql"])
@pytest.mark.parametrize("loop", [call_loop, engine_loop], ids=["acquire", "call_ready"])
@pytest.mark.parametrize(
    "priorities",
    [(1.0, 1.0, 1.0), (1.0, 2.0, 3.0), (1.0, 4.0)],
    ids=["equal", "1-2-3", "1-4"],
)
async def test_shares_follow_priorities(
    tmp_path: Path,
    priorities: tuple[float, ...],
    loop: Any,
    ledger: str,
    request: pytest.FixtureRequest,
) -> None:
    # The same policy over any ledger: the participants' rows are all it needs.
    clock = VirtualClock()
    path = tmp_path / "a.sqlite"
    memory = MemoryLedger()
    if ledger == "postgresql":
        url = request.getfixturevalue("pg_url")
        where = StatePlace(tmp_path, "any", url).allowance("https://a.example/v1", "avp_k")

    def ledger_for() -> Any:
        if ledger == "memory":
            return memory
        return SqliteLedger(path) if ledger == "sqlite" else AllowanceLedger(where.open())

    sink: list[tuple[str, float]] = []
    names = [f"campaign-{i}" for i in range(len(priorities))]
    tasks = []
    for name, priority in zip(names, priorities, strict=True):
        allowance = SlidingWindowLimiter(
            [], [Limit(30, 10.0)], clock, margin_s=MARGIN,
            ledger=ledger_for(),
            share=FairShare(name, priority=priority),
        )  # fmt: skip
        # two calls in flight per campaign, as the run engine does
        for _ in range(2):
            tasks.append(asyncio.create_task(loop(allowance, clock, T0 + 120.0, sink)))
    await clock.drive(tasks)
    counts = Counter(name for name, _ in sink)
    total = sum(counts.values())
    assert max_in_window([t for _, t in sink], 10.0) <= 30
    assert total >= 30 * 120 / 10.25 - 2  # fairness costs no throughput
    for name, priority in zip(names, priorities, strict=True):
        expected = priority / sum(priorities)
        assert abs(counts[name] / total - expected) <= 0.1 * expected, counts


async def test_a_campaign_with_nothing_to_call_yields_its_share(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    calls = [Limit(10, 10.0)]
    busy = shared(path, "busy", clock, calls=calls, requests=[])
    brief = shared(path, "brief", clock, calls=calls, requests=[], priority=5.0)
    sink: list[tuple[str, float]] = []
    tasks = [
        asyncio.create_task(call_loop(busy, clock, T0 + 100.0, sink)),
        asyncio.create_task(call_loop(brief, clock, T0 + 30.0, sink)),  # runs out of work
    ]
    await clock.drive(tasks)
    later = [name for name, t in sink if t >= T0 + 31.0]
    assert later and set(later) == {"busy"}
    # after the brief one (priority 5) stopped, the busy one gets the full 10 per 10.25 s
    # (with brief holding its share it would get a sixth of that)
    assert len(later) >= 10 * int(69 / 10.25)


async def test_a_returning_campaign_does_not_cash_in_the_slots_it_did_not_ask_for(
    at: At,
) -> None:
    clock = VirtualClock()
    path = at("a")
    calls = [Limit(10, 10.0)]
    steady = shared(path, "steady", clock, calls=calls, requests=[])
    late = shared(path, "late", clock, calls=calls, requests=[])
    sink: list[tuple[str, float]] = []

    async def late_starter() -> None:
        await clock.sleep(60.0)
        await call_loop(late, clock, T0 + 120.0, sink)

    tasks = [
        asyncio.create_task(call_loop(steady, clock, T0 + 120.0, sink)),
        asyncio.create_task(late_starter()),
    ]
    await clock.drive(tasks)
    # In the two windows after its return the late one catches up by at most one window's
    # share (5 of 10), then alternates; it does not take all 20 for the minute it missed.
    first_windows = Counter(name for name, t in sink if T0 + 61.0 <= t < T0 + 81.0)
    assert first_windows["late"] - first_windows["steady"] <= 5 + 2, first_windows
    assert first_windows["steady"] >= 6, first_windows


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def participant(name: str, now: float, **fields: Any) -> Participant:
    """A participant row of this process, joined at ``now`` with the default limits."""
    row = Participant(
        name=name, host=socket.gethostname(), pid=os.getpid(), priority=1.0,
        requests=tuple(REQUESTS), calls=tuple(CALLS), joined=now, heartbeat=now, vtime=0.0,
        waiting=0, ready_at=None, call_due=None, last_call=None, calls_sent=0,
        requests_sent=0, state="active",
    )  # fmt: skip
    return dataclasses.replace(row, **fields)


def plant_waiting_rival(path: Where, name: str, now: float, **fields: Any) -> None:
    """A participant row as a run killed while waiting for a call slot would leave it."""
    db = open_db(path)
    with db.transaction():
        db.put_participant(
            participant(name, now, vtime=-100.0, waiting=1, ready_at=now, call_due=now, **fields)
        )
    db.close()


def participant_names(path: Where) -> list[str]:
    db = open_db(path)
    with db.transaction():
        names = [p.name for p in db.participants()]
    db.close()
    return names


async def test_a_live_rival_with_an_earlier_turn_goes_first(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    plant_waiting_rival(path, "a-rival", clock.now())  # our own pid: alive
    me = shared(path, "me", clock)
    task = asyncio.create_task(me.acquire_call())
    for _ in range(20):  # the rival never sends: we yield until it is stuck
        await asyncio.sleep(0)
    await clock.drive([task])
    # it yields until the rival, ready since T0, is evidently stuck
    assert T0 + RIVAL_GRACE_S < task.result() <= T0 + RIVAL_GRACE_S + 0.1


async def test_a_killed_rival_stops_holding_a_share_at_once(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    plant_waiting_rival(path, "killed", clock.now(), pid=dead_pid())
    me = shared(path, "me", clock)
    task = asyncio.create_task(me.acquire_call())
    await clock.drive([task])
    assert task.result() == T0  # no yielding to a dead process


async def test_a_silent_rival_on_another_host_expires_after_the_ttl(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    plant_waiting_rival(path, "remote", clock.now(), host="elsewhere", heartbeat=T0 - 10.0)
    me = shared(path, "me", clock, ttl_s=5.0)
    assert participant_names(path) == ["me", "remote"]
    task = asyncio.create_task(me.acquire_call())
    await clock.drive([task])
    assert task.result() == T0


async def test_a_killed_runs_sends_keep_counting(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    db = open_db(path)
    with db.transaction():
        db.put_participant(participant("killed", T0 - 30.0, pid=dead_pid()))
        for k in range(5):
            db.record_send("killed", T0 - 30.0 + k, CALL)
    db.close()
    me = shared(path, "me", clock)
    task = asyncio.create_task(me.acquire_call())
    await clock.drive([task])
    assert task.result() == pytest.approx(T0 - 30.0 + 60.0 + MARGIN, abs=1e-6)


async def test_seeding_counts_an_earlier_run_once(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    first = shared(path, "spring", clock)
    sent = [await first.acquire_call() for _ in range(3)]
    first.close()
    again = shared(path, "spring", clock)
    again.seed([], sent)  # the checkpoint has the same three sends the file already has
    times = [await again.acquire_call() for _ in range(2)]
    assert times == [T0, T0]  # 3 + 2 = 5: not held back by double counting
    fresh = shared(at("new"), "spring", clock)
    fresh.seed([], [T0 - 1.0] * 5)  # the allowance file was lost: the checkpoint still counts
    task = asyncio.create_task(fresh.acquire_call())
    await clock.drive([task])
    assert task.result() == pytest.approx(T0 - 1.0 + 60.0 + MARGIN, abs=1e-6)


async def test_a_replay_gives_its_call_slot_back(at: At) -> None:
    clock = VirtualClock()
    path = at("a")
    allowance = shared(path, "spring", clock)
    other = shared(path, "winback", clock)
    times = [await allowance.acquire_call() for _ in range(5)]
    allowance.release_call(times[-1])
    assert await other.acquire_call() == T0  # the freed slot is usable by every campaign


def platform_and_server(
    direct: Sequence[float], batch_start: float, rows: int, limit: Limit
) -> tuple[list[float], int]:
    """What the platform does: it dials a batch's rows greedily (each at the first moment
    its outbound window has room, direct calls and earlier rows counted), and refuses a
    direct call that arrives when the window is full (429). Returns the dial times and how
    many direct calls were refused."""
    accepted: list[float] = []
    dials: list[float] = []
    refused = 0

    def room_at(t: float) -> float:
        in_window = sorted(a for a in accepted if t - limit.window < a <= t)
        if len(in_window) < limit.count:
            return t
        return in_window[-limit.count] + limit.window

    pending = sorted(direct)
    while pending or len(dials) < rows:
        dial_at = float("inf")
        if len(dials) < rows:
            dial_at = max(batch_start, dials[-1] if dials else batch_start)
            while (free := room_at(dial_at)) > dial_at:
                dial_at = free
        if pending and pending[0] < dial_at:
            at = pending.pop(0)
            if room_at(at) > at:
                refused += 1
            else:
                accepted.append(at)
        else:
            dials.append(dial_at)
            accepted.append(dial_at)
    return dials, refused


@pytest.mark.parametrize("reserved", [True, False], ids=["reserved", "unreserved"])
async def test_a_batch_campaign_beside_a_calls_campaign_makes_it_wait_not_meet_429s(
    at: At, reserved: bool
) -> None:
    clock = VirtualClock()
    path = at("a")
    bulk = shared(path, "bulk", clock)
    spring = shared(path, "spring", clock)
    # The batches campaign uploads 12 rows at T0; the platform starts dialling a second
    # later (validation) at the project's 5/min, as fast as the window lets it.
    batch_start, rows, limit = T0 + 1.0, 12, CALLS[0]
    if reserved:
        bulk.reserve_calls(
            latest_dial_times(T0, rows, spacing=12.0, window=limit.window, slack_s=120.0)
        )
    sink: list[tuple[str, float]] = []
    task = asyncio.create_task(call_loop(spring, clock, T0 + 900.0, sink))
    await clock.drive([task])
    direct = [t for _, t in sink]
    dials, refused = platform_and_server(direct, batch_start, rows, limit)
    assert len(dials) == rows
    if not reserved:  # what happened before: the platform took the slots first
        assert refused > 0
        return
    assert refused == 0
    assert max_in_window([*direct, *dials], limit.window) <= limit.count
    # The calls campaign still gets the limit once the batch has dialled.
    assert len(direct) >= 5 * (900 - 400) // 61


async def test_different_limits_are_all_held_and_named_in_a_warning(
    at: At, caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock()
    path = at("a")
    strict = shared(path, "spring", clock, calls=[Limit(5, 60.0)])
    loose = shared(path, "survey", clock, calls=[Limit(30, 10.0)])
    with caplog.at_level(logging.WARNING, logger="campaign.limits"):
        sink: list[tuple[str, float]] = []
        tasks = [
            asyncio.create_task(call_loop(allowance, clock, T0 + 120.0, sink))
            for allowance in (strict, loose)
        ]
        await clock.drive(tasks)
    assert max_in_window([t for _, t in sink], 60.0) <= 5  # the stricter limit of spring
    assert any("spring" in r.message and "survey" in r.message for r in caplog.records)


async def test_plain_requests_leave_a_request_slot_for_another_campaigns_call(
    at: At,
) -> None:
    clock = VirtualClock()
    path = at("a")
    requests = [Limit(3, 10.0)]
    caller = shared(path, "caller", clock, requests=requests, calls=[Limit(1, 10.0)])
    poller = shared(path, "poller", clock, requests=requests, calls=[Limit(1, 10.0)])
    await caller.acquire_call()  # the call limit is now full until T0 + 10.25
    sink: list[tuple[str, float]] = []

    async def polls() -> None:
        for _ in range(6):
            sink.append(("poll", await poller.acquire_request()))

    async def next_call() -> None:
        sink.append(("call", await caller.acquire_call()))

    tasks = [asyncio.create_task(next_call()), asyncio.create_task(polls())]
    await clock.drive(tasks)
    call_at = next(t for kind, t in sink if kind == "call")
    assert call_at == pytest.approx(
        T0 + 10.0 + MARGIN, abs=1e-6
    )  # not delayed by the other's polls
    assert max_in_window([T0] + [t for _, t in sink], 10.0) <= 3


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    plan=st.lists(
        st.tuples(
            st.integers(0, 2),  # which campaign
            st.booleans(),  # call or plain request
            st.floats(0.0, 4.0),  # pause before asking
        ),
        min_size=1,
        max_size=40,
    ),
    priorities=st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=3, max_size=3),
)
async def test_no_sequence_of_acquisitions_by_several_campaigns_exceeds_any_window(
    tmp_path_factory: pytest.TempPathFactory,
    plan: list[tuple[int, bool, float]],
    priorities: list[float],
) -> None:
    clock = VirtualClock()
    path = tmp_path_factory.mktemp("allowance") / "a.sqlite"
    calls, requests = [Limit(3, 5.0)], [Limit(5, 5.0), Limit(8, 20.0)]
    allowances = [
        shared(path, f"c{i}", clock, priority=p, calls=calls, requests=requests)
        for i, p in enumerate(priorities)
    ]
    sent: list[tuple[bool, float]] = []

    async def campaign(index: int) -> None:
        for who, call, pause in plan:
            if who != index:
                continue
            await clock.sleep(pause)
            allowance = allowances[index]
            at = await (allowance.acquire_call() if call else allowance.acquire_request())
            sent.append((call, at))

    await clock.drive([asyncio.create_task(campaign(i)) for i in range(3)])
    assert max_in_window([t for call, t in sent if call], 5.0) <= 3
    assert max_in_window([t for _, t in sent], 5.0) <= 5
    assert max_in_window([t for _, t in sent], 20.0) <= 8
    for allowance in allowances:
        allowance.close()


def test_campaigns_in_several_threads_never_exceed_a_window(at: At) -> None:
    # Real time and real lock contention; the assertion is about the recorded send times
    # only (any count + 1 of them span more than the window), not about how long it took.
    path = at("a")
    calls, requests = [Limit(4, 0.3)], [Limit(6, 0.3)]
    sent: list[tuple[bool, float]] = []
    guard = threading.Lock()

    def campaign(index: int) -> None:
        async def work() -> None:
            allowance = shared_limiter(
                path, f"c{index}", requests, calls, clock=SystemClock(), margin_s=0.02
            )
            for k in range(12):
                call = k % 3 != 0
                at = await (allowance.acquire_call() if call else allowance.acquire_request())
                with guard:
                    sent.append((call, at))
            allowance.close()

        asyncio.run(work())

    threads = [threading.Thread(target=campaign, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(sent) == 48
    assert max_in_window([t for call, t in sent if call], 0.3) <= 4
    assert max_in_window([t for _, t in sent], 0.3) <= 6


async def test_status_lists_every_campaign_on_the_allowance(
    tmp_path: Path, state_backend: Backend
) -> None:
    clock = VirtualClock()
    place = StatePlace(tmp_path, "spring", state_backend.url, state_backend.url_no_password)
    path: Where = place.allowance("sandbox", "avp_test_sandbox")
    if not state_backend.is_postgres:
        path = allowance_path(tmp_path, "sandbox", "avp_test_sandbox")
    assert allowance_members(path, clock.now()) == []
    plant_waiting_rival(path, "killed", clock.now(), pid=dead_pid())
    calling = shared(path, "spring", clock, priority=2.0)
    resting = shared(path, "survey", clock)
    left = shared(path, "winback", clock)
    await calling.acquire_call()
    resting.idle()
    left.close()
    members = {m.campaign: m for m in allowance_members(path, clock.now())}
    assert {name: m.state for name, m in members.items()} == {
        "killed": "expired",
        "spring": "calling",
        "survey": "idle",
        "winback": "left",
    }
    assert members["spring"].calls_in_window == 1 and members["spring"].priority == 2.0
    where: Path | StatePlace = place if state_backend.is_postgres else tmp_path
    view = allowance_view(where, "spring", "sandbox", "avp_test_sandbox", 60.0, clock.now())
    text = "\n".join(allowance_lines(view))
    assert "spring: calling, priority 2, 1 call(s) in the last 60 s" in text
    assert "killed: expired" in text and "survey: idle" in text


def test_an_unusable_allowance_file_is_a_clear_state_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(StateError, match="shared allowance file"):
        shared(tmp_path / "state" / "a.sqlite", "spring", VirtualClock())
    (tmp_path / "b.sqlite").write_text("not a database, and long enough to be read as one" * 20)
    with pytest.raises(StateError, match="shared allowance file"):
        shared(tmp_path / "b.sqlite", "spring", VirtualClock())


def test_status_finds_the_allowance_file_with_or_without_the_key(
    tmp_path: Path, state_backend: Backend
) -> None:
    key, base_url = "avp_test_sandbox", "https://api.aitelier.org/v1"
    place = StatePlace(tmp_path, "spring", state_backend.url, state_backend.url_no_password)
    where: Path | StatePlace = place if state_backend.is_postgres else tmp_path

    def allowance(api_key: str) -> Where:
        if state_backend.is_postgres:
            return place.allowance(base_url, api_key)
        return allowance_path(tmp_path, base_url, api_key)

    path = allowance(key)
    assert allowance_files(where, "spring", base_url, key) == []
    assert allowance_files(where, "spring", base_url, None) == []
    shared(path, "spring", VirtualClock()).close()
    shared(allowance("avp_test_other"), "survey", VirtualClock())
    assert allowance_files(where, "spring", base_url, key) == [path]
    assert allowance_files(where, "spring", base_url, None) == [path]
    assert allowance_files(where, "unknown", base_url, None) == []
