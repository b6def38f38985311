"""The two state backends side by side (issue 17): SQLite files and PostgreSQL.

For each backend:

1. **state transitions per second**: on a checkpoint of ``--cycles`` rows, each row's
   attempt goes through begin_attempt → note_send → mark_sent → end_attempt, each its own
   transaction committed before the next, as the engine does for a call (4 transitions a
   cycle); printed as cycles/s and transitions/s, the best of ``--repeat``;
2. **start → first call on a 100,000-row checkpoint**: scale.py's messy export (cached in
   ``benchmarks/.data/``) run once by ``campaign run`` until its first call, then stopped
   (SIGTERM): that prepares the checkpoint (and its cold start is printed too); then the
   same command again, timed from its start until its log says the first call was placed
   (the sandbox answers it: a ``campaign sandbox serve`` process on loopback).

PostgreSQL is a throwaway server started here (tests/support/postgres.py: initdb and
pg_ctl in a temp directory; Debian's package ``postgresql``), or the one of
``CAMPAIGN_TEST_PG_URL``; each backend gets a database of its own. SQLite runs on the temp
folder's disk (WAL, synchronous=FULL). The figures are printed, without a target: exit 0
unless a run failed to place its first call.

    .venv/bin/python benchmarks/state_backends.py [--rows 100000] [--cycles 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from _postgres import PostgresUnavailable, postgres_database
from _scale_export import data_file
from scale import (
    BIN,
    REQUESTS_HOUR,
    REQUESTS_MIN,
    SANDBOX_KEY,
    RunFigures,
    measure_run,
    write_campaign,
)
from scale import CALLS as SCALE_CALLS

from campaign.store.checkpoint import CallEnd, RowIn, Store
from campaign.store.postgres import close_pools

T0 = 1_780_000_000.0


@dataclass
class Backend:
    """One backend under test: how to open a store, and the campaign-file line for it."""

    name: str
    open_store: Callable[[str], Store]
    yaml: str = ""
    env: dict[str, str] | None = None


def _rows(count: int, prefix: str) -> list[RowIn]:
    return [
        RowIn(line=i + 2, row_key=f"{prefix}-{i:07d}", raw_phone=f"+1415{i:07d}",
              e164=f"+1415{i:07d}", plan_state="callable", variables={"first_name": f"N{i}"},
              timezones=["America/Los_Angeles"], us_state="CA", region="US")
        for i in range(count)
    ]  # fmt: skip


def transitions(backend: Backend, cycles: int, repeat: int) -> tuple[float, float]:
    """Best cycles/s of ``repeat`` fresh checkpoints, and the seconds of that best."""
    best = 0.0
    best_s = 0.0
    for round_ in range(repeat):
        store = backend.open_store(f"bench-{round_}")
        try:
            rows = _rows(cycles, f"r{round_}")
            store.sync_rows(rows, T0)
            started = time.perf_counter()
            for i, row in enumerate(rows):
                key = f"bench:{row.row_key}:1"
                store.begin_attempt(row.row_key, 1, key, b"{}", T0 + i, phone=row.e164)
                store.note_send(key)
                store.mark_sent(key, f"call_{i}", "queued", T0 + i)
                store.end_attempt(
                    key,
                    CallEnd(status="completed", outcome="answered", ended_at=T0 + i + 30),
                    row_progress="done",
                )
            took = time.perf_counter() - started
        finally:
            store.close()
        if cycles / took > best:
            best, best_s = cycles / took, took
    return best, best_s


def _sandbox() -> tuple[subprocess.Popen[str], str]:
    sandbox = subprocess.Popen(
        [str(BIN), "sandbox", "serve", "--port", "0", "--ledger", "--time-scale", "0.01",
         "--limits", f"outbound_calls={SCALE_CALLS}",
         "--limits", f"requests_per_minute={REQUESTS_MIN}",
         "--limits", f"requests_per_hour={REQUESTS_HOUR}", "--wallet-balance", "1000000.00"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    assert sandbox.stdout is not None
    root = sandbox.stdout.readline().strip().removeprefix("listening on ")
    if not root.startswith("http://127.0.0.1:"):
        sandbox.kill()
        raise SystemExit(f"the sandbox did not start: {root!r}")
    return sandbox, root


def first_call(
    backend: Backend, data: Path, root: str, folder: Path, args: argparse.Namespace
) -> tuple[RunFigures, RunFigures]:
    """The preparing (cold) run and the timed run on the prepared checkpoint."""
    folder.mkdir()
    campaign_file = write_campaign(folder, data, f"{root}/v1", f"bench-{backend.name}")
    with campaign_file.open("a") as handle:
        handle.write(backend.yaml)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITELIER_", "CAMPAIGN_"))}
    env["AITELIER_API_KEY"] = SANDBOX_KEY
    env.update(backend.env or {})
    runs = argparse.Namespace(
        campaign=str(BIN),
        first_call_timeout=args.first_call_timeout,
        run_seconds=1.0,
        stop_timeout=60.0,
        keep_logs=args.keep_logs,
    )
    cold = measure_run(campaign_file, env, runs, f"{backend.name}-prepare")
    timed = measure_run(campaign_file, env, runs, f"{backend.name}-timed")
    return cold, timed


def _seconds(figures: RunFigures) -> str:
    if figures.first_call_s is None:
        return f"no call within {figures.waited_s:.0f} s (exit {figures.exit_code})"
    return f"{figures.first_call_s:.1f} s"


def main() -> None:
    """Parse the options, start PostgreSQL and the sandbox, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)  # scale.py's export
    parser.add_argument("--first-call-timeout", type=float, default=300.0)
    parser.add_argument("--keep-logs", type=Path, default=None)
    args = parser.parse_args()
    if args.keep_logs:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    data = data_file(args.rows, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="campaign-backends-"))
    failed = False
    try:
        with postgres_database() as (server, database):
            with psycopg.connect(database.url) as conn:
                fsync = conn.execute("SHOW fsync").fetchone()
            print(
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; PostgreSQL "
                f"{server.version // 10000} ({'started here' if server.started_here else 'given'}"
                f", fsync {fsync[0] if fsync else '?'}); SQLite WAL, synchronous=FULL",
                flush=True,
            )
            backends = [
                Backend("sqlite", lambda name: Store.open(tmp / f"{name}.sqlite")),
                Backend(
                    "postgresql",
                    lambda name: Store.open_postgres(database.url, name),
                    yaml=f"state_url: {database.url_no_password}\n",
                    env={"PGPASSWORD": database.password},
                ),
            ]
            print(f"state transitions ({args.cycles:,} calls, 4 transactions each, best of "
                  f"{args.repeat}):")  # fmt: skip
            for backend in backends:
                rate, took = transitions(backend, args.cycles, args.repeat)
                print(
                    f"  {backend.name:<10} {rate:8,.0f} calls/s = {4 * rate:8,.0f} "
                    f"transitions/s ({took:.2f} s for {args.cycles:,})",
                    flush=True,
                )
            close_pools()
            sandbox, root = _sandbox()
            try:
                print(f"start → first call on a {args.rows:,}-row checkpoint (sandbox {root}):")
                for backend in backends:
                    cold, timed = first_call(backend, data, root, tmp / backend.name, args)
                    failed = failed or timed.first_call_s is None
                    print(
                        f"  {backend.name:<10} {_seconds(timed)} (preparing run from empty: "
                        f"{_seconds(cold)})",
                        flush=True,
                    )
                    if timed.first_call_s is None:
                        for line in timed.tail:
                            print(f"    {line}")
            finally:
                os.killpg(sandbox.pid, signal.SIGTERM)
                sandbox.wait(timeout=10)
    except PostgresUnavailable as exc:
        print(f"PostgreSQL unavailable: {exc}")
        failed = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
