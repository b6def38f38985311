"""One request, done safely: limiter slots, the same Idempotency-Key on every retry,
backoff, an overall deadline, and every failure mapped to ``campaign.errors``.

Times given to the transport (``send_by``, the run's ``stop_at``) are on the clock's
``now()``, the clock of every send time and limiter window.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Literal

import aiohttp
from yarl import URL

from campaign.api.failures import NETWORK_FAILURES, RawResponse, to_api_error
from campaign.api.giving_up import (
    deadline_error,
    rate_limit_wait_error,
    sleep_unless_stopped,
    window_closed_error,
)
from campaign.api.limiter import Limiter
from campaign.api.retry import RetryPolicy, retry_after_of, should_retry, sleep_seconds
from campaign.api.wire import format_timestamp, parse_timestamp
from campaign.clock import Clock, SystemClock, utc
from campaign.errors import (
    AmbiguousError,
    ApiError,
    ConfigError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
)

log = logging.getLogger("campaign.api")


def _user_agent() -> str:
    # From the installed distribution, not ``campaign.__version__``: the client sits at
    # the bottom layer and does not import the package root (the Python API lives there).
    try:
        return f"campaign/{importlib.metadata.version('campaign')}"
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "campaign"


USER_AGENT = _user_agent()

SendKind = Literal["request", "call"]
OnSend = Callable[[str, float], None]
# The run's bound (``--until``/``--max-duration``) on the clock's now(), or None: unbounded.
StopAt = Callable[[], float | None]
FormFactory = Callable[[], aiohttp.FormData]

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
# Statuses after which POST /calls certainly created nothing new: executed and refused, or
# refused before execution — a 429 included, whichever limit refused it: the outbound
# limit counts calls when they are created, and a refusal creates none (contract §4).
_NO_CALL_CREATED = frozenset({400, 401, 403, 404, 409, 413, 422, 429})


@dataclass
class ResponseCounts:
    """Responses seen by the requests sent inside ``counting_responses()``."""

    rate_limited: int = 0  # 429s, each try counted


_COUNTS: ContextVar[ResponseCounts | None] = ContextVar("campaign_api_counts", default=None)


@contextlib.contextmanager
def counting_responses() -> Iterator[ResponseCounts]:
    """Count the responses of every request sent in this context and the tasks it starts
    (a run's metrics file reports its 429s)."""
    counts = ResponseCounts()
    token = _COUNTS.set(counts)
    try:
        yield counts
    finally:
        _COUNTS.reset(token)


class Secret:
    """A string that never shows itself in repr(), str() or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one header that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def check_base_url(base_url: str) -> URL:
    """The base URL, if it is HTTPS or plain HTTP to a loopback host; else ConfigError."""
    url = URL(base_url.rstrip("/"))
    host = (url.host or "").strip("[]").lower()
    if url.scheme == "https" and host:
        return url
    if url.scheme == "http" and _is_loopback(host):
        return url
    raise ConfigError(
        f"api.base_url {base_url!r} must use https:// (plain http only for a loopback host)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Reply:
    """A successful response: parsed JSON (None for 204) and whether it was a replay.

    ``tries`` counts the tries of this request that left the client in this invocation,
    this one included (a try that could not even connect did not leave).
    """

    status: int
    body: Any
    replayed: bool
    request_id: str | None
    tries: int = 1


class Transport:
    """Sends requests to one API base URL with one key; owns nothing but its session."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None,
        limits: Limiter | None,
        clock: Clock,
        retry: RetryPolicy,
        request_timeout_s: float,
        deadline_s: float,
        on_send: OnSend | None,
        stop_at: StopAt | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        if not api_key or any(ch in api_key for ch in "\r\n"):
            raise ConfigError("the API key is empty or malformed")
        self._key = Secret(api_key)
        self._session = session
        self._owns_session = session is None
        self.limits = limits
        self.clock: Clock = clock or SystemClock()
        self.retry = retry
        self.request_timeout_s = request_timeout_s
        self.deadline_s = deadline_s
        self.on_send = on_send
        self.stop_at = stop_at
        self.stop = stop

    def __repr__(self) -> str:
        return f"Transport(base_url={str(self.base_url)!r})"

    async def close(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: bytes | None = None,
        form: FormFactory | None = None,
        idempotency_key: str | None = None,
        kind: SendKind = "request",
        send_by: float | None = None,
    ) -> Reply:
        """Send until success, a terminal error, the attempt limit or the deadline.

        No try starts at or after ``send_by``, and no wait is begun that would end there:
        ``SendWindowClosedError`` instead.  A 429's ``Retry-After`` is waited out even past
        the deadline, but not past the run's ``stop_at`` nor once ``stop`` is set:
        ``RateLimitWaitError`` instead.
        """
        where = f"{method} {path}"
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ValueError(
                f"{where}: Idempotency-Key must be 1-255 printable ASCII characters "
                "without leading or trailing spaces"
            )
        if idempotency_key is None and method != "GET":
            # Fixed before the loop, so that every retry is recognised as the same request.
            idempotency_key = f"auto-{uuid.uuid4()}"
        started: float | None = None
        last_error: ApiError | None = None
        attempt = 0
        tries = 0  # tries that left the client
        # Time spent waiting out a Retry-After is the server's doing, not a slow request:
        # it does not count against the deadline.
        server_waits = 0.0
        while True:
            attempt += 1
            sent_at = await self._acquire(kind)
            started = sent_at if started is None else started
            deadline = started + self.deadline_s + server_waits
            if send_by is not None and sent_at >= send_by:
                self._unsend(kind, sent_at)
                closes = self._wall_text(send_by)
                raise window_closed_error(where, tries, closes, last_error) from last_error
            if last_error is not None and sent_at >= deadline:
                # The limiter kept us past the deadline: do not send at all.
                self._unsend(kind, sent_at)
                raise deadline_error(
                    where, attempt - 1, self.deadline_s, last_error
                ) from last_error
            if self.on_send is not None:
                self.on_send(kind, sent_at)
            outcome = await self._attempt(
                method,
                path,
                where,
                query,
                json_body,
                form,
                idempotency_key,
                kind,
                sent_at,
                deadline,
            )
            if _left_the_client(outcome):
                tries += 1
            if isinstance(outcome, Reply):
                return replace(outcome, tries=tries)
            last_error = outcome
            if not should_retry(outcome) or attempt >= self.retry.max_attempts:
                raise outcome
            retry_after = retry_after_of(outcome)
            wait = sleep_seconds(
                attempt,
                retry_after,
                self.retry.rng,
                base_s=self.retry.base_s,
                cap_s=self.retry.cap_s,
            )
            wake = self.clock.now() + wait
            if send_by is not None and wake >= send_by:
                closes = self._wall_text(send_by)
                raise window_closed_error(where, tries, closes, outcome) from outcome
            if isinstance(outcome, RateLimitedError) and retry_after is not None:
                server_waits += wait
                await self._wait_out_limit(where, attempt, outcome, wait, wake)
                continue
            if wake >= deadline:
                raise deadline_error(where, attempt, self.deadline_s, outcome) from outcome
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs", where, attempt, outcome, wait
            )
            await self.clock.sleep(wait)

    async def _wait_out_limit(
        self, where: str, attempt: int, error: RateLimitedError, wait: float, wake: float
    ) -> None:
        """Wait out a 429's Retry-After, or raise RateLimitWaitError if the run cannot."""
        stop_at = None if self.stop_at is None else self.stop_at()
        reason = None
        if stop_at is not None and wake >= stop_at:
            reason = f"after the run's time limit ({self._wall_text(stop_at)})"
        elif wait > self.retry.longest_wait_s:
            reason = f"longer than the {self.retry.longest_wait_s:g}s the client waits at most"
        else:
            log.warning(
                "%s: attempt %d refused (%s); retrying in %.2fs, when the limit frees",
                where,
                attempt,
                error,
                wait,
            )
            if await sleep_unless_stopped(self.clock, wait, self.stop):
                return
            reason = "and the run was told to stop"
        raise rate_limit_wait_error(where, error, self._wall_text(wake), reason) from error

    def _wall_text(self, moment: float) -> str:
        """A moment on now() as the RFC 3339 wall-clock time a user reads."""
        wall = self.clock.wall() + (moment - self.clock.now())
        return format_timestamp(utc(round(wall)))

    def _unsend(self, kind: SendKind, sent_at: float) -> None:
        """A slot was taken but nothing left: give the call slot back (the request slot
        stays counted, which is only cautious)."""
        if kind == "call" and self.limits is not None:
            self.limits.release_call(sent_at)

    async def _acquire(self, kind: SendKind) -> float:
        if self.limits is None:
            sent_at = self.clock.now()
        elif kind == "call":
            sent_at = await self.limits.acquire_call()
        else:
            sent_at = await self.limits.acquire_request()
        return sent_at

    async def _attempt(
        self,
        method: str,
        path: str,
        where: str,
        query: Mapping[str, str] | None,
        json_body: bytes | None,
        form: FormFactory | None,
        idempotency_key: str | None,
        kind: SendKind,
        sent_at: float,
        deadline: float,
    ) -> Reply | ApiError:
        headers = {
            "Authorization": f"Bearer {self._key.reveal()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        data: bytes | aiohttp.FormData | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json_body
        elif form is not None:
            data = form()  # a fresh payload each attempt: aiohttp consumes it when sending
        budget = max(0.001, min(self.request_timeout_s, deadline - self.clock.now()))
        timeout = aiohttp.ClientTimeout(total=budget, sock_connect=min(budget, 10.0))
        url = self.base_url.with_path(self.base_url.path + path, encoded=True)
        try:
            session = self._ensure_session()
            async with session.request(
                method,
                url,
                params=query,
                data=data,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                raw = RawResponse(response.status, response.headers, await response.read())
        except NETWORK_FAILURES as exc:
            error = to_api_error(exc, where=where, now=self.clock.now())
            error.__cause__ = exc
            return error
        self._observe_limits(raw, sent_at)
        if raw.status == 429 and (counts := _COUNTS.get()) is not None:
            counts.rate_limited += 1
        replayed = raw.headers.get("Idempotent-Replayed", "").lower() == "true"
        if (
            kind == "call"
            and self.limits is not None
            and (replayed or raw.status in _NO_CALL_CREATED)
        ):
            # The server did not count this send as a new call: give the call slot back.
            self.limits.release_call(sent_at)
        if 200 <= raw.status < 300:
            return self._reply(raw, where, replayed)
        return to_api_error(raw, where=where, now=self.clock.now())

    def _reply(self, raw: RawResponse, where: str, replayed: bool) -> Reply:
        request_id = raw.headers.get("X-Request-Id")
        if raw.status == 204 or not raw.body:
            return Reply(raw.status, None, replayed, request_id)
        try:
            body = json.loads(raw.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UnexpectedResponseError(
                f"{where}: the API answered {raw.status} with a body that is not JSON",
                http_status=raw.status,
                request_id=request_id,
            ) from exc
        return Reply(raw.status, body, replayed, request_id)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _observe_limits(self, raw: RawResponse, sent_at: float) -> None:
        if self.limits is None:
            return
        remaining_text = raw.headers.get("X-RateLimit-Remaining")
        reset_text = raw.headers.get("X-RateLimit-Reset")
        if remaining_text is None or reset_text is None:
            return
        limit_text = raw.headers.get("X-RateLimit-Limit")
        try:
            remaining = int(remaining_text)
            reset = parse_timestamp(reset_text)
            limit = int(limit_text) if limit_text is not None else None
        except ValueError:
            log.debug("ignoring unreadable X-RateLimit headers")
            return
        # Reset is on the server's clock; a skewed clock only shifts the wait, and the limiter
        # never waits longer than one header window on its account.
        self.limits.observe_headers(remaining, reset, sent_at=sent_at, limit=limit)


def _left_the_client(outcome: Reply | ApiError) -> bool:
    """Whether a try reached the network (a connect failure did not; anything else did)."""
    return not isinstance(outcome, TransportError) or isinstance(outcome, AmbiguousError)
