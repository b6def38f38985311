"""Sandbox idempotency: replay, conflict, in-progress, what is remembered, 24 h memory."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from multidict import CIMultiDict
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import RunningSandbox, SandboxConfig, SandboxFakeClock, parse_faults


async def _post_call(
    http: aiohttp.ClientSession,
    server: RunningSandbox,
    key: str,
    payload: bytes | dict[str, object],
) -> tuple[int, Any, CIMultiDict[str]]:
    headers = {**outbound_headers(key), "Content-Type": "application/json"}
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with http.post(f"{server.base_url}/calls", data=data, headers=headers) as resp:
        return resp.status, await resp.json(), CIMultiDict(resp.headers)


async def test_same_key_same_body_replays_the_original_with_a_new_request_id(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    first = b'{"phone": "+14155550100", "scenario_id": "scn_demo", "metadata": {"a": "1"}}'
    reordered = b'{"metadata":{"a":"1"},"scenario_id":"scn_demo","phone":"+14155550100"}'
    status, body, headers = await _post_call(sandbox_http, sandbox, "same", first)
    sandbox_clock.advance(30)
    status2, body2, headers2 = await _post_call(sandbox_http, sandbox, "same", reordered)
    assert (status, status2) == (201, 201)
    assert body2 == body  # the original body, request_id and status included
    assert headers2["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in headers
    assert headers2["X-Request-Id"] != headers["X-Request-Id"]
    assert len(sandbox.ledger()["calls"]) == 1


async def test_same_key_other_body_or_endpoint_is_409_conflict(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    await _post_call(sandbox_http, sandbox, "k", call_body())
    status, body, _ = await _post_call(sandbox_http, sandbox, "k", call_body("+14155550101"))
    assert status == 409
    assert body["error"]["code"] == "idempotency_conflict"
    headers = {**SANDBOX_AUTH, "Idempotency-Key": "k"}
    hook = {"url": "https://example.com/h", "events": ["call.completed"]}
    async with sandbox_http.post(f"{sandbox.base_url}/webhooks", json=hook, headers=headers) as r:
        assert r.status == 409
    assert len(sandbox.ledger()["calls"]) == 1


async def test_same_request_while_executing_is_409_request_in_progress(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    config = SandboxConfig(ledger=True, faults=parse_faults("POST /v1/calls=delay:500ms;max=1"))
    server = await start_sandbox_with(config)
    slow = asyncio.create_task(_post_call(sandbox_http, server, "slow", call_body()))
    async with asyncio.timeout(10):  # wait until the server has counted the first request
        while server.ledger()["requests"] == 0:
            await asyncio.sleep(0.005)
    status, body, _ = await _post_call(sandbox_http, server, "slow", call_body())
    other_status, other, _ = await _post_call(
        sandbox_http, server, "slow", call_body("+14155550199")
    )
    assert (status, body["error"]["code"]) == (409, "request_in_progress")
    assert (other_status, other["error"]["code"]) == (409, "idempotency_conflict")
    assert (await slow)[0] == 201
    assert (await _post_call(sandbox_http, server, "slow", call_body()))[0] == 201
    assert len(server.ledger()["calls"]) == 1


async def test_validation_errors_are_remembered_but_429_is_not(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(ledger=True, outbound_calls="1/min"), clock)
    status, bad, _ = await _post_call(sandbox_http, server, "bad", call_body(phone="x"))
    _, replay, headers = await _post_call(sandbox_http, server, "bad", call_body(phone="x"))
    assert status == 400 and replay == bad
    assert headers["Idempotent-Replayed"] == "true"
    assert (await _post_call(sandbox_http, server, "first", call_body()))[0] == 201
    assert (await _post_call(sandbox_http, server, "second", call_body("+1415555011")))[0] == 429
    clock.advance(60)
    status, _, headers = await _post_call(sandbox_http, server, "second", call_body("+1415555011"))
    assert status == 201 and "Idempotent-Replayed" not in headers


async def test_replays_do_not_count_toward_the_outbound_limit(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox_with(SandboxConfig(ledger=True, outbound_calls="2/min"))
    assert (await _post_call(sandbox_http, server, "a", call_body("+14155550100")))[0] == 201
    for _ in range(5):
        assert (await _post_call(sandbox_http, server, "a", call_body("+14155550100")))[0] == 201
    assert (await _post_call(sandbox_http, server, "b", call_body("+14155550101")))[0] == 201
    ledger = server.ledger()
    assert ledger["max_outbound_in_window"] == 2
    assert ledger["requests"] == 7  # replays still count as requests


async def test_keys_are_forgotten_after_24_hours(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    _, first, _ = await _post_call(sandbox_http, sandbox, "old", call_body())
    sandbox_clock.advance(86_399)
    _, again, _ = await _post_call(sandbox_http, sandbox, "old", call_body())
    assert again["id"] == first["id"]
    sandbox_clock.advance(2)
    status, fresh, _ = await _post_call(sandbox_http, sandbox, "old", call_body())
    assert status == 201 and fresh["id"] != first["id"]
    assert len(sandbox.ledger()["calls"]) == 2


async def test_multipart_comparison_ignores_filenames(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    async def upload(filename: str, csv: bytes) -> tuple[int, Any, bool]:
        form = aiohttp.FormData()
        form.add_field("scenario_id", "scn_demo")
        form.add_field("file", csv, filename=filename, content_type="text/csv")
        async with sandbox_http.post(
            f"{sandbox.base_url}/batches", data=form, headers=outbound_headers("batch-1")
        ) as resp:
            return resp.status, await resp.json(), "Idempotent-Replayed" in resp.headers

    csv = b"phone\n+14155550100\n"
    status, first, replayed = await upload("a.csv", csv)
    status2, second, replayed2 = await upload("renamed.csv", csv)
    status3, _, _ = await upload("a.csv", csv + b"+14155550101\n")
    assert (status, status2, status3) == (201, 201, 409)
    assert second == first and replayed2 and not replayed
