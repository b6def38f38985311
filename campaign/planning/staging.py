"""The plan shaped for the checkpoint, as cheaply per row as it goes: what a run stages.

``windows.planned_stream`` gives the same rows (a test holds them equal); this one skips
the copy it makes of each row's variables and builds each ``RowIn`` positionally: the one
process that reads, plans and stages a million rows does a little less per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from campaign.config.model import CampaignConfig
from campaign.planning.plan import PhoneMemo, PlanCounts, iter_plan
from campaign.store.checkpoint import NULL_TEXT, encode_variables, encode_zones


def checkpoint_rows(
    config: CampaignConfig,
    opted_out: Iterable[str],
    counts: PlanCounts,
    *,
    on_rows: Callable[[int], None] | None = None,
    memo: PhoneMemo | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The plan's rows for ``Store.stage_planned``, in file order, counted into ``counts``:
    each already in the staged table's shape (what ``planned_tuple`` makes of the RowIn
    ``planned_stream`` gives, without building it), an empty text column as ``NULL_TEXT``."""
    zones: dict[tuple[str, ...], str] = {}
    null = NULL_TEXT  # binds faster than None (Store.stage_planned)
    for row in iter_plan(config, counts, opted_out=opted_out, on_rows=on_rows, memo=memo):
        first, key = row.duplicate_of, row.row_key
        e164, us_state, region = row.e164, row.us_state, row.region
        extension, note, kind, reason = row.extension, row.note, row.number_type, row.reason
        yield (
            key,
            key,  # label: the key the plan gave it
            row.line,
            row.raw_phone,
            null if e164 is None else e164,
            encode_variables(row.variables),
            encode_zones(row.timezones, zones),
            null if us_state is None else us_state,
            null if region is None else region,
            null if first is None else str(first),
            null if extension is None else extension,
            null if note is None else note,
            null if kind is None else kind,
            row.state,
            null if reason is None else reason,
        )


class NewMemo:
    """A phone memo known to be empty when the plan starts (a first run, or a new
    normaliser): nothing is looked up, what is normalised is still noted in ``memo``.

    What a run notes goes to the memo only once its plan is read (``keep_phones``), so
    a lookup could find nothing before then anyway; on a million-row first run that is a
    thousand queries saved."""

    def __init__(self, memo: PhoneMemo) -> None:
        self.memo = memo

    def memo_phones(
        self, pairs: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], Any]:
        """Nothing: the memo holds nothing yet."""
        return {}

    def remember_encoded(self, items: Iterable[tuple[tuple[str, str | None], str]]) -> None:
        """Note normalised pairs in the memo."""
        self.memo.remember_encoded(items)
