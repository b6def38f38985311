"""Three campaign processes on one key and one sandbox project share one allowance.

Each process runs this file as a driver: an ``AitelierClient`` over its campaign's limiter
on the shared allowance of a common state dir (a file) or state database (with
``CAMPAIGN_STATE_URL`` in its environment), placing calls as fast as its share allows.
The sandbox (scaled limits, injected latency) is the judge: its ledger holds every call it
created, with the campaign in the metadata and the arrival time. The tests that make the
claim of the title run on both state backends (``state_backend``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from support.batches import T0, _epoch, _platform, open_store, rows
from support.crash import BIN, write_run_campaign
from support.postgres import Backend
from support.sandbox import arrivals

from campaign.api import AitelierClient, call_request_body
from campaign.cli import main as main_cli
from campaign.config.limit import parse_limit
from campaign.limits import allowance_path, shared_limiter
from campaign.limits.status import allowance_members
from campaign.pipeline.several import worst_exit_code
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, parse_faults, start_sandbox
from campaign.store.allowance import RESERVE, AllowanceDb, AllowanceLocation
from campaign.store.place import StatePlace

CALLS = "60/10s"
REQUESTS = "240/10s"
LATENCY = "*/=delay:20-50ms"
MARGIN_S = 0.25
WORKERS = 12


def allowance_of(state_dir: Path, base_url: str, state_url: str | None) -> Path | AllowanceLocation:
    """The shared allowance of the test's key: the file in ``state_dir``, or with
    ``state_url`` its schema in that database."""
    if state_url is None:
        return allowance_path(state_dir, base_url, DEFAULT_KEY)
    place = StatePlace(state_dir, "any", dsn=state_url, shown_url="the test's database")
    return place.allowance(base_url, DEFAULT_KEY)


async def drive(base_url: str, state_dir: Path, name: str, priority: float, go_file: Path) -> None:
    """Join the allowance, wait for ``go_file`` ("start stop" epochs), then place calls."""
    allowance = shared_limiter(
        allowance_of(state_dir, base_url, os.environ.get("CAMPAIGN_STATE_URL")),
        name,
        [parse_limit(REQUESTS)],
        [parse_limit(CALLS)],
        priority=priority,
        margin_s=MARGIN_S,
    )
    rows = itertools.count()
    digit = sum(map(ord, name)) % 10

    async def worker(api: AitelierClient) -> None:
        while time.time() < stop_at:
            n = next(rows)
            body = call_request_body(
                phone=f"+1415{digit}{n:06d}",
                scenario_id="scn_demo",
                metadata={"campaign": name, "row_key": f"r{n}"},
            )
            await api.create_call(body, f"{name}:r{n}:1")

    while not go_file.exists():  # the test starts everyone at once, once all have joined
        await asyncio.sleep(0.02)
    start_at, stop_at = map(float, go_file.read_text().split())
    await asyncio.sleep(max(0.0, start_at - time.time()))
    async with AitelierClient(base_url, DEFAULT_KEY, limits=allowance) as api:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, stop_at - time.time())):
                await asyncio.gather(*(worker(api) for _ in range(WORKERS)))
    allowance.close()


async def test_three_processes_share_the_allowance_fairly_and_take_over_a_killed_ones_share(
    tmp_path: Path, state_backend: Backend
) -> None:
    config = SandboxConfig(
        ledger=True,
        outbound_calls=CALLS,
        requests_per_minute=REQUESTS,
        requests_per_hour="100000/h",
        faults=parse_faults(LATENCY),
        fault_seed=11,
        wallet_balance="1000000.00",
    )
    sandbox = await start_sandbox(config)
    call_limit = parse_limit(CALLS)
    span = call_limit.window + MARGIN_S
    priorities = {"spring": 1.0, "winback": 1.0, "survey": 2.0}
    go_file = tmp_path / "go"
    processes = {
        name: await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            sandbox.base_url,
            str(tmp_path),
            name,
            str(priority),
            str(go_file),
            # the script imports the tests' shared helpers (tests/support)
            env={
                **{k: v for k, v in os.environ.items() if k != "CAMPAIGN_STATE_URL"},
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                **({"CAMPAIGN_STATE_URL": state_backend.url} if state_backend.url else {}),
            },
        )
        for name, priority in priorities.items()
    }
    try:
        # Start together once all three have joined, however slowly the interpreters start.
        where = allowance_of(tmp_path, sandbox.base_url, state_backend.url)
        for _ in range(600):
            if len(allowance_members(where, time.time())) == len(priorities):
                break
            await asyncio.sleep(0.05)
        start_at = time.time() + 0.5
        kill_at = start_at + 11.0
        stop_at = kill_at + 2 * span + 1.0
        go_file.write_text(f"{start_at} {stop_at}")
        await asyncio.sleep(kill_at - time.time())
        processes["survey"].kill()
        await processes["survey"].wait()
        for name in ("spring", "winback"):
            assert await asyncio.wait_for(processes[name].wait(), timeout=30) == 0
        ledger = sandbox.ledger()
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        await sandbox.close()

    assert ledger["rate_limited"] == 0
    assert ledger["max_outbound_in_window"] <= call_limit.count
    assert ledger["max_requests_in_window"]["per_minute"] <= parse_limit(REQUESTS).count
    keys = [call["idempotency_key"] for call in ledger["calls"]]
    assert len(keys) == len(set(keys))  # every row once

    sends = arrivals(ledger)
    # While all three run, each gets its priority's share of the calls (±10%).
    before_kill = Counter(name for name, t in sends if t < kill_at)
    total = sum(before_kill.values())
    assert total >= call_limit.count * 11.0 / span  # the allowance is used in full
    for name, priority in priorities.items():
        expected = priority / sum(priorities.values())
        assert abs(before_kill[name] / total - expected) <= 0.1 * expected, before_kill
    # One window after the kill, the other two share the whole allowance between them
    # (without the take-over they would keep their half of it: 30 of 60). Measured on an
    # idle 2-core machine: 52-60 of 60; 0.8 leaves room for a loaded CI machine, far
    # above that half.
    window = Counter(name for name, t in sends if kill_at + span <= t < kill_at + 2 * span)
    assert window["survey"] == 0
    assert window["spring"] + window["winback"] >= 0.8 * call_limit.count, window
    assert abs(window["spring"] - window["winback"]) <= 0.1 * call_limit.count, window


RUN_CALLS = "60/5s"


async def test_three_campaign_runs_and_a_kill_9_never_exceed_the_limit_or_call_twice(
    tmp_path: Path, state_backend: Backend
) -> None:
    config = SandboxConfig(
        ledger=True,
        outbound_calls=RUN_CALLS,
        requests_per_minute="600/5s",
        requests_per_hour="100000/h",
        faults=parse_faults(LATENCY),
        fault_seed=5,
        wallet_balance="1000000.00",
        time_scale=0.005,
    )
    sandbox = await start_sandbox(config)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AITELIER_API_KEY": DEFAULT_KEY,
        "AITELIER_BASE_URL": sandbox.base_url,
        **state_backend.env(),
    }
    rows = 40
    priorities = {"spring": 1.0, "winback": 1.0, "survey": 2.0}
    files = {
        name: write_run_campaign(
            tmp_path, name, rows, 1000 * k, priority, extra=state_backend.campaign_yaml()
        )
        for k, (name, priority) in enumerate(priorities.items())
    }

    async def start(name: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            str(BIN), "run", str(files[name]), env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    try:
        runs = {name: await start(name) for name in priorities}
        # kill -9 spring once it has placed a few calls (it cannot finish in one window)
        deadline = time.time() + 30.0
        while (
            time.time() < deadline
            and sum(call["metadata"]["campaign"] == "spring" for call in sandbox.ledger()["calls"])
            < 5
        ):
            await asyncio.sleep(0.05)
        runs["spring"].kill()
        await runs["spring"].wait()
        killed_at = time.time()
        for name in ("winback", "survey"):
            assert await asyncio.wait_for(runs[name].wait(), timeout=60) == 0
        rerun = await start("spring")  # resumes with the same keys
        assert await asyncio.wait_for(rerun.wait(), timeout=60) == 0
        ledger = sandbox.ledger()
    finally:
        await sandbox.close()

    assert ledger["rate_limited"] == 0
    assert ledger["max_outbound_in_window"] <= parse_limit(RUN_CALLS).count
    called = Counter((c["metadata"]["campaign"], c["metadata"]["row_key"]) for c in ledger["calls"])
    assert set(called.values()) == {1}  # nobody called twice
    assert len(called) == rows * len(priorities)  # and every row called
    spring = [t for name, t in arrivals(ledger) if name == "spring"]
    assert min(spring) < killed_at < max(spring)  # killed mid-run, finished by the rerun
    # The share of each campaign is measured, with tighter timing, by the driver test above.


def write_campaign(folder: Path, name: str, phones: list[str], *, priority: float = 1.0) -> Path:
    """A small campaign file (in-process sandbox) whose state dir is shared with its siblings."""
    return write_run_campaign(
        folder,
        name,
        len(phones),
        0,
        priority,
        phones=phones,
        limits="{calls: 100/10s, requests: [600/min, 20000/h]}",
        extra="api: {base_url: sandbox}\nsandbox: {time_scale: 0.005}\n",
    )


def test_one_command_runs_several_campaigns_and_status_shows_them_all(tmp_path: Path) -> None:
    spring = write_campaign(tmp_path, "spring", [f"+1 212 555 {100 + i:04d}" for i in range(4)])
    winback = write_campaign(
        tmp_path, "winback", [f"+1 212 555 {200 + i:04d}" for i in range(3)], priority=2.0
    )
    result = CliRunner().invoke(main_cli, ["run", str(spring), str(winback)], env={})
    assert result.exit_code == 0, result.output
    assert "== spring: exit 0" in result.output and "== winback: exit 0" in result.output
    assert "this run: 4 call(s) placed" in result.output
    assert "this run: 3 call(s) placed" in result.output
    status = CliRunner().invoke(main_cli, ["status", str(spring), "--json"], env={})
    assert status.exit_code == 0, status.output
    on_allowance = {m["campaign"]: m for m in json.loads(status.output)["allowance"]}
    assert set(on_allowance) == {"spring", "winback"}
    assert on_allowance["winback"]["priority"] == 2.0
    assert {m["state"] for m in on_allowance.values()} == {"left"}  # both runs have ended
    text = CliRunner().invoke(main_cli, ["status", str(winback)], env={})
    assert "campaigns on the shared allowance:" in text.output
    assert "spring: left, priority 1" in text.output


def test_the_exit_code_of_several_campaigns_is_the_worst_and_a_bad_file_stops_no_other(
    tmp_path: Path,
) -> None:
    spring = write_campaign(tmp_path, "spring", ["+1 212 555 0100"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("campaign: broken\nscenario_id: [not, a, string]\n")
    result = CliRunner().invoke(main_cli, ["run", str(broken), str(spring)], env={})
    assert result.exit_code == 2, result.output
    assert "== spring: exit 0" in result.output
    assert "this run: 1 call(s) placed" in result.output
    assert worst_exit_code([0, 3, 75]) == 75
    assert worst_exit_code([3, 1, 4]) == 4
    assert worst_exit_code([0, 0]) == 0


def main() -> None:
    """Driver entry point: ``python test_multi_campaign.py URL STATE_DIR NAME PRIORITY GO_FILE``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("priority", type=float)
    parser.add_argument("go_file", type=Path)
    args = parser.parse_args()
    asyncio.run(drive(args.base_url, args.state_dir, args.name, args.priority, args.go_file))


if __name__ == "__main__":
    main()


async def test_a_batches_run_holds_a_slot_on_the_shared_allowance_for_every_row_it_dials(
    tmp_path: Path,
) -> None:
    """The calls campaigns beside it wait for those slots instead of meeting 429s."""
    async for platform in _platform(tmp_path, T0, "5/min"):
        store = open_store(tmp_path / "c.sqlite")
        store.sync_rows(rows(12), T0)
        path = allowance_path(tmp_path, platform.sandbox.base_url, DEFAULT_KEY)
        calls = [parse_limit("5/min")]
        requests = [parse_limit("600/min")]
        bulk = shared_limiter(path, "bulk", requests, calls, clock=platform.clock)
        engine = platform.engine(store, max_rows=20, calls_per_min=5, allowance=bulk)
        assert (await engine.run()).error is None
        bulk.close()
        db = AllowanceDb(path)
        with db.transaction():
            reserved = sorted(at for _, at, kind in db.sends_after(0, 0.0) if kind == RESERVE)
        db.close()
        dialled = sorted(
            _epoch(c["dialed_at"]) for c in platform.ledger()["calls"] if c["dialed_at"]
        )
        assert len(dialled) == len(reserved) == 12
        # Every row rang no later than the moment reserved for it: the slots a calls
        # campaign sees as taken cover the platform's dials.
        assert all(d <= r for d, r in zip(dialled, reserved, strict=True))
        # And a calls campaign joining now waits for them instead of calling into a 429.
        spring = shared_limiter(path, "spring", requests, calls, clock=platform.clock)
        assert not spring.call_ready()
        spring.close()
