"""JSON renderings of stored objects: exactly the fields docs/api/openapi.yaml documents."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from campaign.sandbox.clock import period_of, rfc3339
from campaign.sandbox.records import (
    BatchRecord,
    BatchRow,
    CallRecord,
    KnowledgeFileRecord,
    WebhookRecord,
)
from campaign.sandbox.world import World, key_fingerprint

SUMMARY_STATUSES = ("completed", "no_answer", "busy", "voicemail", "failed")


def _ts(value: float | None) -> str | None:
    return None if value is None else rfc3339(value)


def call_view(call: CallRecord) -> dict[str, Any]:
    """The Call object."""
    return {
        "id": call.id,
        "status": call.status,
        "phone": call.phone,
        "scenario_id": call.scenario_id,
        "variables": call.variables,
        "caller_id": call.caller_id,
        "batch_id": call.batch_id,
        "session_id": call.session_id,
        "metadata": call.metadata,
        "not_before": _ts(call.not_before),
        "created_at": rfc3339(call.created_at),
        "updated_at": rfc3339(call.updated_at),
        "ended_at": _ts(call.ended_at),
        "outcome": call.outcome,
        "goal_achieved": call.goal_achieved,
        "failure_reason": call.failure_reason,
    }


def call_detail_view(call: CallRecord) -> dict[str, Any]:
    """GET /calls/{id}: the Call plus its session once one exists."""
    view = call_view(call)
    if call.session_id is not None:
        view["session"] = session_view(call)
    return view


def session_view(call: CallRecord) -> dict[str, Any]:
    """The Session object of a call that reached in_progress."""
    ended = call.status == "completed"
    duration = round(call.billed_s) if ended else None
    return {
        "id": call.session_id,
        "call_id": call.id,
        "batch_id": call.batch_id,
        "phone": call.phone,
        "scenario_id": call.scenario_id,
        "started_at": _ts(call.started_at),
        "ended_at": _ts(call.ended_at) if ended else None,
        "duration_s": duration,
        "outcome": call.outcome if ended else None,
        "goal_achieved": call.goal_achieved if ended else None,
        "slot_values": call.slot_values if ended else {},
        "costs": {
            "minutes": call.minutes,
            "tool_calls": call.tool_calls if ended else 0,
            "amount": call.cost,
            "currency": "USD",
        },
        "metadata": call.metadata,
    }


def row_status(world: World, row: BatchRow) -> str:
    """A row's status: its call's once dialed."""
    return world.calls[row.call_id].status if row.call_id else row.status


def batch_row_view(world: World, row: BatchRow) -> dict[str, Any]:
    """One row of GET /batches/{id}/rows."""
    call = world.calls[row.call_id] if row.call_id else None
    return {
        "row": row.row,
        "row_ref": row.row_ref,
        "phone": row.phone,
        "status": row_status(world, row),
        "call_id": row.call_id,
        "session_id": call.session_id if call else None,
        "outcome": call.outcome if call else None,
        "goal_achieved": call.goal_achieved if call else None,
        "error": row.error,
    }


def batch_view(world: World, batch: BatchRecord) -> dict[str, Any]:
    """The Batch object with progress and summary."""
    progress = {"total": len(batch.rows), "invalid": 0, "pending": 0, "queued": 0}
    progress.update({"in_progress": 0, "done": 0})
    summary = dict.fromkeys(("completed", "goal_achieved", *SUMMARY_STATUSES[1:]), 0)
    for row in batch.rows:
        status = row_status(world, row)
        if status in ("invalid", "pending", "queued"):
            progress[status] += 1
        elif status in ("dialing", "in_progress"):
            progress["in_progress"] += 1
        else:
            progress["done"] += 1
        if status in SUMMARY_STATUSES:
            summary[status] += 1
        if row.call_id and world.calls[row.call_id].goal_achieved:
            summary["goal_achieved"] += 1
    return {
        "id": batch.id,
        "status": batch.status,
        "name": batch.name,
        "scenario_id": batch.scenario_id,
        "created_at": rfc3339(batch.created_at),
        "updated_at": rfc3339(batch.updated_at),
        "completed_at": _ts(batch.completed_at),
        "progress": progress,
        "summary": summary,
    }


def webhook_view(webhook: WebhookRecord, with_secret: bool = False) -> dict[str, Any]:
    """The Webhook object (the secret only in the creation response)."""
    view: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "description": webhook.description,
        "active": webhook.active,
        "created_at": rfc3339(webhook.created_at),
    }
    if with_secret:
        view["secret"] = webhook.secret
    return view


def knowledge_file_view(record: KnowledgeFileRecord, now: float) -> dict[str, Any]:
    """A knowledge File object (indexing until its ready time)."""
    return {
        "id": record.id,
        "filename": record.filename,
        "bytes": record.bytes,
        "status": "ready" if now >= record.ready_at else "indexing",
        "created_at": rfc3339(record.created_at),
    }


def usage_view(world: World, project_id: str, period: str) -> dict[str, Any]:
    """GET /usage for one month: calls created in it, with minutes and costs of those ended."""
    calls = [
        c
        for c in world.calls.values()
        if c.project_id == project_id and period_of(c.created_at) == period
    ]
    outcomes: dict[str, int] = {}
    for call in calls:
        if call.outcome:
            outcomes[call.outcome] = outcomes.get(call.outcome, 0) + 1
    return {
        "period": period,
        "calls": len(calls),
        "minutes": f"{sum((Decimal(c.minutes) for c in calls), Decimal('0')):.2f}",
        "tool_calls": sum(c.tool_calls for c in calls if c.status == "completed"),
        "outcomes": outcomes,
        "amount": f"{sum((Decimal(c.cost) for c in calls), Decimal('0')):.2f}",
        "currency": "USD",
    }


def wallet_view(world: World, project_id: str) -> dict[str, Any]:
    """GET /wallet: balance and the 20 most recent transactions, newest first."""
    mine = [t for t in world.transactions if t.project_id == project_id][-20:]
    return {
        "balance": f"{world.balance(project_id):.2f}",
        "currency": "USD",
        "recent_transactions": [
            {"id": t.id, "amount": t.amount, "kind": t.kind, "created_at": rfc3339(t.created_at)}
            for t in reversed(mine)
        ],
    }


def invoices_view(world: World, project_id: str, now: float) -> dict[str, Any]:
    """GET /invoices: one invoice per past month with calls (last month open, older paid)."""
    current = period_of(now)
    periods = sorted(
        {
            period_of(c.created_at)
            for c in world.calls.values()
            if c.project_id == project_id and period_of(c.created_at) < current
        }
    )
    data = []
    for index, period in enumerate(periods):
        usage = usage_view(world, project_id, period)
        data.append(
            {
                "id": f"inv_{period.replace('-', '')}_{key_fingerprint(project_id)[:8]}",
                "period": period,
                "amount": usage["amount"],
                "currency": "USD",
                "status": "open" if index == len(periods) - 1 else "paid",
                "pdf_url": f"https://billing.sandbox.aitelier.org/invoices/{period}.pdf",
            }
        )
    return {"data": data}


def ledger_view(world: World) -> dict[str, Any]:
    """GET /_sandbox/ledger: every call created, and the peaks the limits allow checking."""
    calls = list(world.calls.values())  # creation order (dicts keep insertion order)
    return {
        "calls": [
            {
                "id": c.id,
                "project_id": c.project_id,
                "phone": c.phone,
                "idempotency_key": c.idempotency_key,
                "metadata": c.metadata,
                "batch_id": c.batch_id,
                "status": c.status,
                "created_at": rfc3339(c.created_at),
                "dialed_at": _ts(c.dialed_at),
            }
            for c in calls
        ],
        "max_outbound_in_window": world.stats["max_outbound"],
        "outbound_limit": world.config.limit("outbound_calls").count,
        "max_requests_in_window": {
            "per_minute": world.stats["max_rpm"],
            "per_hour": world.stats["max_rph"],
        },
        "rate_limited": world.stats["rate_limited"],
        "requests": world.stats["requests"],
    }
