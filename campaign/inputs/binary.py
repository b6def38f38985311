"""Refusing a file that is not text: an image, a workbook, an archive or random bytes.

Read as CSV, such a file yields a "header" of junk and every later message talks about
columns (``column 'Mobile' is not in png.csv (columns: ‰png)``). It is recognised from the
first bytes ingest samples anyway: a known file signature, else a share of control
characters that no CRM export has (one stray NUL or vertical tab in a cell is fine).
"""

from __future__ import annotations

import re
from pathlib import Path

from campaign.errors import InputError

# Control characters (and undecodable bytes) beyond this share of the sample: not text.
# Random bytes have about 11 %; a real export has next to none.
MAX_CONTROL_SHARE = 0.05
# C0 and C1 control characters but tab, line feed, vertical tab, form feed and carriage
# return; and U+FFFD, what an undecodable byte became.
_ODD_CHARACTERS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_ADVICE = "save or export it as CSV (comma- or semicolon-separated text) and point to that file"
# (signature, what the file is); a ZIP is looked at more closely (see _zip_kind).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office file such as an old Excel .xls workbook"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF executable)"),
)


def check_text(path: Path, sample: bytes, encoding: str) -> None:
    """InputError naming the file when its first bytes show it is not text (so not a CSV)."""
    kind = binary_kind(sample, encoding)
    if kind is not None:
        raise InputError(f"not a readable text/CSV file: it is {kind}; {_ADVICE}", path=str(path))


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
        return "an Excel workbook (.xlsx)"
    if b"opendocument.spreadsheet" in sample:
        return "an OpenDocument spreadsheet (.ods)"
    if b"word/" in sample or b"opendocument.text" in sample:
        return "a word-processor document"
    return "a ZIP archive"
