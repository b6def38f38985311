"""Retry policy as pure functions: what to retry, and how long to wait before the next try.

The jitter source is a parameter (``rng`` returns a float in [0, 1)), so tests pin it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

from campaign.errors import (
    ApiError,
    DeadlineExceededError,
    RateLimitedError,
    RateLimitWaitError,
    SendWindowClosedError,
)

Jitter = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried."""

    max_attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    rng: Jitter = field(default=random.random, repr=False)
    # The longest Retry-After honoured: the API's longest window is an hour, so a longer
    # wait is a misbehaving server or proxy, and waiting it out would hold the campaign's
    # lock for no good reason.  A longer one stops the run early (RateLimitWaitError).
    longest_wait_s: float = 3600.0 + 60.0


# Transient for the run, never for this request: the client itself decided to stop trying.
_GIVEN_UP = (DeadlineExceededError, SendWindowClosedError, RateLimitWaitError)


def should_retry(error: ApiError) -> bool:
    """Retry exactly the errors marked transient, except those where the client gave up."""
    return error.transient and not isinstance(error, _GIVEN_UP)


def backoff_seconds(
    attempt: int, rng: Jitter, *, base_s: float = 0.5, cap_s: float = 30.0
) -> float:
    """Capped exponential backoff with "equal jitter": in [d/2, d), d = min(cap, base·2^(n-1))."""
    ceiling = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return ceiling / 2.0 + rng() * ceiling / 2.0


def sleep_seconds(
    attempt: int,
    retry_after: float | None,
    rng: Jitter,
    *,
    base_s: float = 0.5,
    cap_s: float = 30.0,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): Retry-After if given, never less."""
    if retry_after is not None:
        # The server said when the request would be admitted; earlier only extends the wait
        # (every refusal counts against the window).  A little jitter spreads the herd.
        return max(0.0, retry_after) + rng() * min(base_s, 1.0) / 2.0
    return backoff_seconds(attempt, rng, base_s=base_s, cap_s=cap_s)


def retry_after_of(error: ApiError) -> float | None:
    """The server-imposed wait of an error, if it carries one."""
    return error.retry_after if isinstance(error, RateLimitedError) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Parse ``Retry-After``: integer seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
