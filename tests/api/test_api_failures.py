"""Every status/code of contract §2 and every network failure maps to one error class."""

from __future__ import annotations

import json

import aiohttp
import pytest

from campaign.api.failures import RawResponse, to_api_error
from campaign.errors import (
    AmbiguousError,
    ApiError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestInProgressError,
    ResponseTimeoutError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
    UnexpectedResponseError,
)

NOW = 1_780_000_000.0
HTML_503 = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


def error_body(code: str, **extra: str) -> bytes:
    inner = {"code": code, "message": f"{code} happened", "request_id": "req_body1", **extra}
    return json.dumps({"error": inner}).encode()


def response(status: int, body: bytes, **headers: str) -> RawResponse:
    return RawResponse(status, {"X-Request-Id": "req_header1", **headers}, body)


@pytest.mark.parametrize(
    ("status", "code", "kind", "transient"),
    [
        (400, "invalid_argument", InvalidArgumentError, False),
        (401, "unauthenticated", UnauthenticatedError, False),
        (403, "permission_denied", PermissionDeniedError, False),
        (404, "not_found", NotFoundError, False),
        (409, "idempotency_conflict", IdempotencyConflictError, False),
        (409, "request_in_progress", RequestInProgressError, True),
        (413, "payload_too_large", PayloadTooLargeError, False),
        (422, "failed_precondition", FailedPreconditionError, False),
        (429, "rate_limited", RateLimitedError, True),
        (500, "internal", InternalServerError, True),
        (502, "unavailable", UnavailableError, True),
        (503, "unavailable", UnavailableError, True),
        (504, "unavailable", UnavailableError, True),
    ],
)
def test_each_documented_status_and_code_has_its_class(
    status: int, code: str, kind: type[ApiError], transient: bool
) -> None:
    error = to_api_error(
        response(status, error_body(code, field="phone"), **{"Retry-After": "2"}),
        where="POST /calls",
        now=NOW,
    )
    assert type(error) is kind
    assert error.transient is transient
    assert (error.http_status, error.code, error.field) == (status, code, "phone")
    assert error.request_id == "req_body1"  # the body's id (a replay repeats the original)
    assert "req_body1" in str(error) and "POST /calls" in str(error)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_proxy_pages_without_json_are_transient_unavailable(status: int) -> None:
    error = to_api_error(
        RawResponse(status, {"Content-Type": "text/html"}, HTML_503), where="GET /wallet", now=NOW
    )
    assert isinstance(error, UnavailableError) and error.transient
    assert error.code is None and error.request_id is None


def test_non_json_500_and_429_are_still_classified_by_status() -> None:
    assert isinstance(
        to_api_error(response(500, b"oops"), where="GET /x", now=NOW), InternalServerError
    )
    limited = to_api_error(response(429, b"", **{"Retry-After": "9"}), where="GET /x", now=NOW)
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 9.0
    assert limited.request_id == "req_header1"  # from X-Request-Id when the body has none


def test_rate_limited_carries_retry_after_and_the_limit_name() -> None:
    error = to_api_error(
        response(429, error_body("rate_limited", limit="outbound_calls_per_minute"),
                 **{"Retry-After": "Thu, 28 May 2026 20:26:52 GMT"}),
        where="POST /calls",
        now=NOW,
    )  # fmt: skip
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 12.0
    assert error.limit == "outbound_calls_per_minute"


def test_an_unreadable_409_is_never_retried() -> None:
    error = to_api_error(response(409, b"conflict"), where="POST /calls", now=NOW)
    assert isinstance(error, IdempotencyConflictError) and not error.transient


@pytest.mark.parametrize(
    ("status", "kind"),
    [(418, UnexpectedResponseError), (302, UnexpectedResponseError), (501, UnavailableError)],
)
def test_statuses_outside_the_contract(status: int, kind: type[ApiError]) -> None:
    assert type(to_api_error(response(status, b""), where="GET /x", now=NOW)) is kind


def test_a_code_that_contradicts_the_status_is_judged_by_status() -> None:
    error = to_api_error(response(500, error_body("not_found")), where="GET /x", now=NOW)
    assert isinstance(error, InternalServerError) and error.transient


def connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("api.aitelier.org", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (connector_error(), TransportError),
        (aiohttp.ConnectionTimeoutError("connect timed out"), TransportError),
        (aiohttp.ServerDisconnectedError(), AmbiguousError),
        (aiohttp.ClientPayloadError("truncated"), AmbiguousError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), AmbiguousError),
        (aiohttp.SocketTimeoutError("read timed out"), ResponseTimeoutError),
        (TimeoutError(), ResponseTimeoutError),
        (ConnectionResetError(104, "reset"), AmbiguousError),
    ],
)
def test_network_failures(exc: BaseException, kind: type[ApiError]) -> None:
    error = to_api_error(exc, where="POST /calls", now=NOW)
    assert type(error) is kind
    assert error.transient
    # "Could not connect" is the only case known not to have executed.
    assert isinstance(error, AmbiguousError) is (kind is not TransportError)
