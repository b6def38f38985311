"""Wire formats and typed results: canonical bodies, times, Decimal money, unknown fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from campaign.api import call_request_body, encode_json_body, format_timestamp, parse_timestamp
from campaign.api.models import Batch, Call, Session, Wallet, Webhook, read_batch_row_page

CALL: dict[str, Any] = {
    "id": "call_1", "status": "completed", "phone": "+14155550100", "scenario_id": "scn_demo",
    "variables": {"plan": "gold"}, "caller_id": None, "batch_id": None, "session_id": "ses_1",
    "metadata": {"row_key": "cust-1"}, "not_before": None,
    "created_at": "2026-05-13T18:42:30Z", "updated_at": "2026-05-13T18:43:30.123456789Z",
    "ended_at": "2026-05-13T18:43:30Z", "outcome": "goal_achieved", "goal_achieved": True,
    "failure_reason": None,
}  # fmt: skip
SESSION: dict[str, Any] = {
    "id": "ses_1", "call_id": "call_1", "batch_id": None, "phone": "+14155550100",
    "scenario_id": "scn_demo", "started_at": "2026-05-13T18:42:40Z",
    "ended_at": "2026-05-13T18:43:30Z", "duration_s": 50, "outcome": "goal_achieved",
    "goal_achieved": True, "slot_values": {"preferred_time": "mornings"},
    "costs": {"minutes": "0.83", "tool_calls": 1, "amount": "0.07", "currency": "USD"},
    "metadata": {},
}  # fmt: skip


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert encode_json_body({"b": 1, "a": {"é": "ü"}}) == '{"a":{"é":"ü"},"b":1}'.encode()


def test_call_body_leaves_absent_fields_out_and_writes_utc_z() -> None:
    body = call_request_body(
        phone="+14155550100",
        scenario_id="scn_demo",
        metadata={"row_key": "k"},
        not_before=datetime(2026, 5, 13, 18, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert json.loads(body) == {
        "phone": "+14155550100",
        "scenario_id": "scn_demo",
        "metadata": {"row_key": "k"},
        "not_before": "2026-05-13T16:00:00Z",
    }
    assert body == encode_json_body(json.loads(body))  # already canonical: stable across runs


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 5, 13, 18, 0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-13T18:42:30Z", datetime(2026, 5, 13, 18, 42, 30, tzinfo=UTC)),
        ("2026-05-13T18:42:30.5Z", datetime(2026, 5, 13, 18, 42, 30, 500000, tzinfo=UTC)),
        ("2026-05-13T18:42:30.123456789Z", datetime(2026, 5, 13, 18, 42, 30, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps_parse_to_aware_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2026-05-13", "2026-05-13T18:42:30", "yesterday"])
def test_non_instants_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_call_with_session_and_unknown_fields() -> None:
    call = Call.from_json({**CALL, "session": {**SESSION, "new_field": 1}, "priority": "high"})
    assert call.is_terminal and call.goal_achieved is True
    assert call.updated_at.microsecond == 123456 and call.created_at.tzinfo is not None
    assert call.session is not None and call.session.costs.amount == Decimal("0.07")
    assert call.metadata == {"row_key": "cust-1"}


def test_a_missing_documented_field_is_an_error() -> None:
    without_status = {k: v for k, v in CALL.items() if k != "status"}
    with pytest.raises(ValueError, match="status"):
        Call.from_json(without_status)


def test_a_running_session_has_no_end() -> None:
    running = {**SESSION, "ended_at": None, "duration_s": None, "outcome": None}
    session = Session.from_json({**running, "goal_achieved": None})
    assert session.ended_at is None and session.duration_s is None


def test_batch_and_rows() -> None:
    batch = Batch.from_json(
        {
            "id": "bat_1", "status": "running", "name": None, "scenario_id": "scn_demo",
            "created_at": "2026-05-13T18:42:30Z", "updated_at": "2026-05-13T18:42:31Z",
            "completed_at": None,
            "progress": {"total": 3, "invalid": 1, "pending": 2, "queued": 0, "in_progress": 0,
                         "done": 0},
            "summary": {"completed": 0, "goal_achieved": 0, "no_answer": 0, "busy": 0,
                        "voicemail": 0, "failed": 0},
        }
    )  # fmt: skip
    assert batch.progress.invalid == 1
    rows = read_batch_row_page(
        {
            "data": [
                {"row": 0, "row_ref": None, "phone": "12", "status": "invalid", "call_id": None,
                 "session_id": None, "outcome": None, "goal_achieved": None,
                 "error": {"code": "invalid_argument", "message": "phone is not E.164"}},
            ],
            "next_cursor": None,
        }
    )  # fmt: skip
    assert rows.data[0].error is not None and rows.data[0].error.code == "invalid_argument"


def test_money_is_decimal_never_float() -> None:
    wallet = Wallet.from_json(
        {"balance": "-0.10", "currency": "USD", "recent_transactions": [
            {"id": "txn_1", "amount": "-0.11", "kind": "call", "created_at": "2026-05-13T18:42:30Z"}
        ]}
    )  # fmt: skip
    assert wallet.balance == Decimal("-0.10")
    assert isinstance(wallet.recent_transactions[0].amount, Decimal)


def test_webhook_secret_is_not_in_repr() -> None:
    webhook = Webhook.from_json(
        {"id": "whk_1", "url": "https://example.org/h", "events": ["call.completed"],
         "description": None, "active": True, "created_at": "2026-05-13T18:42:30Z",
         "secret": "whsec_topsecret"}
    )  # fmt: skip
    assert webhook.secret == "whsec_topsecret"
    assert "whsec_topsecret" not in repr(webhook)
