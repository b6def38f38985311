"""Batch rows mapped back to attempts: invalid rows, undialed rows, ended calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from campaign.api import AitelierClient, RetryPolicy
from campaign.api.models import BatchRow, BatchRowError
from campaign.clock import FakeClock
from campaign.engine.batches.plan import BatchMember, batch_idempotency_key, render_csv
from campaign.engine.batches.results import (
    classify_row,
    first_open_row,
    member_index,
    member_of,
    needs_failure_reason,
    should_read_rows,
)
from campaign.sandbox import DEFAULT_KEY, RunningSandbox, SandboxConfig, start_sandbox

T0 = 1_780_000_000.0
MEMBERS = ["c-0", "c-1", "c-2"]


def row(index: int, status: str, **fields: object) -> BatchRow:
    values: dict[str, object] = {
        "row_ref": MEMBERS[index] if index < len(MEMBERS) else None,
        "phone": "+14155550100",
        "call_id": None,
        "session_id": None,
        "outcome": None,
        "goal_achieved": None,
        "error": None,
    }
    values.update(fields)
    return BatchRow(row=index, status=status, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "batch_status", "kind"),
    [
        ("pending", "running", "open"),
        ("queued", "running", "open"),
        ("dialing", "running", "open"),
        ("in_progress", "failed", "open"),  # a live call still ends on its own
        ("pending", "failed", "undialed"),
        ("queued", "canceled", "undialed"),
        ("canceled", "canceled", "undialed"),
        ("canceled", "running", "undialed"),
        ("completed", "running", "ended"),
        ("no_answer", "completed", "ended"),
        ("busy", "failed", "ended"),
        ("voicemail", "completed", "ended"),
        ("failed", "completed", "ended"),
    ],
)
def test_verdict_table(status: str, batch_status: str, kind: str) -> None:
    verdict = classify_row(row(1, status, call_id="call_1"), MEMBERS, batch_status)
    assert verdict.kind == kind
    assert verdict.row_key == "c-1"


def test_invalid_row_is_rejected_with_the_servers_reason() -> None:
    error = BatchRowError("invalid_argument", "phone must be a valid E.164 number")
    verdict = classify_row(row(2, "invalid", error=error), MEMBERS, "running")
    assert verdict.kind == "invalid" and verdict.row_key == "c-2"
    assert verdict.reason == "rejected by the API: phone must be a valid E.164 number"


def test_completed_row_carries_outcome_and_session() -> None:
    verdict = classify_row(
        row(0, "completed", outcome="opted_out", goal_achieved=False, session_id="ses_1"),
        MEMBERS,
        "running",
        ended_at=T0,
    )
    assert verdict.end is not None
    assert (verdict.end.status, verdict.end.outcome, verdict.end.session_id) == (
        "completed",
        "opted_out",
        "ses_1",
    )
    assert not needs_failure_reason(verdict)
    assert needs_failure_reason(classify_row(row(0, "failed"), MEMBERS, "running"))


def test_rows_are_matched_by_index_and_checked_by_row_ref() -> None:
    assert member_of(row(1, "pending"), MEMBERS) == "c-1"
    assert member_of(row(1, "pending", row_ref="c-2"), MEMBERS) == "c-2"
    assert member_of(row(7, "pending", row_ref="nobody"), MEMBERS) is None
    assert classify_row(row(7, "completed", row_ref="x"), MEMBERS, "running").kind == "unknown"


def test_a_key_written_without_its_nul_still_maps_back_to_its_position() -> None:
    written = ["c-0", "c1", "c-2"]  # "c\x001" as the file holds it
    assert member_index(row(1, "completed", row_ref="c1"), written) == 1
    # A server that echoes the reference changed on the way: the number at that index decides.
    phones = ["+14155550100", "+14155550101", "+14155550102"]
    changed = row(2, "completed", row_ref="c 2", phone="+14155550102")
    assert member_index(changed, written, phones) == 2
    assert member_index(changed, written) is None
    assert classify_row(changed, written, "running", phones=phones).position == 2


def test_first_open_row_and_when_to_read_pages() -> None:
    statuses = ["busy", "dialing", "completed"]
    verdicts = [classify_row(row(i, s), MEMBERS, "running") for i, s in enumerate(statuses)]
    assert first_open_row(verdicts) == 1
    assert first_open_row(verdicts[:1], offset=500) == 501
    assert not should_read_rows(
        batch_status="running", total=1000, settled=450, rows_read=0, page_size=500
    )
    assert should_read_rows(
        batch_status="running", total=1000, settled=520, rows_read=0, page_size=500
    )
    assert should_read_rows(
        batch_status="failed", total=1000, settled=10, rows_read=10, page_size=500
    )
    assert not should_read_rows(
        batch_status="completed", total=1000, settled=1000, rows_read=1000, page_size=500
    )


# ---- against the sandbox ------------------------------------------------------------------


@pytest.fixture
async def platform() -> AsyncIterator[tuple[RunningSandbox, AitelierClient, FakeClock]]:
    clock = FakeClock(T0)
    config = SandboxConfig(ledger=True, time_scale=0.01, outbound_calls="60/min")
    sandbox = await start_sandbox(config, clock=clock)
    async with AitelierClient(
        sandbox.base_url, DEFAULT_KEY, clock=clock, retry=RetryPolicy(rng=lambda: 0.0)
    ) as api:
        yield sandbox, api, clock
    await sandbox.close()


async def test_upload_replays_and_invalid_rows_map_back(
    platform: tuple[RunningSandbox, AitelierClient, FakeClock],
) -> None:
    sandbox, api, _clock = platform
    # "+1" is not E.164 per the server: the client must learn that from the rows page.
    members = [
        BatchMember("c-0", "+14155550100", {"first_name": "Ana"}),
        BatchMember("c-1", "+1", {"first_name": "Bo"}),
        BatchMember("c-2", "+14155550102", {"first_name": "Cy"}),
    ]
    body = render_csv(members, ["first_name"])
    key = batch_idempotency_key("spring", 1, body)
    first = await api.create_batch(body, scenario_id="scn_demo", idempotency_key=key)
    again = await api.create_batch(body, scenario_id="scn_demo", idempotency_key=key)
    assert again.id == first.id  # a resumed run re-sends the same bytes: no second batch
    verdicts = [
        classify_row(r, [m.row_key for m in members], first.status)
        async for r in api.iter_batch_rows(first.id)
    ]
    assert [v.kind for v in verdicts] == ["open", "invalid", "open"]
    assert verdicts[1].row_key == "c-1" and "E.164" in (verdicts[1].reason or "")
    assert len(sandbox.ledger()["calls"]) == 0


async def test_a_failed_batch_leaves_its_undialed_rows_for_a_new_attempt(
    platform: tuple[RunningSandbox, AitelierClient, FakeClock],
) -> None:
    sandbox, api, _clock = platform
    members = [BatchMember(f"c-{i}", f"+1415555{i:04d}") for i in range(4)]
    body = render_csv(members, [])
    batch = await api.create_batch(
        body, scenario_id="scn_demo", idempotency_key=batch_idempotency_key("s", 1, body)
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.root_url}/_sandbox/batches/{batch.id}/fail") as reply,
    ):
        assert reply.status == 200
    ended = await api.get_batch(batch.id)
    assert ended.status == "failed"
    verdicts = [
        classify_row(r, [m.row_key for m in members], ended.status)
        async for r in api.iter_batch_rows(batch.id)
    ]
    assert [v.kind for v in verdicts] == ["undialed"] * 4
    assert {v.row_key for v in verdicts} == {m.row_key for m in members}
