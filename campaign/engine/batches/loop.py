"""Batches mode: upload paced batch files, follow them, fold rows back, retry.

Each turn of the loop does it all (uploads are rare): re-send any batch still *uploading*,
poll the running batches on a request budget, read their rows a page at a time once a
page's worth has settled, and upload the next batch when the platform's queue is about to
run dry. Every checkpoint write is synchronous and complete before the next ``await``.
Stopping, idling and the next-due time are the frame's (``campaign.engine.frame``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

from campaign.config.model import CampaignConfig
from campaign.engine.api import BatchesApi
from campaign.engine.attempts import idempotency_key
from campaign.engine.batches.collect import ROWS_PAGE, BatchCollector
from campaign.engine.batches.plan import (
    DEFAULT_MARGIN_S,
    BatchMember,
    Candidate,
    GroupWindow,
    batch_candidates,
    batch_idempotency_key,
    content_hash,
    latest_dial_times,
    plan_next_batch,
    render_csv,
    seconds_per_call,
    split_batches,
)
from campaign.engine.batches.reconcile import BatchUploads
from campaign.engine.batches.results import should_read_rows
from campaign.engine.frame import EngineDeps, EngineFrame, fmt_moment
from campaign.engine.gate import ALLOW, GateVerdict
from campaign.engine.outcomes import fetch_sessions
from campaign.store.batches import ACTIVE_STATES, StoredBatch
from campaign.store.checkpoint import StoredRow
from campaign.store.queue import probe_row

log = logging.getLogger("campaign.batches")

POLL_EVERY_ROWS = 20  # poll a running batch about once per this many dials
MIN_POLL_S = 1.0
MAX_POLL_S = 300.0
MIN_LEAD_S = 30.0
MAX_LEAD_S = 600.0


class CallReservations(Protocol):
    """The shared allowance as batches mode uses it (campaign.limits.allowance)."""

    def reserve_calls(self, times: Iterable[float]) -> None: ...


@dataclass(frozen=True)
class BatchSettings:
    """What only batches mode needs: the file's variable columns, its size."""

    variables: Sequence[str]
    max_rows: int

    @classmethod
    def from_config(cls, config: CampaignConfig) -> BatchSettings:
        """The batch settings of this campaign."""
        return cls(variables=list(config.input.variables), max_rows=config.batch.max_rows)


class BatchesEngine(EngineFrame[BatchesApi]):
    """Runs batches until the work that can be done now is done (or told to stop)."""

    tick_s = 0.05
    # The loop goes idle only once every due row was offered to a batch: a row still
    # waiting then has too little window left and waits for its next window.
    tried_now = True

    def __init__(
        self,
        deps: EngineDeps[BatchesApi],
        *,
        batch: BatchSettings,
        allowance: CallReservations | None = None,
    ) -> None:
        # How late the platform may dial a row compared with our estimate (picked, queued,
        # a poll's worth of error): each expected dial time is taken this much later.
        slack_s = DEFAULT_MARGIN_S
        # A row is planned only if dialled this long before its window closes: the slack,
        # plus the gate's stop_before_close (else the planner would pick rows the gate
        # then leaves out, batch after batch).
        margin_s = slack_s + (deps.gate.margin_s if deps.gate is not None else 0.0)
        super().__init__(deps, due_margin_s=margin_s)
        self.batch = batch
        self.slack_s = slack_s
        self.margin_s = margin_s
        # Campaigns sharing the key's limits learn when our batches will dial (they wait
        # for those slots instead of meeting 429s); None when running alone in tests.
        self.allowance = allowance
        settings = self.settings
        self.spacing = seconds_per_call(settings.call_limits)
        request_rate = min((lim.count / lim.window for lim in settings.request_limits), default=1.0)
        # Poll about once per POLL_EVERY_ROWS dials, and never faster than half the
        # request budget allows: a poll is one request per running batch.
        self.poll_s = min(
            MAX_POLL_S, max(MIN_POLL_S, self.spacing * POLL_EVERY_ROWS, 2.0 / request_rate)
        )
        # Upload the next batch while this much queue is left: enough to cover a few
        # polls and an upload, short enough that rows stay ours to re-order and retry.
        self.lead_s = min(MAX_LEAD_S, max(MIN_LEAD_S, 3 * self.poll_s))
        self.collector = BatchCollector(deps, self.result)
        self.uploads = BatchUploads(deps, self.result, spacing=self.spacing, slack_s=slack_s)
        self._last_poll = float("-inf")
        self._no_fit_until = float("-inf")  # due rows fit in no batch until then

    # --- the frame's hooks --------------------------------------------------------------------

    async def _step(self, now: float) -> float | None:
        for stored in self.store.stored_batches("uploading"):
            await self._upload(stored)
            if self.result.error is not None:
                return now
        active = self.store.stored_batches(*ACTIVE_STATES)
        if active and now - self._last_poll >= self.poll_s:
            await self._poll(active)
            return now
        if now >= self._no_fit_until and await self._maybe_start_batch(now):
            return now
        if self.settings.fetch_sessions and self.store.count_needing_session():
            self.result.sessions += await fetch_sessions(self.store, self.client)
        if not active:
            return None
        return self._next_wake(now)

    def _work_left_now(self) -> bool:
        active = bool(self.store.stored_batches("uploading", *ACTIVE_STATES))
        due = self.result.next_due
        due_now = due is not None and due <= self.clock.wall()
        return active or (due_now and not self.result.insufficient_funds)

    def _next_wake(self, now: float) -> float:
        wake = self._last_poll + self.poll_s
        start_at = self._queue_drains_at(now) - self.lead_s
        if start_at > now and self.store.due_groups(now):
            wake = min(wake, start_at)
        return max(wake, now + self.tick_s)

    # --- uploads ------------------------------------------------------------------------

    def _queue_drains_at(self, now: float) -> float:
        """When the rows waiting at the platform will have been dialed (estimate)."""
        # Batches share the outbound limit: their queues drain one after the other, each
        # from when it was last seen (or from its hold, a wall-clock instant).
        skew = self.skew()
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
        keys = self.store.due_groups(now)
        if not keys:
            return False
        skew = self.skew()
        wall = now + skew
        stop_at = self.stop_at()
        groups = []
        for key in keys:
            window = self.window_for(probe_row(key))
            opens = wall if window.is_open(wall) else window.next_open(wall)
            if opens is None:
                continue
            if stop_at is not None and opens - skew >= stop_at:
                continue
            groups.append(GroupWindow(key, opens, window.closes_at(opens)))
        candidates = [
            Candidate(row_key, group.opens_at, group.closes_at, line)
            for group, row_key, line in batch_candidates(
                groups,
                lambda keys, limit: self.store.due_rows([(0.0, k) for k in keys], now, limit=limit),
                now=wall,
                spacing=self.spacing,
                queued_rows=queued_rows,
                max_rows=self.batch.max_rows,
                margin_s=self.margin_s,
                hold_horizon_s=self.lead_s,
            )
        ]
        paced = plan_next_batch(
            candidates,
            now=wall,
            spacing=self.spacing,
            queued_rows=queued_rows,
            max_rows=self.batch.max_rows,
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
        # One ledger transaction for the members' calls (see SendGate.recording).
        with self.gate.recording() if self.gate is not None else nullcontext():
            for index, row_key in enumerate(paced.row_keys):
                row = self.store.row(row_key)
                dial_by = paced.first_dial_at + index * self.spacing + self.slack_s
                verdict = self._gate_member(row, row.e164, ring_from, dial_by)
                if verdict.final:
                    self.store.block_row(
                        row_key,
                        plan_state=verdict.plan_state or "suppressed",
                        reason=verdict.reason or "refused by the send gate",
                    )
                    log.info(
                        "line %d left out of the next batch: %s",
                        row.line,
                        verdict.reason,
                        extra={"row_key": row_key},
                    )
                    blocked += 1
                elif verdict.defer and verdict.retry_at is not None:
                    # Over a frequency cap: the row waits like a retry, until a slot frees up.
                    self.store.set_row_progress(
                        row_key,
                        "retry_scheduled",
                        reason=verdict.reason,
                        next_due=verdict.retry_at,
                    )
                    log.info(
                        "line %d waits: %s", row.line, verdict.reason, extra={"row_key": row_key}
                    )
                    blocked += 1
                elif verdict.ok and row.e164 is not None:
                    members.append(BatchMember(row_key, row.e164, row.variables))
        if not members:
            self._no_fit_until = now + self.poll_s
            return blocked > 0
        chunk = split_batches(members, self.batch.variables, max_rows=self.batch.max_rows)[0]
        stored = self.commit(chunk, paced.not_before, now)
        log.info(
            "batch %d: %d rows%s", stored.seq, stored.rows_total,
            f", held until {fmt_moment(paced.not_before)}" if paced.not_before else "",
        )  # fmt: skip
        await self._upload(stored, fresh=True)
        return True

    def _gate_member(
        self, row: StoredRow, phone: str | None, ring_from: float, dial_by: float
    ) -> GateVerdict:
        """The send gate's verdict for one member (everything passes without a gate)."""
        if self.gate is None:
            return ALLOW
        # ``ring_from`` is the first moment the platform may dial the row (now, or the
        # batch's hold): its window must be open then and stay open past ``dial_by``.
        # The key is the one ``commit`` gives the member's attempt: the call is recorded
        # in the calls-per-number ledger under it as the batch is about to be uploaded.
        key = idempotency_key(
            self.settings.campaign, row.row_key, self.store.next_attempt_number(row.row_key)
        )
        return self.gate.check(row, phone, ring_from, dial_by=dial_by, attempt_key=key)

    def commit(
        self, chunk: Sequence[BatchMember], not_before: float | None, now: float
    ) -> StoredBatch:
        """Record a batch of these rows as *uploading*, each with a new *sending* attempt."""
        csv = render_csv(chunk, self.batch.variables)
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
        hold = -self.skew() + (uploaded.not_before or float("-inf"))
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
            counts = batch.progress
            queued = counts.pending + counts.queued
            self.store.record_batch_progress(
                stored.seq, server_status=batch.status, queued=queued, now=now
            )
            settled = counts.done + counts.invalid
            if should_read_rows(
                batch_status=batch.status,
                total=stored.rows_total,
                settled=settled,
                rows_read=stored.rows_read,
                page_size=ROWS_PAGE,
            ):
                await self.collector.read_rows(self.store.stored_batch(stored.seq), batch.status)
            self.collector.finish_if_read(self.store.stored_batch(stored.seq), batch.status)
