"""Every error class over real sockets, retries under each injected fault, and the key kept
secret. The sandbox ledger proves that no retry ever created a second call."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from campaign.api import AitelierClient, RetryPolicy, call_request_body
from campaign.clock import FakeClock, SystemClock
from campaign.config.limit import Limit
from campaign.errors import (
    AmbiguousError,
    ApiError,
    DeadlineExceededError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RateLimitWaitError,
    RequestInProgressError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
)
from campaign.limits import SlidingWindowLimiter
from campaign.sandbox import (
    DEFAULT_KEY,
    DEFAULT_PROJECT,
    SandboxConfig,
    SandboxKey,
    parse_faults,
    start_sandbox,
)

T0 = 1_780_000_000.0
NO_RETRY = RetryPolicy(max_attempts=1)
QUICK_RETRY = RetryPolicy(max_attempts=8, base_s=0.02, cap_s=0.5, rng=lambda: 0.0)
READONLY_KEY = "avp_test_readonly"


def call_body(phone: str = "+14155550100", scenario_id: str = "scn_demo") -> bytes:
    return call_request_body(phone=phone, scenario_id=scenario_id, metadata={"row_key": phone})


def ledger_calls(ledger: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [call for call in ledger["calls"] if call["idempotency_key"] == key]


Sandboxed = Callable[..., Awaitable[tuple[Any, AitelierClient]]]


@pytest.fixture
async def sandboxed() -> AsyncIterator[Sandboxed]:
    """Start a sandbox with the given config and a client on it; both closed at the end."""
    opened: list[Any] = []

    async def start(
        config: SandboxConfig | None = None,
        *,
        clock: Any = None,
        key: str = DEFAULT_KEY,
        **client_options: Any,
    ) -> tuple[Any, AitelierClient]:
        sandbox_config = config or SandboxConfig(ledger=True)
        sandbox = await start_sandbox(sandbox_config, clock=clock)
        client_clock = clock or SystemClock()
        api = AitelierClient(sandbox.base_url, key, clock=client_clock, **client_options)
        opened.extend([api, sandbox])
        return sandbox, api

    yield start
    for thing in opened:
        await (thing.aclose() if isinstance(thing, AitelierClient) else thing.close())


# ---- error classes -----------------------------------------------------------------------


async def test_401_unknown_key(sandboxed: Sandboxed) -> None:
    _, api = await sandboxed(key="avp_test_not_a_key", retry=NO_RETRY)
    with pytest.raises(UnauthenticatedError) as caught:
        await api.get_wallet()
    assert caught.value.exit_code == 4 and caught.value.request_id


async def test_403_names_the_missing_scope(sandboxed: Sandboxed) -> None:
    keys = {
        DEFAULT_KEY: SandboxKey(DEFAULT_PROJECT),
        READONLY_KEY: SandboxKey(DEFAULT_PROJECT, frozenset({"sessions:read"})),
    }
    sandbox, api = await sandboxed(SandboxConfig(keys=keys, ledger=True), key=READONLY_KEY)
    with pytest.raises(PermissionDeniedError, match="outbound:trigger") as caught:
        await api.create_call(call_body(), "k-403")
    assert caught.value.exit_code == 4 and not caught.value.transient
    assert sandbox.ledger()["calls"] == []


async def test_404_400_422(sandboxed: Sandboxed) -> None:
    _, api = await sandboxed()
    with pytest.raises(NotFoundError):
        await api.get_call("call_doesnotexist")
    with pytest.raises(InvalidArgumentError) as bad_phone:
        await api.create_call(call_body(phone="+0123"), "k-400")
    assert bad_phone.value.field == "phone" and "req_" in str(bad_phone.value)
    with pytest.raises(FailedPreconditionError) as unknown:
        await api.create_call(call_body(scenario_id="scn_nope"), "k-422")
    assert unknown.value.field == "scenario_id"


async def test_409_conflict_is_never_retried_and_creates_nothing(sandboxed: Sandboxed) -> None:
    sandbox, api = await sandboxed(retry=QUICK_RETRY)
    first = await api.create_call(call_body("+14155550100"), "k-409")
    with pytest.raises(IdempotencyConflictError):
        await api.create_call(call_body("+14155550199"), "k-409")
    ledger = sandbox.ledger()
    assert [c["id"] for c in ledger_calls(ledger, "k-409")] == [first.id]
    assert ledger["requests"] == 2  # one attempt each: the conflict was not retried


async def test_413_batch_file_over_the_row_limit(sandboxed: Sandboxed) -> None:
    _, api = await sandboxed()
    csv = b"phone\n" + b"+14155550100\n" * 10_001
    with pytest.raises(PayloadTooLargeError):
        await api.create_batch(csv, scenario_id="scn_demo", idempotency_key="k-413")


async def test_429_carries_retry_after_and_the_limit(sandboxed: Sandboxed) -> None:
    _, api = await sandboxed(SandboxConfig(requests_per_minute="2/min"), retry=NO_RETRY)
    await api.get_wallet()
    await api.get_wallet()
    with pytest.raises(RateLimitedError) as caught:
        await api.get_wallet()
    assert caught.value.limit == "requests_per_minute"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


async def test_429_is_retried_after_retry_after_never_sooner(sandboxed: Sandboxed) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(requests_per_minute="2/min")
    _, api = await sandboxed(config, clock=clock, retry=RetryPolicy(rng=lambda: 0.0))
    clock.advance(10)
    await api.get_wallet()  # at T0+10
    await api.get_wallet()
    await api.get_wallet()  # refused, waits Retry-After (the refusal counts too), then admitted
    assert clock.now() >= T0 + 70


async def test_500_before_execution_creates_nothing(sandboxed: Sandboxed) -> None:
    faults = parse_faults("POST /v1/calls=error_before")
    sandbox, api = await sandboxed(SandboxConfig(ledger=True, faults=faults), retry=NO_RETRY)
    with pytest.raises(InternalServerError) as caught:
        await api.create_call(call_body(), "k-500")
    assert caught.value.transient and caught.value.code == "internal"
    assert sandbox.ledger()["calls"] == []


async def test_proxy_503_html_is_unavailable(sandboxed: Sandboxed) -> None:
    faults = parse_faults("GET /v1/wallet=proxy_503")
    _, api = await sandboxed(SandboxConfig(faults=faults), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(UnavailableError) as caught:
        await api.get_wallet()
    assert caught.value.http_status == 503 and caught.value.code is None


@pytest.fixture
async def stub_server() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """A bare aiohttp server for answers the sandbox never gives (502/504 pages, aborts)."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_502_and_504_proxy_pages_are_retried(stub_server: Any) -> None:
    answers = [(502, "<html>Bad Gateway</html>"), (504, "<html>Gateway Timeout</html>")]

    async def wallet(request: web.Request) -> web.Response:
        if answers:
            status, page = answers.pop(0)
            return web.Response(status=status, text=page, content_type="text/html")
        body = {"balance": "1.00", "currency": "USD", "recent_transactions": []}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/wallet", wallet)
    base_url = await stub_server(app)
    async with AitelierClient(base_url, DEFAULT_KEY, retry=QUICK_RETRY) as api:
        assert (await api.get_wallet()).currency == "USD"
    answers.append((502, "<html>Bad Gateway</html>"))
    async with AitelierClient(base_url, DEFAULT_KEY, retry=NO_RETRY) as api:
        with pytest.raises(UnavailableError) as caught:
            await api.get_wallet()
    assert caught.value.http_status == 502


async def test_a_connection_dropped_after_sending_is_ambiguous(stub_server: Any) -> None:
    async def drop(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/calls", drop)
    base_url = await stub_server(app)
    async with AitelierClient(base_url, DEFAULT_KEY, retry=NO_RETRY) as api:
        with pytest.raises(AmbiguousError):
            await api.create_call(call_body(), "k-drop")


async def test_could_not_connect_is_not_ambiguous() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AitelierClient(f"http://127.0.0.1:{port}/v1", DEFAULT_KEY, retry=NO_RETRY) as api:
        with pytest.raises(TransportError) as caught:
            await api.create_call(call_body(), "k-refused")
    assert not isinstance(caught.value, AmbiguousError) and caught.value.transient


async def test_the_overall_deadline_stops_retrying(sandboxed: Sandboxed) -> None:
    clock = FakeClock(T0)
    faults = parse_faults("GET /v1/wallet=proxy_503")
    policy = RetryPolicy(max_attempts=100, base_s=1.0, cap_s=8.0, rng=lambda: 0.0)
    _, api = await sandboxed(SandboxConfig(faults=faults), clock=clock, retry=policy, deadline_s=30)
    with pytest.raises(DeadlineExceededError) as caught:
        await api.get_wallet()
    assert isinstance(caught.value.__cause__, UnavailableError)
    assert not caught.value.transient and clock.now() <= T0 + 30


# ---- retries under every fault kind: one call per idempotency key -------------------------


@pytest.mark.parametrize(
    "fault",
    [
        "POST /v1/calls=error_before;max=2",
        "POST /v1/calls=error_after;max=2",
        "POST /v1/calls=reset_after;max=2",
        "POST /v1/calls=proxy_503;max=2",
        "ambiguous@1;max=3",
    ],
)
async def test_create_call_survives_each_fault_with_exactly_one_call(
    sandboxed: Sandboxed, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="campaign.api")
    config = SandboxConfig(ledger=True, faults=parse_faults(fault))
    sandbox, api = await sandboxed(config, retry=QUICK_RETRY)
    calls = [await api.create_call(call_body(f"+1415555020{i}"), f"k-fault-{i}") for i in range(3)]
    ledger = sandbox.ledger()
    for i, call in enumerate(calls):
        assert [c["id"] for c in ledger_calls(ledger, f"k-fault-{i}")] == [call.id]
    assert len(ledger["calls"]) == 3
    assert "retrying" in caplog.text  # the faults did hit


async def test_a_slow_execution_then_timeout_is_retried_through_request_in_progress(
    sandboxed: Sandboxed,
) -> None:
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=delay:400ms;max=1"))
    sandbox, api = await sandboxed(config, retry=QUICK_RETRY, request_timeout_s=0.15)
    call = await api.create_call(call_body(), "k-slow")
    assert [c["id"] for c in ledger_calls(sandbox.ledger(), "k-slow")] == [call.id]


async def test_409_request_in_progress_while_the_first_still_executes(
    sandboxed: Sandboxed,
) -> None:
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=delay:1000ms;max=1"))
    sandbox, api = await sandboxed(config)
    first = asyncio.create_task(api.create_call(call_body(), "k-busy"))
    await asyncio.sleep(0.3)  # the first is now held inside the server for a second
    async with AitelierClient(sandbox.base_url, DEFAULT_KEY, retry=NO_RETRY) as impatient:
        with pytest.raises(RequestInProgressError) as caught:
            await impatient.create_call(call_body(), "k-busy")
    assert caught.value.transient and caught.value.http_status == 409
    call = await first
    assert [c["id"] for c in ledger_calls(sandbox.ledger(), "k-busy")] == [call.id]


# ---- the limiter with the client ---------------------------------------------------------


async def test_limited_client_never_trips_the_server(sandboxed: Sandboxed) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, outbound_calls="3/min", requests_per_minute="10/min")
    limits = SlidingWindowLimiter([Limit(10, 60)], [Limit(3, 60)], clock=clock)
    sandbox, api = await sandboxed(config, clock=clock, limits=limits)
    for i in range(7):
        await api.create_call(call_body(f"+141555503{i:02d}"), f"k-lim-{i}")
        await api.get_wallet()
    ledger = sandbox.ledger()
    assert ledger["rate_limited"] == 0 and len(ledger["calls"]) == 7
    assert ledger["max_outbound_in_window"] <= 3
    # Full use of the allowance: 3 calls, 3 more one window (+margin) later, then the 7th.
    assert clock.now() == pytest.approx(T0 + 2 * 60.25, abs=1e-6)


async def test_a_retried_call_takes_a_new_call_slot_a_replay_gives_it_back(
    sandboxed: Sandboxed,
) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=error_before;max=1"))
    limits = SlidingWindowLimiter([Limit(60, 60)], [Limit(1, 60)], clock=clock)
    sandbox, api = await sandboxed(config, clock=clock, limits=limits, retry=QUICK_RETRY)
    first = await api.create_call(call_body(), "k-slot")
    # The 500 attempt might have counted; the retry waited for a fresh call slot.
    assert clock.now() >= T0 + 60.25
    resumed_at = clock.now()
    replay = await api.create_call(call_body(), "k-slot")
    assert replay.id == first.id and len(sandbox.ledger()["calls"]) == 1
    assert await limits.acquire_call() == pytest.approx(resumed_at + 60.25, abs=1e-6)


async def test_headers_from_another_client_on_the_key_prevent_a_429(sandboxed: Sandboxed) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, requests_per_minute="10/min")
    # Our configuration believes in 10/min; another client already spent 8 of them.
    limits = SlidingWindowLimiter([Limit(10, 60)], [], clock=clock)
    sandbox, api = await sandboxed(config, clock=clock, limits=limits)
    async with AitelierClient(sandbox.base_url, DEFAULT_KEY, clock=clock) as other:
        for _ in range(8):
            await other.get_wallet()
    for _ in range(4):
        await api.get_wallet()
    assert sandbox.ledger()["rate_limited"] == 0
    assert clock.now() >= T0 + 60  # waited for the other client's requests to leave


async def test_a_deadline_passed_while_waiting_for_a_slot_sends_nothing(
    sandboxed: Sandboxed,
) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=error_before;max=1"))
    limits = SlidingWindowLimiter([], [Limit(1, 60)], clock=clock)
    sent: list[str] = []
    sandbox, api = await sandboxed(
        config, clock=clock, limits=limits, retry=QUICK_RETRY, deadline_s=30,
        on_send=lambda kind, t: sent.append(kind),
    )  # fmt: skip
    with pytest.raises(DeadlineExceededError) as caught:
        await api.create_call(call_body(), "k-deadline")
    assert isinstance(caught.value.__cause__, InternalServerError)
    assert sent == ["call"] and sandbox.ledger()["calls"] == []


async def test_a_429_refused_call_gives_its_call_slot_back(sandboxed: Sandboxed) -> None:
    clock = FakeClock(T0)
    # The server's outbound window is shorter than ours: another client filled it.
    config = SandboxConfig(ledger=True, outbound_calls="1/10s")
    limits = SlidingWindowLimiter([], [Limit(2, 60)], clock=clock)
    sandbox, api = await sandboxed(config, clock=clock, limits=limits, retry=QUICK_RETRY)
    async with AitelierClient(sandbox.base_url, DEFAULT_KEY, clock=clock) as other:
        await other.create_call(call_body("+14155550401"), "k-other")
    await api.create_call(call_body(), "k-refused-first")  # 429, waits Retry-After, placed
    placed_at = clock.now()
    assert placed_at >= T0 + 10 and sandbox.ledger()["rate_limited"] == 1
    # Only the call that was created holds a slot: the next one may leave at once.
    assert await limits.acquire_call() == placed_at


# ---- a long Retry-After: wait, bounded by the run -----------------------------------------

HOURLY = SandboxConfig(ledger=True, requests_per_hour="3/h")


async def fill_the_hour(api: AitelierClient) -> None:
    for _ in range(3):
        await api.get_wallet()


async def test_an_hourly_limits_retry_after_is_waited_out_past_the_request_deadline(
    sandboxed: Sandboxed,
) -> None:
    clock = FakeClock(T0)
    retry = RetryPolicy(rng=lambda: 0.0)
    _, api = await sandboxed(HOURLY, clock=clock, retry=retry, deadline_s=300)
    await fill_the_hour(api)
    assert (await api.get_wallet()).currency == "USD"  # waited ~an hour, then admitted
    assert T0 + 3600 <= clock.now() < T0 + 3700


async def test_a_retry_after_past_the_runs_end_stops_the_run_early_without_waiting(
    sandboxed: Sandboxed,
) -> None:
    clock = FakeClock(T0)
    _, api = await sandboxed(
        HOURLY, clock=clock, retry=RetryPolicy(rng=lambda: 0.0), stop_at=lambda: T0 + 1800
    )
    await fill_the_hour(api)
    with pytest.raises(RateLimitWaitError) as caught:
        await api.create_call(call_body(), "k-hour")
    error = caught.value
    assert error.transient and error.http_status == 429 and clock.now() == T0
    assert isinstance(error.__cause__, RateLimitedError)
    text = str(error)
    assert "requests_per_hour limit frees at 2026-" in text and "run's time limit" in text
    assert "stops early with work left" in text


async def test_a_retry_after_longer_than_any_limit_window_is_not_waited(
    sandboxed: Sandboxed,
) -> None:
    clock = FakeClock(T0)
    retry = RetryPolicy(rng=lambda: 0.0, longest_wait_s=600)
    _, api = await sandboxed(HOURLY, clock=clock, retry=retry)
    await fill_the_hour(api)
    with pytest.raises(RateLimitWaitError, match="waits at most"):
        await api.get_wallet()
    assert clock.now() == T0


class ParkedClock(FakeClock):
    """A fake clock whose waits never end by themselves (only a stop ends one)."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.waiting = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waiting.set()
        await asyncio.get_running_loop().create_future()


async def test_a_stop_signal_abandons_the_wait_for_the_rate_limit(sandboxed: Sandboxed) -> None:
    clock = ParkedClock(T0)
    stop = asyncio.Event()
    _, api = await sandboxed(HOURLY, clock=clock, retry=RetryPolicy(rng=lambda: 0.0), stop=stop)
    await fill_the_hour(api)
    waiting = asyncio.create_task(api.get_wallet())
    await clock.waiting.wait()  # refused, and waiting out the Retry-After
    stop.set()  # SIGTERM
    with pytest.raises(RateLimitWaitError, match="told to stop") as caught:
        await asyncio.wait_for(waiting, timeout=10)
    assert caught.value.transient
    with pytest.raises(RateLimitWaitError):  # once stopped, no new wait begins
        await api.get_wallet()


# ---- the key stays secret ----------------------------------------------------------------


def error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error) + str(error)


async def test_the_key_never_reaches_repr_logs_or_errors(
    sandboxed: Sandboxed, caplog: pytest.LogCaptureFixture, stub_server: Any
) -> None:
    secret = "avp_test_s3cr3t-do-not-print"
    caplog.set_level(logging.DEBUG)
    config = SandboxConfig(
        keys={secret: SandboxKey(DEFAULT_PROJECT)},
        faults=parse_faults("GET /v1/wallet=reset_after;max=1, GET /v1/invoices=proxy_503"),
    )
    sandbox, api = await sandboxed(config, key=secret, retry=QUICK_RETRY)
    texts = [repr(api), str(api)]
    await api.get_wallet()  # one reset, then fine (logged as a retry)
    failures: list[ApiError] = []
    for action in (api.list_invoices, lambda: api.get_call("call_x")):
        try:
            await action()
        except ApiError as exc:
            failures.append(exc)
    async with AitelierClient(sandbox.base_url, "avp_test_wr0ng-key", retry=NO_RETRY) as wrong:
        texts.append(repr(wrong))
        try:
            await wrong.get_wallet()
        except ApiError as exc:
            failures.append(exc)
    assert len(failures) == 3
    texts += [error_text(exc) for exc in failures]
    texts.append(caplog.text)
    assert "retrying" in caplog.text
    for text in texts:
        assert secret not in text and "wr0ng-key" not in text
