"""Calls mode: place due calls inside their calling windows while a collector folds in.

Two coroutines share one checkpoint: the sender (this loop's turns) begins attempts
(committed *sending*) and sends them a few at a time, soonest-closing calling window
first; the collector (``campaign.engine.calls.collect.CallCollector``) polls the list
endpoint on a request budget and folds outcomes in. Every checkpoint write is synchronous
and complete before the next ``await``, so the two never interleave inside a transaction.
Stopping, idling and the next-due time are the frame's (``campaign.engine.frame``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from campaign.engine.api import CallsApi
from campaign.engine.attempts import call_body, idempotency_key
from campaign.engine.calls.collect import CallCollector, PollResult, apply_call
from campaign.engine.calls.submit import RECONCILE_AFTER_S, reconcile_stale, send_attempt
from campaign.engine.frame import EngineDeps, EngineFrame
from campaign.engine.gate import GateVerdict
from campaign.errors import CampaignError, PollOutageError
from campaign.limits.pacing import CallPacer
from campaign.planning.schedule import CallingWindowLike
from campaign.store.checkpoint import Attempt, StoredRow
from campaign.store.queue import probe_row

log = logging.getLogger("campaign.engine.calls.loop")

QUEUE_REFRESH_S = 1.0
# At most this many due rows are read into the queue per refresh.
QUEUE_PAGE = 500
STOP_GRACE_S = 15.0
MAX_PARALLEL_SENDS = 16


class CallsEngine(EngineFrame[CallsApi]):
    """Runs sender and collector until the work that can be done now is done."""

    tick_s = 0.02

    def __init__(
        self,
        deps: EngineDeps[CallsApi],
        *,
        call_times: Sequence[float] = (),
        call_turn: Callable[[float | None, int], bool] | None = None,
        pacer: CallPacer | None = None,
    ) -> None:
        """``call_turn`` is the limiter's ``call_ready`` (call windows, request slots,
        header holds, batch reservations, the fair turn on a shared allowance; its
        arguments: when the pace lets the next call go, None for now, and how many calls
        are queued); ``pacer`` spaces the calls (even pacing at the call limits by
        default); ``call_times`` are an earlier process's call sends, which the pace
        continues from."""
        margin = deps.gate.margin_s if deps.gate is not None else 0.0
        super().__init__(deps, due_margin_s=margin)
        # Both are asked before an attempt is committed, pace first: an attempt is
        # committed only when it can leave at once, because its calling window is checked
        # at that moment. Without call_turn (unit tests that build the engine by hand)
        # only the pace is known here; the client's limiter still has the last word.
        self._call_turn = call_turn
        self._pacer = pacer or CallPacer(self.settings.call_limits, self.clock, tick_s=self.tick_s)
        self._call_times = list(call_times)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        # ("resend", an unconfirmed attempt) or ("new", a row key), in sending order.
        self._queue: list[tuple[str, str | Attempt]] = []
        self._queue_built_at = float("-inf")
        self._halt_sending = False
        self._collector = CallCollector(deps, self.result, self)
        self._collector_task: asyncio.Task[None] | None = None
        self._crash: Exception | None = None

    # --- the collector's view of the sender (SenderState) ------------------------------------

    def is_sending(self) -> bool:
        """True while calls are queued or in flight and sending has not been halted."""
        return not self._halt_sending and (bool(self._queue) or bool(self._in_flight))

    def unsent_waiting(self) -> bool:
        """True if attempts are *sending* that no task is sending now."""
        return self.store.count_attempts("sending") > len(self._in_flight)

    def halt_sending(self) -> None:
        """Place no more calls."""
        self._halt_sending = True

    # --- the frame's hooks --------------------------------------------------------------------

    async def _open(self) -> None:
        await self._pacer.seed(self._call_times)
        await self._reconcile()
        self._collector_task = asyncio.create_task(self._collector.run())

    async def _step(self, now: float) -> float | None:
        await self._start_sends(now)
        idle = not self._in_flight and not self._open_attempts_remain()
        if idle and not self._queue_has_sendable(now):
            return None
        return now + self.tick_s

    def _check(self) -> None:
        """A collector that died takes the run with it (never a sender ticking forever);
        a bug in a send task is raised here, never lost in a task nobody awaits."""
        task = self._collector_task
        if task is not None and task.done() and not task.cancelled():
            exc = task.exception()
            if isinstance(exc, CampaignError):
                self.result.error = self.result.error or exc
            elif exc is not None:
                raise exc
            else:
                self.result.error = self.result.error or PollOutageError(
                    "the collector stopped unexpectedly"
                )
        if self._crash is not None:
            raise self._crash

    async def _close(self) -> None:
        await self._drain()
        collector = self._collector_task
        if collector is None:
            return
        collector.cancel()
        try:
            await collector
        except asyncio.CancelledError:
            pass
        except CampaignError as exc:
            self.result.error = self.result.error or exc

    def _work_left_now(self) -> bool:
        self._refresh_queue(self.clock.now(), force=True)
        return bool(self._queue) or self.store.count_attempts("sent") > 0

    # --- sending ------------------------------------------------------------------------------

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

    def _open_attempts_remain(self) -> bool:
        # "sent" attempts still need their outcome (and, for the report, their session);
        # "sending" ones not in flight are resent from the queue when their window is open.
        if self.store.count_attempts("sent"):
            return True
        return self.settings.fetch_sessions and self.store.count_needing_session() > 0

    def _queue_has_sendable(self, now: float) -> bool:
        self._refresh_queue(now, force=True)
        return bool(self._queue)

    def _refresh_queue(self, now: float, *, force: bool = False) -> None:
        """The next calls: unconfirmed sends first, then up to a page of due rows,
        soonest-closing calling window first, then by line. The rows come from the
        checkpoint's indexes a page at a time (``Store.due_rows``); a window is asked once
        per group of rows that share it, never once per row."""
        if not force and self._queue and now - self._queue_built_at < QUEUE_REFRESH_S:
            return
        self._queue_built_at = now
        wall = self.clock.wall()
        queue: list[tuple[str, str | Attempt]] = []
        # Resends first: they are calls that may already exist and only need confirming.
        margin = self.due_margin_s
        resends: list[tuple[int, Attempt]] = []
        for attempt in self.store.attempts("sending"):
            if attempt.idempotency_key in self._in_flight:
                continue
            row = self.store.row(attempt.row_key)
            if _open_for(self.window_for(row), wall, margin) is not None:
                resends.append((row.line, attempt))
        resends.sort(key=lambda r: r[0])
        queue += [("resend", attempt) for _, attempt in resends]
        groups = []
        for key in self.store.due_groups(wall):
            closes = _open_for(self.window_for(probe_row(key)), wall, margin)
            if closes is not None:
                groups.append((closes, key))
        page = self.store.due_rows(groups, wall, limit=QUEUE_PAGE, skip=self._rows_in_flight())
        queue += [("new", row_key) for row_key, _, _ in page]
        self._queue = queue

    def _rows_in_flight(self) -> set[str]:
        return {task.get_name() for task in self._in_flight.values()}

    def _call_slot_free(self) -> bool:
        """The pace first, then the limiter (asking it also queues the campaign's calls)."""
        queued = len(self._queue)
        if self._pacer.ready():
            return self._call_turn is None or self._call_turn(None, queued)
        if self._call_turn is not None:
            # Held by the pace: the calls stay queued, so that plain requests (the
            # collector's, another campaign's) leave request slots for them.
            self._call_turn(self._pacer.free_at(), queued)
        return False

    async def _start_sends(self, now: float) -> None:
        if self._halt_sending:
            return
        self._refresh_queue(now)
        while self._queue and len(self._in_flight) < MAX_PARALLEL_SENDS:
            if self._halt_sending or not self._call_slot_free():
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
                assert isinstance(item, str)
                row = self.store.row(item)  # the queue may be a second old
                if row.progress not in ("pending", "retry_scheduled"):
                    continue
                phone = row.e164
            verdict = self._gate(row, phone, attempt if kind == "resend" else None)
            if not verdict.ok:
                continue
            await self._pacer.take()  # never waits: ready() said yes in this same turn
            now = self.clock.now()
            if kind == "new":
                attempt = self._begin(row, now)
            send_by = None
            if verdict.send_by is not None:  # the same instant on the clock the client uses
                send_by = now + (verdict.send_by - self.clock.wall())
            task = asyncio.create_task(self._send(attempt, send_by), name=attempt.row_key)
            self._in_flight[attempt.idempotency_key] = task
            # Let the send reach the client's limiter, which records its call slot at once,
            # before the next call is weighed: call_turn then sees it taken.
            await asyncio.sleep(0)

    def _gate(self, row: StoredRow, phone: str | None, attempt: Attempt | None) -> GateVerdict:
        """Ask the send gate; a final refusal blocks the row (and withholds a re-send)."""
        wall = self.clock.wall()
        if self.gate is None:  # unit tests that build the engine by hand: windows only
            window = self.window_for(row)
            return GateVerdict(window.is_open(wall), "outside calling hours")
        # The attempt's key (the one _begin gives a new attempt) records the call in the
        # calls-per-number ledger: a re-send of the same attempt is the same call.
        key = (
            attempt.idempotency_key
            if attempt is not None
            else idempotency_key(
                self.settings.campaign, row.row_key, self.store.next_attempt_number(row.row_key)
            )
        )
        verdict = self.gate.check(row, phone, wall, attempt_key=key)
        if verdict.defer and attempt is None and verdict.retry_at is not None:
            # Over a frequency cap: the row waits like a retry, until a slot frees up.
            log.info("row %s waits: %s", row.row_key, verdict.reason)
            self.store.set_row_progress(
                row.row_key, "retry_scheduled", reason=verdict.reason, next_due=verdict.retry_at
            )
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


def _open_for(window: CallingWindowLike, wall: float, margin: float) -> float | None:
    """When the window open at ``wall`` closes (inf: never), if a call may start now with
    ``margin`` to spare; None when it may not."""
    if not window.is_open(wall):
        return None
    closes = window.closes_at(wall)
    if closes is None:
        return float("inf")
    return closes if wall + margin <= closes else None
