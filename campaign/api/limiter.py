"""What the client needs of a rate limiter: a slot before each send, news after it.

The client sends every request through a ``Limiter`` it is given (``campaign.limits``
implements one over exact sliding windows); it never decides about limits itself. Times
are on the clock's ``now()``, the clock of every send time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Limiter(Protocol):
    """Request and call slots of the API key and project (contract §4)."""

    async def acquire_request(self) -> float:
        """Wait until one request may be sent; return its send time (counted from now on)."""
        ...

    async def acquire_call(self) -> float:
        """Wait until a ``POST /calls`` may be sent (a call slot and a request slot)."""
        ...

    def release_call(self, sent_at: float) -> None:
        """Give back the call slot of the send at ``sent_at``: the server created no call
        (a replay, a refusal) or nothing left; its request slot stays counted."""
        ...

    def observe_headers(
        self,
        remaining: int | None,
        reset: datetime | None,
        *,
        sent_at: float | None = None,
        limit: int | None = None,
    ) -> None:
        """Note a response's X-RateLimit-Remaining/Reset/Limit; ``sent_at`` is when the
        request that got them was sent."""
        ...
