"""Ingest + normalise + dedupe throughput against a bare phonenumbers loop, on one file.

Generates a messy CRM-like CSV (mixed countries and formats, Excel damage, extensions,
junk, and raw values that repeat as they do when several exports are merged), then times

  (a) a bare single-process loop: phonenumbers.parse + is_valid_number +
      format_number(E164) over the same (raw, region) cells, read into memory first;
  (b) our path: what ``campaign validate`` does (read the CSV, normalise with a cache and a
      two-process pool, timezones, calling windows, dedupe, the projection), in a fresh
      child process so its peak RSS is its own.

Prints rows/s for both, their ratio (target >= 1.5) and our peak RSS (target <= 600 MB).
The default file has few repeats (95 % of its raw cells are distinct), where the cache
cannot help and only the second core can.

    .venv/bin/python benchmarks/normalise.py [--rows 1000000] [--unique-share 0.95]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import phonenumbers
from _proc import children

# (region, pattern) pairs from real number ranges; # is any digit, @ is 2-9
FORMATS = [
    ("US", "(212) @##-####"),
    ("US", "+1 305 @##-####"),
    ("US", "1-415-@##-####"),
    ("US", "212.@##.#### x12"),
    ("US", "646@######.0"),
    ("GB", "079## ######"),
    ("GB", "+44 20 7946 ####"),
    ("US", "0044 79## ######"),
    ("FR", "06 ## ## ## ##"),
    ("FR", "+33 1 ## ## ## ##"),
    ("DE", "01521 #######"),
    ("ES", "6## ## ## ##"),
    ("IT", "3## ### ####"),
    ("NL", "06 ########"),
    ("AU", "+61 4## ### ###"),
    ("BR", "+55 11 9####-####"),
    ("JP", "090-####-####"),
    ("IN", "+91 98### #####"),
    ("CA", "(416) @##-####"),
    ("MX", "+52 55 #### ####"),
]
JUNK = ["n/a", "", "unknown", "12345", "call me", "0000000000", "+44 9098 79####"]


def fill(pattern: str, rng: random.Random) -> str:
    digits = {"#": "0123456789", "@": "23456789"}
    return "".join(rng.choice(digits[char]) if char in digits else char for char in pattern)


def generate(path: Path, rows: int, unique_share: float, seed: int) -> None:
    """Write the messy file; a share of about ``unique_share`` of its raw cells is distinct.

    The rest repeat an earlier cell, as when several exports of the same CRM are merged.
    """
    rng = random.Random(seed)
    pool: list[tuple[str, str]] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Customer ID", "Phone", "Country", "First Name", "Plan"])
        for index in range(rows):
            if not pool or rng.random() < unique_share:
                if rng.random() < 0.03:
                    cell = (fill(rng.choice(JUNK), rng), "US")
                else:
                    region, pattern = rng.choice(FORMATS)
                    cell = (fill(pattern, rng), region)
                pool.append(cell)
            else:
                cell = rng.choice(pool)
            raw, region = cell
            writer.writerow([f"c{index}", raw, region, f"name{index % 977}", "gold"])


def read_cells(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [(row[1], row[2]) for row in reader]


def bare_loop(cells: list[tuple[str, str]]) -> tuple[float, int]:
    """(a): seconds taken and valid numbers found."""
    valid = 0
    start = time.perf_counter()
    for raw, region in cells:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            valid += 1
    return time.perf_counter() - start, valid


def our_path(data: Path) -> None:
    """(b), run in a child process: prints a JSON line with its figures."""
    from campaign.config.model import load_campaign
    from campaign.pipeline.validate import validate_campaign

    campaign_file = data.parent / "bench.yaml"
    campaign_file.write_text(
        "campaign: bench\nscenario_id: scn_bench\n"
        f"input: {{path: {data.name}, phone_column: phone, region_column: country, "
        "default_region: US, variables: [first name, plan]}\n"
        "compliance: {consent: attested}\n"
    )
    config = load_campaign(campaign_file, env={})
    start, cpu_start = time.perf_counter(), time.process_time()
    with _Descendants() as workers:
        counts = validate_campaign(config).counts
    seconds = time.perf_counter() - start
    main_cpu = time.process_time() - cpu_start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": counts.rows_read,
                "callable": counts.callable,
                "duplicates": counts.duplicates,
                "rejected": sum(counts.rejected.values()),
                "peak_rss_mb": own,
                "worker_peak_rss_mb": max(workers.rss_mb.values(), default=0.0),
                "main_cpu": main_cpu,
                "worker_cpu": sum(workers.cpu_s.values()),
            }
        )
    )


class _Descendants:
    """CPU seconds and peak RSS of every process below this one, read from /proc every
    50 ms while the block runs (pool workers are the forkserver's children, not ours, so
    getrusage(RUSAGE_CHILDREN) does not see them)."""

    def __init__(self) -> None:
        self.cpu_s: dict[int, float] = {}
        self.rss_mb: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Descendants:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._done.wait(0.05):
            todo = children(os.getpid())
            while todo:
                pid = todo.pop()
                todo += children(pid)
                try:
                    with open(f"/proc/{pid}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/status") as handle:
                        rss = int(handle.read().split("VmRSS:")[1].split()[0]) / 1024
                except (OSError, IndexError, ValueError):
                    continue
                cpu = (int(fields[11]) + int(fields[12])) / tick
                self.cpu_s[pid] = max(self.cpu_s.get(pid, 0.0), cpu)
                self.rss_mb[pid] = max(self.rss_mb.get(pid, 0.0), rss)


def _spin(count: int) -> int:
    total = 0
    for index in range(count):
        total += index * index
    return total


def machine_parallelism(count: int = 5_000_000) -> float:
    """How many cores two CPU-bound processes really get here (2.0 on two idle cores)."""
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    _spin(count)
    one = time.perf_counter() - start
    with ProcessPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(_spin, [count, count]))
        two = time.perf_counter() - start
    return 2 * one / two


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--unique-share", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--our-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.our_path:
        our_path(args.our_path)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "contacts.csv"
        started = time.perf_counter()
        generate(data, args.rows, args.unique_share, args.seed)
        size_mb = data.stat().st_size / 1e6
        took = time.perf_counter() - started
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {took:.1f} s")
        child = subprocess.run(
            [sys.executable, __file__, "--our-path", str(data)],
            capture_output=True,
            text=True,
            check=True,
        )
        ours = json.loads(child.stdout.strip().splitlines()[-1])
        cells = read_cells(data)
        distinct = len(set(cells))
        bare_seconds, valid = bare_loop(cells)
    bare_rate = len(cells) / bare_seconds
    our_rate = ours["rows"] / ours["seconds"]
    ratio = our_rate / bare_rate
    print(f"distinct raw cells: {distinct:,} of {len(cells):,}")
    print(
        f"(a) bare phonenumbers loop: {bare_rate:,.0f} rows/s "
        f"({bare_seconds:.1f} s, {valid:,} valid)"
    )
    print(
        f"(b) ingest+normalise+dedupe: {our_rate:,.0f} rows/s ({ours['seconds']:.1f} s; "
        f"{ours['callable']:,} callable, {ours['duplicates']:,} duplicates, "
        f"{ours['rejected']:,} rejected)"
    )
    cpu = ours["main_cpu"] + ours["worker_cpu"]
    print(
        f"(b) CPU: {ours['main_cpu']:.1f} s main + {ours['worker_cpu']:.1f} s workers = "
        f"{cpu / ours['rows'] * 1e6:.1f} µs/row (bare: {bare_seconds / len(cells) * 1e6:.1f}); "
        f"cores it got: {cpu / ours['seconds']:.2f}; load average now {os.getloadavg()[0]:.2f}"
    )
    print(f"ratio (b)/(a): {ratio:.2f}  (target >= 1.5)")
    print(
        f"machine parallelism: {machine_parallelism():.2f} cores for two CPU-bound processes "
        "(the ceiling of any two-process speed-up on this box right now)"
    )
    print(
        f"peak RSS: {ours['peak_rss_mb']:.0f} MB main process, "
        f"{ours['worker_peak_rss_mb']:.0f} MB largest worker  (target <= 600 MB)"
    )
    return 0 if ratio >= 1.5 and ours["peak_rss_mb"] <= 600 else 1


if __name__ == "__main__":
    sys.exit(main())
