"""Reading a parquet export with pandas: only the columns the campaign names.

A parquet file has no header line: its column names count as line 1 and its rows as
lines 2, 3, … (as in a spreadsheet), so line numbers mean the same in every input.
Values keep their type: a string column as it is, an integer column as its digits
(exact), a float column as digits when they are whole and fit (see ``tables``). Every
row is a record, an empty one too (it has no layout of blank lines to skip).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

# pandas and pyarrow ship no type information; `unused-ignore` keeps mypy clean once
# pyproject tells it to ignore their missing stubs.
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from campaign.errors import InputError
from campaign.inputs.records import (
    Record,
    TableFormat,
    column_indexes,
    normalise_header,
    spelled_names,
)
from campaign.inputs.tables import CHUNK_ROWS, table_records

# Columns pandas adds to keep a DataFrame's index; pandas restores them as the index.
_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


def detect_parquet(
    path: Path,
    *,
    sheet: str | None,
    columns: Sequence[str] | None,
    exact: Sequence[str] | None,
) -> TableFormat:
    """The column names of a parquet file, from its schema (no row is read)."""
    if sheet is not None:
        raise InputError(
            f"input.sheet is {sheet!r}, but a parquet file has no sheets; leave input.sheet out",
            path=str(path),
        )
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    names = tuple(str(name) for name in schema.names if not _INDEX_COLUMN.fullmatch(str(name)))
    if not names:
        raise InputError("the parquet file has no columns", path=str(path))
    header = normalise_header(names)
    return TableFormat(
        encoding="",
        delimiter="",
        header=header,
        header_line=1,
        spelled=spelled_names(names),
        kind="parquet",
        names=names,
        read=column_indexes(header, columns),
        exact=column_indexes(header, exact),
    )


def read_parquet_records(path: Path, fmt: TableFormat) -> Iterator[Record]:
    """Records of every row, row i (from 0) on line i + 2; only ``fmt.read`` columns read."""
    wanted = sorted(fmt.read) if fmt.read is not None else list(range(len(fmt.names)))
    wanted = wanted or [0]  # no column named: one column still says how many rows there are
    try:
        # pyarrow-backed columns keep integers exact when a column has missing values
        # (numpy would make them floats) and hold strings compactly.
        frame = pd.read_parquet(
            path, columns=[fmt.names[index] for index in wanted], dtype_backend="pyarrow"
        )
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    for begin in range(0, len(frame), CHUNK_ROWS):
        block = frame.iloc[begin : begin + CHUNK_ROWS]
        values = {
            index: block.iloc[:, position].to_numpy(dtype=object, na_value=None).tolist()
            for position, index in enumerate(wanted)
        }
        yield from table_records(begin + 2, len(block), values, fmt, skip_blank=False)


def _unreadable(path: Path, exc: Exception) -> InputError:
    # pyarrow raises its own error kinds for a damaged file; each becomes one sentence.
    detail = str(exc) or type(exc).__name__
    return InputError(
        f"cannot read this parquet file ({detail}); export the list again", path=str(path)
    )
