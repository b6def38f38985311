"""An in-memory stand-in for the API's call endpoints, driven by a fake clock.

Only for engine unit tests (fake time, scripted outcomes, forgotten keys); behaviour
against a real server is tested through the sandbox. It answers with the client's own
models (``campaign.api.models``), as the engine's Protocols (``campaign.engine.api``) ask.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from campaign.api.models import Call, Page, Session, SessionCosts, Usage, Wallet
from campaign.clock import FakeClock
from campaign.config.model import CampaignConfig
from campaign.engine.attempts import call_body, idempotency_key
from campaign.errors import AmbiguousError, IdempotencyConflictError
from campaign.limits.window import ClientLimits
from campaign.store.checkpoint import RowIn, Store

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def make_call(**fields: Any) -> Call:
    """A Call as the API would return it: ``fields`` over a queued call with no outcome."""
    call = Call(
        id="call_1",
        status="queued",
        phone="+12125550100",
        scenario_id="scn_demo",
        variables={},
        caller_id=None,
        batch_id=None,
        session_id=None,
        metadata={},
        not_before=None,
        created_at=EPOCH,
        updated_at=EPOCH,
        ended_at=None,
        outcome=None,
        goal_achieved=None,
        failure_reason=None,
    )
    return replace(call, **fields)


@dataclass
class FakeApi:
    """Calls that end ``duration_s`` after creation with the outcome scripted per phone."""

    clock: FakeClock
    duration_s: float = 30.0
    scripts: dict[str, list[tuple[str, str | None, str | None]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    posts: int = 0
    gets: int = 0
    ambiguous_next: int = 0
    balance: str = "100.00"
    limits: ClientLimits | None = None

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call:
        self.posts += 1
        if self.limits is not None:  # as the real client does before every POST /calls
            await self.limits.acquire_call()
        if idempotency_key in self.keys:
            stored, index = self.keys[idempotency_key]
            if stored != body:
                raise IdempotencyConflictError("key reused", http_status=409)
            return self._view(self.calls[index])
        payload = json.loads(body)
        phone = payload["phone"]
        nth = sum(1 for c in self.calls if c["phone"] == phone)
        script = self.scripts.get(phone, [("completed", "goal_achieved", None)])
        status, outcome, reason = script[min(nth, len(script) - 1)]
        now = self.clock.now()
        call = {
            "id": f"call_{len(self.calls) + 1}",
            "phone": phone,
            "scenario_id": payload["scenario_id"],
            "metadata": payload["metadata"],
            "created": now,
            "final": (status, outcome, reason),
        }
        self.calls.append(call)
        self.keys[idempotency_key] = (body, len(self.calls) - 1)
        if self.ambiguous_next:
            self.ambiguous_next -= 1
            raise AmbiguousError("connection reset after the request was sent")
        return self._view(call)

    def forget_keys(self) -> None:
        """The server's 24 h idempotency memory has passed."""
        self.keys.clear()

    def _view(self, call: dict[str, Any]) -> Call:
        now = self.clock.now()
        ended = now >= call["created"] + self.duration_s
        status, outcome, reason = call["final"] if ended else ("queued", None, None)
        updated = call["created"] + self.duration_s if ended else call["created"]
        return make_call(
            id=call["id"],
            status=status,
            phone=call["phone"],
            scenario_id=call.get("scenario_id", "scn_demo"),
            metadata=call["metadata"],
            created_at=_dt(call["created"]),
            updated_at=_dt(updated),
            ended_at=_dt(updated) if ended else None,
            outcome=outcome if status == "completed" else None,
            goal_achieved=(outcome == "goal_achieved") if status == "completed" else None,
            failure_reason=reason,
            session_id=f"ses_{call['id']}" if status == "completed" else None,
        )

    async def list_calls(
        self,
        *,
        status: str | None = None,
        since: str | None = None,
        updated_since: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Call]:
        self.gets += 1
        views = [self._view(c) for c in self.calls]
        if updated_since is not None:
            floor = _ts(updated_since)
            views = [v for v in views if v.updated_at.timestamp() >= floor]
            views.sort(key=lambda v: (v.updated_at, v.id))
        if since is not None:
            floor = _ts(since)
            views = [v for v in views if v.created_at.timestamp() >= floor]
            views.sort(key=lambda v: (v.created_at, v.id))
        start = int(cursor or 0)
        size = limit or 50
        page = views[start : start + size]
        more = start + size < len(views)
        return Page(tuple(page), str(start + size) if more else None)

    async def get_session(self, session_id: str) -> Session:
        self.gets += 1
        call = self._view(next(c for c in self.calls if f"ses_{c['id']}" == session_id))
        return Session(
            id=session_id,
            call_id=call.id,
            batch_id=None,
            phone=call.phone,
            scenario_id=call.scenario_id,
            started_at=call.created_at,
            ended_at=call.ended_at,
            duration_s=42,
            outcome=call.outcome,
            goal_achieved=call.goal_achieved,
            slot_values={"renewal": "yes"},
            costs=SessionCosts(
                minutes=Decimal("0.7"), tool_calls=0, amount=Decimal("0.11"), currency="USD"
            ),
            metadata=call.metadata,
        )

    async def get_wallet(self) -> Wallet:
        self.gets += 1
        return Wallet(balance=Decimal(self.balance), currency="USD", recent_transactions=())

    async def get_usage(self, period: str) -> Usage:
        self.gets += 1
        return Usage(
            period=period,
            calls=0,
            minutes=Decimal("0"),
            tool_calls=0,
            outcomes={},
            amount=Decimal("0"),
            currency="USD",
        )

    def created_per_attempt(self) -> dict[tuple[str, str], int]:
        """How many calls exist per (row_key, attempt): exactly-once means all 1."""
        counts: dict[tuple[str, str], int] = {}
        for call in self.calls:
            key = (call["metadata"]["row_key"], call["metadata"]["attempt"])
            counts[key] = counts.get(key, 0) + 1
        return counts


def store_with_rows(
    tmp_path: Path, phones: list[str], now: float, timezones: list[str] | None = None
) -> Store:
    """A checkpoint of campaign ``c`` whose rows are these numbers (keyed by the number),
    callable, in New York unless told otherwise."""
    store = Store.open(tmp_path / "c.sqlite")
    store.claim_identity("c")
    zones = timezones or ["America/New_York"]
    rows = [
        RowIn(line=i + 2, row_key=p, raw_phone=p, e164=p, plan_state="callable", timezones=zones)
        for i, p in enumerate(phones)
    ]
    store.sync_rows(rows, now)
    return store


def leave_sending(store: Store, config: CampaignConfig, rows: Sequence[RowIn]) -> None:
    """Begin attempt 1 of each row and note its request as sent, as a run killed before
    the answer came would leave it (*sending*, its call unconfirmed)."""
    for row in rows:
        assert row.e164 is not None
        body = call_body(
            campaign=config.campaign,
            scenario_id=config.scenario_id,
            row_key=row.row_key,
            number=1,
            phone=row.e164,
            variables=row.variables,
        )
        key = idempotency_key(config.campaign, row.row_key, 1)
        store.begin_attempt(row.row_key, 1, key, body, 1.0, phone=row.e164)
        store.note_send(key)
