"""Saturate the call limit against an in-process sandbox, on real clocks, for each pacing.

Limits are scaled down (calls 30/10s, requests 120/10s) so that a minute of wall time covers
several windows; every request gets 20-50 ms of injected latency. A sender decides as the
calls engine does: every loop tick (20 ms) it lets calls go while the pace
(``limits.pacing``: ``even`` spaces them with aiolimiter, ``burst`` does not) and then the
sliding-window limiter let them, and each call it lets go must leave at once. Each call is
polled once, and pollers spend every request slot left, so calls compete with requests.

Printed per pacing, with the targets:

- the steady-state call rate against the allowed one: after the first N calls each call
  reuses the slot of the call N before it, so the rate is N over the mean time between the
  two (target >= 0.97);
- the 429s the sandbox answered (target 0) and the most calls it saw in one window;
- the most calls in any 1/N of a window, as sent and as they reached the sandbox (even
  pacing: at most 2 as sent);
- the calls that still had to wait inside the limiter once the sender had let them go
  (target 0: an attempt is committed only when it can leave at once).

    .venv/bin/python benchmarks/limits.py [--pacing even|burst|both] [--seconds 60]
        [--pollers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaign.api import AitelierClient, call_request_body
from campaign.clock import SystemClock
from campaign.config.limit import Limit, parse_limit
from campaign.engine.calls import CallsEngine
from campaign.limits import CallPacer, Pacing, SlidingWindowLimiter
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, parse_faults, start_sandbox

CALLS = "30/10s"
REQUESTS = "120/10s"
LATENCY = "*/=delay:20-50ms"
TICK_S = CallsEngine.tick_s


class WatchedClock(SystemClock):
    """The real clock, counting the calls that had to sleep inside ``acquire_call``."""

    def __init__(self) -> None:
        super().__init__()
        self.in_acquire_call = False
        self.calls_that_waited = 0

    async def sleep(self, seconds: float) -> None:
        # acquire_call runs without yielding up to its first sleep: a sleep while the
        # flag is up is that call's own.
        if self.in_acquire_call:
            self.calls_that_waited += 1
            self.in_acquire_call = False
        await super().sleep(seconds)


class WatchedLimiter(SlidingWindowLimiter):
    """The limiter, flagging its clock while a call asks for its slot."""

    def __init__(self, requests: list[Limit], calls: list[Limit], clock: WatchedClock) -> None:
        super().__init__(requests, calls, clock)
        self.watch = clock

    async def acquire_call(self) -> float:
        self.watch.in_acquire_call = True
        try:
            return await super().acquire_call()
        finally:
            self.watch.in_acquire_call = False


@dataclass
class Figures:
    """What one pacing achieved."""

    pacing: Pacing
    elapsed: float = 0.0
    sends: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=dict)
    calls_that_waited: int = 0


async def run(pacing: Pacing, seconds: float, pollers: int) -> Figures:
    """Place calls for ``seconds`` with ``pacing``; return what the client and server saw."""
    config = SandboxConfig(
        ledger=True,
        outbound_calls=CALLS,
        requests_per_minute=REQUESTS,
        requests_per_hour="100000/h",
        faults=parse_faults(LATENCY),
        fault_seed=7,
    )
    call_limit, request_limit = parse_limit(CALLS), parse_limit(REQUESTS)
    sandbox = await start_sandbox(config)
    clock = WatchedClock()
    limits = WatchedLimiter([request_limit], [call_limit], clock)
    pacer = CallPacer([call_limit], clock, pacing=pacing, margin_s=limits.margin_s)
    figures = Figures(pacing)

    def on_send(kind: str, t: float) -> None:
        if kind == "call":
            figures.sends.append(t)

    started = time.time()
    stop_at = started + seconds

    async def place(api: AitelierClient, n: int) -> None:
        body = call_request_body(
            phone=f"+1415{n:07d}", scenario_id="scn_demo", metadata={"row_key": f"r{n}"}
        )
        call = await api.create_call(body, f"bench:r{n}:1")
        await api.get_call(call.id)

    async def sender(api: AitelierClient) -> None:
        placing: set[asyncio.Task[None]] = set()
        n = 0
        queued = 10**6  # always more calls to place than can go
        while time.time() < stop_at:
            # As the calls engine: the pace first, then the limiter; a call let go leaves
            # at once, and reaches the limiter before the next one is weighed. A call the
            # pace holds stays queued with the limiter, which keeps a request slot for it.
            while pacer.ready() and limits.call_ready(None, queued):
                await pacer.take()
                task = asyncio.create_task(place(api, n))
                placing.add(task)
                task.add_done_callback(placing.discard)
                n += 1
                await asyncio.sleep(0)
            if not pacer.ready():
                limits.call_ready(pacer.free_at(), queued)
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*placing)

    async def poller(api: AitelierClient) -> None:
        # Status polling competes with the calls for request slots.
        while time.time() < stop_at:
            await api.get_wallet()

    async with AitelierClient(
        sandbox.base_url, DEFAULT_KEY, limits=limits, clock=clock, on_send=on_send
    ) as api:
        await asyncio.gather(sender(api), *(poller(api) for _ in range(pollers)))
    figures.elapsed = time.time() - started
    figures.ledger = sandbox.ledger()
    await sandbox.close()
    limits.close()
    figures.sends.sort()
    figures.arrivals = sorted(
        datetime.fromisoformat(str(call["created_at"]).replace("Z", "+00:00")).timestamp()
        for call in figures.ledger["calls"]
    )
    figures.calls_that_waited = clock.calls_that_waited
    return figures


def steady_rate(sends: list[float], limit: Limit) -> float:
    """Calls per second after the first N: N over the mean gap between each later call and
    the call N before it (whose slot it reuses)."""
    count = limit.count
    after = sends[count:]
    gaps = [later - earlier for earlier, later in zip(after, after[count:], strict=False)]
    return count / (sum(gaps) / len(gaps)) if gaps else 0.0


def most_within(times: list[float], span: float) -> int:
    """The most of ``times`` (sorted) in any closed interval of ``span`` seconds."""
    return max((bisect.bisect_right(times, t + span) - i for i, t in enumerate(times)), default=0)


def report(figures: Figures) -> bool:
    """Print the figures of one pacing; return whether its targets are met."""
    call_limit, request_limit = parse_limit(CALLS), parse_limit(REQUESTS)
    ledger = figures.ledger
    allowed = call_limit.count / call_limit.window
    ratio = steady_rate(figures.sends, call_limit) / allowed
    slot = call_limit.window / call_limit.count
    sent_in_slot = most_within(figures.sends, slot)
    arrived_in_slot = most_within(figures.arrivals, slot)
    rate_limited = ledger["rate_limited"]
    peaks = ledger["max_requests_in_window"]
    print(f"== pacing: {figures.pacing}")
    print(
        f"wall time {figures.elapsed:.1f} s; calls placed {len(figures.sends)}; "
        f"requests {ledger['requests']}"
    )
    print(
        f"steady-state call rate {ratio * allowed:.4f}/s vs allowed {allowed:.4f}/s: "
        f"ratio {ratio:.4f} (target >= 0.97)"
    )
    print(f"429 responses: {rate_limited} (target 0)")
    print(
        f"most calls in any 1/N of a window ({slot:.3g} s): {sent_in_slot} as sent, "
        f"{arrived_in_slot} at the sandbox"
        + (" (target <= 2 as sent)" if figures.pacing == "even" else "")
    )
    print(
        f"sandbox peaks: {ledger['max_outbound_in_window']} calls in a window "
        f"(limit {ledger['outbound_limit']}), {peaks['per_minute']} requests in a window "
        f"(limit {request_limit.count})"
    )
    print(
        f"calls that waited in the limiter after the sender let them go: "
        f"{figures.calls_that_waited} (target 0)"
    )
    met = ratio >= 0.97 and rate_limited == 0 and figures.calls_that_waited == 0
    return met and (figures.pacing != "even" or sent_in_slot <= 2)


async def main_async(pacings: list[Pacing], seconds: float, pollers: int) -> int:
    """Run each pacing in turn; 0 when every target is met, 1 otherwise."""
    print(f"limits: calls {CALLS}, requests {REQUESTS}; latency {LATENCY}; pollers {pollers}")
    met = True
    for pacing in pacings:
        met = report(await run(pacing, seconds, pollers)) and met
    return 0 if met else 1


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pacing", choices=["even", "burst", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=60.0, help="per pacing")
    parser.add_argument("--pollers", type=int, default=10)
    args = parser.parse_args()
    pacings: list[Pacing] = ["even", "burst"] if args.pacing == "both" else [args.pacing]
    raise SystemExit(asyncio.run(main_async(pacings, args.seconds, args.pollers)))


if __name__ == "__main__":
    main()
