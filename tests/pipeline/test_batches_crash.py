"""Batches mode, end to end: the real command, a sandbox process with ambiguous faults, kill -9.

After the kills and a finishing run, the checkpoint and the sandbox's ledger must agree:
every batch the platform holds is one the checkpoint recorded (no second upload of a
file), every dialed row belongs to exactly one batch of its attempt, every callable row
was dialed, and no outbound window went over the limit. On both state backends
(``state_backend``: SQLite files, then a PostgreSQL database).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from support.crash import (
    read_ledger,
    run_env,
    sandbox_process,
    start_run,
    write_crash_campaign,
)
from support.postgres import Backend

from campaign.store.postgres import checkpoint_schema

pytestmark = pytest.mark.slow

FAULTS = "ambiguous@0.3,GET /v1/batches/*=proxy_503@0.05,*=delay:5-20ms"
CALL_LIMIT = "30/10s"
ROWS = 60


def _campaign_dir(tmp_path: Path, rows: int, backend: Backend) -> Path:
    return write_crash_campaign(
        tmp_path,
        rows,
        CALL_LIMIT,
        extra="mode: batches\nbatch: {max_rows: 8}\n" + backend.campaign_yaml(),
    )


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    """A sandbox process with the ambiguous faults on and the scaled limits."""
    with sandbox_process(tmp_path, faults=FAULTS, call_limit=CALL_LIMIT, seed=5) as url:
        yield url


MEMBERS = (
    "SELECT b.seq, b.batch_id, b.state AS batch_state, m.row_key, m.attempt_key, "
    "a.number, a.state, a.status, r.e164 FROM batch_members m "
    "JOIN batches b ON b.seq = m.seq JOIN attempts a ON a.idempotency_key = "
    "m.attempt_key JOIN rows r ON r.row_key = m.row_key"
)
ROWS_SQL = "SELECT row_key, e164, progress FROM rows"


def _checkpoint(
    tmp_path: Path, backend: Backend
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if backend.url is not None:
        with psycopg.connect(backend.url, row_factory=dict_row) as pg:
            pg.execute(
                pgsql.SQL("SET search_path TO {}").format(
                    pgsql.Identifier(checkpoint_schema("crash"))
                )
            )
            return pg.execute(MEMBERS).fetchall(), pg.execute(ROWS_SQL).fetchall()
    conn = sqlite3.connect(tmp_path / "state" / "crash.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        members = [dict(r) for r in conn.execute(MEMBERS)]
        rows = [dict(r) for r in conn.execute(ROWS_SQL)]
    finally:
        conn.close()
    return members, rows


def _assert_exactly_once(root_url: str, tmp_path: Path, backend: Backend) -> None:
    ledger = read_ledger(root_url)
    members, rows = _checkpoint(tmp_path, backend)
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


@pytest.mark.parametrize(
    ("state_backend", "seed"), [("sqlite", 21), ("postgresql", 21)], indirect=["state_backend"]
)
def test_kill_9_during_upload_and_polling_never_dials_a_row_twice(
    tmp_path: Path, sandbox_url: str, seed: int, state_backend: Backend
) -> None:
    rng = random.Random(seed)
    campaign = _campaign_dir(tmp_path, ROWS, state_backend)
    env = run_env(sandbox_url, state_backend)
    log = tmp_path / "run.log"
    killed = 0
    for _ in range(12):
        proc = start_run(campaign, env, log)
        time.sleep(rng.uniform(0.5, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    for _ in range(6):
        if start_run(campaign, env, log).wait(timeout=180) == 0:
            break
    else:
        raise AssertionError(f"the campaign did not finish; see {log}")
    assert killed >= 10
    _assert_exactly_once(sandbox_url, tmp_path, state_backend)
    results = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(results) == ROWS + 1
    assert all(",pending," not in line for line in results[1:])
