"""Progress of a run: a live bar on a terminal, a periodic plain log line under cron.

The bar (rich) shows rows placed of the total, the outcomes so far, the rate and the ETA.
Off a terminal the same facts go to the log as one line every ``interval_s`` seconds of the
run's clock, and once more at the end, so a nightly log stays short and greppable.

Before the loop, reading a big input takes a while: ``rows_read`` (the planner's callback,
every 10,000 rows) shows a spinner line on a terminal, and a log line every ``interval_s``
off one; ``reading_done`` takes the spinner down. ``StageProgress`` does the same for any
long stage (reading and planning without a display, syncing the checkpoint), with the rate.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.status import Status
from rich.text import Text

from campaign.clock import Clock, SystemClock, utc
from campaign.console.words import duration_in_words

log = logging.getLogger("campaign.console.progress")
_BAR_WIDTH = 24


class RunProgress:
    """Counts calls placed and finished during a run and shows them to whoever watches."""

    def __init__(
        self,
        *,
        total: int = 0,
        campaign: str = "",
        is_tty: bool | None = None,
        interval_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.total = max(total, 0)
        self.campaign = campaign
        self.is_tty = sys.stderr.isatty() if is_tty is None else is_tty
        self.interval_s = interval_s
        self.clock: Clock = clock or SystemClock()
        self.placed_count = 0
        self.outcomes: Counter[str] = Counter()
        self._started = self.clock.now()
        self._last_line = self._started
        self._bar: _BarWithOutcomes | None = None
        self._task: TaskID | None = None
        self._reading: Status | None = None
        self._reading_since: float | None = None
        self._reading_line = 0.0

    def start(self, *, campaign: str, total: int) -> None:
        """The run's loop begins with ``total`` rows to place (``campaign.ProgressDisplay``)."""
        self.campaign = campaign
        self.total = max(total, 0)
        self.__enter__()

    def stop(self) -> None:
        """The loop has ended: take the bar down and log the final line."""
        self.__exit__(None, None, None)

    def rows_read(self, count: int) -> None:
        """``count`` input rows have been read so far (before the loop starts)."""
        now = self.clock.now()
        if self._reading_since is None:
            self._reading_since = self._reading_line = now
        text = f"reading the input: {count:,} rows"
        if self.is_tty:
            if self._reading is None:
                # is_tty already decided this is a terminal (rich would ask stderr again).
                console = Console(stderr=True, force_terminal=True)
                self._reading = Status(text, console=console)
                self._reading.start()
            else:
                self._reading.update(text)
        elif now - self._reading_line >= self.interval_s:
            self._reading_line = now
            log.info("%s so far", text)

    def reading_done(self) -> None:
        """The input has been read: take the reading line down."""
        if self._reading is not None:
            self._reading.stop()
            self._reading = None
        self._reading_since = None

    def __enter__(self) -> RunProgress:
        self._started = self._last_line = self.clock.now()
        if self.is_tty:
            self._bar = _BarWithOutcomes(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=_BAR_WIDTH),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[eta]}"),
                console=Console(stderr=True),
            )
            name = self.campaign if len(self.campaign) <= 24 else self.campaign[:23] + "…"
            self._task = self._bar.add_task(name, total=self.total or None, rate="", eta="")
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
            self._bar = None
        if self.placed_count or self.outcomes:
            log.info(self.line())

    def placed(self, n: int = 1) -> None:
        """``n`` more calls have been accepted by the API."""
        self.placed_count += n
        self._changed()

    def finished(self, status: str, outcome: str | None) -> None:
        """A call ended with ``status`` (and, when completed, ``outcome``)."""
        self.outcomes[outcome or status] += 1
        self._changed()

    def note(self, message: str) -> None:
        """An event worth a log line of its own (printed above the bar on a terminal)."""
        log.info(message)

    def rate_per_min(self) -> float:
        """Calls placed per minute since the run started."""
        elapsed = self.clock.now() - self._started
        return 60.0 * self.placed_count / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Epoch seconds at which every row will have been placed at the current rate."""
        rate = self.rate_per_min()
        remaining = max(self.total - self.placed_count, 0)
        if remaining == 0:
            return self.clock.now()
        return self.clock.now() + 60.0 * remaining / rate if rate > 0 else None

    def outcomes_text(self) -> str:
        """``goal_achieved 12, no_answer 5`` — most frequent first."""
        return ", ".join(f"{name} {count}" for name, count in self.outcomes.most_common())

    def line(self) -> str:
        """The progress line written to the log off a terminal."""
        share = f" ({100 * self.placed_count / self.total:.0f}%)" if self.total else ""
        parts = [f"progress: placed {self.placed_count}/{self.total}{share}"]
        if self.outcomes:
            parts.append(f"ended: {self.outcomes_text()}")
        parts.append(f"{self.rate_per_min():.1f} calls/min")
        parts.append(self._eta_text())
        return " · ".join(parts)

    def _eta_text(self) -> str:
        eta = self.eta()
        if eta is None:
            return "ETA unknown"
        if self.placed_count >= self.total:
            return "all placed"
        return f"ETA {utc(eta).strftime('%H:%M')}Z (in {duration_in_words(eta - self.clock.now())})"

    def _changed(self) -> None:
        if self._bar is not None:
            self._refresh()
            return
        if self.clock.now() - self._last_line >= self.interval_s:
            self._last_line = self.clock.now()
            log.info(self.line())

    def _refresh(self) -> None:
        assert self._bar is not None and self._task is not None
        self._bar.outcomes_line = f"  ended: {self.outcomes_text()}" if self.outcomes else ""
        self._bar.update(
            self._task,
            completed=self.placed_count,
            rate=f"{self.rate_per_min():.1f}/min",
            eta=self._eta_text(),
        )


class _BarWithOutcomes(Progress):
    """The bar on one line, the outcomes so far on the next (cut to the terminal's width)."""

    outcomes_line = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.outcomes_line:
            yield Text(self.outcomes_line, no_wrap=True, overflow="ellipsis")


class StageProgress:
    """Rows done by one long stage before the loop: a status line with the count and rate on
    a terminal; off one, a log line every ``interval_s`` of the run's clock, and a last one
    with the total when the stage logged any."""

    def __init__(
        self,
        stage: str,
        *,
        is_tty: bool | None = None,
        interval_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.stage = stage
        self.is_tty = sys.stderr.isatty() if is_tty is None else is_tty
        self.interval_s = interval_s
        self.clock: Clock = clock or SystemClock()
        self.count = 0
        self._started = self._last_line = self.clock.now()
        self._status: Status | None = None
        self._logged = False

    def __call__(self, count: int) -> None:
        """``count`` rows are done so far."""
        self.count = count
        now = self.clock.now()
        if self.is_tty:
            text = self.text(now)
            if self._status is None:
                self._status = Status(text, console=Console(stderr=True, force_terminal=True))
                self._status.start()
            else:
                self._status.update(text)
        elif now - self._last_line >= self.interval_s:
            self._last_line = now
            self._logged = True
            log.info("%s so far", self.text(now))

    def text(self, now: float) -> str:
        """``syncing the checkpoint: 300,000 rows (25,000 rows/s)``."""
        elapsed = now - self._started
        rate = f" ({self.count / elapsed:,.0f} rows/s)" if elapsed > 0 else ""
        return f"{self.stage}: {self.count:,} rows{rate}"

    def done(self) -> None:
        """The stage has ended: take the status line down, log the total if lines went out."""
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._logged:
            log.info("%s in all", self.text(self.clock.now()))
            self._logged = False
