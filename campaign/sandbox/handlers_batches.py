"""Batches: multipart CSV upload, status, rows."""

from __future__ import annotations

from typing import Any

from campaign.sandbox.clock import parse_instant
from campaign.sandbox.context import Ctx, Reply, decode_cursor, encode_cursor
from campaign.sandbox.problems import ApiProblem, invalid, not_found
from campaign.sandbox.records import BatchRecord
from campaign.sandbox.uploads import (
    MAX_CSV_BYTES,
    Part,
    form_fields,
    parse_batch_csv,
    text_part,
)
from campaign.sandbox.validate import is_e164, query_limit, query_value
from campaign.sandbox.views import batch_row_view, batch_view

BATCH_PARTS = ("file", "scenario_id", "name", "caller_id", "not_before")


def multipart_parts(ctx: Ctx) -> list[Part]:
    """The request's multipart parts, or the 400 that parsing them raised."""
    if ctx.parts is None:
        if isinstance(ctx.parts_error, ApiProblem):
            raise ctx.parts_error
        raise invalid("a multipart/form-data body is required")
    return ctx.parts


def create_batch(ctx: Ctx) -> Reply:
    """POST /batches: 413 size → 400 validation → 422 scenario → accept (rows dial later)."""
    parts = multipart_parts(ctx)
    if any(p.name == "file" and len(p.data) > MAX_CSV_BYTES for p in parts):
        raise ApiProblem("payload_too_large", "the file is above 10 MiB")
    named = form_fields(parts, BATCH_PARTS)
    if "file" not in named:
        raise invalid("the file part is required", field="file")
    rows = parse_batch_csv(named["file"].data)
    fields: dict[str, Any] = {}
    scenario = text_part(named["scenario_id"]) if "scenario_id" in named else ""
    if not scenario:
        raise invalid("scenario_id is required", field="scenario_id")
    fields["scenario_id"] = scenario
    if "name" in named:
        fields["name"] = text_part(named["name"])
    if "caller_id" in named:
        caller_id = text_part(named["caller_id"])
        if not is_e164(caller_id):
            raise invalid("caller_id must be a valid E.164 number", field="caller_id")
        fields["caller_id"] = caller_id
    if "not_before" in named:
        not_before = parse_instant(text_part(named["not_before"]))
        if not_before is None:
            raise invalid("not_before must be an RFC 3339 UTC instant", field="not_before")
        fields["not_before"] = not_before
    if scenario not in ctx.config.scenarios_for(ctx.project_id):
        raise ApiProblem(
            "failed_precondition", f"unknown scenario_id {scenario!r}", field="scenario_id"
        )
    batch = ctx.world.create_batch(ctx.project_id, fields, rows, ctx.now)
    return Reply(201, batch_view(ctx.world, batch))


def own_batch(ctx: Ctx, batch_id: str) -> BatchRecord:
    """The project's batch, else 404."""
    batch = ctx.world.batches.get(batch_id)
    if batch is None or batch.project_id != ctx.project_id:
        raise not_found("batch")
    return batch


def get_batch(ctx: Ctx) -> Reply:
    """GET /batches/{id}."""
    return Reply(200, batch_view(ctx.world, own_batch(ctx, ctx.params["id"])))


def list_batch_rows(ctx: Ctx) -> Reply:
    """GET /batches/{id}/rows: file order, limit 1-500 (default 100), cursor."""
    batch = own_batch(ctx, ctx.params["id"])
    limit = query_limit(ctx.query, 500, 100)
    start = 0
    text = query_value(ctx.query, "cursor")
    if text is not None:
        cursor = decode_cursor(text)
        start_at = cursor.get("row")
        if cursor.get("batch") != batch.id or not isinstance(start_at, int) or start_at < 0:
            raise invalid("cursor was issued for another list", field="cursor")
        start = start_at
    page = batch.rows[start : start + limit]
    next_cursor = None
    if start + limit < len(batch.rows):
        next_cursor = encode_cursor({"batch": batch.id, "row": start + limit})
    data = [batch_row_view(ctx.world, row) for row in page]
    return Reply(200, {"data": data, "next_cursor": next_cursor})
