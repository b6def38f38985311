"""Batches mode reads a batch's worth of rows per window group, and plans the same batch as
it would from every due row."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.engine.batches.plan import (
    Candidate,
    GroupWindow,
    batch_candidates,
    plan_next_batch,
)

NOW = 1_780_000_000.0

group_st = st.tuples(
    st.sampled_from([-600.0, 0.0, 30.0, 200.0, 900.0]),  # opens, from now
    st.one_of(st.none(), st.sampled_from([100.0, 400.0, 1000.0, 5000.0])),  # open for
    st.integers(min_value=1, max_value=40),  # due rows (a group has one at least)
)


@settings(max_examples=200, deadline=None)
@given(
    spec=st.lists(group_st, min_size=1, max_size=6),
    spacing=st.sampled_from([1.0, 7.5, 30.0]),
    queued=st.integers(min_value=0, max_value=30),
    max_rows=st.integers(min_value=1, max_value=60),
    seed=st.randoms(use_true_random=False),
)
def test_the_rows_read_per_group_give_the_batch_every_due_row_gives(
    spec: list[tuple[float, float | None, int]],
    spacing: float,
    queued: int,
    max_rows: int,
    seed: object,
) -> None:
    groups: list[GroupWindow] = []
    rows: dict[str, list[tuple[str, int]]] = {}
    lines = list(range(2, 2 + sum(n for _, _, n in spec)))
    seed.shuffle(lines)  # type: ignore[attr-defined]
    for index, (opens, length, n) in enumerate(spec):
        key = f"g{index}"
        opens_at = NOW + opens
        groups.append(GroupWindow(key, opens_at, None if length is None else opens_at + length))
        taken, lines = sorted(lines[:n]), lines[n:]
        rows[key] = [(f"r{line}", line) for line in taken]

    def rows_of(keys: Sequence[str], limit: int) -> list[tuple[str, str, int]]:
        merged = sorted((line, row_key, key) for key in keys for row_key, line in rows[key])
        return [(row_key, line, key) for line, row_key, key in merged[:limit]]

    kw = dict(
        now=NOW, spacing=spacing, queued_rows=queued, max_rows=max_rows, margin_s=60.0,
        hold_horizon_s=300.0,
    )  # fmt: skip
    every = [
        Candidate(row_key, g.opens_at, g.closes_at, line)
        for g in groups
        for row_key, line in rows[g.key]
    ]
    offered = [
        Candidate(row_key, g.opens_at, g.closes_at, line)
        for g, row_key, line in batch_candidates(groups, rows_of, **kw)  # type: ignore[arg-type]
    ]
    assert plan_next_batch(offered, **kw) == plan_next_batch(every, **kw)  # type: ignore[arg-type]
    assert len(offered) <= max_rows  # never more than a batch's worth is read
