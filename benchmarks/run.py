"""Benchmark of the calls-mode engine: a 2,000-row campaign against a sandbox process.

The sandbox runs as its own process (so its CPU is not ours) with raised limits and
injected latency; the engine runs in this process, once collecting sessions (slot values,
costs) and once without. Printed per pass:

- calls/min achieved vs allowed: the steady pace at the server, (calls - 1) over the time
  from the first call created to the last, against the limit's count per window (the
  engine spreads calls evenly rather than bursting, so this is the sustained rate);
- requests per completed row (every request this process sent, pre-flight included);
- CPU seconds of this process per 1,000 rows.

With ``--mode batches`` the same campaign runs as CSV batches (``--max-rows`` per file):
the platform dials the rows itself at the outbound limit, in bursts as its sliding window
allows, so the dial rate is measured over whole limit windows from the first dial (rows
dialed in them over their length), and requests per completed row are what the run spent
on uploads, batch polls, row pages and, with slot values, sessions.

With ``--campaigns N`` (N > 1) the rows are split over N campaigns that run together over
one shared allowance (as ``campaign run A.yaml B.yaml …`` runs them); printed: the combined
calls/min against the one limit (target >= 0.95) and each campaign's calls. Use a limit the
rows fill for several windows, e.g. ``--campaigns 3 --calls 200/10s``.

Usage: .venv/bin/python benchmarks/run.py [--rows 2000] [--calls 2000/min] [--mode batches]
       [--campaigns 3]
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
from campaign.config.limit import parse_limit
from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import CampaignError
from campaign.pipeline.runner import RunOptions, run_campaign_async

BIN = Path(sys.executable).parent / "campaign"
LATENCY = "*/=delay:20-50ms"


def _write_campaign(
    folder: Path,
    name: str,
    rows: int,
    calls: str,
    requests: list[str],
    mode: str = "calls",
    max_rows: int = 500,
    *,
    offset: int = 0,
    state_dir: str = "state",
) -> Path:
    lines = ["customer_id,phone,first_name"]
    lines += [f"B{i:05d},+1 212 555 {i % 10000:04d},N{i}" for i in range(offset, offset + rows)]
    # 555-0000..9999 repeats after 10,000 rows; 2,000 rows stay distinct.
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    path = folder / "bench.yaml"
    path.write_text(
        f"""campaign: {name}
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: rows.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
calling_hours: unrestricted
mode: {mode}
batch: {{max_rows: {max_rows}}}
retry: {{max_attempts: 1}}
limits: {{calls: {calls}, requests: [{", ".join(requests)}]}}
cost_estimate: "0.00"
state_dir: {state_dir}
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
    path = _write_campaign(folder, name, args.rows, args.calls, requests, args.mode, args.max_rows)
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
    if args.mode == "batches":
        dialed = sorted(
            datetime.fromisoformat(c["dialed_at"]).timestamp() for c in calls if c["dialed_at"]
        )
        achieved = _full_window_rate(dialed, limit.window) * 60
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


def _multi_pass(root: str, folder: Path, args: argparse.Namespace) -> dict[str, object]:
    """``--campaigns N``: N campaigns of rows/N rows each, run together the way ``campaign run
    A.yaml B.yaml …`` runs them, sharing one allowance; the combined rate is what counts."""
    from collections import Counter

    from campaign.pipeline.several import run_campaigns_async

    requests = [args.requests_per_min, "200000/h"]
    env = {"AITELIER_API_KEY": "avp_test_sandbox", "AITELIER_BASE_URL": f"{root}/v1"}
    per = args.rows // args.campaigns
    entries: list[tuple[str, CampaignConfig | CampaignError]] = []
    for k in range(args.campaigns):
        sub = folder / f"campaign-{k}"
        sub.mkdir(parents=True)
        path = _write_campaign(
            sub, f"bench-{k}", per, args.calls, requests, args.mode, args.max_rows,
            offset=k * per, state_dir="../state",
        )  # fmt: skip
        entries.append((str(path), load_campaign(path, env=env)))
    before = len(_ledger(root)["calls"])  # type: ignore[arg-type]
    cpu0, wall0 = time.process_time(), time.monotonic()
    outcomes = asyncio.run(
        run_campaigns_async(entries, RunOptions(fetch_sessions=False), clock=SystemClock())
    )
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    calls = _ledger(root)["calls"][before:]  # type: ignore[index]
    created = sorted(datetime.fromisoformat(c["created_at"]).timestamp() for c in calls)
    limit = parse_limit(args.calls)
    # The shared allowance lets the campaigns use each window's slots as they free (bursts,
    # not the single engine's even pacing), so the steady rate is ``count`` over the mean gap
    # between a call and the call ``count`` later: one window (+ margin) when saturated.
    gaps = [b - a for a, b in zip(created, created[limit.count :], strict=False)]
    if not gaps:
        raise SystemExit("fewer calls than one limit window holds: raise --rows or lower --calls")
    achieved = limit.count / (sum(gaps) / len(gaps)) * 60
    allowed = limit.count / limit.window * 60
    by_campaign = Counter(c["metadata"].get("campaign", "?") for c in calls)
    return {
        "campaigns": args.campaigns,
        "rows": per * args.campaigns,
        "calls": len(created),
        "calls_by_campaign": dict(sorted(by_campaign.items())),
        "exit_codes": [outcome.exit_code for outcome in outcomes],
        "achieved_per_min": round(achieved, 1),
        "allowed_per_min": round(allowed, 1),
        "ratio": round(achieved / allowed, 4),
        "cpu_s_per_1000_rows": round(cpu / max(per * args.campaigns, 1) * 1000, 2),
        "wall_s": round(wall, 1),
    }


def _full_window_rate(times: list[float], window: float) -> float:
    """Events per second over the whole limit windows from the first event."""
    windows = int((times[-1] - times[0]) // window)
    if windows == 0:
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)
    end = times[0] + windows * window
    return sum(1 for t in times if t < end) / (windows * window)


def main() -> None:
    """Run both passes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--calls", default="2000/min")
    parser.add_argument("--requests-per-min", default="5000/min")
    parser.add_argument("--time-scale", default="0.005")
    parser.add_argument("--mode", choices=["calls", "batches"], default="calls")
    parser.add_argument("--max-rows", type=int, default=500)
    parser.add_argument(
        "--campaigns", type=int, default=1, help="N > 1: N campaigns sharing one allowance"
    )
    args = parser.parse_args()
    sandbox = subprocess.Popen(
        [str(BIN), "sandbox", "serve", "--port", "0", "--ledger", "--faults", LATENCY,
         "--limits", f"outbound_calls={args.calls}",
         "--limits", f"requests_per_minute={args.requests_per_min}",
         "--limits", "requests_per_hour=200000/h", "--time-scale", args.time_scale,
         "--wallet-balance", "1000000.00"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        root = sandbox.stdout.readline().strip().removeprefix("listening on ")
        with tempfile.TemporaryDirectory() as tmp:
            if args.campaigns > 1:
                shared = _multi_pass(root, Path(tmp) / "shared", args)
                print(f"{args.campaigns} campaigns on one allowance: {json.dumps(shared)}")
                print(
                    f"  combined calls/min achieved {shared['achieved_per_min']} vs allowed "
                    f"{shared['allowed_per_min']} (ratio {shared['ratio']}, target >= 0.95)",
                    flush=True,
                )
            for sessions in (True, False) if args.campaigns == 1 else ():
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
