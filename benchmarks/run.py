"""Benchmark of the calls-mode engine: a 2,000-row campaign against a sandbox process.

The sandbox runs as its own process (so its CPU is not ours) with raised limits and
injected latency; the engine runs in this process, once collecting sessions (slot values,
costs) and once without. Printed per pass:

- calls/min achieved vs allowed: the steady pace at the server, (calls - 1) over the time
  from the first call created to the last, against the limit's count per window (the
  engine spreads calls evenly rather than bursting, so this is the sustained rate);
- requests per completed row (every request this process sent, pre-flight included);
- CPU seconds of this process per 1,000 rows.

Usage: .venv/bin/python benchmarks/run.py [--rows 2000] [--calls 2000/min]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from campaign.clock import SystemClock
from campaign.config import load_campaign
from campaign.limits import parse_limit
from campaign.runner import RunOptions, run_campaign_async

BIN = Path(sys.executable).parent / "campaign"
LATENCY = "*/=delay:20-50ms"


def _write_campaign(folder: Path, name: str, rows: int, calls: str, requests: list[str]) -> Path:
    lines = ["customer_id,phone,first_name"]
    lines += [f"B{i:05d},+1 212 555 {i % 10000:04d},N{i}" for i in range(rows)]
    # 555-0000..9999 repeats after 10,000 rows; 2,000 rows stay distinct.
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    path = folder / "bench.yaml"
    path.write_text(
        f"""campaign: {name}
scenario_id: scn_demo
input: {{path: rows.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
calling_hours: unrestricted
retry: {{max_attempts: 1}}
limits: {{calls: {calls}, requests: [{", ".join(requests)}]}}
cost_estimate: "0.00"
state_dir: state
output_dir: out
"""
    )
    return path


def _ledger(root: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{root}/_sandbox/ledger", timeout=30) as response:
        return dict(json.load(response))


def _pass(root: str, folder: Path, args: argparse.Namespace, sessions: bool) -> dict[str, float]:
    folder.mkdir(parents=True)
    requests = [args.requests_per_min, "200000/h"]
    name = "bench-slots" if sessions else "bench-noslots"
    path = _write_campaign(folder, name, args.rows, args.calls, requests)
    env = {"AITELIER_API_KEY": "avp_test_sandbox", "AITELIER_BASE_URL": f"{root}/v1"}
    config = load_campaign(path, env=env)
    before = len(_ledger(root)["calls"])  # type: ignore[arg-type]
    cpu0, wall0 = time.process_time(), time.monotonic()
    report = asyncio.run(
        run_campaign_async(config, RunOptions(fetch_sessions=sessions), clock=SystemClock())
    )
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    calls = _ledger(root)["calls"][before:]  # type: ignore[index]
    created = sorted(datetime.fromisoformat(c["created_at"]).timestamp() for c in calls)
    limit = parse_limit(args.calls)
    achieved = (len(created) - 1) / (created[-1] - created[0]) * 60
    allowed = limit.count / limit.window * 60
    completed = report.counts["by_state"].get("done", 0) + report.counts["by_state"].get(
        "failed", 0
    )
    return {
        "rows": args.rows,
        "calls": len(created),
        "achieved_per_min": round(achieved, 1),
        "allowed_per_min": round(allowed, 1),
        "ratio": round(achieved / allowed, 4),
        "requests": report.requests,
        "completed_rows": completed,
        "requests_per_row": round(report.requests / max(completed, 1), 3),
        "cpu_s_per_1000_rows": round(cpu / args.rows * 1000, 2),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    """Run both passes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--calls", default="2000/min")
    parser.add_argument("--requests-per-min", default="5000/min")
    parser.add_argument("--time-scale", default="0.005")
    args = parser.parse_args()
    sandbox = subprocess.Popen(
        [str(BIN), "sandbox", "serve", "--port", "0", "--ledger", "--faults", LATENCY,
         "--limits", f"outbound_calls={args.calls}",
         "--limits", f"requests_per_minute={args.requests_per_min}",
         "--limits", "requests_per_hour=200000/h", "--time-scale", args.time_scale],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        root = sandbox.stdout.readline().strip().removeprefix("listening on ")
        with tempfile.TemporaryDirectory() as tmp:
            for sessions in (True, False):
                figures = _pass(root, Path(tmp) / f"sessions-{sessions}", args, sessions)
                label = "with slot values" if sessions else "without slot values"
                print(f"{label}: {json.dumps(figures)}")
                print(
                    f"  calls/min achieved {figures['achieved_per_min']} vs allowed "
                    f"{figures['allowed_per_min']} (ratio {figures['ratio']}); "
                    f"{figures['requests_per_row']} requests per completed row; "
                    f"{figures['cpu_s_per_1000_rows']} CPU s per 1,000 rows",
                    flush=True,
                )
            ledger = _ledger(root)
            print(
                f"sandbox: max outbound in window {ledger['max_outbound_in_window']} "
                f"(limit {ledger['outbound_limit']}), 429s {ledger['rate_limited']}"
            )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


if __name__ == "__main__":
    main()
