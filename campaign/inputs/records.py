"""What every reader yields, whatever the file: a header and records that keep their line.

A CSV, an Excel workbook and a parquet file all become the same thing for planning:
column names matched by ``column_key`` and records ``(line, cells, error)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# One record as (first physical line, cells, why it is unusable): a tuple, not a SourceRow,
# because building an object and a dict per row is most of what reading a big file costs.
# Cells are a tuple too: tuples of strings drop out of the garbage collector's tracking,
# lists never do, and a plan holds many thousand records at once (GC passes cost seconds).
Record = tuple[int, tuple[str, ...], str | None]

TableKind = Literal["xlsx", "parquet"]


@dataclass(frozen=True)
class CsvFormat:
    """What was detected about a file."""

    encoding: str
    delimiter: str
    header: list[str]
    header_line: int
    # The header's names as the file spells them (trimmed), for messages: "Country", not
    # the matching key "country".
    spelled: tuple[str, ...] = ()

    def spelling(self, name: str) -> str:
        """A column's name as the file writes it (``name`` is matched as ``column_key``)."""
        key = column_key(name)
        for normalised, written in zip(self.header, self.spelled, strict=False):
            if normalised == key:
                return written or normalised
        return name


@dataclass(frozen=True, kw_only=True)
class TableFormat(CsvFormat):
    """An Excel workbook or a parquet file, read with pandas (no encoding, no delimiter).

    It is a CsvFormat so that planning handles every input alike: ``header``,
    ``header_line`` and ``spelling`` mean the same; ``encoding`` and ``delimiter`` are "".
    """

    kind: TableKind
    sheet: str | None = None  # the worksheet read, as the workbook names it (xlsx)
    names: tuple[str, ...] = ()  # the columns exactly as the file names them (parquet)
    # Indexes of the columns read; the others' cells are "" (None: every column).
    read: frozenset[int] | None = None
    # Indexes of the columns where a number that cannot be turned back into its exact
    # digits rejects the row (the phone and key); elsewhere it is written as it is stored.
    exact: frozenset[int] | None = None

    def is_exact(self, index: int) -> bool:
        """Whether a lossy number in this column rejects its row."""
        return self.exact is None or index in self.exact


def column_key(name: str) -> str:
    """How column names are matched: trimmed, inner whitespace collapsed, case-folded."""
    return " ".join(name.split()).casefold()


def column_list(header: Sequence[str], limit: int = 20) -> str:
    """Header names for an error message, kept short when the header is junk."""
    names = [name if len(name) <= 40 else name[:37] + "..." for name in header[:limit]]
    more = f", … ({len(header) - limit} more)" if len(header) > limit else ""
    return ", ".join(names) + more


def normalise_header(cells: Sequence[str]) -> list[str]:
    """Trim and case-fold names; name empty ones column_N; suffix duplicates _2, _3, …"""
    header: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(cells, start=1):
        name = column_key(cell.replace("\ufeff", "")) or f"column_{index}"
        candidate, suffix = name, 2
        while candidate in seen:
            candidate = f"{name}_{suffix}"
            suffix += 1
        seen.add(candidate)
        header.append(candidate)
    return header


def spelled_names(cells: Sequence[str]) -> tuple[str, ...]:
    """Header cells as the file writes them, trimmed, for messages."""
    return tuple(" ".join(cell.replace("\ufeff", "").split()) for cell in cells)


def column_indexes(header: Sequence[str], names: Sequence[str] | None) -> frozenset[int] | None:
    """Positions of the named columns that the header has (None stays None: all columns)."""
    if names is None:
        return None
    keys = {column_key(name) for name in names}
    return frozenset(index for index, name in enumerate(header) if name in keys)
