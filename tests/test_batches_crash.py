"""Batches mode, end to end: the real command, a sandbox process with ambiguous faults, kill -9.

After the kills and a finishing run, the checkpoint and the sandbox's ledger must agree:
every batch the platform holds is one the checkpoint recorded (no second upload of a
file), every dialed row belongs to exactly one batch of its attempt, every callable row
was dialed, and no outbound window went over the limit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "campaign"
KEY = "avp_test_sandbox"
FAULTS = "ambiguous@0.3,GET /v1/batches/*=proxy_503@0.05,*=delay:5-20ms"
CALL_LIMIT = "30/10s"
ROWS = 60


def _campaign_dir(tmp_path: Path, rows: int) -> Path:
    lines = ["customer_id,phone,first_name"]
    lines += [f"K{i:03d},+1 212 555 {100 + i:04d},N{i}" for i in range(rows)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "crash.yaml").write_text(
        f"""campaign: crash
scenario_id: scn_demo
mode: batches
batch: {{max_rows: 8}}
input: {{path: contacts.csv, phone_column: phone, default_region: US,
        key_column: customer_id, variables: [first_name]}}
calling_hours: unrestricted
retry: {{statuses: [no_answer, busy], max_attempts: 2, min_interval: 0s}}
limits: {{calls: {CALL_LIMIT}, requests: [600/min, 20000/h]}}
cost_estimate: "0.01"
state_dir: state
output_dir: out
"""
    )
    return tmp_path / "crash.yaml"


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    """A sandbox process with the ambiguous faults on and the scaled limits."""
    proc = subprocess.Popen(
        [str(BIN), "sandbox", "serve", "--port", "0", "--ledger", "--faults", FAULTS,
         "--limits", f"outbound_calls={CALL_LIMIT}", "--limits", "requests_per_minute=600/min",
         "--limits", "requests_per_hour=20000/h", "--time-scale", "0.01", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "sandbox.err").open("w"),
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _start(campaign: Path, root_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AITELIER_API_KEY": KEY, "AITELIER_BASE_URL": f"{root_url}/v1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN), "run", str(campaign)], env=env, stdout=out, stderr=out, cwd=campaign.parent
        )


def _ledger(root_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{root_url}/_sandbox/ledger", timeout=10) as response:
        return dict(json.load(response))


def _checkpoint(tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conn = sqlite3.connect(tmp_path / "state" / "crash.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        members = [
            dict(r)
            for r in conn.execute(
                "SELECT b.seq, b.batch_id, b.state AS batch_state, m.row_key, m.attempt_key, "
                "a.number, a.state, a.status, r.e164 FROM batch_members m "
                "JOIN batches b ON b.seq = m.seq JOIN attempts a ON a.idempotency_key = "
                "m.attempt_key JOIN rows r ON r.row_key = m.row_key"
            )
        ]
        rows = [dict(r) for r in conn.execute("SELECT row_key, e164, progress FROM rows")]
    finally:
        conn.close()
    return members, rows


def _assert_exactly_once(root_url: str, tmp_path: Path) -> None:
    ledger = _ledger(root_url)
    members, rows = _checkpoint(tmp_path)
    ours = {m["batch_id"] for m in members}
    dials = [c for c in ledger["calls"] if c["batch_id"] is not None]
    assert {c["batch_id"] for c in dials} <= ours, "a batch file reached the platform twice"
    assert not [c for c in ledger["calls"] if c["batch_id"] is None], "a direct call was placed"
    # An attempt is in one batch; a row has at most one batch per attempt number.
    assert len({m["attempt_key"] for m in members}) == len(members)
    per_attempt = Counter((m["row_key"], m["number"]) for m in members)
    assert max(per_attempt.values()) == 1
    # Each dial belongs to exactly one member of its batch, and each member was dialed at
    # most once; a member that was dialed is never void (void means "not dialed").
    member_of = {(m["batch_id"], m["e164"]): m for m in members}
    dialed = Counter((c["batch_id"], c["phone"]) for c in dials)
    assert max(dialed.values()) == 1
    for key in dialed:
        assert key in member_of and member_of[key]["state"] != "void", key
    # Nothing lost: every row was dialed, and no attempt is left in limbo.
    assert {c["phone"] for c in dials} == {r["e164"] for r in rows}
    assert all(m["state"] in ("ended", "void", "failed") for m in members)
    assert all(r["progress"] in ("done", "failed") for r in rows)
    assert ledger["max_outbound_in_window"] <= ledger["outbound_limit"]


@pytest.mark.parametrize("seed", [21])
def test_kill_9_during_upload_and_polling_never_dials_a_row_twice(
    tmp_path: Path, sandbox_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    campaign = _campaign_dir(tmp_path, ROWS)
    log = tmp_path / "run.log"
    killed = 0
    for _ in range(12):
        proc = _start(campaign, sandbox_url, log)
        time.sleep(rng.uniform(0.5, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    for _ in range(6):
        if _start(campaign, sandbox_url, log).wait(timeout=180) == 0:
            break
    else:
        raise AssertionError(f"the campaign did not finish; see {log}")
    assert killed >= 10
    _assert_exactly_once(sandbox_url, tmp_path)
    results = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(results) == ROWS + 1
    assert all(",pending," not in line for line in results[1:])
