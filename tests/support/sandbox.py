"""Sandbox fixtures for every area's tests: registered in conftest.py.

- ``sandbox_clock``: a SandboxFakeClock at 1_780_000_000 (2026-05-28T…Z).
- ``sandbox``: a running sandbox on that clock, ledger on, default limits.
- ``start_sandbox_with``: async factory ``(config=None, clock=None) -> RunningSandbox``
  (closed at teardown) for custom limits, faults, keys or time_scale.
- ``sandbox_http``: a plain aiohttp.ClientSession.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from campaign.sandbox import (
    DEFAULT_KEY,
    RunningSandbox,
    SandboxClock,
    SandboxConfig,
    SandboxFakeClock,
    start_sandbox,
)

SANDBOX_AUTH = {"Authorization": f"Bearer {DEFAULT_KEY}"}
StartSandbox = Callable[..., Awaitable[RunningSandbox]]


@pytest.fixture
def sandbox_clock() -> SandboxFakeClock:
    """A fake clock the sandbox's lifecycle and limits run on."""
    return SandboxFakeClock()


@pytest.fixture
async def start_sandbox_with() -> AsyncIterator[StartSandbox]:
    """Start sandboxes with a given config/clock; all are closed at teardown."""
    running: list[RunningSandbox] = []

    async def start(
        config: SandboxConfig | None = None, clock: SandboxClock | None = None
    ) -> RunningSandbox:
        config = config or SandboxConfig(ledger=True)
        server = await start_sandbox(config, clock or SandboxFakeClock())
        running.append(server)
        return server

    yield start
    for server in running:
        await server.close()


@pytest.fixture
async def sandbox(
    start_sandbox_with: StartSandbox, sandbox_clock: SandboxFakeClock
) -> RunningSandbox:
    """A running sandbox with the ledger on, default limits, on ``sandbox_clock``."""
    return await start_sandbox_with(SandboxConfig(ledger=True), sandbox_clock)


@pytest.fixture
async def sandbox_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP session (not the project's API client)."""
    async with aiohttp.ClientSession() as session:
        yield session


def call_body(phone: str = "+14155550100", **extra: object) -> dict[str, object]:
    """A valid POST /calls body."""
    return {"phone": phone, "scenario_id": "scn_demo", **extra}


def outbound_headers(idempotency_key: str, api_key: str = DEFAULT_KEY) -> dict[str, str]:
    """Authorization plus an Idempotency-Key."""
    return {"Authorization": f"Bearer {api_key}", "Idempotency-Key": idempotency_key}
