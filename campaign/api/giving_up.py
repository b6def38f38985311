"""When the transport stops trying one request, and the error that says why.

Three bounds end the retries of a request besides its attempt limit: its own deadline,
the recipient's calling window (``send_by`` of ``POST /calls``), and the run's own end
(``--until``/``--max-duration``, or a stop signal) while a 429 asks to wait.
"""

from __future__ import annotations

import asyncio

from campaign.clock import Clock
from campaign.errors import (
    ApiError,
    DeadlineExceededError,
    RateLimitedError,
    RateLimitWaitError,
    SendWindowClosedError,
)


def deadline_error(
    where: str, attempts: int, deadline_s: float, last: ApiError
) -> DeadlineExceededError:
    """The request's overall deadline passed; ``last`` is the error of its last try."""
    return DeadlineExceededError(
        f"{where}: gave up after {attempts} attempt(s) within the "
        f"{deadline_s:g}s deadline; last error: {last}",
        http_status=last.http_status,
        code=last.code,
        request_id=last.request_id,
    )


def window_closed_error(
    where: str, tries: int, send_by: str, last: ApiError | None
) -> SendWindowClosedError:
    """No try may leave at or after ``send_by`` (a readable time): the window closes."""
    again = " again" if tries else ""
    plural = "try" if tries == 1 else "tries"
    text = (
        f"{where}: not sent{again} because the recipient's calling window closes "
        f"(no try may leave after {send_by}; {tries} {plural} sent)"
    )
    return SendWindowClosedError(text if last is None else f"{text}; last error: {last}")


def rate_limit_wait_error(
    where: str, error: RateLimitedError, frees_at: str, reason: str
) -> RateLimitWaitError:
    """A 429's wait (until ``frees_at``, a readable time) that the run cannot make."""
    limit = f"the {error.limit} limit" if error.limit else "the rate limit"
    return RateLimitWaitError(
        f"{where}: {limit} frees at {frees_at} (Retry-After {error.retry_after:g}s), "
        f"{reason}; the run stops early with work left and the next run resumes",
        http_status=error.http_status,
        code=error.code,
        request_id=error.request_id,
    )


async def sleep_unless_stopped(clock: Clock, seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``seconds`` on ``clock``; False at once when ``stop`` is (or becomes) set."""
    if stop is None:
        await clock.sleep(seconds)
        return True
    if stop.is_set():
        return False
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()
    return not stop.is_set()
