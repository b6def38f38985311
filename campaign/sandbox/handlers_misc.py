"""Webhooks, knowledge base, usage and billing."""

from __future__ import annotations

import secrets

from campaign.sandbox.clock import parse_period
from campaign.sandbox.context import Ctx, Reply
from campaign.sandbox.handlers_batches import multipart_parts
from campaign.sandbox.problems import ApiProblem, invalid, new_id, not_found
from campaign.sandbox.records import KnowledgeFileRecord, WebhookRecord
from campaign.sandbox.uploads import form_fields
from campaign.sandbox.validate import (
    parse_json_body,
    query_value,
    validate_crawl,
    validate_webhook_create,
    validate_webhook_update,
)
from campaign.sandbox.views import (
    invoices_view,
    knowledge_file_view,
    usage_view,
    wallet_view,
    webhook_view,
)

MAX_KNOWLEDGE_BYTES = 20 * 1024 * 1024
KNOWLEDGE_TYPES = ("application/pdf", "text/plain")
INDEXING_S = 3.0


def list_webhooks(ctx: Ctx) -> Reply:
    """GET /webhooks (never with secrets)."""
    mine = [w for w in ctx.world.webhooks.values() if w.project_id == ctx.project_id]
    return Reply(200, {"data": [webhook_view(w) for w in mine]})


def create_webhook(ctx: Ctx) -> Reply:
    """POST /webhooks: the secret is shown in this response only."""
    body = parse_json_body(ctx.body, ctx.content_type)
    fields = validate_webhook_create(body, ctx.config.allow_http_webhooks)
    webhook = WebhookRecord(
        id=new_id("whk"),
        project_id=ctx.project_id,
        url=fields["url"],
        events=fields["events"],
        description=fields.get("description"),
        active=True,
        created_at=ctx.now,
        secret="whsec_" + secrets.token_urlsafe(24),
    )
    ctx.world.webhooks[webhook.id] = webhook
    return Reply(201, webhook_view(webhook, with_secret=True))


def _own_webhook(ctx: Ctx) -> WebhookRecord:
    webhook = ctx.world.webhooks.get(ctx.params["id"])
    if webhook is None or webhook.project_id != ctx.project_id:
        raise not_found("webhook")
    return webhook


def update_webhook(ctx: Ctx) -> Reply:
    """PUT /webhooks/{id}: every field optional."""
    webhook = _own_webhook(ctx)
    body = parse_json_body(ctx.body, ctx.content_type)
    fields = validate_webhook_update(body, ctx.config.allow_http_webhooks)
    for name, value in fields.items():
        setattr(webhook, name, value)
    return Reply(200, webhook_view(webhook))


def delete_webhook(ctx: Ctx) -> Reply:
    """DELETE /webhooks/{id}."""
    del ctx.world.webhooks[_own_webhook(ctx).id]
    return Reply(204)


def relay_inbound(ctx: Ctx) -> Reply:
    """POST /projects/{project_id}/webhooks/{name}: relayed to the project's active sessions."""
    if ctx.params["project_id"] != ctx.project_id:
        raise not_found("project")
    parse_json_body(ctx.body, ctx.content_type)
    active = sum(
        1
        for c in ctx.world.calls.values()
        if c.project_id == ctx.project_id and c.status == "in_progress"
    )
    return Reply(202, {"delivered_to": active})


def crawl(ctx: Ctx) -> Reply:
    """POST /knowledge/crawl."""
    validate_crawl(parse_json_body(ctx.body, ctx.content_type))
    return Reply(202, {"id": new_id("crawl"), "status": "queued"})


def upload_knowledge_file(ctx: Ctx) -> Reply:
    """POST /knowledge/files: PDF or text/plain, at most 20 MiB."""
    parts = multipart_parts(ctx)
    if any(p.name == "file" and len(p.data) > MAX_KNOWLEDGE_BYTES for p in parts):
        raise ApiProblem("payload_too_large", "knowledge files are limited to 20 MiB")
    named = form_fields(parts, ("file",))
    if "file" not in named:
        raise invalid("the file part is required", field="file")
    part = named["file"]
    declared = (part.content_type or "").split(";")[0].strip().lower()
    if declared not in KNOWLEDGE_TYPES and not _looks_like_text_or_pdf(part.data, declared):
        raise invalid("the file must be a PDF or text/plain", field="file")
    record = KnowledgeFileRecord(
        id=new_id("kbf"),
        project_id=ctx.project_id,
        filename=part.filename or "upload",
        bytes=len(part.data),
        created_at=ctx.now,
        ready_at=ctx.now + INDEXING_S * ctx.config.time_scale,
    )
    ctx.world.knowledge_files[record.id] = record
    return Reply(201, knowledge_file_view(record, ctx.now))


def _looks_like_text_or_pdf(data: bytes, declared: str) -> bool:
    # A part without a (useful) Content-Type is judged by its bytes.
    if declared not in ("", "application/octet-stream"):
        return False
    if data.startswith(b"%PDF-"):
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data


def list_knowledge_files(ctx: Ctx) -> Reply:
    """GET /knowledge/files."""
    mine = [f for f in ctx.world.knowledge_files.values() if f.project_id == ctx.project_id]
    return Reply(200, {"data": [knowledge_file_view(f, ctx.now) for f in mine]})


def delete_knowledge_file(ctx: Ctx) -> Reply:
    """DELETE /knowledge/files/{id}."""
    record = ctx.world.knowledge_files.get(ctx.params["id"])
    if record is None or record.project_id != ctx.project_id:
        raise not_found("knowledge file")
    del ctx.world.knowledge_files[record.id]
    return Reply(204)


def get_usage(ctx: Ctx) -> Reply:
    """GET /usage?period=YYYY-MM."""
    period = query_value(ctx.query, "period")
    if period is None or parse_period(period) is None:
        raise invalid("period is required as YYYY-MM", field="period")
    return Reply(200, usage_view(ctx.world, ctx.project_id, period))


def get_wallet(ctx: Ctx) -> Reply:
    """GET /wallet."""
    return Reply(200, wallet_view(ctx.world, ctx.project_id))


def list_invoices(ctx: Ctx) -> Reply:
    """GET /invoices."""
    return Reply(200, invoices_view(ctx.world, ctx.project_id, ctx.now))
