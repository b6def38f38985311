"""Batches mode: fold the rows of a batch back into the checkpoint, a page at a time.

Rows before the first unsettled one are final, so each batch keeps the cursor of the page
that starts there and never reads a settled page twice. A ``failed`` row's reason is not
on the rows page; one list of the batch's failed calls tells an empty wallet apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from campaign.engine.api import BatchesApi
from campaign.engine.batches.plan import recorded_rows, written_ref
from campaign.engine.batches.results import (
    BATCH_TERMINAL,
    RowVerdict,
    classify_row,
    first_open_row,
    needs_failure_reason,
)
from campaign.engine.frame import EngineDeps, EngineResult
from campaign.engine.outcomes import record_call_end
from campaign.store.batches import BatchState, Member, StoredBatch
from campaign.store.checkpoint import Attempt, CallEnd

log = logging.getLogger("campaign.batches")

ROWS_PAGE = 500  # the contract's largest rows page
CALLS_PAGE = 100


class BatchCollector:
    """Reads batch rows and records each attempt's end, rejection or return."""

    def __init__(self, deps: EngineDeps[BatchesApi], result: EngineResult) -> None:
        self.deps = deps
        self.store = deps.store
        self.client = deps.client
        self.clock = deps.clock
        self.result = result

    async def read_rows(self, stored: StoredBatch, batch_status: str) -> None:
        """Read the batch's unsettled pages and fold every settled row in."""
        assert stored.batch_id is not None
        members = self.store.batch_members(stored.seq)
        # Rows are matched against the file as uploaded (its row_ref cells and numbers),
        # and map to members by position: a key the file could not hold as is still matches.
        recorded = recorded_rows(stored.csv)
        if len(recorded) == len(members):
            refs = [r.row_ref for r in recorded]
            phones: list[str] | None = [r.phone for r in recorded]
        else:  # not a file we rendered: fall back to the keys as written
            refs, phones = [written_ref(m.row_key) for m in members], None
        cursor, rows_read = stored.rows_cursor, stored.rows_read
        failure_reasons: dict[str, str | None] | None = None
        while True:
            page = await self.client.list_batch_rows(
                stored.batch_id, limit=ROWS_PAGE, cursor=cursor
            )
            self.result.polls += 1
            now = self.clock.now()
            verdicts = [
                classify_row(r, refs, batch_status, ended_at=now, phones=phones) for r in page.data
            ]
            if failure_reasons is None and any(needs_failure_reason(v) for v in verdicts):
                failure_reasons = await self._failure_reasons(stored.batch_id)
            with self.store.transaction():
                for verdict in verdicts:
                    self._apply(verdict, members, failure_reasons or {}, now)
            settled_to = first_open_row(verdicts)
            if settled_to < len(verdicts) or page.next_cursor is None:
                if settled_to == len(verdicts):
                    rows_read += len(verdicts)
                    cursor = page.next_cursor
                break
            rows_read += len(verdicts)
            cursor = page.next_cursor
        now = self.clock.now()
        self.store.advance_batch_rows(stored.seq, rows_read, cursor, now)

    def finish_if_read(self, stored: StoredBatch, batch_status: str) -> None:
        """Close the batch once the platform has ended it and every row has been read."""
        finished = stored.state not in ("uploaded", "running")
        if (
            not finished
            and batch_status in BATCH_TERMINAL
            and stored.rows_read >= stored.rows_total
        ):
            state: BatchState = "done" if batch_status == "completed" else "failed"
            error = None if state == "done" else f"batch {batch_status}"
            self.store.finish_batch(stored.seq, state, self.clock.now(), error=error)
            log.info("batch %d %s; all %d rows read", stored.seq, batch_status, stored.rows_read)

    async def _failure_reasons(self, batch_id: str) -> dict[str, str | None]:
        """call id → failure_reason of the batch's failed calls (the rows page lacks it)."""
        reasons: dict[str, str | None] = {}
        cursor: str | None = None
        while True:
            page = await self.client.list_calls(
                batch_id=batch_id, status="failed", limit=CALLS_PAGE, cursor=cursor
            )
            self.result.polls += 1
            for call in page.data:
                reasons[call.id] = call.failure_reason
            cursor = page.next_cursor
            if not cursor:
                return reasons

    def _apply(
        self,
        verdict: RowVerdict,
        members: Sequence[Member],
        failure_reasons: dict[str, str | None],
        now: float,
    ) -> None:
        member = None if verdict.position is None else members[verdict.position]
        if member is None:
            log.warning(
                "a batch row matches none of the batch's rows (status %s)",
                verdict.status,
                extra={"call_id": verdict.call_id, "status": verdict.status},
            )
            return
        attempt = self.store.attempt(member.attempt_key)
        if attempt.state not in ("sending", "sent"):
            return  # already folded in by an earlier read
        if verdict.call_id is not None and attempt.call_id != verdict.call_id:
            self.store.note_batch_call(member.attempt_key, verdict.call_id, verdict.status)
        if verdict.kind == "invalid":
            self.store.reject_batch_row(member.attempt_key, verdict.reason or "rejected by the API")
            self.result.rejected.append(member.row_key)
            self.result.calls_placed -= 1
        elif verdict.kind == "undialed":
            self.store.abandon_attempt(member.attempt_key, verdict.reason or "not dialed")
            self.result.calls_placed -= 1
        elif verdict.kind == "ended" and verdict.end is not None:
            self._end(attempt, verdict.end, failure_reasons.get(verdict.call_id or ""), now)

    def _end(self, attempt: Attempt, end: CallEnd, failure_reason: str | None, now: float) -> None:
        if end.status == "failed":
            end = CallEnd(
                status=end.status,
                failure_reason=failure_reason,
                session_id=end.session_id,
                ended_at=end.ended_at,
            )
        settings = self.deps.settings
        decision = record_call_end(
            self.store, attempt, end, dialled=None, campaign=settings.campaign,
            retry=settings.retry, opt_outs=self.deps.opt_outs, now=now,
            window_for=self.deps.window_for,
        )  # fmt: skip
        if decision.void:
            log.error("calls fail with insufficient_funds: no more batches are uploaded")
            self.result.insufficient_funds = True
        self.deps.progress.finished(end.status, end.outcome)
