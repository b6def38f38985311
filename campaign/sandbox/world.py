"""The emulated platform's state, advanced lazily to the clock's ``now``.

Nothing happens in the background: before each request the dispatcher calls
``advance(now)``, which replays every lifecycle event due up to ``now`` in time order —
calls dialing, ringing, talking and ending, batches validating and dialing their rows as the
project's outbound window has room. So a FakeClock test moves time and asks.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from campaign.sandbox.config import SandboxConfig
from campaign.sandbox.outcomes import plan_call
from campaign.sandbox.problems import new_id
from campaign.sandbox.records import (
    BatchRecord,
    BatchRow,
    CallRecord,
    KnowledgeFileRecord,
    TransactionRecord,
    WebhookRecord,
    batch_from_plain,
    to_plain,
)
from campaign.sandbox.windows import SlidingWindow

CENT = Decimal("0.01")
DIAL_FEE = Decimal("0.01")
PER_MINUTE = Decimal("0.09")
PER_TOOL_CALL = Decimal("0.01")
VALIDATING_S = 2.0
EventSink = Callable[[str, str, str], None]  # (project_id, event type, object id)


def key_fingerprint(api_key: str) -> str:
    """A stable, non-secret name for a key (state files never hold the key itself)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class World:
    """All projects' calls, batches, wallets, webhooks, files and limit windows."""

    def __init__(self, config: SandboxConfig, now: float) -> None:
        self.config = config
        self.cursor = now
        self.calls: dict[str, CallRecord] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.webhooks: dict[str, WebhookRecord] = {}
        self.knowledge_files: dict[str, KnowledgeFileRecord] = {}
        self.transactions: list[TransactionRecord] = []
        self.balances: dict[str, Decimal] = {}
        self.sessions: dict[str, str] = {}  # session id -> call id
        self.attempts: dict[str, int] = {}  # "project|phone" -> calls placed so far
        self.outbound: dict[str, SlidingWindow] = {}
        self.per_minute: dict[str, SlidingWindow] = {}  # key fingerprint -> window
        self.per_hour: dict[str, SlidingWindow] = {}
        self.stats = {"requests": 0, "rate_limited": 0, "max_outbound": 0, "max_rpm": 0}
        self.stats["max_rph"] = 0
        self.on_event: EventSink | None = None
        # (due time, call id) of each unfinished call's next step; stale entries are skipped
        self._call_events: list[tuple[float, str]] = []
        self._active_batches: set[str] = set()
        self._open_batch_calls: dict[str, int] = {}  # batch id -> its unfinished calls

    # ----- limits -----------------------------------------------------------------------

    def outbound_window(self, project_id: str) -> SlidingWindow:
        """The project's outbound-calls window: direct calls and batch rows share it."""
        if project_id not in self.outbound:
            limit = self.config.limit("outbound_calls")
            self.outbound[project_id] = SlidingWindow(limit.count, limit.window_s)
        return self.outbound[project_id]

    def request_windows(self, api_key: str) -> tuple[SlidingWindow, SlidingWindow]:
        """The key's (per-minute, per-hour) request windows."""
        name = key_fingerprint(api_key)
        if name not in self.per_minute:
            minute = self.config.limit("requests_per_minute")
            hour = self.config.limit("requests_per_hour")
            self.per_minute[name] = SlidingWindow(minute.count, minute.window_s)
            self.per_hour[name] = SlidingWindow(hour.count, hour.window_s)
        return self.per_minute[name], self.per_hour[name]

    def count_request(self, api_key: str, now: float) -> tuple[SlidingWindow, SlidingWindow]:
        """Count one authenticated request against the key's windows."""
        minute, hour = self.request_windows(api_key)
        self.stats["requests"] += 1
        self.stats["max_rpm"] = max(self.stats["max_rpm"], minute.record(now))
        self.stats["max_rph"] = max(self.stats["max_rph"], hour.record(now))
        return minute, hour

    def _count_outbound(self, project_id: str, now: float) -> None:
        seen = self.outbound_window(project_id).record(now)
        self.stats["max_outbound"] = max(self.stats["max_outbound"], seen)

    # ----- wallet -----------------------------------------------------------------------

    def balance(self, project_id: str) -> Decimal:
        """The project's wallet balance."""
        if project_id not in self.balances:
            self.balances[project_id] = Decimal(self.config.wallet_balance).quantize(CENT)
        return self.balances[project_id]

    def _charge(self, project_id: str, amount: Decimal, now: float) -> None:
        if amount <= 0:
            return
        self.balances[project_id] = self.balance(project_id) - amount
        self.transactions.append(
            TransactionRecord(new_id("txn"), project_id, f"{-amount:.2f}", "call", now)
        )

    # ----- creation ---------------------------------------------------------------------

    def create_call(
        self,
        project_id: str,
        fields: dict[str, Any],
        now: float,
        idempotency_key: str | None,
        batch: tuple[str, int] | None = None,
    ) -> CallRecord:
        """Create a call now and count it in the project's outbound window."""
        phone: str = fields["phone"]
        attempt_key = f"{project_id}|{phone}"
        attempt_index = self.attempts.get(attempt_key, 0)
        self.attempts[attempt_key] = attempt_index + 1
        plan = plan_call(
            phone, attempt_index, self.config.time_scale, self.config.scripted_outcomes.get(phone)
        )
        hold = max(now, fields.get("not_before") or now)
        call = CallRecord(
            id=new_id("call"),
            project_id=project_id,
            phone=phone,
            scenario_id=fields["scenario_id"],
            variables=dict(fields.get("variables") or {}),
            caller_id=fields.get("caller_id"),
            metadata=dict(fields.get("metadata") or {}),
            not_before=fields.get("not_before"),
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            batch_id=batch[0] if batch else None,
            batch_row=batch[1] if batch else None,
            final_status=plan.final_status,
            planned_outcome=plan.outcome,
            planned_failure=plan.failure_reason,
            dial_at=round(hold + plan.queue_s, 6),
            ring_s=plan.ring_s,
            talk_s=plan.talk_s,
            tool_calls=plan.tool_calls,
            slot_values=plan.slot_values,
            billed_s=plan.billed_s,
        )
        self.calls[call.id] = call
        self._schedule(call)
        if call.batch_id is not None:
            self._open_batch_calls[call.batch_id] = self._open_batch_calls.get(call.batch_id, 0) + 1
        self._count_outbound(project_id, now)
        return call

    def _schedule(self, call: CallRecord) -> None:
        when = self._call_due(call)
        if when is not None:
            heapq.heappush(self._call_events, (when, call.id))

    def create_batch(
        self, project_id: str, fields: dict[str, Any], rows: list[BatchRow], now: float
    ) -> BatchRecord:
        """Accept a parsed batch file; it validates briefly, then dials rows in file order."""
        batch = BatchRecord(
            id=new_id("bat"),
            project_id=project_id,
            name=fields.get("name"),
            scenario_id=fields["scenario_id"],
            caller_id=fields.get("caller_id"),
            not_before=fields.get("not_before"),
            created_at=now,
            updated_at=now,
            ready_at=round(now + VALIDATING_S * self.config.time_scale, 6),
            rows=rows,
        )
        self.batches[batch.id] = batch
        self._active_batches.add(batch.id)
        return batch

    def end_batch(self, batch: BatchRecord, status: str, now: float) -> None:
        """End a batch as ``canceled`` or ``failed``: undialed rows and queued calls cancel."""
        # The status changes first, so the calls canceled below cannot "complete" the batch.
        batch.status = status
        batch.completed_at = batch.updated_at = now
        self._active_batches.discard(batch.id)
        for row in batch.rows:
            if row.status == "pending":
                row.status = "canceled"
            elif row.call_id is not None:
                call = self.calls[row.call_id]
                if call.status == "queued":
                    call.status = "canceled"
                    call.ended_at = call.updated_at = now
                    self._finish_call(call, now)

    # ----- lifecycle --------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply every lifecycle event due at or before ``now``, in time order."""
        while True:
            due: tuple[float, int, str] | None = None
            while self._call_events:
                when, call_id = self._call_events[0]
                if self._call_due(self.calls[call_id]) == when:
                    due = (when, 0, call_id)
                    break
                heapq.heappop(self._call_events)  # stale: the call moved on
            if due is not None and due[0] > now:
                due = None
            for batch_id in self._active_batches:
                batch_when = self._batch_due(self.batches[batch_id])
                if batch_when is None or batch_when > now:
                    continue
                if due is None or (batch_when, 1, batch_id) < due:
                    due = (batch_when, 1, batch_id)
            if due is None:
                break
            when, kind, ident = due
            self.cursor = max(self.cursor, when)
            if kind == 0:
                heapq.heappop(self._call_events)
                call = self.calls[ident]
                self._step_call(call, when)
                self._schedule(call)
            else:
                self._step_batch(self.batches[ident], when)
        self.cursor = max(self.cursor, now)

    def _call_due(self, call: CallRecord) -> float | None:
        if call.status == "queued":
            return call.dial_at
        if call.status == "dialing" and call.dialed_at is not None:
            return round(call.dialed_at + call.ring_s, 6)
        if call.status == "in_progress" and call.started_at is not None:
            return round(call.started_at + call.talk_s, 6)
        return None

    def _step_call(self, call: CallRecord, when: float) -> None:
        call.updated_at = when
        if call.status == "queued":
            if self.balance(call.project_id) <= 0:
                call.status, call.failure_reason = "failed", "insufficient_funds"
                call.ended_at = when
                self._finish_call(call, when)
            else:
                call.status, call.dialed_at = "dialing", when
        elif call.status == "dialing":
            if call.final_status == "completed":
                call.status, call.started_at = "in_progress", when
                call.session_id = new_id("ses")
                self.sessions[call.session_id] = call.id
            else:
                call.status, call.ended_at = call.final_status, when
                call.failure_reason = call.planned_failure if call.status == "failed" else None
                call.cost = f"{DIAL_FEE:.2f}"
                self._charge(call.project_id, DIAL_FEE, when)
                self._finish_call(call, when)
        elif call.status == "in_progress":
            call.status, call.ended_at = "completed", when
            call.outcome = call.planned_outcome
            call.goal_achieved = call.planned_outcome == "goal_achieved"
            minutes = (Decimal(str(call.billed_s)) / 60).quantize(CENT, ROUND_HALF_UP)
            amount = DIAL_FEE + (minutes * PER_MINUTE).quantize(CENT, ROUND_HALF_UP)
            amount += PER_TOOL_CALL * call.tool_calls
            call.minutes, call.cost = f"{minutes:.2f}", f"{amount:.2f}"
            self._charge(call.project_id, amount, when)
            self._finish_call(call, when)

    def _finish_call(self, call: CallRecord, when: float) -> None:
        if call.batch_id is not None:
            self._open_batch_calls[call.batch_id] -= 1
        if call.status in ("completed", "failed") and self.on_event is not None:
            self.on_event(call.project_id, f"call.{call.status}", call.id)
        if call.batch_id is not None:
            batch = self.batches[call.batch_id]
            batch.updated_at = max(batch.updated_at, when)
            self._maybe_complete(batch, when)

    def _pending_row(self, batch: BatchRecord) -> BatchRow | None:
        while batch.next_row < len(batch.rows):
            row = batch.rows[batch.next_row]
            if row.status == "pending":
                return row
            batch.next_row += 1
        return None

    def _batch_due(self, batch: BatchRecord) -> float | None:
        if batch.status == "validating":
            return batch.ready_at
        if batch.status != "running" or self._pending_row(batch) is None:
            return None
        hold = max(batch.ready_at, batch.not_before or 0.0, self.cursor)
        return self.outbound_window(batch.project_id).next_room_at(hold)

    def _step_batch(self, batch: BatchRecord, when: float) -> None:
        batch.updated_at = when
        if batch.status == "validating":
            batch.status = "running"
            self._maybe_complete(batch, when)
            return
        row = self._pending_row(batch)
        if row is None or row.phone is None:
            return
        if not self.outbound_window(batch.project_id).has_room(when):
            return  # never dial over the limit, whatever the arithmetic said
        fields: dict[str, Any] = {"phone": row.phone, "scenario_id": batch.scenario_id}
        fields.update(variables=row.variables, caller_id=batch.caller_id)
        call = self.create_call(batch.project_id, fields, when, None, (batch.id, row.row))
        row.call_id, row.status = call.id, "queued"
        batch.next_row += 1

    def _maybe_complete(self, batch: BatchRecord, when: float) -> None:
        if batch.status != "running" or self._pending_row(batch) is not None:
            return
        if self._open_batch_calls.get(batch.id, 0) == 0:
            batch.status, batch.completed_at, batch.updated_at = "completed", when, when
            self._active_batches.discard(batch.id)
            if self.on_event is not None:
                self.on_event(batch.project_id, "batch.completed", batch.id)

    # ----- persistence ------------------------------------------------------------------

    def to_plain(self) -> dict[str, Any]:
        """The whole world as JSON-ready data."""
        return {
            "cursor": self.cursor,
            "calls": [to_plain(c) for c in self.calls.values()],
            "batches": [to_plain(b) for b in self.batches.values()],
            "webhooks": [to_plain(w) for w in self.webhooks.values()],
            "knowledge_files": [to_plain(f) for f in self.knowledge_files.values()],
            "transactions": [to_plain(t) for t in self.transactions],
            "balances": {p: str(b) for p, b in self.balances.items()},
            "attempts": self.attempts,
            "outbound": {p: w.snapshot() for p, w in self.outbound.items()},
            "per_minute": {k: w.snapshot() for k, w in self.per_minute.items()},
            "per_hour": {k: w.snapshot() for k, w in self.per_hour.items()},
            "stats": self.stats,
        }

    @classmethod
    def from_plain(cls, config: SandboxConfig, raw: dict[str, Any], now: float) -> World:
        """Rebuild a world saved by ``to_plain`` (limits come from the current config)."""
        world = cls(config, max(now, float(raw.get("cursor", now))))
        for plain in raw.get("calls", []):
            call = CallRecord(**plain)
            world.calls[call.id] = call
            if call.session_id:
                world.sessions[call.session_id] = call.id
            if not call.terminal:
                world._schedule(call)
                if call.batch_id is not None:
                    opened = world._open_batch_calls.get(call.batch_id, 0) + 1
                    world._open_batch_calls[call.batch_id] = opened
        for plain in raw.get("batches", []):
            batch = batch_from_plain(plain)
            world.batches[batch.id] = batch
            if batch.status in ("validating", "running"):
                world._active_batches.add(batch.id)
        world.webhooks = {w["id"]: WebhookRecord(**w) for w in raw.get("webhooks", [])}
        files = raw.get("knowledge_files", [])
        world.knowledge_files = {f["id"]: KnowledgeFileRecord(**f) for f in files}
        world.transactions = [TransactionRecord(**t) for t in raw.get("transactions", [])]
        world.balances = {p: Decimal(b) for p, b in raw.get("balances", {}).items()}
        world.attempts = {str(k): int(v) for k, v in raw.get("attempts", {}).items()}
        world.stats.update(raw.get("stats", {}))
        for attr, limit_name in (
            ("outbound", "outbound_calls"),
            ("per_minute", "requests_per_minute"),
            ("per_hour", "requests_per_hour"),
        ):
            limit = config.limit(limit_name)
            windows = {
                name: SlidingWindow(limit.count, limit.window_s, arrivals)
                for name, arrivals in raw.get(attr, {}).items()
            }
            setattr(world, attr, windows)
        return world
