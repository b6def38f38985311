import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.errors import InputError
from campaign.inputs.ingest import detect_encoding, detect_format, read_header, read_rows

TEXT = "phone,name\n+33 6 12 34 56 78,Zoë Müller\n+44 7911 123456,François\n"


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("cp1252", "cp1252"),
    ],
)
def test_encodings_are_detected_and_decoded(tmp_path: Path, encoding: str, detected: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(TEXT.encode(encoding))
    assert detect_format(path).encoding == detected
    assert [row.fields["name"] for row in read_rows(path)] == ["Zoë Müller", "François"]


def test_utf16_without_bom_is_recognised() -> None:
    assert detect_encoding(TEXT.encode("utf-16-le")) == "utf-16-le"
    assert detect_encoding(TEXT.encode("utf-16-be")) == "utf-16-be"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        f"phone{delimiter}name{delimiter}city\n"
        f"+1 (212) 736-5000{delimiter}Al, Jr.{delimiter}NYC\n"
        f"+1 212 736 5001{delimiter}Bo{delimiter}LA\n"
    )
    assert detect_format(path).delimiter == delimiter
    assert [row.fields["phone"] for row in read_rows(path)] == [
        "+1 (212) 736-5000",
        "+1 212 736 5001",
    ]


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(
        b'phone,note\r\n+1,"two\r\nlines"\r\n\r\n+2,plain\r\n   \r\n'
        b'+3,"three\nline\ncell"\r\n+4,x\r\n'
    )
    rows = list(read_rows(path))
    assert [(row.line, row.fields["phone"]) for row in rows] == [
        (2, "+1"),
        (5, "+2"),
        (7, "+3"),
        (10, "+4"),
    ]
    assert rows[0].fields["note"] == "two\r\nlines"


def test_headers_are_normalised_and_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(" Phone , FIRST   name,phone,,\n1,2,3,,\n")
    assert read_header(path) == ["phone", "first name", "phone_2", "column_4", "column_5"]


def test_ragged_and_overlong_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("phone,name,city\n+1,Al\n+2,Bo,LA,,\n+3,Cy,SF,oops\n")
    rows = list(read_rows(path))
    assert rows[0].fields == {"phone": "+1", "name": "Al", "city": ""}
    assert rows[1].error is None and rows[1].fields["city"] == "LA"
    assert rows[2].error == "4 fields but the header has 3 (a stray delimiter?)"


def test_excel_sep_hint_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("sep=|\nphone|name\n+1|Al\n")
    assert [(row.line, row.fields) for row in read_rows(path)] == [
        (3, {"phone": "+1", "name": "Al"})
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty"), (b"\n\n  \n", "the file is empty")],
)
def test_unreadable_files_raise_input_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        list(read_rows(path))
    assert caught.value.exit_code == 2 and str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_header(tmp_path / "nope.csv")


def test_rows_stream_without_reading_everything(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("phone\n" + "".join(f"+1212736{i:04d}\n" for i in range(10_000)))
    rows = read_rows(path)
    first = next(rows)
    assert first.line == 2 and first.fields["phone"] == "+12127360000"
    rows.close()  # the generator releases the file


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_rows_or_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        rows = list(read_rows(path))
    except InputError:
        return
    for row in rows:
        assert row.line >= 2
        assert all(isinstance(value, str) for value in row.fields.values())


# Control characters other than line breaks are left out: a file made mostly of them is
# refused as binary (see test_a_file_that_is_not_a_csv_is_refused_as_not_text).
cell_text = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs", "Cc"], exclude_characters=";|", include_characters="\r\n"
    ),
    max_size=12,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(cell_text, min_size=1, max_size=5))
def test_what_a_csv_writer_wrote_reads_back_exactly(tmp_path: Path, cells: list[str]) -> None:
    path = tmp_path / "roundtrip.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "value"])
        writer.writerows(["+1", cell] for cell in cells)
    assert [row.fields["value"] for row in read_rows(path)] == cells
