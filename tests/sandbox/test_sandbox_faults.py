"""Sandbox fault injection: each kind, the SPEC grammar, seeded reproducibility."""

from __future__ import annotations

import aiohttp
import pytest
from support.sandbox import SANDBOX_AUTH, StartSandbox, call_body, outbound_headers

from campaign.sandbox import FaultRule, FaultSpecError, RunningSandbox, SandboxConfig, parse_faults
from campaign.sandbox.faults import FaultInjector


async def _faulty(start: StartSandbox, spec: str) -> RunningSandbox:
    return await start(SandboxConfig(ledger=True, faults=parse_faults(spec)))


async def _post(
    http: aiohttp.ClientSession, server: RunningSandbox, key: str
) -> tuple[int, dict[str, str], str]:
    async with http.post(
        f"{server.base_url}/calls", json=call_body(), headers=outbound_headers(key)
    ) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_error_before_executes_nothing_and_is_not_remembered(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "POST /v1/calls=error_before;max=1")
    status, _, text = await _post(sandbox_http, server, "k")
    assert status == 500 and '"internal"' in text
    assert server.ledger()["calls"] == []
    status, headers, _ = await _post(sandbox_http, server, "k")
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert len(server.ledger()["calls"]) == 1


async def test_error_after_executes_and_a_retry_gets_the_original_201(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "POST /v1/calls=error_after;max=1")
    status, _, _ = await _post(sandbox_http, server, "k")
    assert status == 500
    assert len(server.ledger()["calls"]) == 1  # the call exists despite the 500
    status, headers, _ = await _post(sandbox_http, server, "k")
    assert (status, headers["Idempotent-Replayed"]) == (201, "true")
    assert len(server.ledger()["calls"]) == 1


async def test_reset_after_drops_the_connection_after_executing(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "POST /v1/calls=reset_after;max=1")
    with pytest.raises(aiohttp.ClientError):
        await _post(sandbox_http, server, "k")
    assert len(server.ledger()["calls"]) == 1
    status, headers, _ = await _post(sandbox_http, server, "k")
    assert (status, headers["Idempotent-Replayed"]) == (201, "true")
    assert len(server.ledger()["calls"]) == 1


async def test_proxy_503_is_html_and_not_counted(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "GET /v1/wallet=proxy_503")
    async with sandbox_http.get(f"{server.base_url}/wallet", headers=SANDBOX_AUTH) as resp:
        assert resp.status == 503
        assert resp.content_type == "text/html"
        assert "<html>" in await resp.text()
    assert server.ledger()["requests"] == 0


async def test_every_and_max_pick_exact_requests(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "GET /v1/*=error_before;every=2;max=2")
    statuses = []
    for _ in range(6):
        async with sandbox_http.get(f"{server.base_url}/wallet", headers=SANDBOX_AUTH) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 500, 200, 500, 200, 200]


async def test_delay_leaves_the_answer_unchanged(
    start_sandbox_with: StartSandbox, sandbox_http: aiohttp.ClientSession
) -> None:
    server = await _faulty(start_sandbox_with, "*/=delay:1-5ms")
    assert (await _post(sandbox_http, server, "k"))[0] == 201


def test_the_same_seed_gives_the_same_faults() -> None:
    rules = parse_faults("ambiguous@0.3, */=delay:0-10ms@0.5")

    def run(seed: int) -> list[tuple[str | None, float]]:
        injector = FaultInjector(rules, seed)
        decisions = [injector.decide("POST", "/v1/calls") for _ in range(200)]
        return [(d.action, d.delay_s) for d in decisions]

    assert run(7) == run(7)
    assert run(7) != run(8)
    actions = [action for action, _ in run(7)]
    assert {"error_after", "reset_after", None} == set(actions)
    assert 0.15 < sum(a is not None for a in actions) / 200 < 0.45


def test_spec_grammar() -> None:
    rules = parse_faults(
        "POST /v1/calls=reset_after@0.2, */=delay:20-50ms, GET /v1/calls=proxy_503@0.1;max=3"
    )
    assert rules == [
        FaultRule("reset_after", "POST", "/v1/calls", 0.2),
        FaultRule("delay", "*", "*/", 1.0, delay_ms=(20.0, 50.0)),
        FaultRule("proxy_503", "GET", "/v1/calls", 0.1, max_times=3),
    ]
    assert rules[1].matches("GET", "/v1/calls/call_1")
    assert not rules[0].matches("POST", "/v1/calls/x")
    assert not rules[0].matches("GET", "/v1/calls")
    assert [r.path for r in parse_faults("ambiguous@0.2")] == ["/v1/calls", "/v1/batches"]


@pytest.mark.parametrize(
    "spec",
    [
        "POST /v1/calls",
        "/v1/calls=explode",
        "/v1/calls=delay",
        "x=error_after@2",
        "PATCH /x=error_after",
        "/x=error_after;every=0",
        "/x=proxy_503:5ms",
    ],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_faults(spec)
