"""Placing calls (calls mode): send one committed attempt, and find lost ones again.

An attempt is always committed as *sending* with its exact body before this module sends
it, so every outcome here is either a recorded answer or an attempt left *sending* that
the next run sends again with the same key and the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from campaign.api.models import Call
from campaign.clock import Clock
from campaign.engine.api import CallLister, CallsApi
from campaign.engine.attempts import idempotency_key, metadata_matches
from campaign.engine.calls.collect import rfc3339
from campaign.errors import (
    ApiError,
    AuthError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitWaitError,
    SendWindowClosedError,
)
from campaign.store.checkpoint import Attempt, Store

log = logging.getLogger("campaign.engine.calls.submit")

# The server remembers a key for 24 h from first receipt; our sending_at is never later
# than that receipt, and an hour of margin covers clock skew between us and the server.
SERVER_KEY_MEMORY_S = 24 * 3600.0
RECONCILE_AFTER_S = SERVER_KEY_MEMORY_S - 3600.0
LOOKUP_MARGIN_S = 3600.0

SendVerdict = Literal["sent", "rejected", "unsent", "window_closed"]


@dataclass(frozen=True)
class SendResult:
    """How one send ended: ``sent`` (call id recorded), ``rejected`` (for good), ``unsent``."""

    verdict: SendVerdict
    call_id: str | None = None
    error: ApiError | None = None


async def send_attempt(
    store: Store,
    client: CallsApi,
    attempt: Attempt,
    clock: Clock,
    *,
    send_by: float | None = None,
) -> SendResult:
    """POST the attempt's stored bytes with its key; record the answer.

    Terminal refusals of this one row (400, 413, 404, 409 idempotency_conflict) fail the
    attempt and the row; errors that concern the whole run (401/403, 422, transport)
    leave the attempt *sending* or give the row back, and are raised to stop the run.
    ``send_by`` (on ``clock.now()``) is the last moment a try may leave: the recipient's
    calling window closes after it, and the attempt then waits *sending* for the next one.
    """
    key = attempt.idempotency_key
    # Committed before the request leaves: a replay of a request that never left this
    # checkpoint before is another checkpoint's call (see _foreign_replay).
    store.note_send(key)
    try:
        call = await client.create_call(attempt.body, key, send_by=send_by)
    except SendWindowClosedError as exc:
        log.info(
            "row %s attempt %d: not sent again, the calling window closes (%s); it stays "
            "sending and is re-sent in the next window",
            attempt.row_key,
            attempt.number,
            exc,
            extra={"row_key": attempt.row_key, "attempt": attempt.number},
        )
        return SendResult("window_closed", error=exc)
    except IdempotencyConflictError as exc:
        # Never re-key: a conflict means our stored bytes differ from what the server saw
        # under this key, which is a bug that a new key would turn into a double call.
        log.error(
            "IDEMPOTENCY CONFLICT for row %s attempt %d (key %s): %s; the attempt is failed "
            "and will not be re-sent",
            attempt.row_key,
            attempt.number,
            key,
            exc,
            extra={"row_key": attempt.row_key, "attempt": attempt.number},
        )
        store.fail_attempt(
            key,
            f"idempotency_conflict: {exc}",
            row_progress="failed",
            row_reason="idempotency conflict (a bug; see the log)",
        )
        return SendResult("rejected", error=exc)
    except (InvalidArgumentError, PayloadTooLargeError, NotFoundError) as exc:
        log.warning(
            "row %s: the API refused the call: %s",
            attempt.row_key,
            exc,
            extra={"row_key": attempt.row_key, "attempt": attempt.number},
        )
        store.fail_attempt(
            key,
            str(exc),
            row_progress="failed",
            row_reason=f"API refused the call: {exc.message}",
        )
        return SendResult("rejected", error=exc)
    except FailedPreconditionError as exc:
        # 422 is about the campaign (e.g. an unknown scenario_id), not the row: the row is
        # given back untouched and gets a fresh attempt once the file is fixed.
        store.abandon_attempt(key, str(exc))
        raise
    except (AuthError, RateLimitWaitError):
        raise  # the run stops: exit 4, or exit 3 when the limit frees after its end
    except ApiError as exc:
        if exc.transient:
            log.warning(
                "row %s attempt %d: no answer from the API (%s); it stays sending and is "
                "re-sent with the same key",
                attempt.row_key,
                attempt.number,
                exc,
                extra={"row_key": attempt.row_key, "attempt": attempt.number},
            )
            return SendResult("unsent", error=exc)
        raise
    if _foreign_replay(attempt, call):
        log.error(
            "row %s attempt %d: the API answered with call %s, which this checkpoint never "
            "placed: another checkpoint of this campaign (another state dir, or one that was "
            "deleted) uses the same idempotency keys on this API project. The call is not "
            "adopted and the row is not called again; give each state dir its own campaign "
            "name",
            attempt.row_key,
            attempt.number,
            call.id,
            extra={"row_key": attempt.row_key, "attempt": attempt.number, "call_id": call.id},
        )
        store.fail_attempt(
            key,
            f"foreign replay: call {call.id} was placed by another checkpoint",
            row_progress="failed",
            row_reason=(
                f"already called by another checkpoint of this campaign (call {call.id}); "
                "not called again"
            ),
        )
        return SendResult("rejected", call_id=call.id)
    store.mark_sent(key, call.id, call.status, clock.now())
    log.info(
        "row %s attempt %d placed as %s",
        attempt.row_key,
        attempt.number,
        call.id,
        extra={
            "row_key": attempt.row_key,
            "attempt": attempt.number,
            "call_id": call.id,
            "status": call.status,
        },
    )
    return SendResult("sent", call_id=call.id)


def _foreign_replay(attempt: Attempt, call: Call) -> bool:
    """True if the server replayed a call that no request of this checkpoint created.

    The request left this checkpoint for the first time (no earlier send recorded, one
    try in this call): a replay can then only answer someone else's request.
    """
    return call.replayed and call.tries <= 1 and attempt.sends == 0


async def reconcile_stale(
    store: Store,
    client: CallLister,
    *,
    campaign: str,
    now: float,
    only: set[str] | None = None,
) -> tuple[int, list[Call]]:
    """Find calls of attempts *sending* longer than the server remembers keys.

    Pages ``GET /calls?since=…`` from the oldest stale attempt and matches metadata;
    returns (stale attempts, the calls found) for the collector to fold in. Attempts not
    found were never created and are safe to send again with the same key. ``only``
    limits the lookup to these attempt keys (one attempt that turned stale mid-run).
    """
    stale = [
        a
        for a in store.attempts("sending")
        if now - a.sending_at > RECONCILE_AFTER_S and (only is None or a.idempotency_key in only)
    ]
    if not stale:
        return 0, []
    wanted = {a.idempotency_key for a in stale}
    since = rfc3339(min(a.sending_at for a in stale) - LOOKUP_MARGIN_S)
    found: list[Call] = []
    cursor: str | None = None
    while wanted:
        page = await client.list_calls(since=since, limit=100, cursor=cursor or None)
        for call in page.data:
            match = metadata_matches(call.metadata, campaign)
            if match is None:
                continue
            key = idempotency_key(campaign, *match)
            if key in wanted:
                wanted.discard(key)
                found.append(call)
        cursor = page.next_cursor
        if not cursor:
            break
    log.info(
        "reconciled %d attempt(s) older than the server's key memory: %d found, %d to re-send",
        len(stale),
        len(found),
        len(stale) - len(found),
    )
    return len(stale), found
