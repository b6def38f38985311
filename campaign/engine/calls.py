"""The calls-mode loop: place due calls inside their calling windows, collect, retry, stop.

Two coroutines share one checkpoint: the sender begins attempts (committed *sending*)
and sends them a few at a time, soonest-closing calling window first; the collector polls
the list endpoint on a request budget and folds outcomes in. Every checkpoint write is
synchronous and complete before the next ``await``, so the two never interleave inside a
transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from campaign.clock import Clock, utc
from campaign.config.limit import Limit
from campaign.engine.attempts import call_body, idempotency_key
from campaign.engine.collect import (
    PollResult,
    RetryPolicy,
    apply_call,
    fetch_sessions,
    poll_once,
)
from campaign.engine.gate import GateVerdict, SendGate
from campaign.engine.submit import RECONCILE_AFTER_S, CallsApi, reconcile_stale, send_attempt
from campaign.errors import (
    ApiError,
    CampaignError,
    DeadlineExceededError,
    PollOutageError,
    RateLimitWaitError,
)
from campaign.limits.window import SlidingWindowLog
from campaign.planning.schedule import CallingWindowLike, WindowFor, next_due
from campaign.store.checkpoint import Attempt, Store, StoredRow
from campaign.store.optout import OptOutList

log = logging.getLogger("campaign.engine.calls")
T = TypeVar("T")

# How far back the collector looks on a fresh checkpoint: server and local clocks may
# disagree by this much.
CLOCK_SKEW_S = 300.0
TICK_S = 0.02
CATCH_UP_SLOTS = 3
QUEUE_REFRESH_S = 1.0
STOP_GRACE_S = 15.0
# Polling that fails for this long without a break ends the run (exit 1): the outcomes
# of calls in progress cannot be read, and a run that waits for them forever would hold
# the campaign's lock against every later cron run.
POLL_OUTAGE_S = 300.0


class Progress(Protocol):
    """Progress display hooks (campaign.console.progress.RunProgress)."""

    def placed(self) -> None: ...

    def finished(self, status: str, outcome: str | None) -> None: ...

    def note(self, msg: str) -> None: ...


@dataclass(frozen=True)
class EngineSettings:
    """The knobs of one run of the loop."""

    campaign: str
    scenario_id: str
    retry: RetryPolicy
    call_limits: Sequence[Limit]
    request_limits: Sequence[Limit]
    deadline: float | None = None  # on the clock's now(): --max-duration
    until: float | None = None  # wall-clock time: --until
    fetch_sessions: bool = True
    max_parallel_sends: int = 16
    min_poll_s: float = 1.0
    max_poll_s: float = 30.0
    limiter_margin_s: float = 0.25


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
    next_due: float | None = None
    next_due_reason: str | None = None
    work_left_now: bool = False
    rejected: list[str] = field(default_factory=list)


class CallsEngine:
    """Runs sender and collector until the work that can be done now is done."""

    def __init__(
        self,
        *,
        store: Store,
        client: CallsApi,
        clock: Clock,
        settings: EngineSettings,
        window_for: WindowFor,
        opt_outs: OptOutList,
        stop: asyncio.Event,
        call_times: Sequence[float] = (),
        progress: Progress | None = None,
        call_turn: Callable[[], bool] | None = None,
        gate: SendGate | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.settings = settings
        self.window_for = window_for
        self.opt_outs = opt_outs
        self.stop = stop
        self.progress = progress
        self.gate = gate
        # Asked before an attempt is committed when campaigns share one allowance: an
        # attempt committed and then left waiting for its turn could leave after its
        # calling window had closed.
        self._call_turn = call_turn
        self.result = EngineResult()
        # A pre-check mirroring the client's call limiter, so an attempt is committed
        # only when it can leave at once (its calling window is checked at that moment).
        self._call_logs = [
            SlidingWindowLog(lim, settings.limiter_margin_s) for lim in settings.call_limits
        ]
        # Calls are spread evenly at the tightest limit's pace instead of in bursts: a
        # burst queues up at the server, and a queue that drains faster in the next window
        # than in the last one would put more calls in one server window than allowed.
        self._spacing = max(
            ((lim.window + settings.limiter_margin_s) / lim.count for lim in settings.call_limits),
            default=0.0,
        )
        self._next_slot = float("-inf")
        for t in call_times:
            self.note_call_sent(t)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._queue: list[tuple[str, StoredRow | Attempt]] = []
        self._queue_built_at = float("-inf")
        self._halt_sending = False
        self._collector_task: asyncio.Task[None] | None = None
        self._crash: Exception | None = None
        self._poll_ok_at = clock.now()  # the last moment polling was known to work

    def note_call_sent(self, t: float) -> None:
        """Count a POST /calls send against the pre-check and the pacing."""
        for call_log in self._call_logs:
            call_log.record(t)
        # Keep to the schedule without drifting behind it (the loop wakes in ticks), but
        # never catch up by more than a few slots after an idle spell.
        self._next_slot = max(self._next_slot, t - CATCH_UP_SLOTS * self._spacing) + self._spacing

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> EngineResult:
        """Place and collect until nothing more can be done now (or until told to stop)."""
        await self._reconcile()
        collector = asyncio.create_task(self._collector())
        self._collector_task = collector
        try:
            await self._sender()
        finally:
            await self._drain()
            collector.cancel()
            try:
                await collector
            except asyncio.CancelledError:
                pass
            except CampaignError as exc:
                self.result.error = self.result.error or exc
        self._finish()
        return self.result

    async def _reconcile(self, only: set[str] | None = None) -> None:
        _, found = await reconcile_stale(
            self.store, self.client, campaign=self.settings.campaign, now=self.clock.now(),
            only=only,
        )  # fmt: skip
        for call in found:
            apply_call(
                self.store,
                call,
                campaign=self.settings.campaign,
                retry=self.settings.retry,
                opt_outs=self.opt_outs,
                now=self.clock.now(),
                result=PollResult(),
            )

    def _should_stop(self, now: float) -> bool:
        if self.stop.is_set():
            self.result.stop_reason = self.result.stop_reason or "stopped by a signal"
            return True
        if self.settings.deadline is not None and now >= self.settings.deadline:
            self.result.stop_reason = self.result.stop_reason or "reached the time limit"
            return True
        if self.settings.until is not None and self.clock.wall() >= self.settings.until:
            self.result.stop_reason = self.result.stop_reason or "reached the --until time"
            return True
        return False

    async def _sender(self) -> None:
        while True:
            now = self.clock.now()
            self._check_collector()
            if self._crash is not None:
                raise self._crash
            if self.result.error is not None or self.result.insufficient_funds:
                return
            if self._should_stop(now):
                self.result.stopped_early = True
                return
            self._start_sends(now)
            idle = not self._in_flight and not self._open_attempts_remain()
            if idle and not self._queue_has_sendable(now):
                wait_until = self._idle_until(now)
                if wait_until is None:
                    return
                await self._sleep_until(wait_until)
                continue
            await self.clock.sleep(TICK_S)

    def _check_collector(self) -> None:
        """A collector that died takes the run with it (never a sender ticking forever)."""
        task = self._collector_task
        if task is None or not task.done() or task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, CampaignError):
            self.result.error = self.result.error or exc
        elif exc is not None:
            raise exc
        else:
            self.result.error = self.result.error or PollOutageError(
                "the collector stopped unexpectedly"
            )

    def _open_attempts_remain(self) -> bool:
        # "sent" attempts still need their outcome (and, for the report, their session);
        # "sending" ones not in flight are resent from the queue when their window is open.
        if self.store.count_attempts("sent"):
            return True
        return self.settings.fetch_sessions and self.store.count_needing_session() > 0

    def _queue_has_sendable(self, now: float) -> bool:
        self._refresh_queue(now, force=True)
        return bool(self._queue)

    def _idle_until(self, now: float) -> float | None:
        """When the next piece of work falls due (wall clock), if the run may wait for it."""
        self._compute_next_due(now)
        due = self.result.next_due
        if due is None:
            return None
        bounds = []
        if self.settings.deadline is not None:  # the same instant on the wall clock
            bounds.append(self.clock.wall() + (self.settings.deadline - now))
        if self.settings.until is not None:
            bounds.append(self.settings.until)
        if not bounds or due >= min(bounds):
            return None
        return due

    async def _sleep_until(self, moment: float) -> None:
        """Wait until a wall-clock moment (a calling window, a retry time)."""
        log.info("waiting until %s for the next calling window or retry", _fmt(moment))
        if self.progress is not None:
            self.progress.note(f"waiting until {_fmt(moment)}")
        while self.clock.wall() < moment and not self._should_stop(self.clock.now()):
            self._check_collector()
            if self.result.error is not None:
                return
            await self.clock.sleep(min(1.0, max(TICK_S, moment - self.clock.wall())))

    def _refresh_queue(self, now: float, *, force: bool = False) -> None:
        if not force and self._queue and now - self._queue_built_at < QUEUE_REFRESH_S:
            return
        self._queue_built_at = now
        wall = self.clock.wall()
        candidates: list[tuple[float, int, str, StoredRow | Attempt]] = []
        # Resends first: they are calls that may already exist and only need confirming.
        margin = self.gate.margin_s if self.gate is not None else 0.0
        for attempt in self.store.attempts("sending"):
            if attempt.idempotency_key in self._in_flight:
                continue
            row = self.store.row(attempt.row_key)
            if _open_for(self.window_for(row), wall, margin) is not None:
                candidates.append((float("-inf"), row.line, "resend", attempt))
        in_flight = self._rows_in_flight()
        # Rows share a handful of windows: ask each window once per refresh.
        asked: dict[int, float | None] = {}
        for row in self.store.rows_due(wall):
            if row.row_key in in_flight:
                continue
            window = self.window_for(row)
            key = id(window)
            if key not in asked:
                asked[key] = _open_for(window, wall, margin)
            closes = asked[key]
            if closes is not None:
                candidates.append((closes, row.line, "new", row))
        candidates.sort(key=lambda c: (c[0], c[1]))
        self._queue = [(kind, item) for _, _, kind, item in candidates]

    def _rows_in_flight(self) -> set[str]:
        return {task.get_name() for task in self._in_flight.values()}

    def _call_slot_free(self, now: float) -> bool:
        if now < self._next_slot:
            return False
        if not all(call_log.earliest(now) <= now for call_log in self._call_logs):
            return False
        return self._call_turn is None or self._call_turn()

    def _start_sends(self, now: float) -> None:
        if self._halt_sending:
            return
        self._refresh_queue(now)
        while self._queue and len(self._in_flight) < self.settings.max_parallel_sends:
            if not self._call_slot_free(now):
                return
            kind, item = self._queue.pop(0)
            if kind == "resend":
                assert isinstance(item, Attempt)
                attempt = self.store.attempt(item.idempotency_key)
                if attempt.state != "sending":  # the collector found its call meanwhile
                    continue
                row = self.store.row(attempt.row_key)
                phone = attempt.phone
            else:
                assert isinstance(item, StoredRow)
                row = self.store.row(item.row_key)  # the queue may be a second old
                if row.progress not in ("pending", "retry_scheduled"):
                    continue
                phone = row.e164
            verdict = self._gate(row, phone, kind, attempt if kind == "resend" else None)
            if not verdict.ok:
                continue
            if kind == "new":
                attempt = self._begin(row, now)
            # Reserve the slot now: the client records the real send a moment later.
            self.note_call_sent(now)
            send_by = None
            if verdict.send_by is not None:  # the same instant on the clock the client uses
                send_by = now + (verdict.send_by - self.clock.wall())
            task = asyncio.create_task(self._send(attempt, send_by), name=attempt.row_key)
            self._in_flight[attempt.idempotency_key] = task

    def _gate(
        self, row: StoredRow, phone: str | None, kind: str, attempt: Attempt | None
    ) -> GateVerdict:
        """Ask the send gate; a final refusal blocks the row (and withholds a re-send)."""
        wall = self.clock.wall()
        if self.gate is None:  # unit tests that build the engine by hand: windows only
            window = self.window_for(row)
            return GateVerdict(window.is_open(wall), "outside calling hours")
        verdict = self.gate.check(row, phone, wall)
        if verdict.final:
            reason = verdict.reason or "refused by the send gate"
            if attempt is not None:
                log.warning(
                    "row %s attempt %d is not re-sent: %s", row.row_key, attempt.number, reason
                )
                self.store.withhold_attempt(
                    attempt.idempotency_key, plan_state=verdict.plan_state or "rejected",
                    reason=reason,
                )  # fmt: skip
            else:
                log.info("row %s is not called: %s", row.row_key, reason)
                self.store.block_row(
                    row.row_key, plan_state=verdict.plan_state or "rejected", reason=reason
                )
        return verdict

    def _begin(self, row: StoredRow, now: float) -> Attempt:
        number = self.store.next_attempt_number(row.row_key)
        assert row.e164 is not None
        body = call_body(
            campaign=self.settings.campaign,
            scenario_id=self.settings.scenario_id,
            row_key=row.row_key,
            number=number,
            phone=row.e164,
            variables=row.variables,
        )
        key = idempotency_key(self.settings.campaign, row.row_key, number)
        return self.store.begin_attempt(row.row_key, number, key, body, now, phone=row.e164)

    async def _send(self, attempt: Attempt, send_by: float | None = None) -> None:
        try:
            if self.clock.now() - attempt.sending_at > RECONCILE_AFTER_S:
                # The server may have forgotten the key: look for the call before re-sending.
                await self._reconcile(only={attempt.idempotency_key})
                if self.store.attempt(attempt.idempotency_key).state != "sending":
                    return
            outcome = await send_attempt(
                self.store, self.client, attempt, self.clock, send_by=send_by
            )
        except CampaignError as exc:
            self.result.error = self.result.error or exc
            self._halt_sending = True
            return
        except Exception as exc:  # a bug: never lose it in a task nobody awaits
            self._crash = self._crash or exc
            self._halt_sending = True
            return
        finally:
            self._in_flight.pop(attempt.idempotency_key, None)
        self.result.sends += 1
        if outcome.verdict == "sent":
            self.result.calls_placed += 1
            if self.progress is not None:
                self.progress.placed()
        elif outcome.verdict == "rejected":
            self.result.rejected.append(attempt.row_key)
        elif outcome.verdict == "window_closed":
            pass  # stays *sending*: re-sent (same key, same bytes) in its next window
        elif outcome.error is not None:
            # The client already retried until its deadline: the API is unreachable.
            self.result.error = self.result.error or outcome.error
            self._halt_sending = True

    async def _drain(self) -> None:
        """Let requests already on the wire finish their bookkeeping, then cancel the rest."""
        self._halt_sending = True
        if not self._in_flight:
            return
        tasks = list(self._in_flight.values())
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # --- the collector ------------------------------------------------------------------

    def _poll_interval(self) -> float:
        request_rate = min(
            (lim.count / lim.window for lim in self.settings.request_limits), default=1.0
        )
        call_rate = min((lim.count / lim.window for lim in self.settings.call_limits), default=0.0)
        per_call = 2.0 if self.settings.fetch_sessions else 1.0
        sending = not self._halt_sending and (bool(self._queue) or bool(self._in_flight))
        spare = request_rate - (call_rate * per_call if sending else 0.0)
        if spare <= 0:
            spare = request_rate * 0.2  # calls alone would use the budget: poll sparingly
        interval = 1.0 / max(spare * 0.5, 1e-6)
        return min(self.settings.max_poll_s, max(self.settings.min_poll_s, interval))

    async def _collector(self) -> None:
        while True:
            try:
                if self.store.count_attempts("sent") or self._unsent_waiting():
                    await self._bounded(self.poll())
                elif self.settings.fetch_sessions and self.store.count_needing_session():
                    self.result.sessions += await self._bounded(
                        fetch_sessions(self.store, self.client)
                    )
                self._poll_ok_at = self.clock.now()
            except RateLimitWaitError:
                raise  # the limit frees after the run must end: stop early (exit 3)
            except (ApiError, TimeoutError) as exc:
                gave_up = isinstance(exc, DeadlineExceededError)
                if isinstance(exc, ApiError) and not (exc.transient or gave_up):
                    raise
                down_s = self.clock.now() - self._poll_ok_at
                if down_s >= POLL_OUTAGE_S:
                    raise PollOutageError(
                        f"the API could not be read for {down_s / 60:.0f} min ({exc}); the "
                        "run stops with everything it learned kept — calls in progress are "
                        "collected by the next run"
                    ) from exc
                log.warning("polling failed (%s); trying again", exc)
            await self.clock.sleep(self._poll_interval())

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one poll, cut short when polling has been failing for too long."""
        left = self._poll_ok_at + POLL_OUTAGE_S - self.clock.now()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
        # that ends the collector when the poll finishes in the same loop turn.
        async with asyncio.timeout(max(5.0, left)):
            return await work

    def _unsent_waiting(self) -> bool:
        return self.store.count_attempts("sending") > len(self._in_flight)

    async def poll(self) -> None:
        """One poll of changed calls, then the sessions the report needs."""
        oldest = self.store.oldest_open_attempt()
        now = self.clock.now()
        result = await poll_once(
            self.store,
            self.client,
            campaign=self.settings.campaign,
            retry=self.settings.retry,
            opt_outs=self.opt_outs,
            now=now,
            default_since=(oldest if oldest is not None else now) - CLOCK_SKEW_S,
        )
        self.result.polls += result.pages
        if self.progress is not None:
            for key in result.ended_keys:
                attempt = self.store.attempt(key)
                self.progress.finished(attempt.status or "unknown", attempt.outcome)
        if result.insufficient_funds:
            log.error("calls fail with insufficient_funds: no more calls are placed")
            self.result.insufficient_funds = True
            self._halt_sending = True
        if self.settings.fetch_sessions:
            self.result.sessions += await fetch_sessions(self.store, self.client)

    # --- the end ------------------------------------------------------------------------

    def _compute_next_due(self, now: float) -> None:
        margin = self.gate.margin_s if self.gate is not None else 0.0
        self.result.next_due, self.result.next_due_reason = next_due(
            self.store, self.window_for, self.clock.wall(), margin_s=margin
        )

    def _finish(self) -> None:
        now = self.clock.now()
        self._compute_next_due(now)
        self._refresh_queue(now, force=True)
        self.result.work_left_now = bool(self._queue) or self.store.count_attempts("sent") > 0


def _open_for(window: CallingWindowLike, wall: float, margin: float) -> float | None:
    """When the window open at ``wall`` closes (inf: never), if a call may start now with
    ``margin`` to spare; None when it may not."""
    if not window.is_open(wall):
        return None
    closes = window.closes_at(wall)
    if closes is None:
        return float("inf")
    return closes if wall + margin <= closes else None


def _fmt(moment: float) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")
