"""Reading an Excel workbook (.xlsx) with pandas: one sheet, its rows as Excel numbers them.

pandas reads the sheet through openpyxl with every value as the cell holds it
(``dtype=object``): text as text, a number as the number the file stores, which
``tables`` turns into digits or rejects. ``dtype=str`` cannot do that: it writes the
number 12345678901234567, whose last digits Excel lost, exactly like the text
"12345678901234567" of an id typed in a Text column, which is exact.

The header is the first row with a value (row 1 in an export); each record's line is
its row number as Excel shows it, blank rows skipped but counted. A header cell merged
across several columns names each of them (``Phone``, ``Phone_2``, as a repeated name
would); a header cell merged down over several rows means a header of more than one
row, which is refused: its second row would be read as a contact. The whole sheet is
held in memory while it is read (a workbook is a compressed XML file: it cannot be
streamed through pandas); cells are turned into text in chunks.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# pandas and openpyxl ship no type information; `unused-ignore` keeps mypy clean once
# pyproject tells it to ignore their missing stubs.
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
from openpyxl.utils import (  # type: ignore[import-untyped, unused-ignore]
    column_index_from_string,
    get_column_letter,
)

from campaign.errors import InputError
from campaign.inputs.records import (
    Record,
    TableFormat,
    column_indexes,
    column_key,
    normalise_header,
    spelled_names,
)
from campaign.inputs.tables import CHUNK_ROWS, cell_text, table_records

# <mergeCell ref="B1:C1"/> in the sheet's XML (after its rows); a tag may carry a prefix.
_MERGE = re.compile(
    rb'<(?:[\w.-]+:)?mergeCell\b[^>]*?\bref="\$?([A-Z]{1,3})\$?(\d+):\$?([A-Z]{1,3})\$?(\d+)"'
)
_SCAN_BYTES = 1024 * 1024
_Merge = tuple[int, int, int, int]  # first column, first row, last column, last row (from 1)


def detect_sheet(
    path: Path,
    *,
    sheet: str | None,
    columns: Sequence[str] | None,
    exact: Sequence[str] | None,
) -> TableFormat:
    """The header of the workbook's sheet (``sheet``, else the first); InputError if none."""
    with _workbook(path) as workbook:
        title = _sheet_title(path, list(workbook.sheet_names), sheet)
        try:
            worksheet = workbook.book[title]
            header_line, cells = _header_row(path, worksheet, title)
            merges = _merged_ranges(worksheet)
        except InputError:
            raise
        except Exception as exc:
            raise _unreadable(path, exc) from exc
    cells = _spread_merged(path, cells, header_line, merges)
    header = normalise_header(cells)
    return TableFormat(
        encoding="",
        delimiter="",
        header=header,
        header_line=header_line,
        spelled=spelled_names(cells),
        kind="xlsx",
        sheet=title,
        read=column_indexes(header, columns),
        exact=column_indexes(header, exact),
    )


def read_sheet_records(path: Path, fmt: TableFormat) -> Iterator[Record]:
    """Records of the sheet's rows below the header, each on its Excel row number."""
    width = len(fmt.header)
    with _workbook(path) as workbook:
        try:
            frame = pd.read_excel(
                workbook,
                sheet_name=fmt.sheet,
                header=None,  # the header is fmt's; row i of the frame is Excel row i + 1
                dtype=object,  # each value as the cell holds it: see the module docstring
                na_filter=False,  # "NA" is Namibia and "" is empty, never a missing value
                # Cells right of the header have no name, so nothing can use them; every
                # column under it is read, as a blank row is blank in all of them.
                usecols=lambda column: column < width,
            )
        except Exception as exc:
            raise _unreadable(path, exc) from exc
    for begin in range(fmt.header_line, len(frame), CHUNK_ROWS):
        block = frame.iloc[begin : begin + CHUNK_ROWS]
        values = {int(column): block[column].tolist() for column in block.columns}
        yield from table_records(begin + 1, len(block), values, fmt, skip_blank=True)


@contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """The workbook as a pandas ExcelFile (openpyxl, read-only); InputError if unreadable."""
    with warnings.catch_warnings():
        # openpyxl warns about parts it ignores (styles, data validation, extensions):
        # nothing about the cells, and nothing a user of this tool can act on.
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        try:
            workbook = pd.ExcelFile(path, engine="openpyxl")
        except Exception as exc:
            raise _unreadable(path, exc) from exc
        with workbook:
            yield workbook


def _unreadable(path: Path, exc: Exception) -> InputError:
    # openpyxl and zipfile raise many kinds of errors for a damaged file; here each one
    # becomes the same sentence, with the library's words for the details.
    detail = str(exc) or type(exc).__name__
    return InputError(
        f"cannot read this Excel workbook ({detail}); open it in Excel and save it again, "
        "or export the list as CSV",
        path=str(path),
    )


def _sheet_title(path: Path, titles: list[str], wanted: str | None) -> str:
    """The sheet to read: the one named (Excel compares names ignoring case), else the first."""
    if not titles:
        raise InputError("the workbook has no worksheet", path=str(path))
    if wanted is None:
        return titles[0]
    for title in titles:
        if column_key(title) == column_key(wanted):
            return title
    close = difflib.get_close_matches(wanted, titles, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise InputError(
        f"input.sheet: there is no sheet named {wanted!r} in this workbook{hint} "
        f"(sheets: {', '.join(titles)})",
        path=str(path),
    )


def _header_row(path: Path, worksheet: Any, title: str) -> tuple[int, list[str]]:
    """(row number, cells as text) of the first row with a value; trailing blanks dropped."""
    # A sheet's declared size can be wrong (pandas resets it too before reading).
    worksheet.reset_dimensions()
    for number, row in enumerate(worksheet.iter_rows(values_only=True), start=1):
        cells = [cell_text(value, spreadsheet=True)[0] for value in row]
        while cells and not cells[-1].strip():
            cells.pop()
        if cells:
            return number, cells
    raise InputError(
        f"the sheet '{title}' is empty; expected a header row (the column names) on row 1",
        path=str(path),
    )


def _merged_ranges(worksheet: Any) -> set[_Merge]:
    """The merged cell ranges of the sheet, scanned from its XML.

    openpyxl's read-only mode (the one pandas uses, which never loads the whole sheet)
    does not read merges, so the sheet's XML is scanned for them, in bounded pieces.
    ``_get_source`` is openpyxl's own opener for that XML (openpyxl is pinned).
    """
    found: set[_Merge] = set()
    tail = b""
    with worksheet._get_source() as source:
        while chunk := source.read(_SCAN_BYTES):
            text = tail + chunk
            for first_col, first_row, last_col, last_row in _MERGE.findall(text):
                found.add(
                    (
                        column_index_from_string(first_col.decode()),
                        int(first_row),
                        column_index_from_string(last_col.decode()),
                        int(last_row),
                    )
                )
            tail = text[-256:]  # a tag cut at the chunk's end is found in the next text
    return found


def _spread_merged(
    path: Path, cells: list[str], header_line: int, merges: set[_Merge]
) -> list[str]:
    """Header cells with each merged cell's name copied to the columns it spans."""
    cells = list(cells)
    for first_col, first_row, last_col, last_row in sorted(merges):
        if not first_row <= header_line <= last_row:
            continue
        if last_row > first_row:
            name = cells[first_col - 1] if first_col <= len(cells) else ""
            cell = f"{get_column_letter(first_col)}{first_row}"
            shown = f" ('{name.strip()}')" if name.strip() else ""
            raise InputError(
                f"the header is more than one row: cell {cell}{shown} "
                f"is merged down to row {last_row}; keep one row of column names right "
                "above the data (unmerge the cells and delete the extra header rows)",
                path=str(path),
                line=header_line,
            )
        if last_col == first_col:
            continue
        cells.extend([""] * (last_col - len(cells)))
        name = cells[first_col - 1]
        for index in range(first_col, last_col):
            if not cells[index].strip():
                cells[index] = name
    return cells
