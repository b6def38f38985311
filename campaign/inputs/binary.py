"""Telling the files ingest reads (CSV text, .xlsx, parquet) from those it refuses.

Read as CSV, a binary file yields a "header" of junk and every later message talks about
columns (``column 'Mobile' is not in png.csv (columns: ‰png)``). It is recognised from the
first bytes ingest samples anyway: a known file signature, else a share of control
characters that no CRM export has (one stray NUL or vertical tab in a cell is fine). An
Excel workbook (.xlsx) and a parquet file are read with pandas; an old .xls or an .ods is
refused with the way out.
"""

from __future__ import annotations

import re
from pathlib import Path

from campaign.errors import InputError
from campaign.inputs.records import TableKind

# Control characters (and undecodable bytes) beyond this share of the sample: not text.
# Random bytes have about 11 %; a real export has next to none.
MAX_CONTROL_SHARE = 0.05
# C0 and C1 control characters but tab, line feed, vertical tab, form feed and carriage
# return; and U+FFFD, what an undecodable byte became.
_ODD_CHARACTERS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_ADVICE = "save or export it as CSV (comma- or semicolon-separated text) and point to that file"
_SPREADSHEET_ADVICE = (
    "open it in a spreadsheet and save it as an Excel workbook (.xlsx), or save or export "
    "it as CSV, and point to that file"
)
_OLD_EXCEL = "an old Excel .xls workbook (or another legacy Office file)"
_ODS = "an OpenDocument spreadsheet (.ods)"
_XLSX = "an Excel workbook (.xlsx)"
_ZIP = "a ZIP archive"
_PARQUET_MAGIC = b"PAR1"
# Names under which a workbook is expected; .xlsm is an .xlsx that may hold macros (unused).
_XLSX_SUFFIXES = (".xlsx", ".xlsm")
# (signature, what the file is); a ZIP is looked at more closely (see _zip_kind).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", _OLD_EXCEL),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF executable)"),
)


def table_kind(path: Path, sample: bytes) -> TableKind | None:
    """The kind of table the file is (xlsx, parquet), by its first bytes; None for the rest.

    The content decides, whatever the name: a workbook saved as ``contacts.csv`` is read
    as a workbook, a text file named ``contacts.xlsx`` as CSV.
    """
    if sample.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = _zip_kind(sample)
        # a workbook's first member names do not always fit in the sample: trust its name
        if kind == _XLSX or (kind == _ZIP and path.suffix.casefold() in _XLSX_SUFFIXES):
            return "xlsx"
    if sample.startswith(_PARQUET_MAGIC) and _ends_with(path, _PARQUET_MAGIC):
        return "parquet"
    return None


def check_text(path: Path, sample: bytes, encoding: str) -> None:
    """InputError naming the file when its first bytes show it is not text (so not a CSV)."""
    kind = binary_kind(sample, encoding)
    if kind is not None:
        advice = _SPREADSHEET_ADVICE if kind in (_OLD_EXCEL, _ODS) else _ADVICE
        raise InputError(f"not a readable text/CSV file: it is {kind}; {advice}", path=str(path))


def binary_kind(sample: bytes, encoding: str) -> str | None:
    """What a non-text file seems to be, from its first bytes; None for text."""
    if sample.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(sample)
    for signature, kind in _SIGNATURES:
        if sample.startswith(signature):
            return kind
    text = sample.decode(encoding, errors="replace")
    if not text:
        return None
    share = len(_ODD_CHARACTERS.findall(text)) / len(text)
    if share > MAX_CONTROL_SHARE:
        return f"binary data ({share:.0%} of its first characters are control characters)"
    return None


def _zip_kind(sample: bytes) -> str:
    """Office files are ZIP archives; their first member names tell which."""
    if b"xl/" in sample:
        return _XLSX
    if b"opendocument.spreadsheet" in sample:
        return _ODS
    if b"word/" in sample or b"opendocument.text" in sample:
        return "a word-processor document"
    return _ZIP


def _ends_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-len(magic), 2)
            return handle.read() == magic
    except OSError:  # shorter than the magic, or unreadable (ingest says so)
        return False
