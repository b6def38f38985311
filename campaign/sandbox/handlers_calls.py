"""Calls and sessions."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from campaign.sandbox.clock import rfc3339
from campaign.sandbox.context import Ctx, Reply, decode_cursor, encode_cursor
from campaign.sandbox.idempotency import canonical_json
from campaign.sandbox.outcomes import transcript_turns
from campaign.sandbox.problems import ApiProblem, invalid, not_found
from campaign.sandbox.records import CallRecord
from campaign.sandbox.validate import (
    parse_json_body,
    query_limit,
    query_since,
    query_statuses,
    query_value,
    validate_call_request,
)
from campaign.sandbox.views import call_detail_view, call_view, session_view

BATCH_ID = re.compile(r"bat_[A-Za-z0-9_-]+")


def create_call(ctx: Ctx) -> Reply:
    """POST /calls: validate, 422 on unknown scenario, 429 when the outbound window is full."""
    fields = validate_call_request(parse_json_body(ctx.body, ctx.content_type))
    if fields["scenario_id"] not in ctx.config.scenarios_for(ctx.project_id):
        raise ApiProblem(
            "failed_precondition",
            f"unknown scenario_id {fields['scenario_id']!r}",
            field="scenario_id",
        )
    window = ctx.world.outbound_window(ctx.project_id)
    if not window.has_room(ctx.now):
        raise ApiProblem(
            "rate_limited",
            f"outbound calls are limited to {window.limit} per {window.window_s:g} s",
            limit="outbound_calls_per_minute",
            retry_after=window.retry_after(ctx.now),
        )
    call = ctx.world.create_call(ctx.project_id, fields, ctx.now, ctx.idempotency_key)
    return Reply(201, call_view(call))


def _own_call(ctx: Ctx, call_id: str) -> CallRecord:
    call = ctx.world.calls.get(call_id)
    if call is None or call.project_id != ctx.project_id:
        raise not_found("call")
    return call


def get_call(ctx: Ctx) -> Reply:
    """GET /calls/{id}."""
    return Reply(200, call_detail_view(_own_call(ctx, ctx.params["id"])))


def _filters_digest(filters: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(filters).encode()).hexdigest()[:16]


def _page_after(ctx: Ctx, filters: dict[str, Any]) -> tuple[tuple[float, str] | None, str]:
    """The (sort value, id) after which the page starts, checked against the filters."""
    digest = _filters_digest(filters)
    text = query_value(ctx.query, "cursor")
    if text is None:
        return None, digest
    cursor = decode_cursor(text)
    after: Any = cursor.get("after")
    if cursor.get("filters") != digest:
        raise invalid("cursor was issued for other filters", field="cursor")
    ok = isinstance(after, list) and len(after) == 2
    if not ok or not isinstance(after[0], int | float) or not isinstance(after[1], str):
        raise invalid("cursor is not valid", field="cursor")
    return (float(after[0]), after[1]), digest


def list_calls(ctx: Ctx) -> Reply:
    """GET /calls: filters, (created_at|updated_at, id) order, cursors bound to filters."""
    statuses = query_statuses(ctx.query)
    since = query_since(ctx.query, "since")
    updated_since = query_since(ctx.query, "updated_since", date_allowed=False)
    batch_id = query_value(ctx.query, "batch_id")
    if batch_id is not None and BATCH_ID.fullmatch(batch_id) is None:
        raise invalid("batch_id is not a batch id", field="batch_id")
    limit = query_limit(ctx.query, 100, 50)
    filters: dict[str, Any] = {"status": statuses, "since": since, "batch_id": batch_id}
    filters["updated_since"] = updated_since
    after, digest = _page_after(ctx, filters)
    by_update = updated_since is not None

    def sort_key(call: CallRecord) -> tuple[float, str]:
        return (call.updated_at if by_update else call.created_at, call.id)

    selected = sorted(
        (
            c
            for c in ctx.world.calls.values()
            if c.project_id == ctx.project_id
            and (statuses is None or c.status in statuses)
            and (since is None or c.created_at >= since)
            and (updated_since is None or c.updated_at >= updated_since)
            and (batch_id is None or c.batch_id == batch_id)
            and (after is None or sort_key(c) > after)
        ),
        key=sort_key,
    )
    page = selected[:limit]
    next_cursor = None
    if len(selected) > limit:
        next_cursor = encode_cursor({"filters": digest, "after": list(sort_key(page[-1]))})
    return Reply(200, {"data": [call_view(c) for c in page], "next_cursor": next_cursor})


def _own_session(ctx: Ctx) -> CallRecord:
    call_id = ctx.world.sessions.get(ctx.params["id"])
    call = ctx.world.calls.get(call_id) if call_id else None
    if call is None or call.project_id != ctx.project_id:
        raise not_found("session")
    return call


def get_session(ctx: Ctx) -> Reply:
    """GET /sessions/{id}."""
    return Reply(200, session_view(_own_session(ctx)))


def list_sessions(ctx: Ctx) -> Reply:
    """GET /sessions: goal_achieved, since (started_at), scenario_id; by (started_at, id)."""
    goal_text = query_value(ctx.query, "goal_achieved")
    if goal_text is not None and goal_text not in ("true", "false"):
        raise invalid("goal_achieved must be true or false", field="goal_achieved")
    goal = None if goal_text is None else goal_text == "true"
    since = query_since(ctx.query, "since")
    scenario = query_value(ctx.query, "scenario_id")
    if scenario == "":
        raise invalid("scenario_id must not be empty", field="scenario_id")
    limit = query_limit(ctx.query, 100, 50)
    filters: dict[str, Any] = {"goal_achieved": goal, "since": since, "scenario_id": scenario}
    after, digest = _page_after(ctx, filters)

    def sort_key(call: CallRecord) -> tuple[float, str]:
        return (call.started_at or 0.0, call.session_id or "")

    selected = sorted(
        (
            c
            for c in ctx.world.calls.values()
            if c.project_id == ctx.project_id
            and c.session_id is not None
            and (goal is None or (c.status == "completed" and c.goal_achieved is goal))
            and (since is None or (c.started_at or 0.0) >= since)
            and (scenario is None or c.scenario_id == scenario)
            and (after is None or sort_key(c) > after)
        ),
        key=sort_key,
    )
    page = selected[:limit]
    next_cursor = None
    if len(selected) > limit:
        next_cursor = encode_cursor({"filters": digest, "after": list(sort_key(page[-1]))})
    return Reply(200, {"data": [session_view(c) for c in page], "next_cursor": next_cursor})


def get_transcript(ctx: Ctx) -> Reply:
    """GET /sessions/{id}/transcript."""
    call = _own_session(ctx)
    turns = transcript_turns(call.outcome, call.status == "completed")
    return Reply(200, {"session_id": call.session_id, "turns": turns})


def get_recording(ctx: Ctx) -> Reply:
    """GET /sessions/{id}/recording: a signed URL valid 15 minutes."""
    call = _own_session(ctx)
    expires = ctx.now + 900
    signature = hashlib.sha256(f"{call.session_id}|{int(expires)}".encode()).hexdigest()[:32]
    url = (
        f"https://recordings.sandbox.aitelier.org/{call.session_id}.mp3"
        f"?expires={int(expires)}&sig={signature}"
    )
    return Reply(200, {"url": url, "expires_at": rfc3339(expires)})
