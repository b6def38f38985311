"""Excel (.xlsx) and parquet inputs: every cell as text, lines as the spreadsheet numbers them.

The files are built here with openpyxl and pyarrow; where Excel writes a number
differently from openpyxl (``4.47400123456E+11``), the sheet's XML is rewritten to hold
exactly what Excel would.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.config.model import load_campaign
from campaign.errors import InputError
from campaign.inputs.ingest import detect_format, detect_input_format, read_records, read_rows
from campaign.planning.plan import plan_rows

Rows = Mapping[int, Sequence[object]]  # Excel row number → cells from column A


def write_workbook(
    path: Path,
    sheets: Mapping[str, Rows],
    *,
    merged: Sequence[str] = (),
    stored: Mapping[str, str] | None = None,
) -> Path:
    """An .xlsx with the given sheets; ``merged`` ranges on the first; ``stored`` rewrites
    cells of the first sheet's XML (``{"B3": "4.47400123456E+11"}``) as Excel stores them."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row, cells in rows.items():
            for column, value in enumerate(cells, start=1):
                if value is not None:
                    sheet.cell(row=row, column=column, value=value)
    first = workbook.worksheets[0]
    for cells in merged:
        first.merge_cells(cells)
    workbook.save(path)
    if stored:
        _rewrite_numbers(path, dict(stored))
    return path


def _rewrite_numbers(path: Path, stored: dict[str, str]) -> None:
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    for ref, number in stored.items():
        start = sheet.index(f'<c r="{ref}"')
        value = sheet.index("<v>", start)
        sheet = sheet[: value + 3] + number + sheet[sheet.index("</v>", value) :]
    members["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)


def write_campaign(tmp_path: Path, input_file: str, extra: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: sheets\nscenario_id: scn_demo\n"
        "compliance: {consent: attested}\ncalling_hours: unrestricted\n"
        "api: {base_url: sandbox}\nsandbox: {time_scale: 0.005}\n"
        "state_dir: state\noutput_dir: out\n"
        f"input: {{path: {input_file}, phone_column: Phone, key_column: ID, "
        f"default_region: GB, variables: [Plan]{extra}}}\n"
    )
    return path


# A CRM export as it arrives in Excel: ids typed as text and as numbers, phones typed as
# text (leading zeros, +) or stored as numbers, blank rows, and numbers that lost digits.
CONTACTS: Rows = {
    1: ["ID", "Phone", "Plan", "Notes"],
    2: ["000101", "07911 123451", "Gold", None],
    3: [101.0, 447911123452, "Silver", None],  # the phone as Excel stores it: see below
    5: ["000103", "+44 7911 123453", 12.5, None],  # row 4 is blank
    6: ["   ", None, None, None],  # only spaces: blank too
    8: ["000104", 12345678901234567, "Gold", None],  # 17 digits typed: Excel kept 15
    9: ["000105", 4155550123.5, "Gold", None],  # a fraction: no phone number
    10: ["000106", None, None, "called back?"],  # a note and no number: a row, rejected
    11: [106.0, "00447911123456", "Gold", None],
    12: ["000107", 447911123457, "Gold", None],  # an integer: stored as 447911123457
    13: ["000108", 14155550123, "Gold", None],  # stored as 14155550123.0: see below
}


def contacts_xlsx(tmp_path: Path, name: str = "contacts.xlsx") -> Path:
    # How Excel stores the numbers typed in B3 (a CSV export shows it as 4.47911E+11)
    # and B8 (its last two digits became zeros), and how some exporters write B13;
    # openpyxl would write other digits.
    return write_workbook(
        tmp_path / name,
        {"Contacts": CONTACTS},
        stored={"B3": "4.47911123452E+11", "B8": "1.23456789012345E+16", "B13": "14155550123.0"},
    )


def test_cells_are_text_and_numbers_stored_by_excel_become_their_digits(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    fmt = detect_input_format(load_campaign(write_campaign(tmp_path, path.name), env={}).input)
    records = {line: (cells, error) for line, cells, error in read_records(path, fmt)}
    assert fmt.header == ["id", "phone", "plan", "notes"]
    assert records[2] == (("000101", "07911 123451", "Gold", ""), None)  # leading zero kept
    # 4.47911123452E+11 in the file, 101.0 typed as a number: their digits
    assert records[3] == (("101", "447911123452", "Silver", ""), None)
    # a variable passed on as stored; Notes is not a column the campaign uses: not read
    assert records[5] == (("000103", "+44 7911 123453", "12.5", ""), None)
    assert records[11][0][:2] == ("106", "00447911123456")
    assert records[12][0][1] == "447911123457"
    assert records[13][0][1] == "14155550123"


def test_a_number_whose_digits_were_lost_is_rejected_with_the_reason(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    rows = {
        row.line: row
        for row in plan_rows(load_campaign(write_campaign(tmp_path, path.name), env={})).rows
    }
    assert rows[8].state == "rejected"
    assert rows[8].reason is not None
    assert rows[8].reason.startswith("column 'Phone' holds a number whose last digits were lost")
    assert (
        "15 significant digits" in rows[8].reason and "format the column as Text" in rows[8].reason
    )
    assert rows[8].raw_phone == "12345678901234500"  # what the cell holds, for results.csv
    assert rows[9].state == "rejected"
    assert rows[9].reason is not None and "a number with a fraction" in rows[9].reason
    assert {rows[line].state for line in (2, 3, 5, 11, 12, 13)} == {"callable"}
    assert rows[3].e164 == "+447911123452"
    assert rows[13].e164 == "+14155550123"


def test_blank_rows_are_skipped_and_lines_are_the_rows_excel_shows(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    rows = plan_rows(load_campaign(write_campaign(tmp_path, path.name), env={})).rows
    # rows 4, 6 (spaces only) and 7 are blank; row 10 has a note and no number
    assert [row.line for row in rows] == [2, 3, 5, 8, 9, 10, 11, 12, 13]
    assert next(row for row in rows if row.line == 10).reason == "no phone number"


def test_a_header_below_blank_rows_is_found_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "late.xlsx", {"S": {3: ["Phone", "Name"], 4: ["07911 123451", "Al"]}}
    )
    fmt = detect_format(path)
    assert (fmt.header_line, fmt.header) == (3, ["phone", "name"])
    assert [(row.line, row.fields) for row in read_rows(path)] == [
        (4, {"phone": "07911 123451", "name": "Al"})
    ]


def test_a_header_cell_merged_across_columns_names_each_of_them(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "merged.xlsx",
        {"S": {1: ["ID", "Phone", None, "Plan"], 2: ["a", "07911 123451", "01632 960001", "x"]}},
        merged=["B1:C1"],
    )
    fmt = detect_format(path)
    assert fmt.header == ["id", "phone", "phone_2", "plan"]
    assert fmt.spelling("phone_2") == "Phone"
    assert [row.fields for row in read_rows(path)] == [
        {"id": "a", "phone": "07911 123451", "phone_2": "01632 960001", "plan": "x"}
    ]


def test_a_merged_header_past_the_last_name_still_names_its_columns(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "wide.xlsx",
        {"S": {1: ["Phone", "Notes"], 2: ["07911 123451", "first", "second"]}},
        merged=["B1:C1"],
    )
    assert detect_format(path).header == ["phone", "notes", "notes_2"]
    assert [row.fields["notes_2"] for row in read_rows(path)] == ["second"]


def test_a_header_of_two_rows_is_refused_naming_the_merged_cell(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "two-rows.xlsx",
        {"S": {1: ["ID", "Contact", None], 2: [None, "Phone", "Email"], 3: ["a", "07911 123451"]}},
        merged=["A1:A2", "B1:C1"],
    )
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path, path.name))])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {path}:1: the header is more than one row: ")
    assert "cell A1 ('ID') is merged down to row 2" in result.output
    assert "Traceback" not in result.output


WITH_NOTES: Mapping[str, Rows] = {
    "Read me": {1: ["This export was made on 2026-11-29"]},
    "Contacts": {1: ["ID", "Phone", "Plan"], 2: ["a", "07911 123451", "Gold"]},
}


def test_the_first_sheet_is_read_unless_input_sheet_names_one(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", WITH_NOTES)
    assert detect_format(path).header == ["this export was made on 2026-11-29"]
    fmt = detect_format(path, sheet="contacts")  # Excel ignores case in sheet names
    assert (fmt.sheet, fmt.header) == ("Contacts", ["id", "phone", "plan"])
    assert [cells for _, cells, _ in read_records(path, fmt)] == [("a", "07911 123451", "Gold")]
    with pytest.raises(InputError, match=r"no sheet named 'Contcts'.*did you mean 'Contacts'\?"):
        detect_format(path, sheet="Contcts")


def test_validate_reads_the_sheet_the_campaign_file_names(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", WITH_NOTES)
    campaign = write_campaign(tmp_path, path.name, extra=", sheet: Contacts")
    result = CliRunner().invoke(main, ["validate", str(campaign)])
    assert result.exit_code == 0, result.output
    assert "rows read            1" in result.output
    assert "callable             1" in result.output


def test_an_empty_sheet_name_is_a_campaign_file_error(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", WITH_NOTES)
    campaign = write_campaign(tmp_path, path.name, extra=', sheet: " "')
    result = CliRunner().invoke(main, ["validate", str(campaign)])
    assert result.exit_code == 2, result.output
    assert "input.sheet" in result.output and "cannot be empty" in result.output


def test_a_key_typed_as_text_keeps_its_zeros_and_one_stored_as_a_number_its_digits(
    tmp_path: Path,
) -> None:
    path = contacts_xlsx(tmp_path)
    rows = plan_rows(load_campaign(write_campaign(tmp_path, path.name), env={})).rows
    keys = {row.line: row.row_key for row in rows}
    assert keys[2] == "000101"  # text in Excel: as typed
    assert keys[3] == "101"  # 101.0 stored as a number: its digits, not "101.0"
    assert keys[11] == "106"


def test_validate_on_an_xlsx_counts_rows_and_reasons(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path, path.name))])
    assert result.exit_code == 0, result.output
    assert f"campaign sheets: {path}" in result.output
    assert "rows read            9" in result.output
    assert "callable             6" in result.output
    assert "rejected             3" in result.output
    assert "column 'Phone' holds a number whose last digits were lost" in result.output
    assert "column 'Phone' holds a number with a fraction" in result.output


def test_results_csv_points_at_the_rows_excel_shows(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    campaign = write_campaign(tmp_path, path.name)
    result = CliRunner().invoke(main, ["run", str(campaign), "--dry-run"], env={})
    assert result.exit_code == 0, result.output
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        results = {row["line"]: row for row in csv.DictReader(handle)}
    assert list(results) == ["2", "3", "5", "8", "9", "10", "11", "12", "13"]
    assert results["8"]["state"] == "rejected"
    assert "digits were lost" in results["8"]["reason"]


def test_a_workbook_saved_under_a_csv_name_is_read_as_a_workbook(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path, name="contacts.csv")
    assert detect_format(path).header == ["id", "phone", "plan", "notes"]


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        (
            "old.xls",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "an old Excel .xls workbook",
        ),
        (
            "open.ods",
            b"PK\x03\x04"
            + b"\x00" * 26
            + b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet",
            "an OpenDocument spreadsheet (.ods)",
        ),
    ],
)
def test_xls_and_ods_are_refused_with_the_way_out(
    tmp_path: Path, name: str, content: bytes, kind: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as raised:
        detect_format(tmp_path / name)
    message = str(raised.value)
    assert f"not a readable text/CSV file: it is {kind}" in message
    assert "save it as an Excel workbook (.xlsx)" in message


def test_a_damaged_workbook_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.xlsx"
    path.write_bytes(contacts_xlsx(tmp_path).read_bytes()[:2000])
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path, path.name))])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {path}: cannot read this Excel workbook (")
    assert "Traceback" not in result.output


def write_parquet(path: Path) -> Path:
    table = pa.table(
        {
            "ID": pa.array(["000101", "000102", "000103", None, "000105"], pa.string()),
            "Phone": pa.array(
                [14155550123.0, None, 447911123453.0, 1.5, 1.2345678901234567e16], pa.float64()
            ),
            "Account": pa.array([12345678901234567, None, 3, 4, 5], pa.int64()),
            "Plan": pa.array(["Gold", "Silver", None, "Gold", "Gold"], pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


def test_parquet_strings_stay_integers_are_digits_and_floats_are_checked(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "contacts.parquet")
    fmt = detect_format(path, columns=["ID", "Phone", "Account"], exact=["Phone"])
    assert (fmt.header, fmt.header_line) == (["id", "phone", "account", "plan"], 1)
    records = list(read_records(path, fmt))
    assert [line for line, _, _ in records] == [2, 3, 4, 5, 6]  # the names are line 1
    assert records[0] == (2, ("000101", "14155550123", "12345678901234567", ""), None)
    assert records[1] == (3, ("000102", "", "", ""), None)  # missing values are empty
    assert records[2] == (4, ("000103", "447911123453", "3", ""), None)
    assert records[3][1][0] == ""
    assert records[3][2] is not None and "a number with a fraction" in records[3][2]
    assert records[4][2] is not None and "digits were lost" in records[4][2]


def test_validate_on_a_parquet_input(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "contacts.parquet")
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path, path.name))])
    assert result.exit_code == 0, result.output
    assert "rows read            5" in result.output
    assert "callable             2" in result.output


def test_a_do_not_call_list_in_excel_suppresses_numbers_stored_as_numbers(tmp_path: Path) -> None:
    path = contacts_xlsx(tmp_path)
    write_workbook(tmp_path / "dnc.xlsx", {"DNC": {1: ["Phone Number"], 2: [447911123452.0]}})
    campaign = write_campaign(tmp_path, path.name)
    campaign.write_text(campaign.read_text() + "suppression: [dnc.xlsx]\n")
    rows = {row.line: row for row in plan_rows(load_campaign(campaign, env={})).rows}
    assert rows[3].state == "suppressed"
