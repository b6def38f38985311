"""Batches mode: find a batch whose upload outlived the server's 24 h idempotency memory.

A batch left *uploading* by a crash is normally re-sent with the same key and the server
replays. After 24 h the key is forgotten, and a re-send could create a second batch that
dials the same people again. So first look for it: the platform dials an accepted batch's
rows, and each dial is a call carrying its ``batch_id``; a batch whose rows (``row_ref``,
phone, in file order) are exactly ours is the one we uploaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from campaign.api.wire import format_timestamp
from campaign.clock import utc
from campaign.store_batches import Member, StoredBatch

log = logging.getLogger("campaign.batches")

IDEMPOTENCY_MEMORY_S = 24 * 3600.0
# Look up instead of re-sending once the key might be forgotten: an hour early, for clock
# skew and for the time the lookup itself takes.
LOOKUP_AFTER_S = IDEMPOTENCY_MEMORY_S - 3600.0
CLOCK_SKEW_S = 300.0


class FindApi(Protocol):
    """The client methods the lookup uses."""

    async def list_calls(
        self, *, since: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Any: ...

    async def get_batch(self, batch_id: str) -> Any: ...

    async def list_batch_rows(
        self, batch_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Any: ...


def needs_lookup(stored: StoredBatch, now: float) -> bool:
    """True if the server may have forgotten this *uploading* batch's key."""
    return stored.state == "uploading" and now - stored.created_at >= LOOKUP_AFTER_S


async def find_uploaded(
    client: FindApi, stored: StoredBatch, members: Sequence[Member], phones: Sequence[str]
) -> Any | None:
    """The platform's Batch for this recorded file, if it was created; else None."""
    wanted = set(phones)
    seen: set[str] = set()
    since = format_timestamp(utc(stored.created_at - CLOCK_SKEW_S))
    cursor: str | None = None
    while True:
        page = await client.list_calls(since=since, limit=100, cursor=cursor)
        for call in page.data:
            batch_id = getattr(call, "batch_id", None)
            if batch_id is None or batch_id in seen or call.phone not in wanted:
                continue
            seen.add(batch_id)
            if await _same_rows(client, batch_id, members, phones):
                log.warning(
                    "batch %d was created before a crash; adopting %s", stored.seq, batch_id
                )
                return await client.get_batch(batch_id)
        cursor = page.next_cursor
        if not cursor:
            return None


async def _same_rows(
    client: FindApi, batch_id: str, members: Sequence[Member], phones: Sequence[str]
) -> bool:
    """True if the batch's rows are our members, in order (row_ref and phone)."""
    index = 0
    cursor: str | None = None
    while True:
        page = await client.list_batch_rows(batch_id, limit=500, cursor=cursor)
        for row in page.data:
            if index >= len(members):
                return False
            if row.row_ref != members[index].row_key or row.phone != phones[index]:
                return False
            index += 1
        cursor = page.next_cursor
        if not cursor:
            return index == len(members)
