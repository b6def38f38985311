"""Cells of a spreadsheet or parquet file as the text a CSV would have held.

Every cell is read as text. Text stays as it is ("000101", "+44 7911 123451"). A number
the file stores as a number is turned back into its digits (``447400123456``, never
``4.47400123456E+11`` or ``14155550123.0``) when that is exact: an integer value that
fits a spreadsheet number. When it is not (more than 15 digits, of which Excel keeps
only 15; or a fraction), the digits that were typed are gone, and in an exact column
(the phone, the key) the row is rejected with that reason rather than called or keyed
on a number nobody typed. Elsewhere (a variable) the value is passed on as stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal

from campaign.inputs.records import Record, TableFormat

# An Excel number is a double shown with 15 significant digits; a 16th typed digit
# becomes 0. A parquet float is a double too; a parquet integer column is exact.
SIGNIFICANT_DIGITS = 15
CHUNK_ROWS = 10_000  # rows turned into Python objects at a time (memory stays bounded)
_RETYPE = "format the column as Text and type the numbers again"
LOST_DIGITS = (
    f"holds a number whose last digits were lost (a spreadsheet number keeps "
    f"{SIGNIFICANT_DIGITS} significant digits); {_RETYPE}"
)
FRACTION = f"holds a number with a fraction, not whole digits; {_RETYPE}"
NOT_A_NUMBER = f"holds an infinite or undefined number; {_RETYPE}"
FORMULA_ERROR = "holds a formula error (#N/A, #REF!, #VALUE!, …) instead of a value"


def cell_text(value: object, *, spreadsheet: bool) -> tuple[str, str | None]:
    """A cell's text, and why it is not exactly the digits typed (None when it is).

    ``spreadsheet``: the value comes from an Excel cell, where every number is a double
    (so an integer of more than 15 digits lost some); else from parquet, where an
    integer column is exact and only a float column holds doubles.
    """
    if value is None:
        return "", None
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool):  # before int: a bool is an int
        return ("TRUE" if value else "FALSE"), None
    if isinstance(value, int):
        return _whole(value, limited=spreadsheet)
    if isinstance(value, float):
        if math.isnan(value):
            # an Excel error cell (pandas reads #N/A as NaN); in parquet, a missing value
            return "", FORMULA_ERROR if spreadsheet else None
        if math.isinf(value):
            return str(value), NOT_A_NUMBER
        if value.is_integer():
            return _whole(int(value), limited=True)
        return _plain(Decimal(repr(value))), FRACTION
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value), NOT_A_NUMBER
        if value == value.to_integral_value():
            return _whole(int(value), limited=False)
        return _plain(value), FRACTION
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat(), None
        return value.isoformat(sep=" "), None
    if isinstance(value, date | time):
        return value.isoformat(), None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace"), None
    return str(value), None


def _whole(number: int, *, limited: bool) -> tuple[str, str | None]:
    text = str(number)
    digits = len(text) - text.startswith("-")
    if limited and digits > SIGNIFICANT_DIGITS:
        return text, LOST_DIGITS
    return text, None


def _plain(number: Decimal) -> str:
    """A number without exponent: 0.00001, not 1E-5."""
    return format(number, "f")


def table_records(
    first_line: int,
    count: int,
    values: Mapping[int, Sequence[object]],
    fmt: TableFormat,
    *,
    skip_blank: bool,
) -> Iterator[Record]:
    """Records of ``count`` consecutive rows, the first on ``first_line``.

    ``values`` holds, by column index, the values of the columns read from the file;
    only those of ``fmt.read`` become cells (the others are ""). With ``skip_blank``, a
    row whose values are all empty is skipped (its line number stays unused).
    """
    spreadsheet = fmt.kind == "xlsx"
    empty = [""] * count
    columns: list[Sequence[str]] = []
    # the first exact column's problem per row: one reason, the same for every such row,
    # so that validate counts rows by it
    problems: dict[int, str] = {}
    for index in range(len(fmt.header)):
        column = values.get(index)
        if column is None or (fmt.read is not None and index not in fmt.read):
            columns.append(empty)
            continue
        exact = fmt.is_exact(index)
        label = fmt.spelled[index] if index < len(fmt.spelled) else ""
        label = label or fmt.header[index]
        texts: list[str] = []
        for offset, value in enumerate(column):
            if isinstance(value, str):  # most cells: no call
                texts.append(value)
                continue
            text, problem = cell_text(value, spreadsheet=spreadsheet)
            texts.append(text)
            if problem is not None and exact:
                problems.setdefault(offset, f"column '{label}' {problem}")
        columns.append(texts)
    filled = _filled_rows(count, values.values()) if skip_blank else None
    for offset, cells in enumerate(zip(*columns, strict=True)):
        if filled is not None and not filled[offset]:
            continue
        yield first_line + offset, cells, problems.get(offset)


def _filled_rows(count: int, columns: Iterable[Sequence[object]]) -> list[bool]:
    """Per row, whether any of its values is more than blank."""
    filled = [False] * count
    for column in columns:
        for offset, value in enumerate(column):
            if filled[offset] or value is None:
                continue
            if not isinstance(value, str) or (value and not value.isspace()):
                filled[offset] = True
    return filled
