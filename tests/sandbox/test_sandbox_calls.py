"""Sandbox: call lifecycle on a fake clock, outcomes, sessions, lists, wallet."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import RunningSandbox, SandboxConfig, SandboxFakeClock
from campaign.sandbox.outcomes import plan_call


async def _create(
    http: aiohttp.ClientSession, server: RunningSandbox, key: str, **fields: Any
) -> dict[str, Any]:
    async with http.post(
        f"{server.base_url}/calls", json=call_body(**fields), headers=outbound_headers(key)
    ) as resp:
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def _get(http: aiohttp.ClientSession, server: RunningSandbox, path: str) -> Any:
    async with http.get(server.base_url + path, headers=SANDBOX_AUTH) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def _scripted(**outcomes: list[str]) -> SandboxConfig:
    return SandboxConfig(
        ledger=True,
        outbound_calls="100/min",
        scripted_outcomes={phone.replace("p", "+"): o for phone, o in outcomes.items()},
    )


async def test_a_completed_call_walks_the_lifecycle_and_gets_a_session(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(_scripted(p14155550100=["completed:goal_achieved"]), clock)
    call = await _create(sandbox_http, server, "c1", metadata={"row_key": "r-1"})
    assert call["status"] == "queued" and call["session_id"] is None
    seen = [call["status"]]
    for _ in range(400):
        clock.advance(1)
        detail = await _get(sandbox_http, server, f"/calls/{call['id']}")
        if detail["status"] != seen[-1]:
            seen.append(detail["status"])
        if detail["status"] == "completed":
            break
    assert seen == ["queued", "dialing", "in_progress", "completed"]
    assert detail["outcome"] == "goal_achieved" and detail["goal_achieved"] is True
    assert detail["metadata"] == {"row_key": "r-1"}
    session = detail["session"]
    assert session["id"] == detail["session_id"] and session["duration_s"] >= 20
    assert session["costs"]["currency"] == "USD" and float(session["costs"]["amount"]) > 0
    transcript = await _get(sandbox_http, server, f"/sessions/{session['id']}/transcript")
    assert transcript["turns"][0]["speaker"] == "agent"
    recording = await _get(sandbox_http, server, f"/sessions/{session['id']}/recording")
    assert recording["url"].startswith("https://")
    wallet = await _get(sandbox_http, server, "/wallet")
    assert wallet["balance"] == f"{250 - float(session['costs']['amount']):.2f}"
    assert wallet["recent_transactions"][0]["amount"] == "-" + session["costs"]["amount"]


async def test_a_retry_of_no_answer_can_complete_later(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    config = _scripted(p14155550100=["no_answer", "completed:declined"])
    server = await start_sandbox_with(config, clock)
    first = await _create(sandbox_http, server, "a1")
    clock.advance(3600)
    second = await _create(sandbox_http, server, "a2")
    clock.advance(3600)
    first = await _get(sandbox_http, server, f"/calls/{first['id']}")
    second = await _get(sandbox_http, server, f"/calls/{second['id']}")
    assert (first["status"], first["session_id"], first["ended_at"] is not None) == (
        "no_answer",
        None,
        True,
    )
    assert (second["status"], second["outcome"], second["goal_achieved"]) == (
        "completed",
        "declined",
        False,
    )


async def test_invalid_test_range_fails_with_invalid_number(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    call = await _create(sandbox_http, sandbox, "inv", phone="+15550000000")
    sandbox_clock.advance(600)
    call = await _get(sandbox_http, sandbox, f"/calls/{call['id']}")
    assert (call["status"], call["failure_reason"]) == ("failed", "invalid_number")


def test_outcome_distribution_is_deterministic_and_as_documented() -> None:
    fates = Counter(plan_call(f"+1415{n:07d}", 0, 1.0).final_status for n in range(4000))
    assert 0.40 < fates["completed"] / 4000 < 0.50
    assert 0.20 < fates["no_answer"] / 4000 < 0.30
    assert set(fates) == {"completed", "no_answer", "busy", "voicemail", "failed"}
    assert plan_call("+14155550123", 0, 1.0) == plan_call("+14155550123", 0, 1.0)
    outcomes = Counter(plan_call(f"+1415{n:07d}", 1, 1.0).outcome for n in range(4000))
    assert {"goal_achieved", "declined", "callback_requested", "opted_out", "wrong_person"} <= set(
        outcomes
    )


async def test_not_before_holds_the_call_but_counts_it_at_creation(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    call = await _create(sandbox_http, sandbox, "nb", not_before="2026-05-28T21:00:00Z")
    assert call["not_before"] == "2026-05-28T21:00:00Z"
    sandbox_clock.set(1_780_001_900)  # 20:58:20Z: still held
    assert (await _get(sandbox_http, sandbox, f"/calls/{call['id']}"))["status"] == "queued"
    sandbox_clock.set(1_780_002_400 + 3600)
    assert (await _get(sandbox_http, sandbox, f"/calls/{call['id']}"))["status"] != "queued"
    assert sandbox.ledger()["max_outbound_in_window"] == 1


async def test_zero_balance_ends_calls_with_insufficient_funds(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(wallet_balance="0.00"), clock)
    call = await _create(sandbox_http, server, "broke")
    clock.advance(60)
    call = await _get(sandbox_http, server, f"/calls/{call['id']}")
    assert (call["status"], call["failure_reason"]) == ("failed", "insufficient_funds")


async def test_list_calls_pages_in_order_and_cursors_are_bound_to_their_filters(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(outbound_calls="100/min"), clock)
    created = []
    for index in range(7):
        created.append((await _create(sandbox_http, server, f"l{index}"))["id"])
        clock.advance(1)
    ids: list[str] = []
    page = await _get(sandbox_http, server, "/calls?limit=3&since=2026-05-28")
    while True:
        ids.extend(c["id"] for c in page["data"])
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
        page = await _get(sandbox_http, server, f"/calls?limit=3&since=2026-05-28&cursor={cursor}")
    assert ids == created
    async with sandbox_http.get(
        f"{server.base_url}/calls?limit=3&cursor={cursor}", headers=SANDBOX_AUTH
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "cursor"
    for query in ("status=ringing", "status=queued,queued", "limit=0", "limit=101", "since=x"):
        async with sandbox_http.get(f"{server.base_url}/calls?{query}", headers=SANDBOX_AUTH) as r:
            assert r.status == 400, query


async def test_list_calls_filters_by_status_and_updated_since(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    config = _scripted(p14155550100=["busy"], p14155550101=["completed:goal_achieved"])
    server = await start_sandbox_with(config, clock)
    busy = await _create(sandbox_http, server, "f1", phone="+14155550100")
    done = await _create(sandbox_http, server, "f2", phone="+14155550101")
    clock.advance(1000)
    page = await _get(sandbox_http, server, "/calls?status=busy,no_answer")
    assert [c["id"] for c in page["data"]] == [busy["id"]]
    assert "session" not in page["data"][0]
    page = await _get(sandbox_http, server, "/calls?updated_since=2026-05-28T20:26:40Z")
    ordered = [c["id"] for c in page["data"]]
    assert set(ordered) == {busy["id"], done["id"]}
    assert ordered[0] == busy["id"]  # busy ended while ringing, long before the talk ended
    sessions = await _get(sandbox_http, server, "/sessions?goal_achieved=true")
    assert [s["call_id"] for s in sessions["data"]] == [done["id"]]
    usage = await _get(sandbox_http, server, "/usage?period=2026-05")
    assert usage["calls"] == 2 and usage["outcomes"] == {"goal_achieved": 1}


async def test_a_sped_up_sandbox_still_reports_realistic_talk_time_and_cost(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    config = _scripted(p14155550100=["completed:goal_achieved"])
    config.time_scale = 0.01
    server = await start_sandbox_with(config, clock)
    call = await _create(sandbox_http, server, "fast-1")
    clock.advance(3)  # 1 % of the slowest lifecycle (3 + 25 + 180 s)
    detail = await _get(sandbox_http, server, f"/calls/{call['id']}")
    assert detail["status"] == "completed"
    session = detail["session"]
    assert 20 <= session["duration_s"] <= 180
    assert abs(float(session["costs"]["minutes"]) - session["duration_s"] / 60) < 0.01
