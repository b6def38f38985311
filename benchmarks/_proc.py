"""What the benchmarks read of running processes from /proc (Linux)."""

from __future__ import annotations

import os


def children(pid: int) -> list[int]:
    """The pids of a process's children (every thread's), [] once it is gone."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return found
