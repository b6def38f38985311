"""Benchmark of the checkpoint's nightly row sync (``Store.sync_rows``) on a real file.

Three syncs of a ``--rows`` export into one checkpoint (WAL, ``synchronous=FULL``, on the
temporary folder's disk), each timed on its own:

- night 1: every row is new (a fresh campaign);
- night 2: the next night's export after a day of calls: a fifth of the rows have an
  attempt, 3 % of the rows are gone, 3 % are new, 1 % of the waiting rows were suppressed
  overnight, 1 % of the called keys come with another number (a new person, ``<key>#2``)
  and 1 % of the new rows carry a number another row has called (a ``duplicate``);
- night 3: the same export again (nothing changes: the steady state of a cron job).

Printed per night: wall-clock and CPU seconds (each the best of ``--repeat`` fresh
checkpoints) and rows per second; then what the checkpoint holds and its size. The data is
generated before the clock starts.

    .venv/bin/python benchmarks/store.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from campaign.store.checkpoint import CallEnd, RowIn, Store

T0 = 1_780_000_000.0


def _night_one(rows: int) -> list[RowIn]:
    planned = []
    for i in range(rows):
        rejected = i % 10 == 9
        planned.append(
            RowIn(
                line=i + 2,
                row_key=f"cust-{i:07d}",
                label=f"cust-{i:07d}",
                raw_phone=f"(415) {i % 1000:03d}-{i:04d}",
                e164=None if rejected else f"+1415{i:07d}",
                plan_state="rejected" if rejected else "callable",
                reason="not a valid number" if rejected else None,
                variables={"first_name": f"Name{i}", "plan": "gold" if i % 3 else "silver"},
                timezones=["America/Los_Angeles"],
                us_state="CA",
                region="US",
            )
        )
    return planned


def _night_two(first: list[RowIn], called: set[str]) -> list[RowIn]:
    planned: list[RowIn] = []
    for i, row in enumerate(first):
        if i % 33 == 5:  # gone from tonight's export
            continue
        if row.row_key in called and i % 100 == 0:  # the key now belongs to someone else
            row = replace(row, e164=f"+1628{i:07d}", raw_phone=f"628 {i:07d}")
        elif row.row_key not in called and row.plan_state == "callable" and i % 100 == 1:
            row = replace(row, plan_state="suppressed", reason="on do_not_call.csv")
        planned.append(row)
    extra = len(first) // 33
    for j in range(extra):
        line = len(first) + j + 2
        # Every hundredth new row brings a number an existing row has called.
        e164 = f"+1415{(j * 5) * 100 % len(first):07d}" if j % 100 == 0 else f"+1212{j:07d}"
        planned.append(
            RowIn(line=line, row_key=f"new-{j:07d}", raw_phone=e164, e164=e164,
                  plan_state="callable", variables={"first_name": f"New{j}"},
                  timezones=["America/New_York"], region="US")
        )  # fmt: skip
    return planned


def _call_a_fifth(store: Store, first: list[RowIn]) -> set[str]:
    """A day of calls: every fifth callable row gets an attempt that ended (or will retry)."""
    called: set[str] = set()
    with store.transaction():
        for i, row in enumerate(first):
            if row.plan_state != "callable" or i % 5:
                continue
            key = f"attempt-{row.row_key}-1"
            store.begin_attempt(row.row_key, 1, key, b"{}", T0 + 60, phone=row.e164)
            store.mark_sent(key, f"call-{i}", "queued", T0 + 61)
            no_answer = i % 2 == 0
            store.end_attempt(
                key,
                CallEnd(status="no_answer" if no_answer else "completed", ended_at=T0 + 120),
                row_progress="retry_scheduled" if no_answer else "done",
                next_due=T0 + 4 * 3600 if no_answer else None,
            )
            called.add(row.row_key)
    return called


def _timed(store: Store, planned: list[RowIn], now: float) -> tuple[float, float]:
    """Wall and CPU seconds of one sync (CPU time is steadier on a busy machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    store.sync_rows(planned, now)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(rows: int, repeat: int) -> None:
    """Time the three nights ``repeat`` times on fresh checkpoints; print the best of each."""
    first = _night_one(rows)
    times: dict[str, list[tuple[float, float]]] = {"night 1": [], "night 2": [], "night 3": []}
    size = 0
    counts: dict[str, int] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.sqlite"
            store = Store.open(path)
            try:
                times["night 1"].append(_timed(store, first, T0))
                called = _call_a_fifth(store, first)
                second = _night_two(first, called)
                times["night 2"].append(_timed(store, second, T0 + 86_400))
                times["night 3"].append(_timed(store, second, T0 + 2 * 86_400))
                counts = {"night 1": len(first), "night 2": len(second), "night 3": len(second)}
                stored = store.rows()
                summary = {
                    "rows": len(stored),
                    "vanished": sum(r.vanished for r in stored),
                    "new people (#2)": sum("#" in r.row_key for r in stored),
                    "duplicates of a called number": sum(
                        r.plan_state == "duplicate" for r in stored
                    ),
                    "blocked": sum(r.progress == "blocked" for r in stored),
                }
            finally:
                store.close()
            size = path.stat().st_size  # closing checkpointed the WAL into the file
    print(f"sync_rows on {rows:,} rows (best of {repeat}; WAL, synchronous=FULL):")
    for night, seconds in times.items():
        wall = min(w for w, _ in seconds)
        cpu = min(c for _, c in seconds)
        print(
            f"  {night}: {counts[night]:>9,} rows in {wall:6.2f} s, CPU {cpu:6.2f} s "
            f"({counts[night] / wall:>9,.0f} rows/s)"
        )
    print("  after night 3: " + ", ".join(f"{k} {v:,}" for k, v in summary.items()))
    print(f"  checkpoint file: {size / 1e6:.1f} MB")


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run(args.rows, args.repeat)


if __name__ == "__main__":
    main()
