"""The route table: method, path pattern, required scope, handler, Idempotency-Key rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

from campaign.sandbox import handlers_batches as batches
from campaign.sandbox import handlers_calls as calls
from campaign.sandbox import handlers_misc as misc
from campaign.sandbox.context import Handler

READ = "sessions:read"
TRIGGER = "outbound:trigger"
TRANSCRIPT = "sessions:read:transcript"
WEBHOOKS = "webhooks:manage"
KNOWLEDGE = "knowledge:manage"
_SEGMENT = "[^/]+"
QUERY_PARAMETERS = {
    "list_calls": frozenset({"status", "since", "updated_since", "batch_id", "limit", "cursor"}),
    "list_batch_rows": frozenset({"limit", "cursor"}),
    "list_sessions": frozenset({"goal_achieved", "since", "scenario_id", "limit", "cursor"}),
    "get_usage": frozenset({"period"}),
}


@dataclass(frozen=True)
class Route:
    """One endpoint of the API."""

    method: str
    pattern: re.Pattern[str]
    scope: str
    handler: Handler
    key_required: bool = False
    multipart: bool = False

    @property
    def documents_400(self) -> bool:
        """Whether the spec lists 400 here: there is a query, a body or an Idempotency-Key."""
        return self.method != "GET" or self.handler.__name__ in QUERY_PARAMETERS

    @property
    def query_parameters(self) -> frozenset[str] | None:
        """The query parameters this endpoint defines (None: it defines none, query ignored)."""
        return QUERY_PARAMETERS.get(self.handler.__name__)


def _route(method: str, template: str, scope: str, handler: Handler, **flags: bool) -> Route:
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>{_SEGMENT})", template)
    return Route(method, re.compile("/v1" + regex), scope, handler, **flags)


ROUTES: tuple[Route, ...] = (
    _route("POST", "/calls", TRIGGER, calls.create_call, key_required=True),
    _route("GET", "/calls", READ, calls.list_calls),
    _route("GET", "/calls/{id}", READ, calls.get_call),
    _route("POST", "/batches", TRIGGER, batches.create_batch, key_required=True, multipart=True),
    _route("GET", "/batches/{id}", READ, batches.get_batch),
    _route("GET", "/batches/{id}/rows", READ, batches.list_batch_rows),
    _route("GET", "/sessions", READ, calls.list_sessions),
    _route("GET", "/sessions/{id}", READ, calls.get_session),
    _route("GET", "/sessions/{id}/transcript", TRANSCRIPT, calls.get_transcript),
    _route("GET", "/sessions/{id}/recording", TRANSCRIPT, calls.get_recording),
    _route("GET", "/webhooks", WEBHOOKS, misc.list_webhooks),
    _route("POST", "/webhooks", WEBHOOKS, misc.create_webhook),
    _route("PUT", "/webhooks/{id}", WEBHOOKS, misc.update_webhook),
    _route("DELETE", "/webhooks/{id}", WEBHOOKS, misc.delete_webhook),
    _route("POST", "/projects/{project_id}/webhooks/{name}", WEBHOOKS, misc.relay_inbound),
    _route("POST", "/knowledge/crawl", KNOWLEDGE, misc.crawl),
    _route("POST", "/knowledge/files", KNOWLEDGE, misc.upload_knowledge_file, multipart=True),
    _route("GET", "/knowledge/files", KNOWLEDGE, misc.list_knowledge_files),
    _route("DELETE", "/knowledge/files/{id}", KNOWLEDGE, misc.delete_knowledge_file),
    _route("GET", "/usage", READ, misc.get_usage),
    _route("GET", "/wallet", READ, misc.get_wallet),
    _route("GET", "/invoices", READ, misc.list_invoices),
)


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a request and its path parameters; None for an unknown route."""
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None and route.method == method:
            return route, match.groupdict()
    return None
