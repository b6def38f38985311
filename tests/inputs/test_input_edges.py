"""Broken and hostile input: every line is accounted for; memory and messages stay small."""

import csv
import random
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.config.model import load_campaign
from campaign.errors import ConfigError
from campaign.inputs.ingest import read_rows
from campaign.planning.plan import plan_rows


def write_campaign(tmp_path: Path, contacts: str, extra: str = "") -> Path:
    (tmp_path / "contacts.csv").write_text(contacts, encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: edges\nscenario_id: scn_demo\ncalling_hours: unrestricted\n"
        "api: {base_url: sandbox}\nsandbox: {time_scale: 0.005}\n"
        "state_dir: state\noutput_dir: out\n"
        "input: {path: contacts.csv, default_region: GB, key_column: id}\n" + extra
    )
    return path


UNCLOSED = (
    "id,phone,name\n"
    "a,+44 7911 123451,Al\n"
    'b,+44 7911 123452,"Bo\n'  # the quote is never closed
    "c,+44 7911 123453,Cy\n"
    "d,+44 7911 123454,Di\n"
    "e,+44 7911 123455,Ed\n"
)


def test_rows_after_an_unclosed_quote_are_planned_not_swallowed(tmp_path: Path) -> None:
    rows = plan_rows(load_campaign(write_campaign(tmp_path, UNCLOSED), env={})).rows
    assert [(row.line, row.state) for row in rows] == [
        (2, "callable"),
        (3, "rejected"),
        (4, "callable"),
        (5, "callable"),
        (6, "callable"),
    ]
    assert rows[1].reason is not None and "a quote opened on this line" in rows[1].reason
    assert [row.row_key for row in rows[2:]] == ["c", "d", "e"]


def test_results_csv_has_a_line_for_every_line_after_an_unclosed_quote(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(write_campaign(tmp_path, UNCLOSED)), "--dry-run"], env={}
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        results = list(csv.DictReader(handle))
    assert [row["line"] for row in results] == ["2", "3", "4", "5", "6"]
    assert results[1]["state"] == "rejected" and "quote" in results[1]["reason"]
    assert {row["state"] for row in results[2:]} == {"pending"}


def test_a_quote_closed_far_below_does_not_swallow_the_rows_between(tmp_path: Path) -> None:
    text = (
        "id,phone,name\n"
        'a,+44 7911 123451,"Al\n'
        "b,+44 7911 123452,Bo\n"
        'c,+44 7911 123453,"Cy, Jr"\n'
        "d,+44 7911 123454,Di\n"
    )
    rows = plan_rows(load_campaign(write_campaign(tmp_path, text), env={})).rows
    assert [(row.line, row.state) for row in rows] == [
        (2, "rejected"),
        (3, "callable"),
        (4, "callable"),
        (5, "callable"),
    ]
    assert [row.row_key for row in rows] == ["line:2", "b", "c", "d"]


def test_quoted_fields_spanning_lines_are_still_one_row(tmp_path: Path) -> None:
    text = 'id,phone,name\na,+44 7911 123451,"Al\nsecond line"\nb,+44 7911 123452,Bo\n'
    rows = plan_rows(load_campaign(write_campaign(tmp_path, text), env={})).rows
    assert [(row.line, row.state) for row in rows] == [(2, "callable"), (4, "callable")]


def test_a_nul_in_the_key_column_rejects_the_row_with_its_line(tmp_path: Path) -> None:
    text = "id,phone\na,+44 7911 123451\nb\0x,+44 7911 123452\nc,+44 7911 123453\n"
    rows = plan_rows(load_campaign(write_campaign(tmp_path, text), env={})).rows
    assert [(row.row_key, row.state) for row in rows] == [
        ("a", "callable"),
        ("line:3", "rejected"),
        ("c", "callable"),
    ]
    assert rows[1].reason == "NUL character in key column 'id'"


def test_a_nul_in_the_phone_rejects_the_row_saying_so(tmp_path: Path) -> None:
    text = "id,phone\na,+44 7911\0 123451\nb,+44 7911 123452\n"
    rows = plan_rows(load_campaign(write_campaign(tmp_path, text), env={})).rows
    assert [(row.state, row.reason) for row in rows] == [
        ("rejected", "NUL character in column 'phone'"),
        ("callable", None),
    ]


def test_a_huge_line_is_rejected_as_field_too_long_without_being_read_into_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    with path.open("w") as handle:
        handle.write("phone,name\n+44 7911 123451,Al\n+44 7911 123452,")
        for _ in range(40):
            handle.write("x" * (1024 * 1024))  # a 40 MB line
        handle.write("\n+44 7911 123453,Cy\n")
    tracemalloc.start()
    try:
        rows = [(row.line, row.fields.get("phone"), row.error) for row in read_rows(path)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows[0] == (2, "+44 7911 123451", None)
    assert rows[1][0] == 3 and rows[1][2] is not None
    assert rows[1][2].startswith("field too long")
    assert rows[2] == (4, "+44 7911 123453", None)
    assert peak < 10 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while reading a 40 MB line"


def _alias_bomb(levels: int) -> str:
    """YAML whose aliases expand 10 ** levels times (the 'billion laughs' shape)."""
    anchors = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, levels):
        anchors.append(f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return f"scenario_id: [{', '.join(anchors)}]\n"


@pytest.mark.parametrize("levels", [5, 9])
def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(
    tmp_path: Path, levels: int
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("campaign: bomb\n" + _alias_bomb(levels))
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    message = str(caught.value)
    assert len(message) < 400, message[:400]
    assert "expands to over 10,000 values" in message and str(path) in message


def test_a_giant_value_is_cut_short_in_the_error_message(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, "id,phone\na,+44 7911 123451\n")
    text = path.read_text().replace("campaign: edges", "campaign: " + "x" * 50_000)
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)], env={})
    assert result.exit_code == 2
    assert "campaign: 'xxxx" in result.output and "..." in result.output
    assert len(result.output) < 400


def test_a_campaign_file_of_megabytes_is_refused(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, "id,phone\na,+44 7911 123451\n")
    with path.open("a") as handle:
        handle.write("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"over 1,048,576 bytes"):
        load_campaign(path, env={})


def _campaign_reading(tmp_path: Path, name: str, content: bytes) -> Path:
    """A campaign whose input is ``name`` holding ``content`` (its phone column: Mobile)."""
    (tmp_path / name).write_bytes(content)
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: edges\nscenario_id: scn_demo\ncalling_hours: unrestricted\n"
        "api: {base_url: sandbox}\nstate_dir: state\noutput_dir: out\n"
        f"input: {{path: {name}, phone_column: Mobile, default_region: GB}}\n"
    )
    return path


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("png.csv", PNG, "it is a PNG image"),
        ("noise.csv", random.Random(14).randbytes(4096), "it is binary data"),
        ("contacts.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512,
         "it is an old Excel .xls workbook"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_csv_is_refused_as_not_text_not_as_a_missing_column(
    tmp_path: Path, name: str, content: bytes, kind: str
) -> None:
    path = _campaign_reading(tmp_path, name, content)
    result = CliRunner().invoke(main, ["validate", str(path)], env={})
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {tmp_path / name}: not a readable text/CSV file: ")
    assert kind in result.output and "save or export it as CSV" in result.output
    assert "column 'Mobile'" not in result.output


def test_a_stray_control_character_in_a_cell_does_not_make_a_file_binary(tmp_path: Path) -> None:
    text = "id,Mobile,notes\n" + "".join(
        f"k{i},+44 7911 1234{i:02d},line one\vline two\x1a\n" for i in range(20)
    )
    path = _campaign_reading(tmp_path, "contacts.csv", text.encode())
    rows = plan_rows(load_campaign(path, env={})).rows
    assert [row.state for row in rows] == ["callable"] * 20
