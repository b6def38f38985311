"""``AitelierClient``: one method per endpoint of the API contract, typed results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from campaign.api.fields import data_list, int_field
from campaign.api.limiter import Limiter
from campaign.api.models import (
    Batch,
    BatchRow,
    BatchRowPage,
    Call,
    CallPage,
    CrawlJob,
    Invoice,
    KnowledgeFile,
    Recording,
    Session,
    SessionPage,
    Transcript,
    Usage,
    Wallet,
    Webhook,
    read_batch_row_page,
    read_call_page,
    read_session_page,
)
from campaign.api.retry import RetryPolicy
from campaign.api.transport import OnSend, Reply, StopAt, Transport
from campaign.api.wire import (
    call_request_body,
    encode_json_body,
    format_timestamp,
    query_time,
    status_filter,
)
from campaign.clock import Clock, SystemClock
from campaign.errors import UnexpectedResponseError

T = TypeVar("T")
Item = TypeVar("Item")


def _seg(identifier: str) -> str:
    """An ID as one path segment (IDs are opaque; never let one change the path)."""
    return quote(identifier, safe="")


def _query(**values: object) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, date | datetime):
            query[name] = query_time(value)
        else:
            query[name] = str(value)
    return query


def _parse(reply: Reply, reader: Callable[[Any], T], where: str) -> T:
    try:
        return reader(reply.body)
    except (ValueError, TypeError, KeyError) as exc:
        raise UnexpectedResponseError(
            f"{where}: the response does not match the contract ({exc})",
            http_status=reply.status,
            request_id=reply.request_id,
        ) from exc


class AitelierClient:
    """Async client of the Aitelier REST API v1; use as ``async with AitelierClient(...)``.

    Every send first takes a slot of ``limits`` (a ``Limiter``; None: no limiting).
    ``stop_at`` gives the run's own end (``--until``/``--max-duration``) on ``clock.now()``,
    or None; ``stop`` is set when the run is told to stop.  Both bound only the wait for a
    429's ``Retry-After``, which may outlast ``deadline_s`` (``RateLimitWaitError``).
    """

    # A module-level function too; kept here so callers need only the client.
    call_request_body = staticmethod(call_request_body)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        limits: Limiter | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        request_timeout_s: float = 30.0,
        deadline_s: float = 300.0,
        on_send: OnSend | None = None,
        stop_at: StopAt | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._transport = Transport(
            base_url,
            api_key,
            session=session,
            limits=limits,
            clock=clock or SystemClock(),
            retry=retry or RetryPolicy(),
            request_timeout_s=request_timeout_s,
            deadline_s=deadline_s,
            on_send=on_send,
            stop_at=stop_at,
            stop=stop,
        )

    def __repr__(self) -> str:
        return f"AitelierClient(base_url={str(self._transport.base_url)!r})"

    async def __aenter__(self) -> AitelierClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the HTTP session if the client created it."""
        await self._transport.close()

    async def _get(self, path: str, reader: Callable[[Any], T], **query: object) -> T:
        reply = await self._transport.request("GET", path, query=_query(**query))
        return _parse(reply, reader, f"GET {path}")

    async def _send_json(
        self,
        method: str,
        path: str,
        body: object,
        reader: Callable[[Any], T],
        idempotency_key: str | None,
    ) -> T:
        reply = await self._transport.request(
            method, path, json_body=encode_json_body(body), idempotency_key=idempotency_key
        )
        return _parse(reply, reader, f"{method} {path}")

    async def _pages(
        self,
        fetch: Callable[[str | None], Awaitable[Any]],
    ) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.data:
                yield item
            cursor = page.next_cursor
            if not cursor:
                return

    # ---- calls (§5) ----------------------------------------------------------------------

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call:
        """POST /calls with the exact committed ``body`` bytes, the same key on every retry.

        No try leaves at or after ``send_by`` (on ``clock.now()``; the recipient's calling
        window closes): ``SendWindowClosedError`` instead.  The result says whether the
        answer was a replay of the key's earlier request and how many tries left.
        """
        reply = await self._transport.request(
            "POST",
            "/calls",
            json_body=body,
            idempotency_key=idempotency_key,
            kind="call",
            send_by=send_by,
        )
        call = _parse(reply, Call.from_json, "POST /calls")
        return replace(call, replayed=reply.replayed, tries=reply.tries)

    async def get_call(self, call_id: str) -> Call:
        """GET /calls/{id}: the call, with its session once one exists."""
        return await self._get(f"/calls/{_seg(call_id)}", Call.from_json)

    async def list_calls(
        self,
        *,
        status: str | Sequence[str] | None = None,
        since: date | datetime | str | None = None,
        updated_since: datetime | str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> CallPage:
        """GET /calls: one page."""
        return await self._get(
            "/calls",
            read_call_page,
            status=None if status is None else status_filter(status),
            since=since,
            updated_since=updated_since,
            batch_id=batch_id,
            limit=limit,
            cursor=cursor,
        )

    def iter_calls(self, **filters: Any) -> AsyncIterator[Call]:
        """Every call matching the filters of ``list_calls``, across all pages."""
        filters.pop("cursor", None)
        return self._pages(lambda cursor: self.list_calls(cursor=cursor, **filters))

    # ---- batches (§6) --------------------------------------------------------------------

    async def create_batch(
        self,
        csv_bytes: bytes,
        *,
        scenario_id: str,
        idempotency_key: str,
        name: str | None = None,
        caller_id: str | None = None,
        not_before: datetime | None = None,
    ) -> Batch:
        """POST /batches: upload a CSV (multipart), the same key on every retry."""

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", csv_bytes, filename="batch.csv", content_type="text/csv")
            data.add_field("scenario_id", scenario_id)
            if name is not None:
                data.add_field("name", name)
            if caller_id is not None:
                data.add_field("caller_id", caller_id)
            if not_before is not None:
                data.add_field("not_before", format_timestamp(not_before))
            return data

        reply = await self._transport.request(
            "POST", "/batches", form=form, idempotency_key=idempotency_key
        )
        return _parse(reply, Batch.from_json, "POST /batches")

    async def get_batch(self, batch_id: str) -> Batch:
        """GET /batches/{id}."""
        return await self._get(f"/batches/{_seg(batch_id)}", Batch.from_json)

    async def list_batch_rows(
        self, batch_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> BatchRowPage:
        """GET /batches/{id}/rows: one page, rows in file order."""
        path = f"/batches/{_seg(batch_id)}/rows"
        return await self._get(path, read_batch_row_page, limit=limit, cursor=cursor)

    def iter_batch_rows(
        self, batch_id: str, *, limit: int | None = None
    ) -> AsyncIterator[BatchRow]:
        """Every row of a batch, across all pages."""
        return self._pages(
            lambda cursor: self.list_batch_rows(batch_id, limit=limit, cursor=cursor)
        )

    # ---- sessions (§7) -------------------------------------------------------------------

    async def get_session(self, session_id: str) -> Session:
        """GET /sessions/{id}."""
        return await self._get(f"/sessions/{_seg(session_id)}", Session.from_json)

    async def list_sessions(
        self,
        *,
        goal_achieved: bool | None = None,
        since: date | datetime | str | None = None,
        scenario_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SessionPage:
        """GET /sessions: one page."""
        return await self._get(
            "/sessions",
            read_session_page,
            goal_achieved=goal_achieved,
            since=since,
            scenario_id=scenario_id,
            limit=limit,
            cursor=cursor,
        )

    def iter_sessions(self, **filters: Any) -> AsyncIterator[Session]:
        """Every session matching the filters of ``list_sessions``, across all pages."""
        filters.pop("cursor", None)
        return self._pages(lambda cursor: self.list_sessions(cursor=cursor, **filters))

    async def get_transcript(self, session_id: str) -> Transcript:
        """GET /sessions/{id}/transcript."""
        return await self._get(f"/sessions/{_seg(session_id)}/transcript", Transcript.from_json)

    async def get_recording(self, session_id: str) -> Recording:
        """GET /sessions/{id}/recording: a signed URL valid 15 minutes."""
        return await self._get(f"/sessions/{_seg(session_id)}/recording", Recording.from_json)

    # ---- webhooks (§8) -------------------------------------------------------------------

    async def list_webhooks(self) -> list[Webhook]:
        """GET /webhooks."""
        return await self._get(
            "/webhooks", lambda body: [Webhook.from_json(item) for item in data_list(body)]
        )

    async def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """POST /webhooks; the result carries the signing secret (only this once)."""
        body: dict[str, object] = {"url": url, "events": list(events)}
        if description is not None:
            body["description"] = description
        return await self._send_json("POST", "/webhooks", body, Webhook.from_json, idempotency_key)

    async def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """PUT /webhooks/{id}: change only the fields given."""
        changes: dict[str, object] = {
            "url": url,
            "events": None if events is None else list(events),
        }
        changes.update({"description": description, "active": active})
        body = {key: value for key, value in changes.items() if value is not None}
        path = f"/webhooks/{_seg(webhook_id)}"
        return await self._send_json("PUT", path, body, Webhook.from_json, idempotency_key)

    async def delete_webhook(self, webhook_id: str, *, idempotency_key: str | None = None) -> None:
        """DELETE /webhooks/{id}."""
        path = f"/webhooks/{_seg(webhook_id)}"
        await self._transport.request("DELETE", path, idempotency_key=idempotency_key)

    async def fanout_webhook(
        self, project_id: str, name: str, body: object, *, idempotency_key: str | None = None
    ) -> int:
        """POST /projects/{project_id}/webhooks/{name}; returns how many sessions got it."""
        path = f"/projects/{_seg(project_id)}/webhooks/{_seg(name)}"
        return await self._send_json(
            "POST", path, body, lambda reply: int_field(reply, "delivered_to"), idempotency_key
        )

    # ---- knowledge base (§9) -------------------------------------------------------------

    async def knowledge_crawl(self, url: str, *, idempotency_key: str | None = None) -> CrawlJob:
        """POST /knowledge/crawl."""
        return await self._send_json(
            "POST", "/knowledge/crawl", {"url": url}, CrawlJob.from_json, idempotency_key
        )

    async def upload_knowledge_file(
        self,
        filename: str,
        content: bytes,
        *,
        content_type: str = "text/plain",
        idempotency_key: str | None = None,
    ) -> KnowledgeFile:
        """POST /knowledge/files (PDF or plain text, multipart)."""

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", content, filename=filename, content_type=content_type)
            return data

        reply = await self._transport.request(
            "POST", "/knowledge/files", form=form, idempotency_key=idempotency_key
        )
        return _parse(reply, KnowledgeFile.from_json, "POST /knowledge/files")

    async def list_knowledge_files(self) -> list[KnowledgeFile]:
        """GET /knowledge/files."""
        return await self._get(
            "/knowledge/files",
            lambda body: [KnowledgeFile.from_json(item) for item in data_list(body)],
        )

    async def delete_knowledge_file(
        self, file_id: str, *, idempotency_key: str | None = None
    ) -> None:
        """DELETE /knowledge/files/{id}."""
        path = f"/knowledge/files/{_seg(file_id)}"
        await self._transport.request("DELETE", path, idempotency_key=idempotency_key)

    # ---- usage and billing (§10) ---------------------------------------------------------

    async def get_usage(self, period: str) -> Usage:
        """GET /usage?period=YYYY-MM."""
        return await self._get("/usage", Usage.from_json, period=period)

    async def get_wallet(self) -> Wallet:
        """GET /wallet."""
        return await self._get("/wallet", Wallet.from_json)

    async def list_invoices(self) -> list[Invoice]:
        """GET /invoices."""
        return await self._get(
            "/invoices", lambda body: [Invoice.from_json(item) for item in data_list(body)]
        )
