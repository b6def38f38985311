"""The recipient's address zone (state or ZIP column) narrows the number's, never widens it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import ConfigError
from campaign.planning.address import address_zone, recipient_zone, state_zone, zip_zone
from campaign.planning.hours import calling_window
from campaign.planning.plan import plan_rows
from campaign.planning.states import state_code
from campaign.planning.windows import WindowBook, planned_rows
from campaign.store.checkpoint import Store

NY_ZONES = ("America/New_York",)


def at(y: int, m: int, d: int, hh: int, mm: int, offset: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=timezone(timedelta(hours=offset)))


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("TX", "TX"), (" tx ", "TX"), ("US-TX", "TX"), ("Texas", "TX"),
        ("district of columbia", "DC"), ("D.C.", "DC"), ("Washington, D.C.", "DC"),
        ("Puerto Rico", "PR"), ("U.S. Virgin Islands", "VI"), ("GU", "GU"),
        ("Texass", None), ("ON", None), ("Ontario", None), ("AA", None), ("", None),
    ],
)  # fmt: skip
def test_state_cells(cell: str, code: str | None) -> None:
    assert state_code(cell) == code


@pytest.mark.parametrize(
    ("cell", "state", "zones"),
    [
        ("77001", "TX", ("America/Chicago",)),
        ("77001-1234", "TX", ("America/Chicago",)),
        ("70112", "LA", ("America/Chicago",)),
        ("7001", "NJ", ("America/New_York",)),  # 07001 after a spreadsheet dropped its zero
        ("85001", "AZ", ("America/Phoenix",)),
    ],
)
def test_zip_codes_give_state_and_timezone(cell: str, state: str, zones: tuple[str, ...]) -> None:
    found = zip_zone(cell, "Zip")
    assert (found.states, found.timezones, found.problem) == ((state,), zones, None)


@pytest.mark.parametrize("cell", ["99999", "SW1A 1AA", "K1A 0B1", "09001"])  # 09001: APO
def test_unknown_zip_codes_are_a_problem_not_a_zone(cell: str) -> None:
    found = zip_zone(cell, "Zip")
    assert found.states == () and found.timezones == ()
    assert found.problem is not None and "column 'Zip'" in found.problem


def test_a_state_spans_its_timezones() -> None:
    assert state_zone("TX", "State").timezones == ("America/Chicago", "America/Denver")
    assert state_zone("Florida", "State").timezones == ("America/New_York", "America/Chicago")


def test_address_stricter_than_number_closes_the_window() -> None:
    # a New York number whose owner lives in New Orleans
    zones, us_state, note = recipient_zone(NY_ZONES, "NY", zip_zone("70112", "Zip"))
    assert (zones, us_state) == (("America/New_York", "America/Chicago"), "LA+NY")
    assert note is not None and "calling zone:" in note and "ZIP 70112 → LA" in note
    number_only = calling_window(NY_ZONES, "NY", None)
    both = calling_window(zones, us_state, None)
    wednesday_0830_new_york = at(2026, 6, 10, 8, 30, -4)  # 07:30 in New Orleans
    assert number_only.is_open(wednesday_0830_new_york)
    assert not both.is_open(wednesday_0830_new_york)
    assert both.is_open(at(2026, 6, 10, 9, 0, -4))  # 08:00 in New Orleans
    assert not both.is_open(at(2026, 6, 10, 21, 0, -4))  # 20:00 there: LA closes
    assert number_only.is_open(at(2026, 6, 14, 12, 0, -4))  # a Sunday
    assert not both.is_open(at(2026, 6, 14, 12, 0, -4))
    mardi_gras_noon = at(2026, 2, 17, 12, 0, -6)
    assert number_only.is_open(mardi_gras_noon) and not both.is_open(mardi_gras_noon)
    assert both.reason_closed(mardi_gras_noon) == "closed: Louisiana legal holiday (Mardi Gras)"


@pytest.mark.parametrize(
    ("state_cell", "zip_cell", "problem"),
    [
        ("Texass", "", "'Texass' in column 'State' is not a US state or territory"),
        ("", "99999", "ZIP '99999' in column 'Zip' is not a known US ZIP"),
        ("", "ABCDE", "postal code 'ABCDE' in column 'Zip' is not a US ZIP"),
    ],
)
def test_an_unreadable_address_keeps_the_numbers_zone_and_says_so(
    state_cell: str, zip_cell: str, problem: str
) -> None:
    address = address_zone(state_cell, zip_cell, ("State", "Zip"))
    zones, us_state, note = recipient_zone(NY_ZONES, "NY", address)
    assert (zones, us_state) == (NY_ZONES, "NY")
    assert note == f"{problem}: calling zone from the number America/New_York, federal hours"


def test_a_state_and_a_zip_that_disagree_both_apply() -> None:
    address = address_zone("TX", "70112", ("State", "Zip"))
    zones, us_state, _ = recipient_zone(NY_ZONES, "NY", address)
    assert us_state == "LA+NY+TX"
    assert set(zones) == {"America/New_York", "America/Chicago", "America/Denver"}


def test_an_address_in_the_numbers_own_zone_changes_nothing_but_the_note() -> None:
    address = address_zone("NY", "10001", ("State", "Zip"))
    zones, us_state, note = recipient_zone(NY_ZONES, "NY", address)
    assert (zones, us_state) == (NY_ZONES, "NY")
    assert note == (
        "calling zone: America/New_York, federal hours "
        "(number America/New_York, federal hours; address NY, ZIP 10001 → NY)"
    )


def test_an_address_does_not_give_a_zoneless_number_a_window() -> None:
    zones, us_state, note = recipient_zone((), None, state_zone("TX", "State"))
    assert (zones, us_state, note) == ((), None, None)


CSV = (
    "id,phone,State,Zip\n"
    "1,+1 212 555 0101,LA,\n"
    "2,+1 212 555 0102,,70112\n"
    "3,+1 212 555 0103,Texass,\n"
    "4,+1 212 555 0104,,\n"
)


def make_config(tmp_path: Path, csv_text: str, columns: str) -> CampaignConfig:
    (tmp_path / "contacts.csv").write_text(csv_text, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\ncompliance:\n  consent: attested\n"
        "input:\n  path: contacts.csv\n  default_region: US\n  key_column: id\n" + columns
    )
    return load_campaign(tmp_path / "c.yaml", env={})


def test_the_plan_intersects_address_and_number_zones(tmp_path: Path) -> None:
    config = make_config(tmp_path, CSV, "  state_column: State\n  postal_code_column: Zip\n")
    rows = plan_rows(config).rows
    assert [row.state for row in rows] == ["callable"] * 4
    assert [(row.timezones, row.us_state) for row in rows] == [
        (("America/New_York", "America/Chicago"), "LA+NY"),
        (("America/New_York", "America/Chicago"), "LA+NY"),
        (NY_ZONES, "NY"),
        (NY_ZONES, "NY"),
    ]
    assert rows[2].note is not None and "is not a US state or territory" in rows[2].note
    assert rows[3].note is None  # no address given: nothing to say


def test_without_address_columns_rows_are_as_before(tmp_path: Path) -> None:
    config = make_config(tmp_path, CSV, "")
    rows = plan_rows(config).rows
    assert [(row.timezones, row.us_state, row.note) for row in rows] == [(NY_ZONES, "NY", None)] * 4


def test_a_misspelt_address_column_is_a_config_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, CSV, "  postal_code_column: ZIP code\n")
    with pytest.raises(ConfigError) as caught:
        plan_rows(config)
    assert "input.postal_code_column" in str(caught.value)
    assert "column 'ZIP code' is not in contacts.csv" in str(caught.value)


def test_a_moved_recipient_gets_the_new_window_on_the_next_run(tmp_path: Path) -> None:
    columns = "  state_column: State\n"
    wednesday_0830_new_york = at(2026, 6, 10, 8, 30, -4).timestamp()

    def night(csv_text: str, now: float) -> bool:
        config = make_config(tmp_path, csv_text, columns)
        store = Store.open(tmp_path / "state" / "t.sqlite")
        try:
            store.claim_identity("t")
            store.sync_rows(planned_rows(config, []), now)
            row = store.row("1")
            # results.csv shows the zone used in the row's note, when an address gave one
            assert (row.note or "").startswith("calling zone:") is (not csv_text.endswith(",\n"))
            return WindowBook(None).window_for(row).is_open(wednesday_0830_new_york)
        finally:
            store.close()

    assert night("id,phone,State\n1,+1 212 555 0101,NY\n", 1.0e9) is True
    # overnight the CRM learns the person lives in Louisiana: 07:30 there, closed
    assert night("id,phone,State\n1,+1 212 555 0101,LA\n", 1.0e9 + 86400) is False
    # and the next night the address is gone again: the number's zone alone, open
    assert night("id,phone,State\n1,+1 212 555 0101,\n", 1.0e9 + 2 * 86400) is True


def test_validate_counts_what_the_addresses_did(tmp_path: Path) -> None:
    from campaign.pipeline.validate import render_text, validate_campaign

    config = make_config(tmp_path, CSV, "  state_column: State\n  postal_code_column: Zip\n")
    summary = validate_campaign(config, now=datetime(2026, 6, 10, 12, tzinfo=UTC))
    assert dict(summary.counts.by_address_zone) == {
        "address narrows the number's zone": 2,
        "address unreadable: the number's zone": 1,
        "no address given": 1,
    }
    text = render_text(summary)
    assert "2  address narrows the number's zone" in text
    assert "2  America/New_York + America/Chicago" in text  # callable by timezone
    assert summary.to_dict()["by_address_zone"]["no address given"] == 1
    plain = validate_campaign(make_config(tmp_path, CSV, ""))
    assert "callable by address" not in render_text(plain)
    assert "by_address_zone" not in plain.to_dict()
