"""The API's error answers as an exception the handlers raise and the dispatcher renders."""

from __future__ import annotations

import secrets

STATUS_OF_CODE = {
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


class ApiProblem(Exception):
    """An error answer of the API: HTTP status, code, message and optional field/limit."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        limit: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = STATUS_OF_CODE[code]
        self.message = message
        self.field = field
        self.limit = limit
        self.retry_after = retry_after

    def body(self, request_id: str) -> dict[str, object]:
        """The JSON error envelope."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.limit is not None:
            error["limit"] = self.limit
        error["request_id"] = request_id
        return {"error": error}


def invalid(message: str, field: str | None = None) -> ApiProblem:
    """400 invalid_argument."""
    return ApiProblem("invalid_argument", message, field=field)


def not_found(what: str = "resource") -> ApiProblem:
    """404 not_found (also for another project's resources: existence is not leaked)."""
    return ApiProblem("not_found", f"{what} not found")


def new_id(prefix: str) -> str:
    """A fresh opaque id with the contract's prefix."""
    return f"{prefix}_{secrets.token_hex(8)}"
