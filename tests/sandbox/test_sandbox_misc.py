"""Sandbox: webhooks (secret once, signed deliveries with retries), knowledge, billing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import aiohttp
from aiohttp import web
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import DEFAULT_PROJECT, RunningSandbox, SandboxConfig, SandboxFakeClock


async def _json(
    http: aiohttp.ClientSession, method: str, url: str, expected: int, **kwargs: Any
) -> Any:
    async with http.request(method, url, headers=SANDBOX_AUTH, **kwargs) as resp:
        assert resp.status == expected, await resp.text()
        return None if resp.status == 204 else await resp.json()


async def test_webhook_crud_shows_the_secret_only_once(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    base = sandbox.base_url
    hook = {"url": "https://hooks.example.com/x", "events": ["call.completed"]}
    created = await _json(sandbox_http, "POST", f"{base}/webhooks", 201, json=hook)
    assert created["secret"].startswith("whsec_") and created["active"] is True
    listed = await _json(sandbox_http, "GET", f"{base}/webhooks", 200)
    assert listed["data"][0]["id"] == created["id"] and "secret" not in listed["data"][0]
    updated = await _json(
        sandbox_http, "PUT", f"{base}/webhooks/{created['id']}", 200, json={"active": False}
    )
    assert updated["active"] is False and "secret" not in updated
    await _json(sandbox_http, "DELETE", f"{base}/webhooks/{created['id']}", 204)
    await _json(sandbox_http, "DELETE", f"{base}/webhooks/{created['id']}", 404)
    for bad in (
        {"url": "http://hooks.example.com/x", "events": ["call.completed"]},
        {"url": "https://h.example.com", "events": []},
        {"url": "https://h.example.com", "events": ["call.completed", "call.completed"]},
        {"url": "https://h.example.com", "events": ["call.started"]},
        {"url": "https://h.example.com", "events": ["call.failed"], "active": True},
    ):
        await _json(sandbox_http, "POST", f"{base}/webhooks", 400, json=bad)


async def test_deliveries_are_signed_and_retried_until_accepted(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    received: list[tuple[bytes, str]] = []
    done = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["X-AVP-Signature"]))
        if len(received) < 2:
            return web.Response(status=500)  # the first attempt fails: the sandbox retries
        done.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        clock = SandboxFakeClock()
        config = SandboxConfig(
            allow_http_webhooks=True,
            time_scale=0.01,
            scripted_outcomes={"+14155550100": ["completed:goal_achieved"]},
        )
        server = await start_sandbox_with(config, clock)
        hook = {"url": f"http://127.0.0.1:{port}/hook", "events": ["call.completed"]}
        created = await _json(sandbox_http, "POST", f"{server.base_url}/webhooks", 201, json=hook)
        async with sandbox_http.post(
            f"{server.base_url}/calls", json=call_body(), headers=outbound_headers("w")
        ) as resp:
            call_id = (await resp.json())["id"]
        clock.advance(60)
        await _json(sandbox_http, "GET", f"{server.base_url}/calls/{call_id}", 200)
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        await runner.cleanup()
    body, signature = received[-1]
    assert received[0][0] == body  # the retry sends the same event
    timestamp, _, digest = signature.partition(",v1=")
    t = timestamp.removeprefix("t=")
    expected = hmac.new(created["secret"].encode(), f"{t}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(digest, expected.hexdigest())
    event = json.loads(body)
    assert event["type"] == "call.completed" and event["data"]["id"] == call_id
    assert event["id"].startswith("evt_")


async def test_knowledge_files_and_crawl(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    base = sandbox.base_url
    crawl = await _json(
        sandbox_http, "POST", f"{base}/knowledge/crawl", 202, json={"url": "https://example.com/"}
    )
    assert crawl["status"] == "queued" and crawl["id"].startswith("crawl_")
    form = aiohttp.FormData()
    form.add_field(
        "file", b"Opening hours: 9-17.\n", filename="hours.txt", content_type="text/plain"
    )
    uploaded = await _json(sandbox_http, "POST", f"{base}/knowledge/files", 201, data=form)
    assert (uploaded["filename"], uploaded["bytes"], uploaded["status"]) == (
        "hours.txt",
        21,
        "indexing",
    )
    sandbox_clock.advance(10)
    listed = await _json(sandbox_http, "GET", f"{base}/knowledge/files", 200)
    assert listed["data"][0]["status"] == "ready"
    image = aiohttp.FormData()
    image.add_field("file", b"\x89PNG\r\n\x1a\n", filename="x.png", content_type="image/png")
    await _json(sandbox_http, "POST", f"{base}/knowledge/files", 400, data=image)
    await _json(sandbox_http, "DELETE", f"{base}/knowledge/files/{uploaded['id']}", 204)
    assert (await _json(sandbox_http, "GET", f"{base}/knowledge/files", 200))["data"] == []


async def test_usage_wallet_invoices_and_inbound_relay(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    base = sandbox.base_url
    async with sandbox_http.post(
        f"{base}/calls", json=call_body(), headers=outbound_headers("u")
    ) as resp:
        assert resp.status == 201
    sandbox_clock.advance(40 * 86400)  # into the next month: last month is invoiced
    usage = await _json(sandbox_http, "GET", f"{base}/usage?period=2026-05", 200)
    assert usage["calls"] == 1 and usage["currency"] == "USD"
    await _json(sandbox_http, "GET", f"{base}/usage", 400)
    await _json(sandbox_http, "GET", f"{base}/usage?period=2026-13", 400)
    wallet = await _json(sandbox_http, "GET", f"{base}/wallet", 200)
    assert wallet["balance"] == f"{250 - float(usage['amount']):.2f}"
    invoices = await _json(sandbox_http, "GET", f"{base}/invoices", 200)
    assert [(i["period"], i["amount"]) for i in invoices["data"]] == [("2026-05", usage["amount"])]
    relay = f"{base}/projects/{DEFAULT_PROJECT}/webhooks/crm"
    assert (await _json(sandbox_http, "POST", relay, 202, json={"x": 1})) == {"delivered_to": 0}
    await _json(sandbox_http, "POST", f"{base}/projects/prj_other/webhooks/crm", 404, json={})
