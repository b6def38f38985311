"""Retry policy: which errors are retried and how long the client waits."""

from __future__ import annotations

import pytest

from campaign.api.retry import backoff_seconds, parse_retry_after, should_retry, sleep_seconds
from campaign.errors import (
    AmbiguousError,
    ApiError,
    DeadlineExceededError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RateLimitWaitError,
    RequestInProgressError,
    ResponseTimeoutError,
    SendWindowClosedError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
    UnexpectedResponseError,
)

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransportError("x"), True),
        (AmbiguousError("x"), True),
        (ResponseTimeoutError("x"), True),
        (RequestInProgressError("x", http_status=409), True),
        (RateLimitedError("x", retry_after=3), True),
        (InternalServerError("x", http_status=500), True),
        (UnavailableError("x", http_status=503), True),
        (IdempotencyConflictError("x", http_status=409), False),
        (InvalidArgumentError("x", http_status=400), False),
        (UnauthenticatedError("x", http_status=401), False),
        (PermissionDeniedError("x", http_status=403), False),
        (NotFoundError("x", http_status=404), False),
        (PayloadTooLargeError("x", http_status=413), False),
        (FailedPreconditionError("x", http_status=422), False),
        (UnexpectedResponseError("x", http_status=418), False),
        (DeadlineExceededError("x"), False),
        (SendWindowClosedError("x"), False),  # re-sent in the next window, not now
        (RateLimitWaitError("x", http_status=429), False),  # the run stops first
    ],
)
def test_should_retry_follows_the_transient_marker(error: ApiError, retried: bool) -> None:
    assert should_retry(error) is retried


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [
        (1, 0.0, 0.25),  # ceiling 0.5 -> [0.25, 0.5)
        (1, 0.999, 0.49975),
        (2, 0.0, 0.5),
        (3, 0.5, 1.5),  # ceiling 2.0 -> 1.0 + 0.5
        (7, 0.0, 15.0),  # ceiling 32 capped to 30
        (50, 0.0, 15.0),  # no overflow, still capped
    ],
)
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, rng: float, expected: float
) -> None:
    assert backoff_seconds(attempt, lambda: rng) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "rng", "low"),
    [
        (1, 7.0, 0.0, 7.0),
        (5, 1.0, 0.0, 1.0),  # Retry-After, not the (longer) backoff of attempt 5
        (1, 30.0, 0.99, 30.0),
        (1, 0.0, 0.0, 0.0),
    ],
)
def test_retry_after_is_waited_never_less(
    attempt: int, retry_after: float, rng: float, low: float
) -> None:
    wait = sleep_seconds(attempt, retry_after, lambda: rng)
    assert low <= wait <= low + 0.5


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after_reads_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    assert parse_retry_after("Thu, 28 May 2026 20:26:50 GMT", NOW) == 10.0


def test_parse_retry_after_of_a_past_date_is_zero() -> None:
    assert parse_retry_after("Thu, 28 May 2026 20:26:30 GMT", NOW) == 0.0
