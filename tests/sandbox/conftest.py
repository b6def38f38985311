"""Fixtures of the sandbox's own tests: a sandbox on a fake clock, and a plain HTTP session.

- ``sandbox_clock``: a SandboxFakeClock at 1_780_000_000 (2026-05-28T…Z).
- ``sandbox``: a running sandbox on that clock, ledger on, default limits.
- ``start_sandbox_with``: async factory ``(config=None, clock=None) -> RunningSandbox``
  (closed at teardown) for custom limits, faults, keys or time_scale.
- ``sandbox_http``: a plain aiohttp.ClientSession, not the project's API client: these
  tests check the wire answers themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from support.sandbox import StartSandbox

from campaign.sandbox import (
    RunningSandbox,
    SandboxClock,
    SandboxConfig,
    SandboxFakeClock,
    start_sandbox,
)


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
