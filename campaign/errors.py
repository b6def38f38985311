"""The one exception tree of the project.

Every expected failure is one of these; each is *transient* (retrying the same thing
later may succeed) or *terminal* (it will not), and that marker — never string
matching — decides retry versus fail. ``exit_code`` is what the CLI exits with.

    CampaignError                      base; .transient, .exit_code
    ├── ConfigError                    campaign file unusable (file, key path)      exit 2
    ├── InputError                     input/suppression file unusable (file, line) exit 2
    ├── LowBalanceError                estimated cost above the wallet balance     exit 2
    ├── LockedError                    another run holds the campaign's lock       exit 75
    ├── StateError                     the checkpoint cannot be used               exit 1
    ├── OutputError                    an output file cannot be written            exit 1
    ├── InsufficientFundsError         the wallet ran dry mid-run                  exit 1
    └── ApiError                       anything the API or the network did          exit 1
        ├── TransportError             transient: no response; request not sent
        │   └── AmbiguousError         transient: sent, response lost (may have executed)
        │       └── ResponseTimeoutError
        ├── DeadlineExceededError      terminal: the request's overall deadline passed
        ├── AuthError                  terminal, exit 4
        │   ├── UnauthenticatedError   401 unauthenticated
        │   └── PermissionDeniedError  403 permission_denied
        ├── InvalidArgumentError       400 invalid_argument
        ├── NotFoundError              404 not_found
        ├── IdempotencyConflictError   409 idempotency_conflict (a bug; never retried)
        ├── RequestInProgressError     409 request_in_progress (transient)
        ├── PayloadTooLargeError       413 payload_too_large
        ├── FailedPreconditionError    422 failed_precondition
        ├── RateLimitedError           429 rate_limited (transient; .retry_after)
        ├── InternalServerError        500 internal (transient)
        ├── UnavailableError           502/503/504 unavailable (transient)
        ├── UnexpectedResponseError    any other status or an unreadable body
        ├── PollOutageError            polling failed for minutes without a break
        ├── SendWindowClosedError      transient: not sent, the calling window closes
        └── RateLimitWaitError         transient: a 429's wait ends past the run's bound

No message of any error ever contains the API key.
"""

from __future__ import annotations


class CampaignError(Exception):
    """Base of every error the project raises on purpose."""

    transient: bool = False
    exit_code: int = 1


class ConfigError(CampaignError):
    """The campaign file is unusable; the message names the file and key path."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None):
        self.path = path
        self.key = key
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class InputError(CampaignError):
    """An input or suppression file cannot be read; the message names file and line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class LowBalanceError(CampaignError):
    """The estimated cost of the run exceeds the wallet balance."""

    exit_code = 2


class LockedError(CampaignError):
    """Another run holds this campaign's lock."""

    exit_code = 75


class StateError(CampaignError):
    """The checkpoint cannot be opened, migrated or trusted."""


class InsufficientFundsError(CampaignError):
    """Calls fail with insufficient_funds: the wallet must be topped up."""


class ApiError(CampaignError):
    """An error from the API or the way to it."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        request_id: str | None = None,
    ):
        self.http_status = http_status
        self.code = code
        self.field = field
        self.request_id = request_id
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.http_status is not None:
            parts.append(f"(HTTP {self.http_status}{' ' + self.code if self.code else ''})")
        if self.field:
            parts.append(f"[field {self.field}]")
        if self.request_id:
            parts.append(f"[request_id {self.request_id}]")
        return " ".join(parts)


class TransportError(ApiError):
    """The request did not reach the server; it certainly did not execute."""

    transient = True


class AmbiguousError(TransportError):
    """The request was sent but no response came back: it may have executed."""


class ResponseTimeoutError(AmbiguousError):
    """The response did not arrive in time after the request was sent."""


class DeadlineExceededError(ApiError):
    """The overall deadline for one request (all its retries) has passed."""


class AuthError(ApiError):
    """The API refused the key (401) or its scopes (403)."""

    exit_code = 4


class UnauthenticatedError(AuthError):
    """401 unauthenticated."""


class PermissionDeniedError(AuthError):
    """403 permission_denied: the key lacks a scope."""


class InvalidArgumentError(ApiError):
    """400 invalid_argument."""


class NotFoundError(ApiError):
    """404 not_found."""


class IdempotencyConflictError(ApiError):
    """409 idempotency_conflict: the key was reused with another request."""


class RequestInProgressError(ApiError):
    """409 request_in_progress: the same request is still executing."""

    transient = True


class PayloadTooLargeError(ApiError):
    """413 payload_too_large."""


class FailedPreconditionError(ApiError):
    """422 failed_precondition."""


class RateLimitedError(ApiError):
    """429 rate_limited; ``retry_after`` seconds until the request would be admitted."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        limit: str | None = None,
        **kw: object,
    ):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.limit = limit


class InternalServerError(ApiError):
    """500 internal."""

    transient = True


class UnavailableError(ApiError):
    """502/503/504 unavailable, possibly from a proxy with a non-JSON body."""

    transient = True


class UnexpectedResponseError(ApiError):
    """A status or body the contract does not describe."""


class PollOutageError(ApiError):
    """Polling the API failed without a break for too long: the run stops (exit 1)."""


class SendWindowClosedError(ApiError):
    """A request was not sent (again): the recipient's calling window closes before it could.

    Transient: the attempt stays *sending* and is re-sent, same key and bytes, in the
    recipient's next calling window.
    """

    transient = True


class OutputError(CampaignError):
    """results.csv, summary.json or report.html cannot be written (the checkpoint is fine)."""


class RateLimitWaitError(ApiError):
    """A 429's ``Retry-After`` ends after the run must stop (or the run was told to stop).

    Transient: nothing was created; the run stops early with work left (exit 3, like
    ``--until``) and the next run resumes once the limit has freed.
    """

    transient = True
    exit_code = 3
