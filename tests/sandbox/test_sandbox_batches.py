"""Sandbox: CSV batches — parsing rules, limits, pacing shared with direct calls, endings."""

from __future__ import annotations

from typing import Any

import aiohttp
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import RunningSandbox, SandboxConfig, SandboxFakeClock


async def _upload(
    http: aiohttp.ClientSession,
    server: RunningSandbox,
    csv: bytes,
    key: str = "b1",
    **parts: str,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("file", csv, filename="rows.csv", content_type="text/csv")
    for name, value in {"scenario_id": "scn_demo", **parts}.items():
        form.add_field(name, value)
    async with http.post(
        f"{server.base_url}/batches", data=form, headers=outbound_headers(key)
    ) as resp:
        return resp.status, await resp.json()


async def _get(http: aiohttp.ClientSession, server: RunningSandbox, path: str) -> Any:
    async with http.get(server.base_url + path, headers=SANDBOX_AUTH) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_csv_rules_bom_blank_lines_ragged_rows_and_variables(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    csv = (
        "\ufeffphone,row_ref,first_name\r\n"
        "+14155550100,cust-1,Ana\r\n"
        "\r\n"
        "not-a-phone,cust-2,Bo\r\n"
        "+14155550102,cust-3\r\n"
        '+14155550103,cust-4,"Zoë, Jr."\r\n'
    ).encode()
    status, batch = await _upload(sandbox_http, sandbox, csv, name="spring")
    assert status == 201, batch
    assert batch["status"] == "validating" and batch["name"] == "spring"
    assert batch["progress"] == {
        "total": 4,
        "invalid": 2,
        "pending": 2,
        "queued": 0,
        "in_progress": 0,
        "done": 0,
    }
    rows = (await _get(sandbox_http, sandbox, f"/batches/{batch['id']}/rows"))["data"]
    assert [r["row"] for r in rows] == [0, 1, 2, 3]
    assert [r["status"] for r in rows] == ["pending", "invalid", "invalid", "pending"]
    assert rows[1]["phone"] == "not-a-phone" and rows[1]["error"]["code"] == "invalid_argument"
    assert rows[2]["row_ref"] == "cust-3" and rows[3]["row_ref"] == "cust-4"


async def test_unusable_files_are_refused_with_the_contract_errors(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    cases = [
        ("latin1", "phone,name\n+14155550100,Jos\xe9\n".encode("latin-1"), 400, "file"),
        ("nophone", b"Phone,name\n+14155550100,x\n", 400, "file"),
        ("empty", b"", 400, "file"),
        ("rows", b"phone\n" + b"+14155550100\n" * 10_001, 413, None),
        ("bytes", b"phone,pad\n" + (b"+14155550100," + b"x" * 1000 + b"\n") * 10_500, 413, None),
    ]
    for key, csv, expected, field in cases:
        status, body = await _upload(sandbox_http, sandbox, csv, key=key)
        assert status == expected, (key, body)
        assert body["error"].get("field") == field
    status, body = await _upload(
        sandbox_http, sandbox, b"phone\n+14155550100\n", key="scn", scenario_id="scn_other"
    )
    assert (status, body["error"]["code"]) == (422, "failed_precondition")
    status, body = await _upload(sandbox_http, sandbox, b"phone\n+1415\n", key="x", colour="red")
    assert (status, body["error"]["field"]) == (400, "colour")
    assert sandbox.ledger()["calls"] == []


async def test_rows_are_dialed_in_file_order_sharing_the_outbound_window(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    server = await start_sandbox_with(SandboxConfig(ledger=True, time_scale=0.05), clock)
    csv = b"phone,row_ref\n" + b"".join(f"+1415555{i:04d},r{i}\n".encode() for i in range(12))
    status, batch = await _upload(sandbox_http, server, csv)
    assert status == 201
    for index in range(3):  # three direct calls take three of the five slots
        async with sandbox_http.post(
            f"{server.base_url}/calls",
            json=call_body(f"+1650555{index:04d}"),
            headers=outbound_headers(f"direct-{index}"),
        ) as resp:
            assert resp.status == 201
    clock.advance(1)
    batch = await _get(sandbox_http, server, f"/batches/{batch['id']}")
    assert batch["status"] == "running"
    assert batch["progress"]["pending"] == 10  # only two rows fit in this minute
    async with sandbox_http.post(
        f"{server.base_url}/calls", json=call_body(), headers=outbound_headers("direct-x")
    ) as resp:
        assert resp.status == 429  # the batch's dials count against direct calls too
    for _ in range(40):
        clock.advance(15)
        batch = await _get(sandbox_http, server, f"/batches/{batch['id']}")
        if batch["status"] == "completed":
            break
    assert batch["status"] == "completed" and batch["completed_at"] is not None
    assert batch["progress"]["done"] == 12
    summary = batch["summary"]
    assert sum(summary[k] for k in ("completed", "no_answer", "busy", "voicemail", "failed")) == 12
    ledger = server.ledger()
    assert ledger["max_outbound_in_window"] == 5
    batch_calls = [c for c in ledger["calls"] if c["batch_id"] == batch["id"]]
    assert [c["phone"] for c in batch_calls] == [f"+1415555{i:04d}" for i in range(12)]
    assert all(c["idempotency_key"] is None for c in batch_calls)
    listed = await _get(sandbox_http, server, f"/calls?batch_id={batch['id']}&limit=100")
    assert len(listed["data"]) == 12


async def test_rows_pagination_and_its_cursor(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    csv = b"phone\n" + b"".join(f"+1415555{i:04d}\n".encode() for i in range(7))
    _, batch = await _upload(sandbox_http, sandbox, csv)
    _, other = await _upload(sandbox_http, sandbox, csv, key="other")
    seen: list[int] = []
    cursor = ""
    while True:
        page = await _get(sandbox_http, sandbox, f"/batches/{batch['id']}/rows?limit=3{cursor}")
        seen.extend(r["row"] for r in page["data"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == list(range(7))
    async with sandbox_http.get(
        f"{sandbox.base_url}/batches/{other['id']}/rows?cursor={cursor[8:]}", headers=SANDBOX_AUTH
    ) as resp:
        assert resp.status == 400
    async with sandbox_http.get(
        f"{sandbox.base_url}/batches/{batch['id']}/rows?limit=501", headers=SANDBOX_AUTH
    ) as resp:
        assert resp.status == 400


async def test_admin_routes_cancel_or_fail_a_batch(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    csv = b"phone\n" + b"".join(f"+1415555{i:04d}\n".encode() for i in range(8))
    _, first = await _upload(sandbox_http, sandbox, csv, key="one")
    _, second = await _upload(sandbox_http, sandbox, csv, key="two")
    sandbox_clock.advance(3)
    async with sandbox_http.post(f"{sandbox.root_url}/_sandbox/batches/{first['id']}/cancel") as r:
        assert r.status == 200
    async with sandbox_http.post(f"{sandbox.root_url}/_sandbox/batches/{second['id']}/fail") as r:
        assert r.status == 200
    first = await _get(sandbox_http, sandbox, f"/batches/{first['id']}")
    second = await _get(sandbox_http, sandbox, f"/batches/{second['id']}")
    assert (first["status"], second["status"]) == ("canceled", "failed")
    rows = (await _get(sandbox_http, sandbox, f"/batches/{first['id']}/rows"))["data"]
    assert {r["status"] for r in rows[5:]} == {"canceled"}
    assert first["progress"]["pending"] == 0


async def test_not_before_holds_every_row(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession, sandbox_clock: SandboxFakeClock
) -> None:
    csv = b"phone\n+14155550100\n+14155550101\n"
    _, batch = await _upload(sandbox_http, sandbox, csv, not_before="2026-05-28T21:00:00Z")
    sandbox_clock.set(1_780_001_900)  # 20:58:20Z
    held = await _get(sandbox_http, sandbox, f"/batches/{batch['id']}")
    assert (held["status"], held["progress"]["pending"]) == ("running", 2)
    sandbox_clock.set(1_780_002_000 + 1)  # 21:00:01Z
    dialing = await _get(sandbox_http, sandbox, f"/batches/{batch['id']}")
    assert dialing["progress"]["pending"] == 0
    status, body = await _upload(sandbox_http, sandbox, csv, key="bad", not_before="tomorrow")
    assert (status, body["error"]["field"]) == (400, "not_before")
