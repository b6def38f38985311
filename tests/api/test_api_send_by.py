"""``create_call(send_by=…)``: no try of a call leaves once the recipient's window closes.

The calling window is checked when an attempt is picked; the transport may then retry for
minutes. ``send_by`` (the window's close, less a margin) bounds every try and every wait
between tries, so a call is never created after the window closed. The sandbox ledger
proves what was created, and when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from campaign.api import AitelierClient, RetryPolicy, call_request_body
from campaign.api.wire import parse_timestamp
from campaign.clock import FakeClock
from campaign.config.limit import Limit
from campaign.errors import ApiError, RateLimitedError, SendWindowClosedError, UnavailableError
from campaign.limits import SlidingWindowLimiter
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, parse_faults, start_sandbox

T0 = 1_780_000_000.0
# Backoff waits 0.5, 1, 2, 4, 4, ... s: tries leave at T0 + 0, 0.5, 1.5, 3.5, 7.5, 11.5, ...
STEADY = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=8.0, rng=lambda: 0.0)


def call_body(phone: str = "+14155550100") -> bytes:
    return call_request_body(phone=phone, scenario_id="scn_demo", metadata={"row_key": phone})


Started = tuple[Any, AitelierClient, list[float]]


@pytest.fixture
async def sandboxed() -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """A sandbox and a client on one fake clock; the client's call sends, as T0 offsets."""
    opened: list[Any] = []

    async def start(
        config: SandboxConfig, clock: FakeClock, **client_options: Any
    ) -> tuple[Any, AitelierClient, list[float]]:
        sandbox = await start_sandbox(config, clock=clock)
        sent: list[float] = []

        def on_send(kind: str, t: float) -> None:
            if kind == "call":
                sent.append(t - T0)

        client_options.setdefault("retry", STEADY)
        api = AitelierClient(
            sandbox.base_url, DEFAULT_KEY, clock=clock, on_send=on_send, **client_options
        )
        opened.extend([api, sandbox])
        return sandbox, api, sent

    yield start
    for thing in opened:
        await (thing.aclose() if isinstance(thing, AitelierClient) else thing.close())


@pytest.mark.parametrize(
    ("faults", "send_by", "tries_at", "created"),
    [
        pytest.param("", 10.0, [0.0], True, id="window open, API fine: placed"),
        pytest.param("", 0.0, [], False, id="window closes now: nothing sent"),
        pytest.param("", -60.0, [], False, id="window already closed: nothing sent"),
        pytest.param(
            "POST /v1/calls=proxy_503;max=2", 10.0, [0.0, 0.5, 1.5], True,
            id="outage ends before the close: placed",
        ),
        pytest.param(
            "POST /v1/calls=proxy_503;max=6", 10.0, [0.0, 0.5, 1.5, 3.5, 7.5], False,
            id="outage across the close: not sent again",
        ),
        pytest.param(
            "POST /v1/calls=proxy_503;max=6", 1.5, [0.0, 0.5], False,
            id="a backoff ending exactly at the close is not begun",
        ),
        pytest.param(
            "POST /v1/calls=error_before;max=6", 10.0, [0.0, 0.5, 1.5, 3.5, 7.5], False,
            id="500s across the close: not sent again",
        ),
    ],
)  # fmt: skip
async def test_no_try_of_a_call_leaves_at_or_after_the_window_closes(
    sandboxed: Callable[..., Awaitable[Started]],
    faults: str,
    send_by: float,
    tries_at: list[float],
    created: bool,
) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, faults=parse_faults(faults) if faults else [])
    sandbox, api, sent = await sandboxed(config, clock)
    if created:
        call = await api.create_call(call_body(), "k-window", send_by=T0 + send_by)
        assert call.tries == len(tries_at)
        ledger = sandbox.ledger()["calls"]
        assert [c["id"] for c in ledger] == [call.id]
        assert parse_timestamp(ledger[0]["created_at"]).timestamp() < T0 + send_by
    else:
        with pytest.raises(SendWindowClosedError) as caught:
            await api.create_call(call_body(), "k-window", send_by=T0 + send_by)
        assert sandbox.ledger()["calls"] == []
        error = caught.value
        assert isinstance(error, ApiError) and error.transient
        assert "because the recipient's calling window closes" in str(error)
        assert ("not sent again" in str(error)) == bool(tries_at)
        # It gave up at once instead of waiting for a try it would not make.
        assert clock.now() == T0 + (tries_at[-1] if tries_at else 0.0)
    assert sent == tries_at


async def test_without_send_by_a_call_is_still_retried_through_the_outage(
    sandboxed: Callable[..., Awaitable[Started]],
) -> None:
    # Paths without a calling window (send_by=None) keep retrying until the deadline.
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=proxy_503;max=6"))
    sandbox, api, sent = await sandboxed(config, clock)
    call = await api.create_call(call_body(), "k-unbounded")
    assert sent[-1] == pytest.approx(15.5) and call.tries == 7
    assert [c["id"] for c in sandbox.ledger()["calls"]] == [call.id]


async def test_a_rate_limit_wait_ending_after_the_close_is_not_begun(
    sandboxed: Callable[..., Awaitable[Started]],
) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, outbound_calls="1/min")
    sandbox, api, sent = await sandboxed(config, clock)
    await api.create_call(call_body("+14155550101"), "k-first")  # fills the outbound window
    with pytest.raises(SendWindowClosedError) as caught:
        await api.create_call(call_body(), "k-late", send_by=T0 + 30)
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert clock.now() == T0  # did not wait for a Retry-After that ends after the close
    assert sent == [0.0, 0.0] and len(sandbox.ledger()["calls"]) == 1


async def test_a_call_slot_freeing_after_the_close_sends_nothing_and_is_given_back(
    sandboxed: Callable[..., Awaitable[Started]],
) -> None:
    clock = FakeClock(T0)
    limits = SlidingWindowLimiter([], [Limit(1, 60)], clock=clock, margin_s=0.0)
    limits.seed([], [T0 - 1])  # the call slot frees at T0 + 59
    sandbox, api, sent = await sandboxed(SandboxConfig(ledger=True), clock, limits=limits)
    with pytest.raises(SendWindowClosedError) as caught:
        await api.create_call(call_body(), "k-slot", send_by=T0 + 30)
    assert "not sent because" in str(caught.value)
    assert sent == [] and sandbox.ledger()["calls"] == []
    # The slot taken for the send that never left is free again for the next call.
    assert await limits.acquire_call() == pytest.approx(T0 + 59, abs=1e-6)


async def test_a_try_in_flight_at_the_close_is_not_sent_again(
    sandboxed: Callable[..., Awaitable[Started]],
) -> None:
    # The last try left before the close; its answer (503) came after: no further try.
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=proxy_503"))
    _, api, sent = await sandboxed(config, clock)
    with pytest.raises(SendWindowClosedError) as caught:
        await api.create_call(call_body(), "k-flight", send_by=T0 + 0.1)
    assert isinstance(caught.value.__cause__, UnavailableError)
    assert "not sent again" in str(caught.value) and "1 try sent" in str(caught.value)
    assert sent == [0.0]
