"""Consent to automated calls with an AI voice: the column, the attestation, the refusal."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import ConfigError
from campaign.planning.consent import CONSENT_SPELLINGS, consent_basis
from campaign.planning.plan import plan_rows

US = "+1 212 555 0100"
GB = "+44 7400 123456"


def campaign(tmp_path: Path, rows: list[tuple[str, str]], extra: str = "") -> Path:
    """A campaign of (phone, consent cell) rows; ``extra`` is YAML added at the end."""
    lines = ["phone,Consent"] + [f"{phone},{cell}" for phone, cell in rows]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: t\nscenario_id: s\ncalling_hours: unrestricted\n"
        "api: {base_url: sandbox}\nstate_dir: state\noutput_dir: out\n"
        "input: {path: contacts.csv, default_region: US}\n" + extra,
        encoding="utf-8",
    )
    return path


def with_column(tmp_path: Path, cells: list[str], *, phone: str = US) -> CampaignConfig:
    numbers = [phone.replace("0100", f"{100 + i:04d}") for i in range(len(cells))]
    path = campaign(
        tmp_path,
        list(zip(numbers, cells, strict=True)),
        "compliance: {}\n",
    )
    text = path.read_text().replace(
        "input: {path: contacts.csv, default_region: US}",
        "input: {path: contacts.csv, default_region: US, consent_column: consent}",
    )
    path.write_text(text)
    return load_campaign(path, env={})


def states(config: CampaignConfig) -> list[tuple[str, str | None]]:
    return [(row.state, row.reason) for row in plan_rows(config, workers=1).rows]


@pytest.mark.parametrize(
    "cell",
    ["yes", "YES", " Y ", "true", "T", "1", "x", "X", "✓", "consented", "Opt-In", "opted in",
     "2026-03-01", "2025-06-14T10:00:00Z"],
)  # fmt: skip
def test_a_truthy_consent_cell_makes_the_row_callable(tmp_path: Path, cell: str) -> None:
    assert states(with_column(tmp_path, [cell])) == [("callable", None)]


@pytest.mark.parametrize(
    "cell", ["", "  ", "no", "N", "false", "0", "withdrawn", "opt-out", "Revoked", "n/a"]
)
def test_an_empty_or_falsy_consent_cell_rejects_the_row(tmp_path: Path, cell: str) -> None:
    assert states(with_column(tmp_path, [cell])) == [("rejected", "no recorded consent")]


def test_an_unknown_spelling_is_not_consent_and_the_reason_quotes_it(tmp_path: Path) -> None:
    ((state, reason),) = states(with_column(tmp_path, ["maybe later"]))
    assert state == "rejected"
    assert reason is not None and reason.startswith("no recorded consent: 'maybe later'")
    assert "column 'Consent'" in reason  # as the file spells it


def test_a_consent_dated_after_today_is_not_consent_yet(tmp_path: Path) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    ((state, reason),) = states(with_column(tmp_path, [tomorrow]))
    assert state == "rejected"
    assert reason == f"no recorded consent: dated {tomorrow} in column 'Consent', after today"
    ((state, reason),) = states(with_column(tmp_path, ["2026-02-30"]))
    assert (state, reason) == (
        "rejected",
        "no recorded consent: '2026-02-30' in column 'Consent' is not a date",
    )


def test_numbers_outside_the_consent_regions_are_not_checked(tmp_path: Path) -> None:
    config = with_column(tmp_path, ["", "no"], phone="+44 7400 120100")
    assert [state for state, _ in states(config)] == ["callable", "callable"]


def test_a_campaign_can_add_regions_that_need_consent(tmp_path: Path) -> None:
    path = campaign(tmp_path, [(GB, "")], "compliance: {consent_regions: [GB]}\n")
    path.write_text(path.read_text().replace("default_region: US", "consent_column: consent"))
    assert states(load_campaign(path, env={})) == [("rejected", "no recorded consent")]


def test_consent_is_checked_before_duplicates_so_a_consenting_row_of_the_number_is_called(
    tmp_path: Path,
) -> None:
    # Two CRM records of one number: the first has no consent, the second has.
    config = with_column(tmp_path, ["", "yes"])
    path = config.source_path
    (tmp_path / "contacts.csv").write_text(f"phone,Consent\n{US},\n{US},yes\n")
    assert states(load_campaign(path, env={})) == [
        ("rejected", "no recorded consent"),
        ("callable", None),
    ]


def test_numbers_of_us_territories_need_consent_as_us_ones(tmp_path: Path) -> None:
    config = with_column(tmp_path, ["", "yes"], phone="+1 787 555 0100")  # Puerto Rico
    assert [state for state, _ in states(config)] == ["rejected", "callable"]


def test_the_spellings_in_the_docs_are_the_ones_accepted(tmp_path: Path) -> None:
    config = with_column(tmp_path, list(CONSENT_SPELLINGS))
    assert {state for state, _ in states(config)} == {"callable"}


def test_attested_rows_are_not_checked_and_every_plan_logs_the_attestation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = campaign(tmp_path, [(US, ""), (GB, "no")], "compliance: {consent: attested}\n")
    config = load_campaign(path, env={})
    for _ in range(2):  # every run, not only the first
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="campaign"):
            assert [state for state, _ in states(config)] == ["callable", "callable"]
        (record,) = [r for r in caplog.records if "attested" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert "gave prior express consent" in record.getMessage()
    assert consent_basis(config).startswith("attested (compliance.consent: attested)")


def test_without_a_basis_a_plan_with_us_numbers_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    config = load_campaign(campaign(tmp_path, [(US, "yes"), (GB, ""), (US, "")]), env={})
    with pytest.raises(ConfigError) as caught:
        plan_rows(config, workers=1)
    message = str(caught.value)
    assert "input.consent_column" in message and "compliance.consent" in message
    assert "2 row(s) have numbers that need the called person's consent (2 in US)" in message
    assert "TCPA" in message and "February 2024" in message and "written consent" in message
    assert "consent_basis" not in message
    assert consent_basis(config).startswith("none given")


def test_without_a_basis_a_list_with_no_number_needing_consent_plans(tmp_path: Path) -> None:
    config = load_campaign(campaign(tmp_path, [(GB, "")]), env={})
    assert states(config) == [("callable", None)]


def test_the_column_and_the_attestation_at_once_are_refused(tmp_path: Path) -> None:
    path = campaign(tmp_path, [(US, "yes")], "compliance: {consent: attested}\n")
    path.write_text(path.read_text().replace("default_region: US", "consent_column: consent"))
    with pytest.raises(ConfigError, match=r"compliance\.consent: input\.consent_column .*keep one"):
        plan_rows(load_campaign(path, env={}), workers=1)


def test_a_consent_column_missing_from_the_input_names_the_key_and_the_columns(
    tmp_path: Path,
) -> None:
    path = campaign(tmp_path, [(US, "yes")])
    path.write_text(path.read_text().replace("default_region: US", "consent_column: opt_in"))
    with pytest.raises(ConfigError) as caught:
        plan_rows(load_campaign(path, env={}), workers=1)
    assert "input.consent_column: column 'opt_in' is not in contacts.csv" in str(caught.value)
    assert "(columns: phone, consent)" in str(caught.value)


def test_run_and_validate_refuse_with_exit_2_and_say_why(tmp_path: Path) -> None:
    path = campaign(tmp_path, [(US, "yes"), (US, "")])
    for command in (["run", str(path)], ["validate", str(path)]):
        result = CliRunner().invoke(main, command, env={})
        assert result.exit_code == 2, result.output
        assert "2 row(s) have numbers that need the called person's consent" in result.output
        assert "input.consent_column" in result.output
        assert "compliance: {consent: attested}" in result.output
        assert "call(s) placed" not in result.output  # refused before anything is sent


def test_validate_counts_rows_without_consent_and_shows_the_basis(tmp_path: Path) -> None:
    config = with_column(tmp_path, ["yes", "", "no", "x"])
    result = CliRunner().invoke(main, ["validate", str(config.source_path)], env={})
    assert result.exit_code == 0, result.output
    assert "        2  no recorded consent" in result.output
    assert "consent      recorded per row in column 'consent'" in result.output


def test_an_attested_run_says_so_in_its_log_file(tmp_path: Path) -> None:
    path = campaign(tmp_path, [(US, "")], "compliance: {consent: attested}\n")
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"], env={})
    assert result.exit_code == 0, result.output
    log_text = (tmp_path / "state" / "t.log").read_text()
    assert "WARNING consent: attested (compliance.consent: attested)" in log_text


def test_a_consent_column_of_a_workbook_is_read(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"phone": [US, "+1 212 555 0101"], "Consent": ["Yes", ""]})
    frame.to_excel(tmp_path / "contacts.xlsx", index=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaign: t\nscenario_id: s\ncalling_hours: unrestricted\n"
        "input: {path: contacts.xlsx, default_region: US, consent_column: consent}\n"
    )
    assert states(load_campaign(path, env={})) == [
        ("callable", None),
        ("rejected", "no recorded consent"),
    ]
