"""Calls mode, following: poll ``GET /calls?updated_since=…`` a page at a time, fold in.

One list request covers up to 100 changed calls, so the request cost per row stays near
one POST plus (optionally) one session fetch. The watermark is the newest ``updated_at``
the server showed us, less a second of overlap (inclusive, server time, so our clock's
skew does not matter); it is stored after each poll, once what it taught us is recorded.
``CallCollector`` is the task that polls on a request budget while the sender sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from campaign.api.models import Call
from campaign.engine.api import CallLister, CallsApi
from campaign.engine.attempts import idempotency_key, metadata_matches
from campaign.engine.frame import EngineDeps, EngineResult
from campaign.engine.outcomes import RetryRules, fetch_sessions, record_call_end
from campaign.errors import ApiError, DeadlineExceededError, PollOutageError, RateLimitWaitError
from campaign.planning.schedule import WindowFor
from campaign.store.checkpoint import CallEnd, Store
from campaign.store.optout import OptOutList

log = logging.getLogger("campaign.engine.calls.collect")
T = TypeVar("T")

PAGE_LIMIT = 100
WATERMARK_KEY = "collect_watermark"
WATERMARK_OVERLAP_S = 1.0
# How far back the collector looks on a fresh checkpoint: server and local clocks may
# disagree by this much.
CLOCK_SKEW_S = 300.0
MIN_POLL_S = 1.0
MAX_POLL_S = 30.0
# Polling that fails for this long without a break ends the run (exit 1): the outcomes
# of calls in progress cannot be read, and a run that waits for them forever would hold
# the campaign's lock against every later cron run.
POLL_OUTAGE_S = 300.0


def timestamp(value: object) -> float | None:
    """Epoch seconds from a datetime or an RFC 3339 string (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def rfc3339(value: object) -> str:
    """RFC 3339 UTC text (with fractions when present) from a datetime, string or epoch."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        text = moment.astimezone(UTC).isoformat()
        return text.replace("+00:00", "Z")
    return str(value)


@dataclass
class PollResult:
    """What one poll learned."""

    pages: int = 0
    ended: int = 0
    insufficient_funds: int = 0
    ended_keys: list[str] = field(default_factory=list)


def apply_call(
    store: Store,
    call: Call,
    *,
    campaign: str,
    retry: RetryRules,
    opt_outs: OptOutList,
    now: float,
    result: PollResult,
    window_for: WindowFor | None = None,
) -> None:
    """Fold one call seen on the API into the checkpoint (idempotent)."""
    match = metadata_matches(call.metadata, campaign)
    if match is None:
        return
    row_key, number = match
    key = idempotency_key(campaign, row_key, number)
    try:
        attempt = store.attempt(key)
    except Exception:  # a call of ours the checkpoint does not know (another state dir)
        log.warning(
            "call %s carries this campaign's metadata but no attempt matches",
            call.id,
            extra={"row_key": row_key, "attempt": number, "call_id": call.id},
        )
        return
    if attempt.state not in ("sending", "sent", "withheld"):
        return
    if attempt.state in ("sending", "withheld"):
        # The response to our POST was lost, but the list shows the call exists.
        store.mark_sent(key, call.id, call.status, now)
    updated = rfc3339(call.updated_at)
    if not call.is_terminal:
        if call.status != attempt.status:
            store.record_status(key, call.status, updated)
        return
    end = CallEnd(
        status=call.status,
        outcome=call.outcome,
        goal_achieved=call.goal_achieved,
        failure_reason=call.failure_reason,
        session_id=call.session_id,
        ended_at=timestamp(call.ended_at) or now,
        updated_at=updated,
    )
    decision = record_call_end(
        store, attempt, end, dialled=call.phone, campaign=campaign, retry=retry,
        opt_outs=opt_outs, now=now, window_for=window_for,
    )  # fmt: skip
    result.ended += 1
    result.ended_keys.append(key)
    if decision.void:
        result.insufficient_funds += 1
    log.info(
        "row %s attempt %d ended %s%s",
        row_key,
        number,
        end.status,
        f" ({end.outcome})" if end.outcome else "",
        extra={
            "row_key": row_key,
            "attempt": number,
            "call_id": call.id,
            "status": end.status,
            "outcome": end.outcome,
        },
    )


async def poll_once(
    store: Store,
    client: CallLister,
    *,
    campaign: str,
    retry: RetryRules,
    opt_outs: OptOutList,
    now: float,
    default_since: float,
    window_for: WindowFor | None = None,
) -> PollResult:
    """Page through calls updated since the watermark and record what changed."""
    result = PollResult()
    watermark = store.get_meta(WATERMARK_KEY) or rfc3339(default_since)
    cursor: str | None = None
    newest = watermark
    while True:
        page = await client.list_calls(
            updated_since=watermark, limit=PAGE_LIMIT, cursor=cursor or None
        )
        result.pages += 1
        with store.transaction():
            for call in page.data:
                apply_call(
                    store,
                    call,
                    campaign=campaign,
                    retry=retry,
                    opt_outs=opt_outs,
                    now=now,
                    result=result,
                    window_for=window_for,
                )
                seen = rfc3339(call.updated_at)
                if (timestamp(seen) or 0.0) > (timestamp(newest) or 0.0):
                    newest = seen
        cursor = page.next_cursor
        if not cursor:
            break
    # Step back a little: an update committed late with an earlier updated_at (another
    # server node, a slow transaction) is then still seen; seeing a call twice is harmless.
    floor = rfc3339((timestamp(newest) or 0.0) - WATERMARK_OVERLAP_S)
    if (timestamp(floor) or 0.0) > (timestamp(watermark) or 0.0) or store.get_meta(
        WATERMARK_KEY
    ) is None:
        store.set_meta(WATERMARK_KEY, floor if newest != watermark else watermark)
    return result


class SenderState(Protocol):
    """What the collector needs to know of the sender beside it."""

    def is_sending(self) -> bool:
        """True while calls are queued or in flight and sending has not been halted."""
        ...

    def unsent_waiting(self) -> bool:
        """True if attempts are *sending* that no task is sending now."""
        ...

    def halt_sending(self) -> None:
        """Place no more calls (the wallet is empty)."""
        ...


class CallCollector:
    """Polls the list endpoint on a request budget and folds outcomes in."""

    def __init__(
        self, deps: EngineDeps[CallsApi], result: EngineResult, sender: SenderState
    ) -> None:
        self.deps = deps
        self.result = result
        self.sender = sender
        self._poll_ok_at = deps.clock.now()  # the last moment polling was known to work

    async def run(self) -> None:
        """Poll until cancelled; raises when polling is refused or down for too long."""
        store, clock, settings = self.deps.store, self.deps.clock, self.deps.settings
        while True:
            try:
                if store.count_attempts("sent") or self.sender.unsent_waiting():
                    await self._bounded(self.poll())
                elif settings.fetch_sessions and store.count_needing_session():
                    self.result.sessions += await self._bounded(
                        fetch_sessions(store, self.deps.client)
                    )
                self._poll_ok_at = clock.now()
            except RateLimitWaitError:
                raise  # the limit frees after the run must end: stop early (exit 3)
            except (ApiError, TimeoutError) as exc:
                gave_up = isinstance(exc, DeadlineExceededError)
                if isinstance(exc, ApiError) and not (exc.transient or gave_up):
                    raise
                down_s = clock.now() - self._poll_ok_at
                if down_s >= POLL_OUTAGE_S:
                    raise PollOutageError(
                        f"the API could not be read for {down_s / 60:.0f} min ({exc}); the "
                        "run stops with everything it learned kept — calls in progress are "
                        "collected by the next run"
                    ) from exc
                log.warning("polling failed (%s); trying again", exc)
            await clock.sleep(self._poll_interval())

    def _poll_interval(self) -> float:
        settings = self.deps.settings
        request_rate = min((lim.count / lim.window for lim in settings.request_limits), default=1.0)
        call_rate = min((lim.count / lim.window for lim in settings.call_limits), default=0.0)
        per_call = 2.0 if settings.fetch_sessions else 1.0
        spare = request_rate - (call_rate * per_call if self.sender.is_sending() else 0.0)
        if spare <= 0:
            spare = request_rate * 0.2  # calls alone would use the budget: poll sparingly
        interval = 1.0 / max(spare * 0.5, 1e-6)
        return min(MAX_POLL_S, max(MIN_POLL_S, interval))

    async def _bounded(self, work: Awaitable[T]) -> T:
        """Run one poll, cut short when polling has been failing for too long."""
        left = self._poll_ok_at + POLL_OUTAGE_S - self.deps.clock.now()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
        # that ends the collector when the poll finishes in the same loop turn.
        async with asyncio.timeout(max(5.0, left)):
            return await work

    async def poll(self) -> None:
        """One poll of changed calls, then the sessions the report needs."""
        deps = self.deps
        oldest = deps.store.oldest_open_attempt()
        now = deps.clock.now()
        result = await poll_once(
            deps.store,
            deps.client,
            campaign=deps.settings.campaign,
            retry=deps.settings.retry,
            opt_outs=deps.opt_outs,
            now=now,
            default_since=(oldest if oldest is not None else now) - CLOCK_SKEW_S,
            window_for=deps.window_for,
        )
        self.result.polls += result.pages
        for key in result.ended_keys:
            attempt = deps.store.attempt(key)
            deps.progress.finished(attempt.status or "unknown", attempt.outcome)
        if result.insufficient_funds:
            log.error("calls fail with insufficient_funds: no more calls are placed")
            self.result.insufficient_funds = True
            self.sender.halt_sending()
        if deps.settings.fetch_sessions:
            self.result.sessions += await fetch_sessions(deps.store, deps.client)
