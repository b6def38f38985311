"""Multipart bodies and batch CSV files, parsed strictly from the raw bytes."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from email.message import Message

from campaign.sandbox.problems import ApiProblem, invalid
from campaign.sandbox.records import BatchRow
from campaign.sandbox.validate import is_e164

MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_CSV_ROWS = 10_000


@dataclass(frozen=True)
class Part:
    """One multipart part: its form name, filename, content type and bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _header_params(value: str) -> Message:
    message = Message()
    message["content-type"] = value
    return message


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split a multipart/form-data body into parts, or raise 400."""
    header = _header_params(content_type)
    if header.get_content_type() != "multipart/form-data":
        raise invalid("Content-Type must be multipart/form-data")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise invalid("multipart body without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise invalid("malformed multipart body")
    parts = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise invalid("malformed multipart body")
        head, separator, data = chunk[2:].partition(b"\r\n\r\n")
        if not separator:
            head, data = chunk[2:].rstrip(b"\r\n"), b""
        parts.append(_part(head, data))
    return parts


def _part(head: bytes, data: bytes) -> Part:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        header_name, colon, value = line.partition(":")
        if not colon:
            raise invalid("malformed multipart part header")
        headers[header_name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    params = _header_params("form-data; " + disposition.partition(";")[2])
    name = params.get_param("name", header="content-type")
    if not disposition.lower().startswith("form-data") or not isinstance(name, str) or not name:
        raise invalid("multipart part without a form-data name")
    filename = params.get_param("filename", header="content-type")
    return Part(
        name=name,
        filename=filename if isinstance(filename, str) else None,
        content_type=headers.get("content-type"),
        data=data,
    )


def parts_fingerprint(parts: list[Part]) -> str:
    """What idempotency compares: names and bytes of the parts, not filenames or part headers."""
    digest = hashlib.sha256()
    for part in parts:
        for piece in (part.name.encode(), part.data):
            digest.update(len(piece).to_bytes(8, "big"))
            digest.update(piece)
    return digest.hexdigest()


def form_fields(parts: list[Part], allowed: tuple[str, ...]) -> dict[str, Part]:
    """Parts by name; unknown or repeated names are 400 naming the part."""
    fields: dict[str, Part] = {}
    for part in parts:
        if part.name not in allowed:
            raise invalid(f"unknown part {part.name!r}", field=part.name)
        if part.name in fields:
            raise invalid(f"part {part.name!r} given twice", field=part.name)
        fields[part.name] = part
    return fields


def text_part(part: Part) -> str:
    """A text form field as UTF-8."""
    try:
        return part.data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{part.name} must be UTF-8 text", field=part.name) from None


def parse_batch_csv(data: bytes) -> list[BatchRow]:
    """Rows of a batch file, or raise 413 (over 10 MiB or 10,000 rows) / 400 field=file."""
    if len(data) > MAX_CSV_BYTES:
        raise ApiProblem("payload_too_large", "the file is above 10 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("the file must be UTF-8 CSV", field="file") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise invalid("the file must be CSV text (NUL byte found)", field="file")
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as exc:
        raise invalid(f"the file is not valid CSV: {exc}", field="file") from None
    if not records:
        raise invalid("the file has no header row", field="file")
    header, data_rows = records[0], records[1:]
    if "phone" not in header:
        raise invalid("the file has no 'phone' column", field="file")
    if len(set(header)) != len(header):
        raise invalid("the file's header repeats a column name", field="file")
    if len(data_rows) > MAX_CSV_ROWS:
        raise ApiProblem("payload_too_large", "the file has more than 10,000 data rows")
    return [_batch_row(index, header, cells) for index, cells in enumerate(data_rows)]


def _batch_row(index: int, header: list[str], cells: list[str]) -> BatchRow:
    phone_at = header.index("phone")
    ref_at = header.index("row_ref") if "row_ref" in header else None
    phone = cells[phone_at] if phone_at < len(cells) else None
    row_ref = cells[ref_at] if ref_at is not None and ref_at < len(cells) else None
    if len(cells) != len(header):
        message = f"row has {len(cells)} fields, the header has {len(header)}"
        error = {"code": "invalid_argument", "message": message}
        return BatchRow(index, row_ref, phone, {}, status="invalid", error=error)
    if not is_e164(phone):
        error = {"code": "invalid_argument", "message": "phone must be a valid E.164 number"}
        return BatchRow(index, row_ref, phone, {}, status="invalid", error=error)
    variables = {
        name: cell
        for name, cell in zip(header, cells, strict=True)
        if name not in ("phone", "row_ref")
    }
    return BatchRow(index, row_ref, phone, variables)
