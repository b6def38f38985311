"""The API as the engine sees it: the client methods each mode uses, with typed results.

``campaign.api.client.AitelierClient`` satisfies every Protocol here; test doubles return
the same models (``campaign.api.models``), so the engine never guesses at a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from campaign.api.models import Batch, BatchRow, Call, Page, Session, Usage, Wallet


class CallLister(Protocol):
    """``GET /calls``: one page of calls."""

    async def list_calls(
        self,
        *,
        status: str | None = None,
        since: str | None = None,
        updated_since: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Call]: ...


class SessionReader(Protocol):
    """``GET /sessions/{id}``: the facts of one conversation."""

    async def get_session(self, session_id: str) -> Session: ...


class CallsApi(CallLister, SessionReader, Protocol):
    """What calls mode uses: place a call, list calls, read sessions."""

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call: ...


class BatchFinder(CallLister, Protocol):
    """What an upload and a lookup of a recorded batch use."""

    async def create_batch(
        self,
        csv_bytes: bytes,
        *,
        scenario_id: str,
        idempotency_key: str,
        name: str | None = None,
        not_before: datetime | None = None,
    ) -> Batch: ...

    async def get_batch(self, batch_id: str) -> Batch: ...

    async def list_batch_rows(
        self, batch_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[BatchRow]: ...


class BatchesApi(BatchFinder, SessionReader, Protocol):
    """What batches mode uses: upload, follow and read batches, list calls, read sessions."""


class BillingApi(Protocol):
    """What the pre-flight uses."""

    async def get_wallet(self) -> Wallet: ...

    async def get_usage(self, period: str) -> Usage: ...
