"""Saturate the client-side limiter against an in-process sandbox, on real clocks.

Limits are scaled down (calls 30/10s, requests 120/10s) so that a minute of wall time covers
several windows; every request gets 20-50 ms of injected latency. Many workers place calls
as fast as the limiter lets them and poll each call once; pollers spend every request slot
left, so both limits are saturated and calls compete with plain requests.

Prints the achieved call rate against the allowed one (target >= 0.97) and the number of
429s the sandbox answered (target 0), plus the peaks the sandbox saw in any window and the
longest pause between two calls (a stall shows there first: at most one window).

    .venv/bin/python benchmarks/limits.py [--seconds 60] [--workers 40] [--pollers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

from campaign.api import AitelierClient, call_request_body
from campaign.config.limit import parse_limit
from campaign.limits import SlidingWindowLimiter
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, parse_faults, start_sandbox

CALLS = "30/10s"
REQUESTS = "120/10s"
LATENCY = "*/=delay:20-50ms"


async def run(seconds: float, workers: int, pollers: int) -> int:
    """Run the workload; return 0 when the targets are met, 1 otherwise."""
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
    limits = SlidingWindowLimiter([request_limit], [call_limit])
    call_sends: list[float] = []

    def on_send(kind: str, t: float) -> None:
        if kind == "call":
            call_sends.append(t)

    started = time.time()
    stop_at = started + seconds
    counter = iter(range(10**9))

    async def worker(api: AitelierClient) -> None:
        while time.time() < stop_at:
            n = next(counter)
            body = call_request_body(
                phone=f"+1415{n:07d}", scenario_id="scn_demo", metadata={"row_key": f"r{n}"}
            )
            call = await api.create_call(body, f"bench:r{n}:1")
            await api.get_call(call.id)

    async def poller(api: AitelierClient) -> None:
        # Status polling competes with the calls for request slots.
        while time.time() < stop_at:
            await api.get_wallet()

    async with AitelierClient(sandbox.base_url, DEFAULT_KEY, limits=limits, on_send=on_send) as api:
        await asyncio.gather(
            *(worker(api) for _ in range(workers)), *(poller(api) for _ in range(pollers))
        )
    elapsed = time.time() - started
    ledger = sandbox.ledger()
    await sandbox.close()

    sends = sorted(call_sends)
    allowed_rate = call_limit.count / call_limit.window
    # Steady state: after the opening burst, each call reuses the slot of the call `count`
    # sends earlier; the server would allow that after exactly one window.  So the achieved
    # rate is count / (mean gap between a send and the send `count` before it).
    count = call_limit.count
    gaps = [later - earlier for earlier, later in zip(sends, sends[count:], strict=False)]
    achieved_rate = count / (sum(gaps) / len(gaps)) if gaps else 0.0
    ratio = achieved_rate / allowed_rate
    rate_limited = ledger["rate_limited"]
    pause = max((later - earlier for earlier, later in itertools.pairwise(sends)), default=0.0)
    print(
        f"limits: calls {CALLS}, requests {REQUESTS}; latency {LATENCY}; "
        f"workers {workers}, pollers {pollers}"
    )
    print(f"wall time {elapsed:.1f} s; calls placed {len(sends)}; requests {ledger['requests']}")
    print(f"achieved call rate {achieved_rate:.4f}/s vs allowed {allowed_rate:.4f}/s")
    print(f"ratio {ratio:.4f} (target >= 0.97)")
    print(f"429 responses: {rate_limited} (target 0)")
    print(f"longest pause between two calls: {pause:.2f} s (window {call_limit.window:g} s)")
    print(
        f"server peaks: {ledger['max_outbound_in_window']} calls in a window "
        f"(limit {ledger['outbound_limit']}), "
        f"{ledger['max_requests_in_window']['per_minute']} requests in a window "
        f"(limit {request_limit.count})"
    )
    return 0 if ratio >= 0.97 and rate_limited == 0 else 1


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--pollers", type=int, default=10)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.seconds, args.workers, args.pollers)))


if __name__ == "__main__":
    main()
