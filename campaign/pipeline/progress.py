"""What a run shows as it goes: the display a caller hands in, or progress lines in the log.

The library draws nothing by itself. ``campaign.run(progress=…)`` takes any object with the
methods of ``ProgressDisplay``; the CLI passes ``campaign.console.progress.RunProgress``
(a live bar on a terminal, a log line every 30 s off one). Without a display a run logs the
same progress lines to the ``campaign`` logger, which a host (cron's log, Airflow's task
log) shows only if it configured logging.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class ProgressDisplay(Protocol):
    """A progress display: told when the loop starts and stops, and of every call in between.

    ``placed``, ``finished`` and ``note`` are the events the engine's loop reports (its own
    ``ProgressDisplay`` protocol); ``start`` and ``stop`` frame them.
    """

    def start(self, *, campaign: str, total: int) -> None: ...

    def placed(self) -> None: ...

    def finished(self, status: str, outcome: str | None) -> None: ...

    def note(self, msg: str) -> None: ...

    def stop(self) -> None: ...


@contextlib.contextmanager
def showing(
    display: ProgressDisplay | None, *, campaign: str, total: int
) -> Iterator[ProgressDisplay]:
    """``display`` between start and stop; without one, progress lines in the log only."""
    if display is None:
        from campaign.console.progress import RunProgress

        display = RunProgress(is_tty=False)  # never a bar: the terminal is not ours
    display.start(campaign=campaign, total=total)
    try:
        yield display
    finally:
        display.stop()
