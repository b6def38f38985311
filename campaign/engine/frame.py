"""The loop both modes share: its dependencies, when it stops, how it idles, what is left.

A mode supplies only what differs — how it sends and how it follows what it sent — as
hooks: ``_open`` (before the loop), ``_step`` (one turn of work), ``_close`` (after it),
``_work_left_now`` (at the end). The frame stops the run on a signal, at
``--max-duration`` (on ``clock.now()``) or at ``--until`` (on ``clock.wall()``, read
afresh, so a clock correction moves it); waits idle until the next piece of work falls
due (one rule: ``campaign.planning.schedule.next_due``); and says at the end what is left.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Protocol, TypeVar

from campaign.clock import Clock, utc
from campaign.config.limit import Limit
from campaign.config.model import CampaignConfig
from campaign.engine.gate import SendGate
from campaign.engine.outcomes import RetryRules
from campaign.errors import CampaignError
from campaign.planning.schedule import WindowFor, next_due
from campaign.store.checkpoint import Store
from campaign.store.optout import OptOutList

log = logging.getLogger("campaign.engine.frame")

ApiT = TypeVar("ApiT", covariant=True)


class ProgressDisplay(Protocol):
    """What the run shows as it goes (``campaign.console.progress.RunProgress``)."""

    def placed(self) -> None: ...

    def finished(self, status: str, outcome: str | None) -> None: ...

    def note(self, msg: str) -> None: ...


class _NoDisplay:
    """Shows nothing (unit tests, library callers without a display)."""

    def placed(self) -> None:
        pass

    def finished(self, status: str, outcome: str | None) -> None:
        pass

    def note(self, msg: str) -> None:
        pass


NO_DISPLAY: ProgressDisplay = _NoDisplay()


@dataclass(frozen=True)
class EngineSettings:
    """The knobs of one run of the loop, in either mode."""

    campaign: str
    scenario_id: str
    retry: RetryRules
    call_limits: Sequence[Limit]
    request_limits: Sequence[Limit]
    deadline: float | None = None  # on the clock's now(): --max-duration
    until: float | None = None  # wall-clock time: --until
    fetch_sessions: bool = True

    @classmethod
    def from_config(
        cls,
        config: CampaignConfig,
        *,
        deadline: float | None,
        until: float | None,
        fetch_sessions: bool,
    ) -> EngineSettings:
        """The settings of a run of this campaign."""
        return cls(
            campaign=config.campaign,
            scenario_id=config.scenario_id,
            retry=config.retry,
            call_limits=list(config.limits.calls),
            request_limits=list(config.limits.requests),
            deadline=deadline,
            until=until,
            fetch_sessions=fetch_sessions,
        )


@dataclass
class EngineResult:
    """What the loop did and why it stopped."""

    calls_placed: int = 0
    sends: int = 0
    polls: int = 0
    sessions: int = 0
    stopped_early: bool = False
    stop_reason: str | None = None
    insufficient_funds: bool = False
    error: CampaignError | None = None
    next_due: float | None = None  # wall clock
    next_due_reason: str | None = None
    work_left_now: bool = False
    rejected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EngineDeps(Generic[ApiT]):
    """Everything a run of the loop works with, in either mode."""

    store: Store
    client: ApiT
    clock: Clock
    settings: EngineSettings
    window_for: WindowFor
    opt_outs: OptOutList
    stop: asyncio.Event
    # Every send asks the gate; None only in unit tests that build an engine by hand.
    gate: SendGate | None = None
    progress: ProgressDisplay = NO_DISPLAY


class EngineFrame(ABC, Generic[ApiT]):
    """The loop: open, step until idle or told to stop, wait for what falls due, close."""

    tick_s: ClassVar[float] = 0.02
    # Rows that could go now were all offered before the loop went idle: one still
    # waiting waits for its next window (batches mode: no batch could dial it in time).
    tried_now: ClassVar[bool] = False

    def __init__(self, deps: EngineDeps[ApiT], *, due_margin_s: float) -> None:
        self.deps = deps
        self.store = deps.store
        self.client = deps.client
        self.clock = deps.clock
        self.settings = deps.settings
        self.window_for = deps.window_for
        self.opt_outs = deps.opt_outs
        self.stop = deps.stop
        self.gate = deps.gate
        self.progress = deps.progress
        # A window that closes within this margin counts as closed for what falls due.
        self.due_margin_s = due_margin_s
        self.result = EngineResult()

    async def run(self) -> EngineResult:
        """Work until nothing more can be done now (or until told to stop)."""
        try:
            await self._open()
            await self._loop()
        except CampaignError as exc:
            self.result.error = self.result.error or exc
        finally:
            await self._close()
        self._finish()
        return self.result

    async def _loop(self) -> None:
        while True:
            self._check()
            if self.result.error is not None or self.result.insufficient_funds:
                return
            if self.should_stop():
                self.result.stopped_early = True
                return
            wake = await self._step(self.clock.now())
            if wake is not None:
                await self._pause_until(wake)
                continue
            moment = self._idle_until()
            if moment is None:
                return
            await self._wait_until(moment)

    # --- the hooks of a mode ----------------------------------------------------------------

    async def _open(self) -> None:
        """Before the loop (calls mode: look up stale attempts, start the collector)."""

    @abstractmethod
    async def _step(self, now: float) -> float | None:
        """One turn of work; when to look again (on ``clock.now()``), None when idle."""

    def _check(self) -> None:
        """Between turns: raise or record what a helper task ran into."""

    async def _close(self) -> None:
        """After the loop, also when it failed or was cancelled."""

    @abstractmethod
    def _work_left_now(self) -> bool:
        """At the end: is there work a rerun could do at once?"""

    # --- stopping -----------------------------------------------------------------------------

    def should_stop(self) -> bool:
        """True once the run must stop: a signal, ``--max-duration`` or ``--until``."""
        reason = None
        if self.stop.is_set():
            reason = "stopped by a signal"
        elif self.settings.deadline is not None and self.clock.now() >= self.settings.deadline:
            reason = "reached the time limit"
        elif self.settings.until is not None and self.clock.wall() >= self.settings.until:
            reason = "reached the --until time"
        if reason is None:
            return False
        self.result.stop_reason = self.result.stop_reason or reason
        return True

    def stop_at(self) -> float | None:
        """When the run must stop, on ``clock.now()`` (``--until`` as the wall reads now)."""
        bounds = []
        if self.settings.deadline is not None:
            bounds.append(self.settings.deadline)
        if self.settings.until is not None:
            bounds.append(self.settings.until - self.skew())
        return min(bounds) if bounds else None

    def skew(self) -> float:
        """Wall clock minus the engine clock: calendar decisions (calling windows, retry
        times, a batch's hold) are taken on the wall clock, rate pacing on ``now()``."""
        return self.clock.wall() - self.clock.now()

    # --- waiting ------------------------------------------------------------------------------

    def _idle_until(self) -> float | None:
        """When the next piece of work falls due (wall clock), if the run may wait for it."""
        self._compute_next_due()
        due, stop_at = self.result.next_due, self.stop_at()
        if due is None or stop_at is None or due - self.skew() >= stop_at:
            return None
        return due

    async def _wait_until(self, moment: float) -> None:
        """Idle until a wall-clock moment (a calling window, a retry time), or a stop."""
        if moment > self.clock.wall() + self.tick_s:
            log.info("waiting until %s for the next calling window or retry", fmt_moment(moment))
            self.progress.note(f"waiting until {fmt_moment(moment)}")
        # Never a turn without a tick: work due now that could not go must not spin.
        moment = max(moment, self.clock.wall() + self.tick_s)
        while self.clock.wall() < moment and not self.should_stop():
            self._check()
            if self.result.error is not None:
                return
            await self.clock.sleep(min(1.0, max(self.tick_s, moment - self.clock.wall())))

    async def _pause_until(self, moment: float) -> None:
        """Wait between turns until a moment on ``clock.now()``, or a stop."""
        while self.clock.now() < moment and not self.should_stop():
            await self.clock.sleep(min(1.0, max(self.tick_s, moment - self.clock.now())))

    # --- the end ------------------------------------------------------------------------------

    def _compute_next_due(self) -> None:
        self.result.next_due, self.result.next_due_reason = next_due(
            self.store,
            self.window_for,
            self.clock.wall(),
            margin_s=self.due_margin_s,
            tried_now=self.tried_now and not self.result.stopped_early,
        )

    def _finish(self) -> None:
        self._compute_next_due()
        self.result.work_left_now = self._work_left_now()


def fmt_moment(moment: float) -> str:
    """A wall-clock moment as the log shows it."""
    return utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")
