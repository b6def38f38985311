"""Crash safety, end to end: the real command, a sandbox process with ambiguous faults, kill -9.

After every scenario the sandbox's ledger must show each callable row called exactly once
per attempt, nothing else called, and no outbound window over the limit. The main ones run
on both state backends (``state_backend``: SQLite files, then a PostgreSQL database).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from support.crash import (
    KEY,
    checkpoint_keys,
    read_ledger,
    run_env,
    sandbox_process,
    start_run,
    write_crash_campaign,
)
from support.postgres import Backend

from campaign.engine.attempts import idempotency_key

pytestmark = pytest.mark.slow

FAULTS = "POST /v1/calls=reset_after@0.15,POST /v1/calls=error_after@0.1,*=proxy_503@0.05"
CALL_LIMIT = "30/10s"


def _campaign_dir(tmp_path: Path, rows: int, backend: Backend | None = None) -> Path:
    extra = backend.campaign_yaml() if backend is not None else ""
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
    campaign: Path,
    env: dict[str, str],
    rng: random.Random,
    kills: int,
    log: Path,
    *,
    backend: Backend,
    root_url: str,
) -> int:
    killed = 0
    for _ in range(kills):
        proc = start_run(campaign, env, log)
        time.sleep(rng.uniform(0.6, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        # Every request that reached the server was preceded by its committed attempt:
        # the ledger is read first, so anything in it was sent before the checkpoint is read.
        at_server = {call["idempotency_key"] for call in read_ledger(root_url)["calls"]}
        missing = at_server - checkpoint_keys(campaign, backend)
        assert not missing, f"calls the checkpoint has no attempt for: {sorted(missing)}"
    for _ in range(6):  # then let it finish; each rerun continues where the last stopped
        proc = start_run(campaign, env, log)
        if proc.wait(timeout=180) == 0:
            return killed
    raise AssertionError(f"the campaign did not finish; see {log}")


@pytest.mark.parametrize(
    ("state_backend", "seed"),
    [("sqlite", 11), ("sqlite", 12), ("postgresql", 11)],
    indirect=["state_backend"],
)
def test_kill_9_at_random_moments_never_calls_twice(
    tmp_path: Path, sandbox_url: str, seed: int, state_backend: Backend
) -> None:
    rows = 40
    campaign = _campaign_dir(tmp_path, rows, state_backend)
    killed = _kill_and_rerun(
        campaign,
        run_env(sandbox_url, state_backend),
        random.Random(seed),
        12,
        tmp_path / "run.log",
        backend=state_backend,
        root_url=sandbox_url,
    )
    assert killed >= 10  # at least 10 kills for each seed
    _assert_exactly_once(sandbox_url, campaign, rows)
    results = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(results) == rows + 1
    assert all(",pending," not in line for line in results[1:])


def test_two_concurrent_runs_one_exits_75_and_nothing_is_doubled(
    tmp_path: Path, sandbox_url: str, state_backend: Backend
) -> None:
    rows = 12
    campaign = _campaign_dir(tmp_path, rows, state_backend)
    env = run_env(sandbox_url, state_backend)
    first = start_run(campaign, env, tmp_path / "a.log")
    time.sleep(0.05)
    second = start_run(campaign, env, tmp_path / "b.log")
    codes = sorted([first.wait(timeout=180), second.wait(timeout=180)])
    assert codes == [0, 75]
    loser = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert "another run of" in loser and "is in progress" in loser
    _assert_exactly_once(sandbox_url, campaign, rows)


def test_the_key_never_reaches_checkpoint_log_or_outputs(
    tmp_path: Path, sandbox_url: str, state_backend: Backend
) -> None:
    campaign = _campaign_dir(tmp_path, 5, state_backend)
    proc = start_run(campaign, run_env(sandbox_url, state_backend), tmp_path / "run.log")
    assert proc.wait(timeout=120) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "crash.yaml"]
    # With a state database, the state dir keeps only local files (the run log).
    assert any(p.suffix == ".sqlite" for p in written) != state_backend.is_postgres
    secrets = [KEY] + ([state_backend.password] if state_backend.password else [])
    for path in written:
        for secret in secrets:
            assert secret.encode() not in path.read_bytes(), f"a secret leaked into {path}"
    if state_backend.url is not None:
        log = (tmp_path / "state" / "crash.log").read_text()
        assert f"state in {state_backend.url_no_password}" in log
        stored = _database_text(state_backend.url)
        assert '"campaign:crash"."attempts"' in stored  # the checkpoint was read
        for secret in secrets:
            assert secret not in stored and secret.encode().hex() not in stored


def _database_text(url: str) -> str:
    """Every row of every table of the state database, as text (BYTEA in hex)."""
    lines = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            name = pgsql.Identifier(schema, table)
            lines.append(name.as_string(conn))
            query = pgsql.SQL("SELECT t::text FROM {} AS t").format(name)
            lines += [str(row[0]) for row in conn.execute(query)]
    return "\n".join(lines)


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
