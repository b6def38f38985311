import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone

from campaign.phones.countries import country_code, country_name
from campaign.phones.normalise import (
    PhoneCache,
    PhoneResult,
    apply_policy_fields,
    has_country_code,
    normalise,
    normalise_batch,
    normalise_number,
)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(212) 736-5000", "US", "+12127365000"),
        ("1 212 736 5000", "US", "+12127365000"),
        ("+1 212-736-5000", None, "+12127365000"),
        ("011 44 7911 123456", "US", "+447911123456"),  # US international prefix
        ("0044 7911 123456", None, "+447911123456"),  # 00 without a region
        ("07911 123456", "GB", "+447911123456"),  # national trunk prefix
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("0039 06 1234 5678", "FR", "+390612345678"),
        ("+1\u00a0212\u00a0736\u00a05000", None, "+12127365000"),  # non-breaking spaces
        ("\uff0b\uff11 212 736 5000", None, "+12127365000"),  # fullwidth plus and digit
        ("٠١٠٠١٢٣٤٥٦٧", "EG", "+201001234567"),  # Arabic-Indic digits
        ("'+33 6 12 34 56 78", None, "+33612345678"),  # Excel text-quote
        ("tel:+33-6-12-34-56-78", None, "+33612345678"),
    ],
)
def test_messy_cells_normalise_to_e164(raw: str, region: str | None, e164: str) -> None:
    result = normalise(raw, region)
    assert (result.e164, result.reason) == (e164, None)


@pytest.mark.parametrize(
    ("raw", "region", "e164", "note"),
    [
        ("4.47911123456E+11", "US", "+447911123456", "Excel damage repaired"),
        ("2127365000.0", "US", "+12127365000", "Excel damage repaired"),
        ("6.12345678E+08", "FR", "+33612345678", "Excel damage repaired"),
        ("447911123456", "US", "+447911123456", "leading 00 or + lost"),
        ("612345678", "IT", "+390612345678", "leading zero restored"),
        ("1-800-FLOWERS", "US", "+18003569377", "vanity letters"),
        ("212 736 5000 ext. 12", "US", "+12127365000", "extension 12 not dialled"),
    ],
)
def test_repairs_are_noted(raw: str, region: str, e164: str, note: str) -> None:
    result = normalise(raw, region)
    assert result.e164 == e164
    assert result.note is not None and note in result.note


def test_extension_is_kept_apart() -> None:
    result = normalise("+1 212 736 5000 x123", None)
    assert (result.e164, result.extension) == ("+12127365000", "123")


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "no phone number"),
        ("n/a", "US", "not a phone number"),
        ("12345", "US", "too short"),
        ("(911) 555-1234", "US", "not a valid phone number for"),
        ("212 123 4567", "US", "not a valid phone number"),  # exchange cannot start with 1
        ("2127365000", None, "no country code and no region"),
        ("2.127365E+09", "US", "lost digits"),
        ("+1 900 234 5678", None, "premium-rate"),
        ("+44 9098 790000", None, "premium-rate"),
        ("+33 8 92 12 34 56", None, "premium-rate"),
        ("+44 7640 123456", None, "pager"),
        ("+44 56 1234 5678", None, None),  # VoIP: allowed by default
    ],
)
def test_rejections_say_why(raw: str, region: str | None, reason: str | None) -> None:
    result = normalise(raw, region)
    if reason is None:
        assert result.reason is None
    else:
        assert result.reason is not None and reason in result.reason
        assert not result.ok


def test_toll_free_and_voip_are_configurable() -> None:
    assert normalise("+44 800 123 4567", None).ok
    blocked = normalise("+44 800 123 4567", None, allow_toll_free=False)
    assert blocked.reason is not None and "toll-free" in blocked.reason
    voip = normalise("+44 56 1234 5678", None, allow_voip=False)
    assert voip.reason is not None and "VoIP" in voip.reason


@pytest.mark.parametrize(
    ("raw", "state", "zones"),
    [
        ("+1 212 736 5000", "NY", ("America/New_York",)),
        ("+1 305 555 1234", "FL", ("America/New_York",)),
        ("+1 205 555 1234", "AL", ("America/Chicago",)),
        ("+1 718 555 1234", "NY", ("America/New_York",)),  # only geocoded per exchange
        ("+1 416 555 1234", "ON", ("America/Toronto",)),
        ("+1 808 555 1234", "HI", ("Pacific/Honolulu",)),
        ("+1 787 234 5678", None, ("America/Puerto_Rico",)),  # NANP, not US/CA
    ],
)
def test_nanp_numbers_know_their_state_and_zone(
    raw: str, state: str | None, zones: tuple[str, ...]
) -> None:
    result = normalise(raw, None)
    assert (result.us_state, result.timezones) == (state, zones)


def test_mobile_numbers_get_country_level_zones() -> None:
    assert normalise("+33 6 12 34 56 78", None).timezones == ("Europe/Paris",)
    assert "Atlantic/Canary" in normalise("+34 612 34 56 78", None).timezones


@pytest.mark.parametrize(
    ("cell", "region"),
    [
        (" gb ", "GB"),
        ("UK", "GB"),
        ("GBR", "GB"),
        ("United Kingdom", "GB"),
        ("Germany", "DE"),
        ("USA", "US"),
        ("usa", "US"),
        ("U.S.A.", "US"),
        ("United States of America", "US"),
        ("the Netherlands", "NL"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("Bolivia", "BO"),  # ISO: "Bolivia, Plurinational State of"
        ("South Korea", "KR"),
        ("Russia", "RU"),
        ("XK", "XK"),  # Kosovo: phonenumbers' code, not ISO's
        ("XX", None),
        ("Korea", None),  # two countries: neither is guessed
        ("Frankreich", None),  # English names only
        ("44", None),  # a calling code is not a country
        ("Antarctica", None),  # no numbering plan to read a number in
    ],
)
def test_country_cells_as_crm_exports_write_them(cell: str, region: str | None) -> None:
    assert country_code(cell) == region


def test_country_names_for_the_report() -> None:
    assert country_name("GB") == "United Kingdom"
    assert country_name("KR") == "South Korea"
    assert country_name("XK") == "XK"


@pytest.mark.parametrize(
    ("raw", "carries"),
    [
        ("+44 20 7946 0000", True),
        ("0044 20 7946 0000", True),
        ("011 44 20 7946 0000", True),
        ("\uff0b44 20 7946 0000", True),
        ("020 7946 0000", False),
        ("01 12 34 56 78", False),  # a French number starting 011: national
        ("4.47911123456E+11", False),
    ],
)
def test_numbers_carrying_their_own_country_are_recognised(raw: str, carries: bool) -> None:
    assert has_country_code(raw) is carries


def test_cache_parses_each_raw_value_once() -> None:
    cache = PhoneCache(max_entries=2)
    first = cache.get("+33 6 12 34 56 78", None)
    assert ("+33 6 12 34 56 78", None) in cache
    assert cache.get("+33 6 12 34 56 78", None) is first
    cache.get("+44 7911 123456", None)
    cache.get("+1 212 736 5000", None)  # over the bound: the cache starts again
    assert ("+33 6 12 34 56 78", None) not in cache


def test_cache_applies_the_campaign_policy() -> None:
    cache = PhoneCache(allow_toll_free=False)
    assert not cache.get("+44 800 123 4567", None).ok


digits = st.text(alphabet="0123456789", min_size=6, max_size=15)


@settings(max_examples=200, deadline=None)
@given(digits, st.sampled_from(["US", "GB", "FR", "DE", "IN", "BR"]))
def test_validity_agrees_with_is_valid_number(national: str, region: str) -> None:
    try:
        parsed = phonenumbers.parse(national, region)
    except phonenumbers.NumberParseException:
        return
    result = normalise_number(national, region)
    if phonenumbers.is_valid_number(parsed):
        assert result.e164 == phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.E164
        )
    elif result.e164 is not None:
        # only a noted repair (lost leading zero / lost 00) may turn an invalid cell valid
        assert result.note is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, "US", "GB"]))
def test_any_text_gives_a_result_never_an_exception(raw: str, region: str | None) -> None:
    result = normalise(raw, region)
    if result.e164 is None:
        assert result.reason
    else:
        assert result.e164.startswith("+") and result.e164[1:].isdigit()


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["1", "44", "7", "39", "47", "61", "262", "590", "599", "212", "800", "870"]),
    st.text(alphabet="0123456789", min_size=4, max_size=12),
)
def test_validity_is_exactly_is_valid_number_for_shared_country_codes(
    country_code: str, national: str
) -> None:
    raw = f"+{country_code}{national}"
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return
    result = normalise_number(raw, None)
    assert (result.e164 is not None) == phonenumbers.is_valid_number(parsed)
    if result.e164 is not None:
        assert result.region == phonenumbers.region_code_for_number(parsed)
        assert result.number_type == _type_name(phonenumbers.number_type(parsed))
        zones = timezone.time_zones_for_number(parsed)
        assert result.timezones == tuple(zone for zone in zones if zone != "Etc/Unknown")


def _type_name(kind: int) -> str:
    names = vars(phonenumbers.PhoneNumberType)
    return next(name.lower() for name, value in names.items() if value == kind and name.isupper())


def test_worker_fields_carry_the_same_result_and_policy() -> None:
    cells = ["+44 800 123 4567", "+44 7911 123456 ext 12", "+44 9098 790000", "call me"]
    for raw, fields in zip(cells, normalise_batch([(raw, None) for raw in cells]), strict=True):
        assert PhoneResult(*fields) == normalise_number(raw, None)
        strict = apply_policy_fields(fields, allow_toll_free=False, allow_voip=False)
        assert PhoneResult(*strict) == normalise(raw, None, allow_toll_free=False, allow_voip=False)
    assert "toll-free" in (normalise("+44 800 123 4567", None, allow_toll_free=False).reason or "")
