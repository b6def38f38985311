"""Sandbox limits: sliding windows by arrival time, 429 with Retry-After and limit, headers."""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import RunningSandbox, SandboxConfig, SandboxFakeClock
from campaign.sandbox.clock import parse_instant
from campaign.sandbox.config import SandboxConfigError, SandboxLimit, parse_sandbox_limit
from campaign.sandbox.windows import SlidingWindow


async def _call(
    http: aiohttp.ClientSession, server: RunningSandbox, index: int
) -> aiohttp.ClientResponse:
    payload = call_body(f"+1415555{index:04d}")
    async with http.post(
        f"{server.base_url}/calls", json=payload, headers=outbound_headers(f"key-{index}")
    ) as resp:
        await resp.read()
        return resp


async def test_sixth_call_at_12s_is_refused_until_the_window_slides(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    for index in range(5):
        assert (await _call(sandbox_http, sandbox, index)).status == 201
    sandbox_clock.advance(12)
    refused = await _call(sandbox_http, sandbox, 5)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "48"
    body = await refused.json()
    assert body["error"]["limit"] == "outbound_calls_per_minute"
    sandbox_clock.set(1_780_000_000 + 59.9)
    assert (await _call(sandbox_http, sandbox, 5)).status == 429
    sandbox_clock.set(1_780_000_000 + 60)
    assert (await _call(sandbox_http, sandbox, 5)).status == 201
    ledger = sandbox.ledger()
    assert ledger["max_outbound_in_window"] == 5
    assert ledger["rate_limited"] == 2


async def test_calls_spaced_exactly_12s_apart_are_admitted(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    for index in range(12):
        assert (await _call(sandbox_http, sandbox, index)).status == 201
        sandbox_clock.advance(12)
    assert sandbox.ledger()["max_outbound_in_window"] == 5


async def test_requests_per_minute_refusals_count_and_extend_the_wait(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(requests_per_minute="3/min"), clock)
    url = f"{server.base_url}/wallet"
    for _ in range(3):
        async with sandbox_http.get(url, headers=SANDBOX_AUTH) as resp:
            assert resp.status == 200
        clock.advance(10)
    async with sandbox_http.get(url, headers=SANDBOX_AUTH) as resp:  # t=30
        body = await resp.json()
        assert resp.status == 429
        assert body["error"]["limit"] == "requests_per_minute"
        # arrivals 0, 10, 20 and the refusal at 30: room again when 10 leaves, at t=70
        assert resp.headers["Retry-After"] == "40"
        assert resp.headers["X-RateLimit-Remaining"] == "0"
    clock.advance(30)  # t=60: the request at 0 left, but 10, 20, 30 still count
    async with sandbox_http.get(url, headers=SANDBOX_AUTH) as resp:
        assert resp.status == 429
    clock.advance(30)  # t=90: only the refusals at 30 and 60 count
    async with sandbox_http.get(url, headers=SANDBOX_AUTH) as resp:
        assert resp.status == 200


async def test_rate_limit_headers_describe_the_minute_window(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    start = sandbox_clock.now()
    async with sandbox_http.get(f"{sandbox.base_url}/wallet", headers=SANDBOX_AUTH) as resp:
        assert resp.headers["X-RateLimit-Limit"] == "60"
        assert resp.headers["X-RateLimit-Remaining"] == "59"
        assert parse_instant(resp.headers["X-RateLimit-Reset"]) == start + 60
    sandbox_clock.advance(5)
    async with sandbox_http.get(f"{sandbox.base_url}/nope", headers=SANDBOX_AUTH) as resp:
        assert resp.status == 404
        assert resp.headers["X-RateLimit-Remaining"] == "58"  # 4xx count too


async def test_hour_limit_refuses_with_its_own_name(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    config = SandboxConfig(requests_per_minute="100/min", requests_per_hour="2/h")
    server = await start_sandbox_with(config, clock)
    statuses = []
    for _ in range(3):
        async with sandbox_http.get(f"{server.base_url}/wallet", headers=SANDBOX_AUTH) as resp:
            statuses.append(resp.status)
            body = await resp.json()
    assert statuses == [200, 200, 429]
    assert body["error"]["limit"] == "requests_per_hour"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/min", SandboxLimit(5, 60.0)),
        ("1000/h", SandboxLimit(1000, 3600.0)),
        ("30/10s", SandboxLimit(30, 10.0)),
        ("5/2min", SandboxLimit(5, 120.0)),
        ("100/1.5s", SandboxLimit(100, 1.5)),
    ],
)
def test_limit_notation(text: str, expected: SandboxLimit) -> None:
    assert parse_sandbox_limit(text) == expected


@pytest.mark.parametrize("text", ["5", "5/day", "0/min", "x/min", "5/0s"])
def test_bad_limit_notation_is_refused(text: str) -> None:
    with pytest.raises(SandboxConfigError):
        parse_sandbox_limit(text)


async def test_short_windows_work(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(ledger=True, outbound_calls="2/10s"), clock)
    assert [(await _call(sandbox_http, server, i)).status for i in range(3)] == [201, 201, 429]
    clock.advance(10)
    assert (await _call(sandbox_http, server, 2)).status == 201


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=60),
    limit=st.integers(min_value=1, max_value=6),
    window=st.sampled_from([1.5, 10.0, 60.0]),
)
def test_sliding_window_never_admits_over_the_limit(
    gaps: list[float], limit: int, window: float
) -> None:
    sliding = SlidingWindow(limit, window)
    admitted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        room_at = sliding.next_room_at(now)
        if sliding.has_room(now):
            assert room_at == now
            sliding.record(now)
            admitted.append(now)
        else:
            assert room_at > now and sliding.has_room(room_at)
        counted = [a for a in admitted if now - a < window]
        assert sliding.count(now) == len(counted) <= limit
