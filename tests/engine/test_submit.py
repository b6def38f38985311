"""Sending one committed attempt: every answer of the API maps to one recorded state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.engine import make_call

from campaign.api.models import Call, Page, Session
from campaign.clock import FakeClock
from campaign.engine.attempts import call_body, idempotency_key
from campaign.engine.calls.submit import send_attempt
from campaign.errors import (
    AmbiguousError,
    ApiError,
    DeadlineExceededError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InvalidArgumentError,
    UnauthenticatedError,
)
from campaign.store.checkpoint import RowIn, Store

T0 = 1_780_000_000.0
PHONE = "+12125550100"


class OneAnswer:
    """A client whose POST /calls always gives the same answer."""

    def __init__(self, answer: Call | Exception) -> None:
        self.answer = answer
        self.sent: list[tuple[bytes, str]] = []

    async def create_call(
        self, body: bytes, idempotency_key: str, *, send_by: float | None = None
    ) -> Call:
        self.sent.append((body, idempotency_key))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def list_calls(self, **params: Any) -> Page[Call]:
        raise AssertionError("not used")

    async def get_session(self, session_id: str) -> Session:
        raise AssertionError("not used")


def _attempt(tmp_path: Path) -> tuple[Store, Any]:
    store = Store.open(tmp_path / "c.sqlite")
    store.sync_rows(
        [RowIn(line=2, row_key=PHONE, raw_phone=PHONE, e164=PHONE, plan_state="callable")], T0
    )
    body = call_body(
        campaign="c", scenario_id="s", row_key=PHONE, number=1, phone=PHONE, variables={}
    )
    return store, store.begin_attempt(PHONE, 1, idempotency_key("c", PHONE, 1), body, T0)


async def test_created_call_is_recorded_with_its_id_and_the_stored_bytes_are_sent(
    tmp_path: Path,
) -> None:
    store, attempt = _attempt(tmp_path)
    client = OneAnswer(make_call(id="call_1", status="queued"))
    result = await send_attempt(store, client, attempt, FakeClock(T0))
    assert result.verdict == "sent"
    assert client.sent == [(attempt.body, attempt.idempotency_key)]
    assert store.attempt(attempt.idempotency_key).call_id == "call_1"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (IdempotencyConflictError("conflict", http_status=409), "idempotency conflict"),
        (InvalidArgumentError("phone must be E.164", http_status=400), "API refused the call"),
    ],
)
async def test_terminal_refusals_fail_the_row_and_never_rekey(
    tmp_path: Path, error: ApiError, reason: str
) -> None:
    store, attempt = _attempt(tmp_path)
    result = await send_attempt(store, OneAnswer(error), attempt, FakeClock(T0))
    assert result.verdict == "rejected"
    assert store.attempt(attempt.idempotency_key).state == "failed"
    row = store.row(PHONE)
    assert row.progress == "failed" and reason in (row.reason or "")
    assert store.next_attempt_number(PHONE) == 2  # the failed key is never reused


@pytest.mark.parametrize("error", [AmbiguousError("reset"), DeadlineExceededError("gave up")])
async def test_no_answer_leaves_the_attempt_sending_for_a_resend(
    tmp_path: Path, error: ApiError
) -> None:
    store, attempt = _attempt(tmp_path)
    if error.transient:
        result = await send_attempt(store, OneAnswer(error), attempt, FakeClock(T0))
        assert result.verdict == "unsent"
    else:
        with pytest.raises(DeadlineExceededError):
            await send_attempt(store, OneAnswer(error), attempt, FakeClock(T0))
    assert store.attempt(attempt.idempotency_key).state == "sending"
    assert store.row(PHONE).progress == "in_flight"


async def test_auth_failure_stops_the_run_and_leaves_the_attempt_sending(tmp_path: Path) -> None:
    store, attempt = _attempt(tmp_path)
    with pytest.raises(UnauthenticatedError):
        await send_attempt(store, OneAnswer(UnauthenticatedError("401")), attempt, FakeClock(T0))
    assert store.attempt(attempt.idempotency_key).state == "sending"


async def test_unknown_scenario_gives_the_row_back_untouched(tmp_path: Path) -> None:
    store, attempt = _attempt(tmp_path)
    with pytest.raises(FailedPreconditionError):
        await send_attempt(
            store, OneAnswer(FailedPreconditionError("scenario")), attempt, FakeClock(T0)
        )
    row = store.row(PHONE)
    assert (row.progress, row.attempts_used) == ("pending", 0)
