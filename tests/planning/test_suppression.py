"""Do-not-call lists: which column, which region, and what happens to entries that are unusable."""

import json
import logging
from datetime import UTC, datetime
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


US_CONTACTS = "phone\n(212) 555-0100\n(212) 555-0101\n(415) 555-0102\n(415) 555-0103\n"


def us_campaign(tmp_path: Path, suppression: str) -> CampaignConfig:
    """Four US numbers (212 555-0100, -0101, 415 555-0102, -0103) and the given lists."""
    (tmp_path / "contacts.csv").write_text(US_CONTACTS)
    path = tmp_path / "us.yaml"
    path.write_text(
        "campaign: us\nscenario_id: scn_demo\ncalling_hours: unrestricted\n"
        "compliance: {consent: attested}\n"
        "api: {base_url: sandbox}\nstate_dir: state\noutput_dir: out\n"
        "input: {path: contacts.csv, default_region: US}\n"
        f"suppression: {suppression}\n"
    )
    return load(path)


def test_the_national_registry_format_is_read_as_us_numbers(tmp_path: Path) -> None:
    # As downloaded: ten digits a line, no header, CRLF; one file uses "area code,number".
    (tmp_path / "212.txt").write_bytes(b"2125550100\r\n2125550199\r\n\r\n212555010\r\n")
    (tmp_path / "415.txt").write_text("415,5550103\n415,1550104\n")
    config = us_campaign(tmp_path, "[212.txt, 415.txt]")
    assert states(config) == [
        ("suppressed", "on suppression list 212.txt"),
        ("callable", None),
        ("callable", None),
        ("suppressed", "on suppression list 415.txt"),
    ]
    first, second = load_suppression(config).lists
    assert (first.registry, first.entries, first.usable, first.unusable_count) == (True, 3, 2, 1)
    assert first.unusable_lines == [4]  # the blank line is no entry; 9 digits is unusable
    assert (second.entries, second.unusable_count) == (2, 1)  # exchange 155 does not exist
    assert dict(second.unusable) == {"not a ten-digit US number": 1}


def test_a_number_written_otherwise_in_a_registry_file_still_suppresses(tmp_path: Path) -> None:
    # Someone appended numbers by hand to the download: they are read, not dropped.
    (tmp_path / "dnc.txt").write_text("2125550100\n+1 (415) 555-0103\n+44 7400 123456\n")
    config = us_campaign(tmp_path, "[dnc.txt]")
    numbers = load_suppression(config).numbers
    assert {"+12125550100", "+14155550103", "+447400123456"} <= set(numbers)
    assert [state for state, _ in states(config)] == [
        "suppressed", "callable", "callable", "suppressed",
    ]  # fmt: skip


def test_a_folder_of_area_code_files_is_one_registry_list(tmp_path: Path) -> None:
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "212.txt").write_text("2125550101\n")
    (tmp_path / "registry" / "415.txt").write_text("4155550102\n4155559999\n")
    (tmp_path / "registry" / ".DS_Store").write_text("junk")
    config = us_campaign(tmp_path, "[registry]")
    assert [state for state, _ in states(config)] == [
        "callable", "suppressed", "suppressed", "callable",
    ]  # fmt: skip
    (listed,) = load_suppression(config).lists
    assert (listed.files, listed.entries, listed.layout) == (
        2, 3, "national registry format, 2 files",
    )  # fmt: skip


def test_format_registry_is_a_key_and_ten_digits_of_another_region_are_not_us(
    tmp_path: Path,
) -> None:
    (tmp_path / "dnc.txt").write_text("2125550100\n")
    # Named: read as the registry even with a campaign whose region is GB.
    config = us_campaign(tmp_path, "[{path: dnc.txt, format: registry}]")
    assert states(config)[0] == ("suppressed", "on suppression list dnc.txt")
    # A GB list of ten-digit numbers is a GB list, not the US registry.
    (tmp_path / "gb.txt").write_text("7400123456\n")
    config = load(campaign(tmp_path, "[{path: gb.txt, region: GB}]"))
    (listed,) = load_suppression(config).lists
    assert not listed.registry and "+447400123456" in load_suppression(config).numbers
    with pytest.raises(ConfigError, match=r"format: registry files are ten-digit numbers"):
        us_campaign(tmp_path, "[{path: dnc.txt, format: registry, column: phone}]")


def test_a_registry_list_matches_in_the_send_gate_mapping_too(tmp_path: Path) -> None:
    (tmp_path / "212.txt").write_text("2125550100\n")
    numbers = suppressed_numbers(us_campaign(tmp_path, "[212.txt]"))
    assert numbers.get("+12125550100") == "212.txt"
    assert numbers.get("+12125550101") is None and "+442125550100" not in numbers
    assert dict(numbers) == {"+12125550100": "212.txt"}


DATED = (
    "phone,added,expires\n"
    "(212) 555-0100,2020-01-01,2021-06-30\n"  # expired long ago: no longer suppresses
    "(212) 555-0101,2099-01-01,\n"  # starts later: suppressed now all the same
    "(415) 555-0102,2020-01-01,31/13/2025\n"  # a date that is no date: fails closed
    "(415) 555-0103,,2099-12-31\n"  # in force until 2099
)


def test_a_list_with_date_columns_expires_entries_and_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text(DATED)
    config = us_campaign(
        tmp_path, "[{path: dnc.csv, expires_column: expires, starts_column: added}]"
    )
    assert [state for state, _ in states(config)] == [
        "callable", "suppressed", "suppressed", "suppressed",
    ]  # fmt: skip
    (listed,) = load_suppression(config).lists
    assert (listed.expired, listed.not_yet, listed.bad_dates) == (1, 1, 1)
    assert listed.bad_date_lines == [4]
    assert listed.unusable_count == 0  # every entry has a number


def test_an_entry_suppresses_through_its_expiry_date_in_every_timezone(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text("phone,until\n(212) 555-0100,2026-03-01\n")
    config = us_campaign(tmp_path, "[{path: dnc.csv, expires_column: until}]")

    def listed_at(moment: str) -> bool:
        now = datetime.fromisoformat(moment)
        return "+12125550100" in load_suppression(config, now=now).numbers

    assert listed_at("2026-03-01T23:59:00+00:00")
    assert listed_at("2026-03-02T11:59:00+00:00")  # still March 1 at UTC-12
    assert not listed_at("2026-03-02T12:01:00+00:00")


def test_an_ambiguous_day_month_expiry_is_read_as_the_later_date(tmp_path: Path) -> None:
    # 03/04/2026: March 4 or April 3; the entry lasts until the later one.
    (tmp_path / "dnc.csv").write_text("phone,until\n(212) 555-0100,03/04/2026\n")
    config = us_campaign(tmp_path, "[{path: dnc.csv, expires_column: until}]")
    numbers = load_suppression(config, now=datetime(2026, 3, 20, tzinfo=UTC)).numbers
    assert "+12125550100" in numbers
    numbers = load_suppression(config, now=datetime(2026, 4, 5, tzinfo=UTC)).numbers
    assert "+12125550100" not in numbers


def test_a_date_column_missing_from_the_list_is_named(tmp_path: Path) -> None:
    (tmp_path / "dnc.csv").write_text("phone,added\n(212) 555-0100,2020-01-01\n")
    with pytest.raises(InputError, match=r"column 'expiry' \(suppression expires_column\)"):
        load_suppression(us_campaign(tmp_path, "[{path: dnc.csv, expires_column: expiry}]"))


def test_validate_and_the_run_log_show_each_list_with_its_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "dnc.csv").write_text(DATED)
    (tmp_path / "212.txt").write_text("2125550100\n2125550101\nnot a number\n")
    lists = "[{path: dnc.csv, expires_column: expires, starts_column: added}, 212.txt]"
    config = us_campaign(tmp_path, lists)
    result = CliRunner().invoke(main, ["validate", str(config.source_path)], env={})
    assert result.exit_code == 0, result.output
    assert (
        "dnc.csv (column 'phone', region US): 4 entries read, 0 unusable, 3 row(s) matched"
        in result.output
    )
    assert "1 expired (suppress nobody); 1 not yet in force" in result.output
    assert "1 with a date that cannot be read (suppressed all the same; lines 4)" in result.output
    # 212 555-0101 is on both lists: the first one names it, the registry gets 212 555-0100
    assert (
        "212.txt (national registry format): 3 entries read, 1 unusable, 1 row(s) matched"
        in result.output
    )
    as_json = CliRunner().invoke(main, ["validate", str(config.source_path), "--json"], env={})
    dated, registry = json.loads(as_json.output)["suppression_lists"]
    assert (dated["expired"], dated["not_yet_in_force"], dated["unreadable_dates"]) == (1, 1, 1)
    assert (registry["format"], registry["matched_rows"], registry["unusable"]) == (
        "registry", 1, 1,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="campaign"):
        plan_rows(config)  # what a run plans with
    logged = [r.getMessage() for r in caplog.records if r.name.endswith("suppression")]
    assert any(
        line.startswith("suppression list 212.txt (national registry format): 3 entries read, "
                        "1 unusable, 1 row(s) matched")
        for line in logged
    ), logged  # fmt: skip
