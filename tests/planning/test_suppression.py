"""Do-not-call lists: which column, which region, and what happens to entries that are unusable."""

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import ConfigError, InputError
from campaign.planning.plan import plan_rows
from campaign.planning.suppression import load_suppression, suppressed_numbers

CONTACTS = "phone\n+44 7911 123456\n+44 7911 123457\n+44 7911 123458\n"


def campaign(tmp_path: Path, suppression: str, *, region: str = "GB") -> Path:
    """A campaign of three GB mobiles whose ``suppression:`` value is given as YAML."""
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: t\nscenario_id: scn_demo\ncalling_hours: unrestricted\n"
        "api: {base_url: sandbox}\nstate_dir: state\noutput_dir: out\n"
        f"input: {{path: contacts.csv, default_region: {region}}}\n"
        f"suppression: {suppression}\n"
    )
    return path


def load(path: Path) -> CampaignConfig:
    return load_campaign(path, env={})


def states(config: CampaignConfig) -> list[tuple[str, str | None]]:
    return [(row.state, row.reason) for row in plan_rows(config).rows]


def test_the_phone_number_column_is_used_even_after_a_phone_type_column(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text(
        "Name,Phone Type,Phone Number\nAl,mobile,+44 7911 123456\nBo,home,+44 7911 123458\n"
    )
    config = load(campaign(tmp_path, "[dnc.csv]"))
    assert states(config) == [
        ("suppressed", "on suppression list dnc.csv"),
        ("callable", None),
        ("suppressed", "on suppression list dnc.csv"),
    ]


def test_a_list_names_its_column_and_region_in_the_campaign_file(tmp_path: Path) -> None:
    # national GB numbers in a list of a campaign whose own default region is US
    (tmp_path / "dnc.csv").write_text("who,contact,landline\nAl,07911 123457,020 7946 0000\n")
    path = campaign(tmp_path, "[{path: dnc.csv, column: Contact, region: gb}]", region="US")
    config = load(path)
    assert config.suppression[0].column == "Contact" and config.suppression[0].region == "GB"
    assert [state for state, _ in states(config)] == ["callable", "suppressed", "callable"]


def test_plain_path_entries_still_work_alone_or_in_a_list(tmp_path: Path) -> None:
    (tmp_path / "dnc.txt").write_text("07911 123456\n\n+44 7911 123458\n")
    for value in ("dnc.txt", "[dnc.txt]", "[{path: dnc.txt}]"):
        config = load(campaign(tmp_path, value))
        assert [state for state, _ in states(config)] == ["suppressed", "callable", "suppressed"]


def test_national_entries_are_read_in_the_lists_region_not_only_the_campaigns(
    tmp_path: Path,
) -> None:
    (tmp_path / "dnc.txt").write_text("07911 123457\n")
    without = load(campaign(tmp_path, "[dnc.txt]", region="US"))
    with pytest.raises(InputError, match=r"dnc\.txt: none of the 1 entries"):
        plan_rows(without)  # read as a US number it is no number at all: refused, not ignored
    with_region = load(campaign(tmp_path, "[{path: dnc.txt, region: GB}]", region="US"))
    assert [state for state, _ in states(with_region)] == ["callable", "suppressed", "callable"]


def test_validate_shows_entries_read_unusable_and_matched_rows_per_list(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text(
        "phone,note\n+44 7911 123456,a\ncall me maybe,b\n,c\n+44 7911 123458,d\n+1 555,e\n"
    )
    path = campaign(tmp_path, "[dnc.csv]")
    result = CliRunner().invoke(main, ["validate", str(path)], env={})
    assert result.exit_code == 0, result.output
    assert (
        "dnc.csv (column 'phone', region GB): 5 entries read, 3 unusable, 2 row(s) matched"
        in result.output
    )
    assert "unusable lines: 3, 4, 6" in result.output
    as_json = CliRunner().invoke(main, ["validate", str(path), "--json"], env={})
    (listed,) = json.loads(as_json.output)["suppression_lists"]
    assert (listed["entries"], listed["usable"], listed["unusable"]) == (5, 2, 3)
    assert listed["matched_rows"] == 2
    assert listed["unusable_by_reason"]["no phone number"] == 1


def test_a_run_logs_a_warning_naming_the_list_and_its_unusable_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "dnc.csv").write_text("phone\n+44 7911 123456\nunknown\n")
    config = load(campaign(tmp_path, "[dnc.csv]"))
    with caplog.at_level(logging.WARNING, logger="campaign"):
        numbers = suppressed_numbers(config)  # what the run's send gate is built from
    assert numbers == {"+447911123456": "dnc.csv"}
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        "suppression list dnc.csv: 1 of 2 entries give no usable number and suppress nobody "
        "(lines 3: 1 × not a phone number)"
    )


def test_a_list_without_any_usable_number_stops_validate_and_run_with_exit_2(
    tmp_path: Path,
) -> None:
    (tmp_path / "dnc.csv").write_text("phone\nn/a\nunknown\n")
    path = campaign(tmp_path, "[dnc.csv]")
    for command in (["validate", str(path)], ["run", str(path), "--dry-run"]):
        result = CliRunner().invoke(main, command, env={})
        assert result.exit_code == 2, result.output
        assert "dnc.csv: none of the 2 entries of this suppression list" in result.output
        assert "column" in result.output and "region" in result.output


def test_an_empty_list_is_refused_rather_than_suppressing_nobody(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text("phone\n")
    with pytest.raises(InputError, match=r"dnc\.csv: the suppression list has no entries"):
        load_suppression(load(campaign(tmp_path, "[dnc.csv]")))


def test_ambiguous_or_missing_phone_columns_are_refused_with_the_columns(tmp_path: Path) -> None:
    (tmp_path / "two.csv").write_text("Home Phone,Work Phone\n+44 7911 123456,\n")
    with pytest.raises(InputError, match=r"two.csv:1: several columns could hold the numbers"):
        load_suppression(load(campaign(tmp_path, "[two.csv]")))
    (tmp_path / "odd.csv").write_text("name,comment\nA,B\n")
    with pytest.raises(
        InputError, match=r"odd.csv:1: no phone column .*\(columns: name, comment\)"
    ):
        load_suppression(load(campaign(tmp_path, "[odd.csv]")))
    (tmp_path / "dnc.csv").write_text("Name,Mobile\nA,+44 7911 123456\n")
    with pytest.raises(InputError, match=r"column 'Mobil' .*did you mean 'mobile'\?"):
        load_suppression(load(campaign(tmp_path, "[{path: dnc.csv, column: Mobil}]")))


def test_fallback_column_names_and_one_number_a_line(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("Id;Primary Phone;Phone Type\n1;+44 7911 123456;mobile\n")
    (tmp_path / "b.txt").write_text("+44 7911 123457\n+33 6 12 34 56 78\n")
    (tmp_path / "c.csv").write_text("Do not call\n+44 7911 123458\n")
    config = load(campaign(tmp_path, "[a.csv, b.txt, c.csv]"))
    suppression = load_suppression(config)
    assert suppression.numbers == {
        "+447911123456": "a.csv",
        "+447911123457": "b.txt",
        "+33612345678": "b.txt",
        "+447911123458": "c.csv",
    }
    assert [listed.column for listed in suppression.lists] == ["primary phone", None, "do not call"]


def test_two_lists_with_one_file_name_keep_apart_in_reasons(tmp_path: Path) -> None:
    for folder, number in (("a", "+44 7911 123456"), ("b", "+44 7911 123457")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dnc.csv").write_text(f"phone\n{number}\n")
    config = load(campaign(tmp_path, "[a/dnc.csv, b/dnc.csv]"))
    reasons = [reason for _, reason in states(config)]
    assert reasons[0] == f"on suppression list {tmp_path / 'a' / 'dnc.csv'}"
    assert reasons[1] == f"on suppression list {tmp_path / 'b' / 'dnc.csv'}"


def test_a_misspelt_key_of_a_list_entry_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text("phone\n+44 7911 123456\n")
    with pytest.raises(ConfigError) as caught:
        load(campaign(tmp_path, "[{path: dnc.csv, colum: phone}]"))
    assert "suppression[0].colum: unknown key 'colum'; did you mean 'column'?" in str(caught.value)
    with pytest.raises(ConfigError, match=r"suppression\[0\]: .*missing\.csv does not exist"):
        load(campaign(tmp_path, "[{path: missing.csv}]"))
