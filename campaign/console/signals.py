"""SIGINT/SIGTERM for the command line: they stop a run the way ``--until`` does (exit 3).

Only the CLI installs these; the library never touches a host's signal handlers (a caller
stops a run with its own ``stop`` event, or with ``until`` / ``max_duration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

log = logging.getLogger("campaign.console.signals")


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM set ``stop``: stop sending, finish the bookkeeping."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _on_signal, stop, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests): the stop event still works
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.warning("%s received: stopping after the requests in flight", sig.name)
    stop.set()
