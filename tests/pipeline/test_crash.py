"""Crash safety, end to end: the real command, a sandbox process with ambiguous faults, kill -9.

After every scenario the sandbox's ledger must show each callable row called exactly once
per attempt, nothing else called, and no outbound window over the limit.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.crash import (
    KEY,
    read_ledger,
    run_env,
    sandbox_process,
    start_run,
    write_crash_campaign,
)

from campaign.engine.attempts import idempotency_key

pytestmark = pytest.mark.slow

FAULTS = "POST /v1/calls=reset_after@0.15,POST /v1/calls=error_after@0.1,*=proxy_503@0.05"
CALL_LIMIT = "30/10s"


def _campaign_dir(tmp_path: Path, rows: int, *, extra: str = "") -> Path:
    return write_crash_campaign(tmp_path, rows, CALL_LIMIT, extra=extra)


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    """A sandbox process with the ambiguous faults on and the scaled limits."""
    with sandbox_process(tmp_path, faults=FAULTS, call_limit=CALL_LIMIT, seed=7) as url:
        yield url


def _assert_exactly_once(root_url: str, campaign: Path, rows: int) -> dict[str, Any]:
    ledger = read_ledger(root_url)
    calls = ledger["calls"]
    per_attempt = Counter((c["metadata"]["row_key"], c["metadata"]["attempt"]) for c in calls)
    twice = {k: n for k, n in per_attempt.items() if n > 1}
    assert not twice, f"called more than once for the same attempt: {twice}"
    keys = {f"K{i:03d}" for i in range(rows)}
    assert {c["metadata"]["row_key"] for c in calls} == keys, "a row was lost or a stranger called"
    for call in calls:
        meta = call["metadata"]
        assert meta["campaign"] == "crash"
        assert int(meta["attempt"]) in (1, 2)
        assert call["idempotency_key"] == idempotency_key(
            "crash", meta["row_key"], int(meta["attempt"])
        )
    for key in keys:  # attempts are numbered without gaps
        numbers = sorted(int(a) for (k, a) in per_attempt if k == key)
        assert numbers == list(range(1, len(numbers) + 1))
    assert ledger["max_outbound_in_window"] <= ledger["outbound_limit"]
    return ledger


def _kill_and_rerun(
    campaign: Path, env: dict[str, str], rng: random.Random, kills: int, log: Path
) -> int:
    killed = 0
    for _ in range(kills):
        proc = start_run(campaign, env, log)
        time.sleep(rng.uniform(0.6, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    for _ in range(6):  # then let it finish; each rerun continues where the last stopped
        proc = start_run(campaign, env, log)
        if proc.wait(timeout=180) == 0:
            return killed
    raise AssertionError(f"the campaign did not finish; see {log}")


@pytest.mark.parametrize("seed", [11, 12])
def test_kill_9_at_random_moments_never_calls_twice(
    tmp_path: Path, sandbox_url: str, seed: int
) -> None:
    rows = 40
    campaign = _campaign_dir(tmp_path, rows)
    killed = _kill_and_rerun(
        campaign, run_env(sandbox_url), random.Random(seed), 12, tmp_path / "run.log"
    )
    assert killed >= 10  # at least 20 kills across the two seeds
    _assert_exactly_once(sandbox_url, campaign, rows)
    results = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(results) == rows + 1
    assert all(",pending," not in line for line in results[1:])


def test_two_concurrent_runs_one_exits_75_and_nothing_is_doubled(
    tmp_path: Path, sandbox_url: str
) -> None:
    rows = 12
    campaign = _campaign_dir(tmp_path, rows)
    env = run_env(sandbox_url)
    first = start_run(campaign, env, tmp_path / "a.log")
    time.sleep(0.05)
    second = start_run(campaign, env, tmp_path / "b.log")
    codes = sorted([first.wait(timeout=180), second.wait(timeout=180)])
    assert codes == [0, 75]
    loser = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert "another run of this campaign is in progress" in loser
    _assert_exactly_once(sandbox_url, campaign, rows)


def test_the_key_never_reaches_checkpoint_log_or_outputs(tmp_path: Path, sandbox_url: str) -> None:
    campaign = _campaign_dir(tmp_path, 5)
    proc = start_run(campaign, run_env(sandbox_url), tmp_path / "run.log")
    assert proc.wait(timeout=120) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "crash.yaml"]
    assert any(p.suffix == ".sqlite" for p in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_sigterm_stops_sending_writes_outputs_and_exits_3(tmp_path: Path, sandbox_url: str) -> None:
    rows = 30
    campaign = _campaign_dir(tmp_path, rows)
    env = run_env(sandbox_url)
    proc = start_run(campaign, env, tmp_path / "run.log")
    # Signal once the run is placing calls (not after a fixed sleep: a loaded machine may
    # still be starting the interpreter, when SIGTERM's default action would apply).
    deadline = time.monotonic() + 60
    while not read_ledger(sandbox_url)["calls"] and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3
    log = (tmp_path / "run.log").read_text()
    assert "stopped early" in log and "rerun to resume" in log
    placed = len(read_ledger(sandbox_url)["calls"])
    assert 0 < placed < rows
    assert (tmp_path / "out" / "results.csv").exists()
    assert start_run(campaign, env, tmp_path / "run.log").wait(timeout=120) == 0
    _assert_exactly_once(sandbox_url, campaign, rows)
