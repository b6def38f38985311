"""Running the sandbox on a real socket: ``start_sandbox`` and ``RunningSandbox``."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from campaign.sandbox.app import SANDBOX_KEY, create_app
from campaign.sandbox.clock import SandboxClock
from campaign.sandbox.config import SandboxConfig


class RunningSandbox:
    """A sandbox listening on a port; also an async context manager that closes it."""

    def __init__(self, runner: web.AppRunner, app: web.Application, host: str, port: int) -> None:
        self._runner = runner
        self._app = app
        self.host = host
        self.port = port
        self.root_url = f"http://{host}:{port}"
        self.base_url = f"{self.root_url}/v1"

    def ledger(self) -> dict[str, Any]:
        """The same JSON as GET /_sandbox/ledger (available even when that route is off)."""
        return self._app[SANDBOX_KEY].ledger()

    async def close(self) -> None:
        """Stop listening and save the state (when a state file is configured)."""
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSandbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def start_sandbox(
    config: SandboxConfig | None = None,
    clock: SandboxClock | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = False,
) -> RunningSandbox:
    """Start a sandbox server; ``port=0`` picks a free port (see ``.port``)."""
    app = create_app(config, clock)
    if access_log:
        # Request line and status only: headers (and so the API key) never reach the log.
        runner = web.AppRunner(app, access_log_format='%a "%r" %s %b %Tfs')
    else:
        runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()  # stops the webhook sender started by setup()
        raise
    addresses = runner.addresses
    bound_port = int(addresses[0][1]) if addresses else port
    return RunningSandbox(runner, app, host, bound_port)
