"""The NANP state tables kept in nanp_data.py answer as phonenumbers' geocoder does."""

from __future__ import annotations

import phonenumbers
from phonenumbers import geocoder

from campaign.phones import nanp_data
from campaign.phones.normalise import (
    _nanp_state,
    build_nanp_tables,
    nanp_tables,
    state_from_description,
)


def test_the_kept_tables_are_those_of_the_installed_phonenumbers() -> None:
    assert phonenumbers.__version__ == nanp_data.PHONENUMBERS_VERSION, (
        "phonenumbers was upgraded: run python -m campaign.phones.nanp_data"
    )
    built = build_nanp_tables()
    assert nanp_tables() == built
    assert len(built.npa) > 300 and len(built.prefixes) > 1000


def _geocoded(number: phonenumbers.PhoneNumber, npa_states: dict[str, str]) -> str | None:
    """The state as normalise found it before the tables: the area code, else the geocoder."""
    npa = npa_states.get(str(number.national_number)[:3])
    return npa or state_from_description(geocoder.description_for_number(number, "en"))


def test_every_prefix_geocoded_per_exchange_gives_the_geocoders_state() -> None:
    numbers = []
    for prefix in nanp_tables().prefixes:
        for fill in "0", "5", "9":
            numbers.append(phonenumbers.parse("+" + (prefix + fill * 11)[:11]))
    for npa in list(nanp_tables().npa)[::20]:
        numbers.append(phonenumbers.parse(f"+1{npa}5550123"))
    npa_states = build_nanp_tables().npa
    states = [
        (_nanp_state(str(number.national_number), phonenumbers.number_type(number)),
         _geocoded(number, npa_states))
        for number in numbers
    ]  # fmt: skip
    assert all(ours == theirs for ours, theirs in states)
    assert sum(1 for ours, _ in states if ours) > 1000  # not all None


def test_a_canadian_number_without_a_province_gets_canadas_national_rule() -> None:
    from campaign.phones.normalise import UNKNOWN_CA_PROVINCE, normalise_number

    assert normalise_number("+1 600 555 0100", "CA").us_state == UNKNOWN_CA_PROVINCE
    assert normalise_number("+1 416 555 0167", "CA").us_state == "ON"
