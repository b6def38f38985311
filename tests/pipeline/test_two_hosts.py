"""Two hosts, one project: campaigns whose state dirs share nothing but the state database.

Each campaign runs as ``campaign run`` in a folder of its own (its own state dir, outputs
and log), as a cron job on another machine would; the only thing they have in common is
``state_url`` (one PostgreSQL database) and the API's project. The sandbox (in-process,
scaled limits, injected latency) is the judge: its ledger holds every call it created,
with the campaign in the metadata and the arrival time.

The campaigns pace ``burst``: each asks for every slot its window admits, so the two meet
at every free slot and the fair share decides (with ``even`` pacing each spreads its calls
at the whole limit's pace, and they meet only once the window is full).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

from support.crash import BIN, write_run_campaign
from support.postgres import PgDatabase
from support.sandbox import arrivals

from campaign.config.limit import parse_limit
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, parse_faults, start_sandbox

CALLS = "60/5s"
REQUESTS = "600/5s"
LATENCY = "*/=delay:20-50ms"
MARGIN_S = 0.25  # the limiter's default margin: a window is judged this much longer
HOSTS = {"north": 2.0, "south": 1.0}  # campaign → priority
ROWS = 100


def write_host(folder: Path, name: str, offset: int, priority: float, state_url: str) -> Path:
    """One host's folder: the campaign's list and file, its state dir inside the folder."""
    folder.mkdir()
    return write_run_campaign(
        folder,
        name,
        ROWS,
        offset,
        priority,
        limits=f"{{calls: {CALLS}, requests: [{REQUESTS}, 100000/h], pacing: burst}}",
        output_dir="out",
        extra=f"state_url: {state_url}\n",
    )


async def test_two_hosts_sharing_only_the_database_call_everyone_once_within_the_limit_fairly(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    sandbox = await start_sandbox(
        SandboxConfig(
            ledger=True,
            outbound_calls=CALLS,
            requests_per_minute=REQUESTS,
            requests_per_hour="100000/h",
            faults=parse_faults(LATENCY),
            fault_seed=3,
            wallet_balance="1000000.00",
            time_scale=0.005,
        )
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AITELIER_API_KEY": DEFAULT_KEY,
        "AITELIER_BASE_URL": sandbox.base_url,
        "PGPASSWORD": pg_database.password,  # the file holds the URL without it
    }
    files = {
        name: write_host(
            tmp_path / f"host-{name}", name, 1000 * k, priority, pg_database.url_no_password
        )
        for k, (name, priority) in enumerate(HOSTS.items())
    }
    runs: list[asyncio.subprocess.Process] = []
    try:
        for path in files.values():
            run = await asyncio.create_subprocess_exec(
                str(BIN), "run", str(path), env=env, cwd=path.parent,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            runs.append(run)
        codes = [await asyncio.wait_for(run.wait(), timeout=120) for run in runs]
        ledger = sandbox.ledger()
    finally:
        for run in runs:
            if run.returncode is None:
                run.kill()
                await run.wait()
        await sandbox.close()
    logs = {
        name: (path.parent / "state" / f"{name}.log").read_text() for name, path in files.items()
    }
    assert codes == [0, 0], logs

    limit = parse_limit(CALLS)
    assert ledger["rate_limited"] == 0
    assert ledger["max_outbound_in_window"] <= limit.count
    # Exactly once: every number of both lists, none twice, nobody else.
    phones = Counter(call["phone"] for call in ledger["calls"])
    assert set(phones.values()) == {1}
    expected = {f"+1212555{1000 * k + i:04d}" for k in range(len(HOSTS)) for i in range(ROWS)}
    assert set(phones) == expected
    # Nothing shared but the database: neither host has a state file of its own.
    for path in files.values():
        assert not list((path.parent / "state").glob("*.sqlite"))

    # While both run (from one window after the later one's first call to the earlier
    # one's last), each gets its priority's share of the calls (±10%, as the three-process
    # test on one machine), and together they use the allowance in full.
    sends = arrivals(ledger)
    first = {name: min(t for n, t in sends if n == name) for name in HOSTS}
    last = {name: max(t for n, t in sends if n == name) for name in HOSTS}
    span = limit.window + MARGIN_S
    start, end = max(first.values()) + span, min(last.values())
    assert end - start >= limit.window, (first, last)  # long enough to judge the shares
    both = Counter(name for name, t in sends if start <= t < end)
    total = sum(both.values())
    assert total >= 0.8 * limit.count * (end - start) / span, both
    for name, priority in HOSTS.items():
        share = priority / sum(HOSTS.values())
        assert abs(both[name] / total - share) <= 0.1 * share, both
