"""Outgoing webhook deliveries: signed POSTs, retried with backoff on failure."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from campaign.sandbox.clock import SandboxClock, rfc3339
from campaign.sandbox.problems import new_id

log = logging.getLogger("campaign.sandbox")
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def sign(secret: str, timestamp: int, raw_body: bytes) -> str:
    """The X-AVP-Signature header value: t=<unix seconds>,v1=<hex HMAC-SHA256>."""
    message = str(timestamp).encode() + b"." + raw_body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    """One event for one subscriber."""

    url: str
    secret: str
    body: bytes


class WebhookSender:
    """A queue of deliveries worked by one background task."""

    def __init__(self, clock: SandboxClock, time_scale: float) -> None:
        self._clock = clock
        self._time_scale = time_scale
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0

    def enqueue(self, url: str, secret: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event; it is sent as soon as the background task gets to it."""
        event = {
            "id": new_id("evt"),
            "type": event_type,
            "created_at": rfc3339(self._clock.now()),
            "data": data,
        }
        self._queue.put_nowait(Delivery(url, secret, json.dumps(event).encode()))

    async def start(self) -> None:
        """Start the background task."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._work())

    async def close(self) -> None:
        """Stop sending (undelivered events are dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            await self._send(delivery)

    async def _send(self, delivery: Delivery) -> None:
        assert self._session is not None
        for attempt, pause in enumerate((0.0, *BACKOFF_S)):
            if pause:
                await asyncio.sleep(pause * min(1.0, self._time_scale))
            headers = {
                "Content-Type": "application/json",
                "X-AVP-Signature": sign(delivery.secret, int(self._clock.now()), delivery.body),
            }
            try:
                async with self._session.post(
                    delivery.url, data=delivery.body, headers=headers
                ) as response:
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("webhook delivery attempt %d failed: %s", attempt + 1, exc)
        self.failed += 1
