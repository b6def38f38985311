"""The one place where foreign failures and error responses become ``campaign.errors``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from campaign.api.retry import parse_retry_after
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

# The failures of the network and of aiohttp that ``to_api_error`` maps.
NETWORK_FAILURES = (aiohttp.ClientError, TimeoutError, OSError)

_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_argument": InvalidArgumentError,
    "unauthenticated": UnauthenticatedError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "idempotency_conflict": IdempotencyConflictError,
    "request_in_progress": RequestInProgressError,
    "payload_too_large": PayloadTooLargeError,
    "failed_precondition": FailedPreconditionError,
    "rate_limited": RateLimitedError,
    "internal": InternalServerError,
    "unavailable": UnavailableError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: FailedPreconditionError,
    429: RateLimitedError,
    500: InternalServerError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}
# Which codes may legitimately come with which status; anything else is judged by status.
_CODE_STATUS = {
    "invalid_argument": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "idempotency_conflict": 409,
    "request_in_progress": 409,
    "payload_too_large": 413,
    "failed_precondition": 422,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


@dataclass(frozen=True)
class RawResponse:
    """An HTTP response as read off the wire."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def to_api_error(failure: BaseException | RawResponse, *, where: str, now: float) -> ApiError:
    """Map an aiohttp/asyncio failure or a non-2xx response to the project's error tree.

    ``where`` names the request (``"POST /calls"``); ``now`` resolves an HTTP-date
    ``Retry-After``.  Callers ``raise to_api_error(exc, ...) from exc``.
    """
    if isinstance(failure, RawResponse):
        return _from_response(failure, where, now)
    return _from_exception(failure, where)


def _from_exception(exc: BaseException, where: str) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    detail = type(exc).__name__
    # Connect-phase failures: nothing was sent, so nothing can have executed.
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return TransportError(f"{where}: could not connect to the API ({detail})")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return ResponseTimeoutError(
            f"{where}: no response in time; the request may have been executed ({detail})"
        )
    # Anything after the connection was made (reset, disconnect, truncated body): the
    # request may have reached the server and executed.
    return AmbiguousError(
        f"{where}: the connection broke after the request was sent; it may have been "
        f"executed ({detail})"
    )


def _from_response(response: RawResponse, where: str, now: float) -> ApiError:
    status = response.status
    error = _error_object(response.body)
    code = _text(error.get("code"))
    message = _text(error.get("message"))
    request_id = _text(error.get("request_id")) or response.headers.get("X-Request-Id")
    kind = _BY_CODE.get(code or "") if _CODE_STATUS.get(code or "") == status else None
    if kind is None and status == 409:
        # A 409 whose code we cannot read: treating it as a conflict (never retried) is
        # the safe side; retrying could only help a request_in_progress.
        kind = IdempotencyConflictError
    if kind is None:
        kind = _BY_STATUS.get(status)
    if kind is None:
        # Any other 5xx is a platform fault a retry with the same key may get past.
        kind = UnavailableError if 500 <= status <= 599 else UnexpectedResponseError
    if not message:
        message = "no JSON error body (a proxy's page?)" if not error else "no error message"
    fields = {
        "http_status": status,
        "code": code,
        "field": _text(error.get("field")),
        "request_id": request_id,
    }
    text = f"{where}: {message}"
    if kind is RateLimitedError:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        limit = _text(error.get("limit"))
        return RateLimitedError(text, retry_after=retry_after, limit=limit, **fields)
    return kind(text, **fields)  # type: ignore[arg-type]


def _error_object(body: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}  # a proxy's HTML page, or nothing at all
    inner = parsed.get("error") if isinstance(parsed, dict) else None
    return inner if isinstance(inner, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
