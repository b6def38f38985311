"""Sandbox: authentication, scopes, the error shape, malformed input, order of checks."""

from __future__ import annotations

import aiohttp
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import RunningSandbox, SandboxConfig, SandboxFakeClock, SandboxKey


def _multi_project_config() -> SandboxConfig:
    return SandboxConfig(
        ledger=True,
        keys={
            "avp_test_a": SandboxKey("prj_a"),
            "avp_test_b": SandboxKey("prj_b"),
            "avp_test_reader": SandboxKey("prj_a", frozenset({"sessions:read"})),
        },
    )


async def test_missing_malformed_or_unknown_key_is_401_without_limit_headers(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    for headers in ({}, {"Authorization": "avp_test_sandbox"}, {"Authorization": "Bearer nope"}):
        async with sandbox_http.get(f"{sandbox.base_url}/calls", headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 401
            assert body["error"]["code"] == "unauthenticated"
            assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
            assert "X-RateLimit-Limit" not in resp.headers
    assert sandbox.ledger()["requests"] == 0  # 401s do not count


async def test_missing_scope_is_403_naming_the_scope(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox_with(_multi_project_config())
    headers = outbound_headers("k-1", api_key="avp_test_reader")
    async with sandbox_http.post(
        f"{server.base_url}/calls", json=call_body(), headers=headers
    ) as resp:
        body = await resp.json()
    assert resp.status == 403
    assert body["error"]["code"] == "permission_denied"
    assert "outbound:trigger" in body["error"]["message"]
    assert resp.headers["X-RateLimit-Limit"] == "60"


async def test_another_projects_call_is_404_not_403(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox_with(_multi_project_config())
    async with sandbox_http.post(
        f"{server.base_url}/calls", json=call_body(), headers=outbound_headers("k", "avp_test_a")
    ) as resp:
        call_id = (await resp.json())["id"]
    for key, expected in (("avp_test_b", 404), ("avp_test_a", 200)):
        auth = {"Authorization": f"Bearer {key}"}
        async with sandbox_http.get(f"{server.base_url}/calls/{call_id}", headers=auth) as resp:
            assert resp.status == expected
    auth_b = {"Authorization": "Bearer avp_test_b"}
    async with sandbox_http.get(f"{server.base_url}/calls", headers=auth_b) as resp:
        assert (await resp.json())["data"] == []


async def test_unknown_route_is_404_not_found(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    for method, path in (("GET", "/v1/nope"), ("DELETE", "/v1/calls"), ("GET", "/v2/calls")):
        async with sandbox_http.request(
            method, sandbox.root_url + path, headers=SANDBOX_AUTH
        ) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_found"


async def test_bad_json_wrong_types_and_unknown_fields_are_400_naming_the_field(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    url = f"{sandbox.base_url}/calls"
    cases: list[tuple[object, str | None]] = [
        (b"{not json", None),
        (b'{"phone": NaN, "scenario_id": "scn_demo"}', None),
        ([1, 2], None),
        (call_body(phone="4155550100"), "phone"),
        (call_body(phone="+14155550100\n"), "phone"),
        ({"phone": 14155550100, "scenario_id": "scn_demo"}, "phone"),
        (call_body(scenario_id=""), "scenario_id"),
        (call_body(variables={"a": {"nested": 1}}), "variables"),
        (call_body(variables={"big": "x" * 9000}), "variables"),
        (call_body(variables={f"k{i}": i for i in range(51)}), "variables"),
        (call_body(metadata={"n": 1}), "metadata"),
        (call_body(metadata={"long": "x" * 501}), "metadata"),
        (call_body(caller_id="12"), "caller_id"),
        (call_body(not_before="2026-05-13 16:00:00"), "not_before"),
        (call_body(not_before="2026-02-30T16:00:00Z"), "not_before"),
        (call_body(colour="blue"), "colour"),
    ]
    for index, (payload, field) in enumerate(cases):
        headers = outbound_headers(f"bad-{index}")
        if isinstance(payload, bytes):
            headers["Content-Type"] = "application/json"
            request = sandbox_http.post(url, data=payload, headers=headers)
        else:
            request = sandbox_http.post(url, json=payload, headers=headers)
        async with request as resp:
            body = await resp.json()
        assert resp.status == 400, (payload, body)
        assert body["error"]["code"] == "invalid_argument"
        assert body["error"].get("field") == field, (payload, body)
    assert sandbox.ledger()["calls"] == []


async def test_null_optional_fields_mean_absent(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    payload = call_body(variables=None, caller_id=None, metadata=None, not_before=None)
    async with sandbox_http.post(
        f"{sandbox.base_url}/calls", json=payload, headers=outbound_headers("nulls")
    ) as resp:
        body = await resp.json()
    assert resp.status == 201
    assert body["variables"] == {} and body["metadata"] == {} and body["caller_id"] is None


async def test_unknown_scenario_is_422_but_only_after_validation(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    url = f"{sandbox.base_url}/calls"
    async with sandbox_http.post(
        url, json=call_body(scenario_id="scn_nope"), headers=outbound_headers("s1")
    ) as resp:
        body = await resp.json()
        assert resp.status == 422
        assert body["error"] == {**body["error"], "code": "failed_precondition"}
        assert body["error"]["field"] == "scenario_id"
    bad_both = call_body(phone="nope", scenario_id="scn_nope")
    async with sandbox_http.post(url, json=bad_both, headers=outbound_headers("s2")) as resp:
        assert resp.status == 400


async def test_oversized_json_body_is_413(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    huge = b'{"phone": "+14155550100", "scenario_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    headers = {**outbound_headers("huge"), "Content-Type": "application/json"}
    async with sandbox_http.post(f"{sandbox.base_url}/calls", data=huge, headers=headers) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_order_of_checks_limit_before_scope_before_idempotency_key(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    config = _multi_project_config()
    config.requests_per_minute = "2/min"
    server = await start_sandbox_with(config, SandboxFakeClock())
    url = f"{server.base_url}/calls"
    reader = {"Authorization": "Bearer avp_test_reader"}
    statuses = []
    for _ in range(3):  # no Idempotency-Key, wrong scope, bad body: 403 until the limit
        async with sandbox_http.post(url, data=b"{", headers=reader) as resp:
            statuses.append(resp.status)
    assert statuses == [403, 403, 429]
    writer = {"Authorization": "Bearer avp_test_a"}
    async with sandbox_http.post(url, data=b"{", headers=writer) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "Idempotency-Key"


async def test_idempotency_key_format_is_checked(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    for key in ("x" * 256, "caf\u00e9", "tab\there"):
        headers = {**SANDBOX_AUTH, "Idempotency-Key": key}
        async with sandbox_http.post(
            f"{sandbox.base_url}/calls", json=call_body(), headers=headers
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["field"] == "Idempotency-Key"


async def test_api_version_header_is_echoed_and_request_id_is_everywhere(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    headers = {**SANDBOX_AUTH, "X-AVP-API-Version": "v1.preview-2026-05-13"}
    async with sandbox_http.get(f"{sandbox.base_url}/wallet", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-AVP-API-Version"] == "v1.preview-2026-05-13"
        assert resp.headers["X-Request-Id"].startswith("req_")


async def test_unknown_query_parameters_are_400_where_the_endpoint_has_a_query(
    sandbox: RunningSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    async with sandbox_http.get(f"{sandbox.base_url}/calls?colour=red", headers=SANDBOX_AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "colour"


async def test_ledger_and_admin_routes_are_off_unless_enabled(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox_with(SandboxConfig())
    async with sandbox_http.get(f"{server.root_url}/_sandbox/ledger") as resp:
        assert resp.status == 404


async def test_sessions_need_their_scopes_and_stay_inside_the_project(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    config = _multi_project_config()
    config.scripted_outcomes = {"+14155550100": ["completed:goal_achieved"]}
    clock = SandboxFakeClock()
    server = await start_sandbox_with(config, clock)
    async with sandbox_http.post(
        f"{server.base_url}/calls", json=call_body(), headers=outbound_headers("s", "avp_test_a")
    ) as resp:
        call_id = (await resp.json())["id"]
    clock.advance(600)
    auth_a = {"Authorization": "Bearer avp_test_a"}
    async with sandbox_http.get(f"{server.base_url}/calls/{call_id}", headers=auth_a) as resp:
        session_id = (await resp.json())["session_id"]
    assert session_id is not None
    cases = [
        ("avp_test_a", "", 200),
        ("avp_test_b", "", 404),
        ("avp_test_reader", "", 200),
        ("avp_test_reader", "/transcript", 403),
        ("avp_test_b", "/transcript", 404),
    ]
    for key, suffix, expected in cases:
        auth = {"Authorization": f"Bearer {key}"}
        url = f"{server.base_url}/sessions/{session_id}{suffix}"
        async with sandbox_http.get(url, headers=auth) as resp:
            assert resp.status == expected, (key, suffix)
