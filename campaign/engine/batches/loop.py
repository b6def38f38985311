"""The batches-mode loop: upload paced batch files, follow them, fold rows back, retry.

One coroutine does it all (uploads are rare): re-send any batch still *uploading*, poll
the running batches on a request budget, read their rows a page at a time once a page's
worth has settled, and upload the next batch when the platform's queue is about to run
dry. Every checkpoint write is synchronous and complete before the next ``await``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from campaign.clock import Clock, utc
from campaign.config.limit import Limit
from campaign.config.model import CampaignConfig
from campaign.engine.attempts import idempotency_key
from campaign.engine.batches.collect import ROWS_PAGE, BatchCollector, RowsApi
from campaign.engine.batches.plan import (
    DEFAULT_MARGIN_S,
    BatchMember,
    Candidate,
    batch_idempotency_key,
    content_hash,
    latest_dial_times,
    plan_next_batch,
    render_csv,
    seconds_per_call,
    split_batches,
)
from campaign.engine.batches.reconcile import BatchUploads, FindApi, UploadSettings
from campaign.engine.batches.results import should_read_rows
from campaign.engine.calls import EngineResult, Progress
from campaign.engine.collect import RetryPolicy, fetch_sessions
from campaign.engine.gate import ALLOW, GateVerdict, SendGate
from campaign.errors import CampaignError
from campaign.planning.schedule import WindowFor
from campaign.store.batches import ACTIVE_STATES, StoredBatch
from campaign.store.checkpoint import Store, StoredRow
from campaign.store.optout import OptOutList

log = logging.getLogger("campaign.batches")

POLL_EVERY_ROWS = 20  # poll a running batch about once per this many dials
MIN_POLL_S = 1.0
MAX_POLL_S = 300.0
MIN_LEAD_S = 30.0
MAX_LEAD_S = 600.0
TICK_S = 0.05


class CallReservations(Protocol):
    """The shared allowance as batches mode uses it (campaign.allowance)."""

    def reserve_calls(self, times: Iterable[float]) -> None: ...


class BatchesApi(FindApi, RowsApi, Protocol):
    """The client methods batches mode uses."""

    async def get_session(self, session_id: str) -> Any: ...


@dataclass(frozen=True)
class BatchSettings:
    """The knobs of one batches-mode run."""

    campaign: str
    scenario_id: str
    variables: Sequence[str]
    retry: RetryPolicy
    call_limits: Sequence[Limit]
    request_limits: Sequence[Limit]
    max_rows: int
    deadline: float | None = None
    fetch_sessions: bool = True

    @classmethod
    def from_config(
        cls, config: CampaignConfig, *, deadline: float | None, fetch_sessions: bool
    ) -> BatchSettings:
        """The settings of a batches-mode run of this campaign."""
        return cls(
            campaign=config.campaign,
            scenario_id=config.scenario_id,
            variables=list(config.input.variables),
            retry=config.retry,
            call_limits=list(config.limits.calls),
            request_limits=list(config.limits.requests),
            max_rows=config.batch.max_rows,
            deadline=deadline,
            fetch_sessions=fetch_sessions,
        )


class BatchesEngine:
    """Runs batches until the work that can be done now is done (or told to stop)."""

    def __init__(
        self,
        *,
        store: Store,
        client: BatchesApi,
        clock: Clock,
        settings: BatchSettings,
        window_for: WindowFor,
        opt_outs: OptOutList,
        stop: asyncio.Event,
        progress: Progress | None = None,
        gate: SendGate | None = None,
        allowance: CallReservations | None = None,
    ) -> None:
        self.store = store
        # Campaigns sharing the key's limits learn when our batches will dial (they wait
        # for those slots instead of meeting 429s); None when running alone in tests.
        self.allowance = allowance
        # Every upload and re-send asks the gate (campaign.gate); None only in unit tests
        # that build the engine by hand.
        self.gate = gate
        self.client = client
        self.clock = clock
        self.settings = settings
        self.window_for = window_for
        self.opt_outs = opt_outs
        self.stop = stop
        self.progress = progress
        self.result = EngineResult()
        self.spacing = seconds_per_call(settings.call_limits)
        # How late the platform may dial a row compared with our estimate (picked, queued,
        # a poll's worth of error): each expected dial time is taken this much later.
        self.slack_s = DEFAULT_MARGIN_S
        # A row is planned only if dialled this long before its window closes: the slack,
        # plus the gate's stop_before_close (else the planner would pick rows the gate
        # then leaves out, batch after batch).
        self.margin_s = self.slack_s + (gate.margin_s if gate is not None else 0.0)
        request_rate = min((lim.count / lim.window for lim in settings.request_limits), default=1.0)
        # Poll about once per POLL_EVERY_ROWS dials, and never faster than half the
        # request budget allows: a poll is one request per running batch.
        self.poll_s = min(
            MAX_POLL_S, max(MIN_POLL_S, self.spacing * POLL_EVERY_ROWS, 2.0 / request_rate)
        )
        # Upload the next batch while this much queue is left: enough to cover a few
        # polls and an upload, short enough that rows stay ours to re-order and retry.
        self.lead_s = min(MAX_LEAD_S, max(MIN_LEAD_S, 3 * self.poll_s))
        self.collector = BatchCollector(
            store=store,
            client=client,
            clock=clock,
            campaign=settings.campaign,
            retry=settings.retry,
            opt_outs=opt_outs,
            result=self.result,
            progress=progress,
        )
        self.uploads = BatchUploads(
            store=store,
            client=client,
            clock=clock,
            gate=gate,
            settings=UploadSettings(
                campaign=settings.campaign,
                scenario_id=settings.scenario_id,
                spacing=self.spacing,
                slack_s=self.slack_s,
            ),
            result=self.result,
            progress=progress,
        )
        self._last_poll = float("-inf")
        self._no_fit_until = float("-inf")  # due rows fit in no batch until then

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> EngineResult:
        """Upload, follow and fold back until nothing more can be done now."""
        try:
            await self._loop()
        except CampaignError as exc:
            self.result.error = self.result.error or exc
        self._finish()
        return self.result

    async def _loop(self) -> None:
        while True:
            now = self.clock.now()
            if self.result.error is not None or self.result.insufficient_funds:
                return
            if self._should_stop(now):
                self.result.stopped_early = True
                return
            for stored in self.store.stored_batches("uploading"):
                await self._upload(stored)
                if self.result.error is not None:
                    break
            if self.result.error is not None:
                return
            active = self.store.stored_batches(*ACTIVE_STATES)
            if active and now - self._last_poll >= self.poll_s:
                await self._poll(active)
                continue
            if now >= self._no_fit_until and await self._maybe_start_batch(now):
                continue
            if self.settings.fetch_sessions and self.store.count_needing_session():
                self.result.sessions += await fetch_sessions(self.store, self.client)
            if not active:
                wait_until = self._idle_until(now)
                if wait_until is None:
                    return
                await self._sleep_until(wait_until)
                continue
            await self._sleep_until(self._next_wake(now))

    def _should_stop(self, now: float) -> bool:
        if self.stop.is_set():
            self.result.stop_reason = self.result.stop_reason or "stopped by a signal"
            return True
        if self.settings.deadline is not None and now >= self.settings.deadline:
            self.result.stop_reason = self.result.stop_reason or "reached the time limit"
            return True
        return False

    def _next_wake(self, now: float) -> float:
        wake = self._last_poll + self.poll_s
        start_at = self._queue_drains_at(now) - self.lead_s
        if start_at > now and self.store.rows_due(now):
            wake = min(wake, start_at)
        return max(wake, now + TICK_S)

    async def _sleep_until(self, moment: float) -> None:
        while self.clock.now() < moment and not self._should_stop(self.clock.now()):
            await self.clock.sleep(min(1.0, max(TICK_S, moment - self.clock.now())))

    # --- uploads ------------------------------------------------------------------------

    def _skew(self) -> float:
        """Wall clock minus the engine clock: calendar decisions (calling windows, a
        batch's not_before) are taken on the wall clock, rate pacing on ``now()``."""
        return self.clock.wall() - self.clock.now()

    def _queue_drains_at(self, now: float) -> float:
        """When the rows waiting at the platform will have been dialed (estimate)."""
        # Batches share the outbound limit: their queues drain one after the other, each
        # from when it was last seen (or from its hold, a wall-clock instant).
        skew = self._skew()
        drains = float("-inf")
        for stored in self.store.stored_batches(*ACTIVE_STATES):
            if stored.queued is None or stored.queued_seen_at is None:
                continue
            hold = float("-inf") if stored.not_before is None else stored.not_before - skew
            start = max(stored.queued_seen_at, hold, drains)
            drains = start + stored.queued * self.spacing
        return max(now, drains)

    async def _maybe_start_batch(self, now: float) -> bool:
        drains = self._queue_drains_at(now)
        if drains - now > self.lead_s:
            return False
        queued_rows = round((drains - now) / self.spacing)
        rows = {row.row_key: row for row in self.store.rows_due(now)}
        if not rows:
            return False
        skew = self._skew()
        wall = now + skew
        candidates = []
        for row in rows.values():
            window = self.window_for(row)
            opens = wall if window.is_open(wall) else window.next_open(wall)
            if opens is None:
                continue
            if self.settings.deadline is not None and opens - skew >= self.settings.deadline:
                continue
            candidates.append(Candidate(row.row_key, opens, window.closes_at(opens), row.line))
        paced = plan_next_batch(
            candidates,
            now=wall,
            spacing=self.spacing,
            queued_rows=queued_rows,
            max_rows=self.settings.max_rows,
            margin_s=self.margin_s,
            hold_horizon_s=self.lead_s,
        )
        if paced is None:
            self._no_fit_until = now + self.poll_s
            return False
        # The gate, at the moment of sending, with each member's expected dial time: the
        # platform dials in file order from the hold (or now), one row per spacing.
        ring_from = max(wall, paced.not_before or wall)
        members, blocked = [], 0
        for index, row_key in enumerate(paced.row_keys):
            row = rows[row_key]
            dial_by = paced.first_dial_at + index * self.spacing + self.slack_s
            verdict = self._check(row, row.e164, ring_from, dial_by)
            if verdict.final:
                self.store.block_row(
                    row_key,
                    plan_state=verdict.plan_state or "suppressed",
                    reason=verdict.reason or "refused by the send gate",
                )
                log.info("line %d left out of the next batch: %s", row.line, verdict.reason)
                blocked += 1
            elif verdict.ok and row.e164 is not None:
                members.append(BatchMember(row_key, row.e164, row.variables))
        if not members:
            self._no_fit_until = now + self.poll_s
            return blocked > 0
        chunk = split_batches(members, self.settings.variables, max_rows=self.settings.max_rows)[0]
        stored = self.commit(chunk, paced.not_before, now)
        log.info(
            "batch %d: %d rows%s", stored.seq, stored.rows_total,
            f", held until {_fmt(paced.not_before)}" if paced.not_before else "",
        )  # fmt: skip
        await self._upload(stored, fresh=True)
        return True

    def _check(
        self, row: StoredRow, phone: str | None, ring_from: float, dial_by: float
    ) -> GateVerdict:
        """The send gate's verdict for one member (everything passes without a gate)."""
        if self.gate is None:
            return ALLOW
        # ``ring_from`` is the first moment the platform may dial the row (now, or the
        # batch's hold): its window must be open then and stay open past ``dial_by``.
        return self.gate.check(row, phone, ring_from, dial_by=dial_by)

    def commit(
        self, chunk: Sequence[BatchMember], not_before: float | None, now: float
    ) -> StoredBatch:
        """Record a batch of these rows as *uploading*, each with a new *sending* attempt."""
        csv = render_csv(chunk, self.settings.variables)
        seq = self.store.next_batch_seq()
        campaign = self.settings.campaign
        attempts = []
        for member in chunk:
            number = self.store.next_attempt_number(member.row_key)
            key = idempotency_key(campaign, member.row_key, number)
            attempts.append((member.row_key, number, key))
        return self.store.commit_batch(
            seq=seq,
            idempotency_key=batch_idempotency_key(campaign, seq, csv),
            csv=csv,
            content_hash=content_hash(csv),
            not_before=not_before,
            members=attempts,
            now=now,
            scenario_id=self.settings.scenario_id,
            name=f"{campaign} #{seq}",
            phones=[member.phone for member in chunk],
        )

    async def _upload(self, stored: StoredBatch, *, fresh: bool = False) -> None:
        ahead_until = self._queue_drains_at(self.clock.now())  # our rows queued before it
        await self.uploads.upload(stored, fresh=fresh, queue_drains_at=self._queue_drains_at)
        uploaded = self.store.stored_batch(stored.seq)
        if self.allowance is None or uploaded.state != "uploaded":
            return
        hold = -self._skew() + (uploaded.not_before or float("-inf"))
        self.allowance.reserve_calls(
            latest_dial_times(
                max(ahead_until, hold),
                uploaded.rows_total,
                spacing=self.spacing,
                window=max(limit.window for limit in self.settings.call_limits),
                slack_s=self.slack_s,
            )
        )

    # --- following ----------------------------------------------------------------------

    async def _poll(self, active: Sequence[StoredBatch]) -> None:
        self._last_poll = self.clock.now()
        for stored in active:
            assert stored.batch_id is not None
            batch = await self.client.get_batch(stored.batch_id)
            self.result.polls += 1
            now = self.clock.now()
            progress = batch.progress
            queued = progress.pending + progress.queued
            self.store.record_batch_progress(
                stored.seq, server_status=batch.status, queued=queued, now=now
            )
            settled = progress.done + progress.invalid
            if should_read_rows(
                batch_status=batch.status,
                total=stored.rows_total,
                settled=settled,
                rows_read=stored.rows_read,
                page_size=ROWS_PAGE,
            ):
                await self.collector.read_rows(self.store.stored_batch(stored.seq), batch.status)
            self.collector.finish_if_read(self.store.stored_batch(stored.seq), batch.status)

    # --- the end ------------------------------------------------------------------------

    def _idle_until(self, now: float) -> float | None:
        """When the next retry or calling window falls due, if the run may wait for it."""
        self._compute_next_due(now)
        due = self.result.next_due
        if due is None or self.settings.deadline is None or due >= self.settings.deadline:
            return None
        return max(due, now + TICK_S)

    def _compute_next_due(self, now: float) -> None:
        next_due: float | None = None
        reason: str | None = None
        for row in self.store.rows(include_vanished=False):
            if row.progress == "retry_scheduled" and row.next_due is not None:
                due, why = self._row_due(row, max(row.next_due, now), now), "retry"
            elif row.progress == "pending":
                due, why = self._row_due(row, now, now), "calling window opens"
            else:
                continue
            if due is not None and (next_due is None or due < next_due):
                next_due, reason = due, why
        self.result.next_due = next_due
        self.result.next_due_reason = reason

    def _row_due(self, row: StoredRow, start: float, now: float) -> float | None:
        """When a row can next go into a batch: a row open now but left out of every
        batch has too little window left, so it waits for its next window."""
        window = self.window_for(row)
        skew = self._skew()
        start, now = start + skew, now + skew
        due: float | None = start
        if not window.is_open(start):
            due = window.next_open(start)
        else:
            closes = window.closes_at(start)
            if closes is not None and not (start > now and start + self.margin_s < closes):
                due = window.next_open(closes)
        return None if due is None else due - skew

    def _finish(self) -> None:
        now = self.clock.now()
        self._compute_next_due(now)
        active = bool(self.store.stored_batches("uploading", *ACTIVE_STATES))
        due_now = self.result.next_due is not None and self.result.next_due <= now
        self.result.work_left_now = active or (due_now and not self.result.insufficient_funds)


def _fmt(moment: float) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")
