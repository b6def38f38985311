"""Sandbox state across restarts, config files, and ``campaign sandbox serve`` as a process."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from support.sandbox import SANDBOX_AUTH, call_body, outbound_headers

from campaign.sandbox import (
    SandboxConfig,
    SandboxConfigError,
    SandboxFakeClock,
    load_sandbox_config,
    start_sandbox,
)
from campaign.sandbox.command import sandbox as sandbox_group


async def test_a_restarted_sandbox_finds_yesterdays_calls_and_keys(
    tmp_path: Path, sandbox_http: aiohttp.ClientSession
) -> None:
    clock = SandboxFakeClock()
    config = SandboxConfig(ledger=True, state_file=tmp_path / "state.json")
    async with (
        await start_sandbox(config, clock) as first,
        sandbox_http.post(
            f"{first.base_url}/calls", json=call_body(), headers=outbound_headers("k")
        ) as resp,
    ):
        original = await resp.json()
    clock.advance(3600)
    async with await start_sandbox(config, clock) as second:
        async with sandbox_http.post(
            f"{second.base_url}/calls", json=call_body(), headers=outbound_headers("k")
        ) as resp:
            assert resp.headers["Idempotent-Replayed"] == "true"
            assert await resp.json() == original
        async with sandbox_http.get(
            f"{second.base_url}/calls/{original['id']}", headers=SANDBOX_AUTH
        ) as resp:
            assert (await resp.json())["status"] not in ("queued", "dialing")
        assert len(second.ledger()["calls"]) == 1
    assert "avp_test_sandbox" not in (tmp_path / "state.json").read_text()


def test_config_file_sets_keys_limits_and_faults(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(
        "keys:\n  avp_test_ro: {project: prj_x, scopes: [sessions:read]}\n"
        "scenarios: {prj_x: [scn_a]}\n"
        "limits: {outbound_calls: 30/10s}\n"
        "faults: ambiguous@0.2\n"
        "time_scale: 0.01\n"
    )
    config = load_sandbox_config(path)
    assert config.keys["avp_test_ro"].scopes == frozenset({"sessions:read"})
    assert config.scenarios_for("prj_x") == frozenset({"scn_a"})
    assert config.limit("outbound_calls").window_s == 10.0
    assert len(config.faults) == 2 and config.time_scale == 0.01
    path.write_text("colour: blue\n")
    with pytest.raises(SandboxConfigError, match="colour"):
        load_sandbox_config(path)


def test_serve_rejects_bad_options_with_a_clear_message() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--limits", "outbound=5/min"])
    assert result.exit_code == 2 and "KEY=N/dur" in result.output
    result = CliRunner().invoke(sandbox_group, ["serve", "--faults", "x=boom"])
    assert result.exit_code == 2 and "unknown kind" in result.output


async def test_serve_runs_as_a_process_and_prints_its_url(
    sandbox_http: aiohttp.ClientSession,
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "campaign"),
        "sandbox",
        "serve",
        "--port",
        "0",
        "--ledger",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        root = line.split()[-1]
        async with sandbox_http.get(f"{root}/v1/wallet", headers=SANDBOX_AUTH) as resp:
            assert resp.status == 200
        async with sandbox_http.get(f"{root}/_sandbox/ledger") as resp:
            assert json.loads(await resp.text())["requests"] == 1
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0
    assert b"avp_test_sandbox" not in stderr


def test_serve_on_a_taken_port_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(sandbox_group, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
