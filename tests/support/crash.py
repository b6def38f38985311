"""Helpers of the crash tests: a sandbox process, the real command, the ledger.

The campaign's state is in SQLite files or a PostgreSQL database: pass the test's
``state_backend`` (tests/conftest.py) to ``write_crash_campaign``, ``run_env`` and
``checkpoint_keys``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from campaign.store.checkpoint import Store
from campaign.store.postgres import checkpoint_schema, close_pools

if TYPE_CHECKING:
    from support.postgres import Backend

BIN = Path(sys.executable).parent / "campaign"
KEY = "avp_test_sandbox"


def write_crash_campaign(tmp_path: Path, rows: int, call_limit: str, *, extra: str = "") -> Path:
    """A campaign ``crash`` of ``rows`` valid US numbers (keys K000…) and its file."""
    lines = ["customer_id,phone,first_name"]
    lines += [f"K{i:03d},+1 212 555 {100 + i:04d},N{i}" for i in range(rows)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "crash.yaml").write_text(
        f"""campaign: crash
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, phone_column: phone, default_region: US,
        key_column: customer_id, variables: [first_name]}}
calling_hours: unrestricted
retry: {{statuses: [no_answer, busy], max_attempts: 2, min_interval: 0s, dayparts: any}}
limits: {{calls: {call_limit}, requests: [600/min, 20000/h]}}
cost_estimate: "0.01"
state_dir: state
output_dir: out
{extra}"""
    )
    return tmp_path / "crash.yaml"


def write_run_campaign(
    folder: Path,
    name: str,
    rows: int,
    offset: int,
    priority: float,
    *,
    limits: str = "{calls: 60/5s, requests: [600/5s, 100000/h]}",
    state_dir: str = "state",
    output_dir: str | None = None,
    extra: str = "",
    phones: list[str] | None = None,
) -> Path:
    """A campaign file for ``campaign run`` against the test's sandbox (URL from the env):
    ``rows`` numbers from +1 212 555 ``offset`` on (or ``phones``), one attempt each;
    ``extra`` is added to it (a ``state_url:`` line, say)."""
    if phones is None:
        phones = [f"+1 212 555 {offset + i:04d}" for i in range(rows)]
    lines = ["customer_id,phone"] + [f"{name}-{i},{phone}" for i, phone in enumerate(phones)]
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""campaign: {name}
scenario_id: scn_demo
compliance:
  consent: attested
priority: {priority}
input: {{path: {name}.csv, default_region: US, key_column: customer_id}}
retry: {{max_attempts: 1}}
limits: {limits}
cost_estimate: "0.00"
calling_hours: unrestricted
state_dir: {state_dir}
output_dir: {output_dir or f"out-{name}"}
{extra}"""
    )
    return path


@contextlib.contextmanager
def sandbox_process(tmp_path: Path, *, faults: str, call_limit: str, seed: int) -> Iterator[str]:
    """A sandbox process with the ledger on; yields its root URL."""
    proc = subprocess.Popen(
        [str(BIN), "sandbox", "serve", "--port", "0", "--ledger", "--faults", faults,
         "--limits", f"outbound_calls={call_limit}", "--limits", "requests_per_minute=600/min",
         "--limits", "requests_per_hour=20000/h", "--time-scale", "0.01", "--seed", str(seed)],
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


def run_env(root_url: str, backend: Backend | None = None) -> dict[str, str]:
    """The environment that points ``campaign run`` at the sandbox process (and gives it
    the state database's password, which the campaign file cannot hold)."""
    env = {**os.environ, "AITELIER_API_KEY": KEY, "AITELIER_BASE_URL": f"{root_url}/v1"}
    env.pop("CAMPAIGN_STATE_URL", None)
    return {**env, **(backend.env() if backend is not None else {})}


def checkpoint_keys(campaign: Path, backend: Backend, name: str = "crash") -> set[str]:
    """The idempotency keys of every attempt the campaign's checkpoint holds now (none
    before a run has created it: a run killed while starting)."""
    if backend.url is None:
        path = campaign.parent / "state" / f"{name}.sqlite"
        if not path.exists():
            return set()
        store = Store.reader(path)
    else:
        with psycopg.connect(backend.url) as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = 'attempts'",
                (checkpoint_schema(name),),
            ).fetchone()
        if found is None:
            return set()
        store = Store.reader_postgres(backend.url, name)
    try:
        return {attempt.idempotency_key for attempt in store.attempts()}
    finally:
        store.close()
        close_pools()


def start_run(campaign: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``campaign run FILE`` as a subprocess, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN), "run", str(campaign)], env=env, stdout=out, stderr=out, cwd=campaign.parent
        )


def read_ledger(root_url: str) -> dict[str, Any]:
    """The sandbox's ledger: every call placed, and the most seen in any window."""
    with urllib.request.urlopen(f"{root_url}/_sandbox/ledger", timeout=10) as response:
        return dict(json.load(response))
