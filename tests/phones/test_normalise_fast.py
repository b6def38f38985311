"""normalise_number gives what the plain phonenumbers calls give, for every kind of number.

normalise_number types each number once (region, type and validity together) and derives
the timezones and the NANP state from that type. The reference below asks phonenumbers
the plain way (is_valid_number, region_code_for_number, number_type,
time_zones_for_number, the geocoder) and the results must be identical, field by field.
"""

from __future__ import annotations

import functools
import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import (
    NumberParseException,
    PhoneNumberFormat,
    PhoneNumberType,
    geocoder,
    timezone,
)

from campaign.phones.normalise import (
    _FORBIDDEN_TYPES,
    _NANP_REGIONS,
    _PUNCTUATION,
    _TYPE_NAMES,
    _VANITY,
    PARSE_CHECKED_WITH,
    UNKNOWN_CA_PROVINCE,
    UNKNOWN_US_STATE,
    PhoneResult,
    _clean_text,
    _nanp_quick,
    _parse_number,
    _parse_reason,
    _plain,
    _repair_excel,
    _strip_extension_words,
    build_nanp_tables,
    normalise_batch,
    normalise_number,
    phone_fields,
    state_from_description,
)

Parsed = phonenumbers.PhoneNumber


def _valid(number: Parsed) -> bool:
    return bool(phonenumbers.is_valid_number(number))


def _reference_parse(text: str, region: str | None, notes: list[str]) -> Parsed | str:
    candidates = [(text, "")]
    compact = _PUNCTUATION.sub("", text) if text.startswith(("0", "(0")) else ""
    for prefix in ("00", "011"):
        if compact.startswith(prefix) and not compact.startswith(prefix + "0"):
            candidates.append(
                ("+" + compact[len(prefix) :], f"{prefix} read as the international prefix")
            )
    if len(candidates) > 1 and compact.startswith("00") and region in _NANP_REGIONS:
        candidates.reverse()
    reason = "not a phone number"
    first = None
    for candidate, note in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException as exc:
            reason = _parse_reason(exc, region)
            continue
        if _valid(number):
            if note and region is not None:
                notes.append(note)
            return number
        first = first or number
    return first if first is not None else reason


def _reference_state(number: Parsed, npa_states: dict[str, str]) -> str | None:
    state = npa_states.get(str(number.national_number)[:3])
    return state or state_from_description(geocoder.description_for_number(number, "en"))


def reference(raw: str, region: str | None, npa_states: dict[str, str]) -> PhoneResult:
    """normalise_number written with the plain phonenumbers calls."""
    text, notes = _clean_text(raw)
    if not text:
        return PhoneResult(None, "no phone number")
    text, excel_note, excel_error = _repair_excel(text)
    if excel_error:
        return PhoneResult(None, excel_error)
    if excel_note:
        notes.append(excel_note)
    if _VANITY.search(_strip_extension_words(text)):
        notes.append("vanity letters converted to digits")
    number = _reference_parse(text, region, notes)
    if isinstance(number, str):
        return PhoneResult(None, number)
    if text.isdigit() and not _valid(number):
        repairs = []
        for candidate, note in (
            ("0" + text, "leading zero restored"),
            ("+" + text, "read as international (leading 00 or + lost)"),
        ):
            try:
                repaired = phonenumbers.parse(candidate, region)
            except NumberParseException:
                continue
            if _valid(repaired):
                repairs.append((repaired, note))
        if len(repairs) == 1:
            notes.append(repairs[0][1])
            number = repairs[0][0]
    number_region = phonenumbers.region_code_for_number(number)
    if not _valid(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        why = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "area code missing",
        }.get(possible, "no such number range")
        home = number_region or phonenumbers.region_code_for_country_code(number.country_code)
        where = f" for {home}" if home and home not in ("ZZ", "001") else ""
        return PhoneResult(None, f"not a valid phone number{where} ({why})", region=number_region)
    kind = phonenumbers.number_type(number)
    extension = number.extension or None
    if extension:
        notes.append(f"extension {extension} not dialled: the call reaches the main number only")
    zones = tuple(z for z in timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    state = None
    if number.country_code == 1 and number_region in ("US", "CA"):
        state = _reference_state(number, npa_states)
        if state is None:
            state = UNKNOWN_US_STATE if number_region == "US" else UNKNOWN_CA_PROVINCE
    return PhoneResult(
        phonenumbers.format_number(number, PhoneNumberFormat.E164),
        _FORBIDDEN_TYPES.get(kind),
        number_region,
        _TYPE_NAMES.get(kind, "unknown"),
        extension,
        zones,
        state,
        "; ".join(notes) or None,
    )


_TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper()]
_JUNK = ["", " ", "n/a", "unknown", "call me", "12345", "0000000000", "+", "++44", "tel:", "x12"]
_JUNK += ["1-800-FLOWERS", "+1 800 GOT JUNK", "4.47911123456E+11", "6.1E+08", "212.5", "=+33"]


def _styles(number: Parsed, rng: random.Random) -> list[str]:
    """A number written as CRM exports write it (some of them now invalid or foreign)."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    cells = [e164, national, international, e164[1:], "00" + e164[1:], "011 " + e164[1:]]
    national_digits = "".join(c for c in national if c.isdigit())
    cells += [national.replace(" ", "-"), national_digits, national_digits.lstrip("0")]
    cells += [national_digits.lstrip("0")]  # Excel dropped the trunk 0: twice as likely
    cells += [national + " ext. " + str(rng.randint(1, 9999)), international + " x" + "7"]
    cells += [e164 + ".0", f"({e164[1:4]}) {e164[4:]}", "'" + e164, "\u200b" + international]
    digits = list(e164[1:])
    for _ in range(2):  # a slip of the finger: a digit changed, lost or doubled
        index = rng.randrange(len(digits))
        slip = rng.choice(["change", "drop", "double"])
        mutated = digits[:]
        if slip == "change":
            mutated[index] = rng.choice("0123456789")
        elif slip == "drop":
            del mutated[index]
        else:
            mutated.insert(index, mutated[index])
        cells.append("+" + "".join(mutated))
        cells.append("".join(mutated[len(str(number.country_code)) :]))
    return cells


def generated_cells(seed: int = 13) -> list[tuple[str, str | None]]:
    """A few thousand messy (raw, region) cells of every region and number type."""
    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    cells: list[tuple[str, str | None]] = []
    examples = []
    for region in regions:
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                examples.append((region, example))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            examples.append(("001", example))
    for home, example in rng.sample(examples, 320):
        for cell in rng.sample(_styles(example, rng), 6):
            region = rng.choice([home, home, None, "US", "GB", rng.choice(regions)])
            cells.append((cell, None if region == "001" else region))
    # NANP: every kind of area code (geographic, per-exchange, toll-free, non-geographic,
    # unassigned), read in the US, in Canada, in another NANP region and with no region
    for _ in range(900):
        npa = rng.choice(["212", "416", "800", "888", "500", "600", "700", "900", "456"])
        npa = npa if rng.random() < 0.5 else str(rng.randint(200, 999))
        exchange = rng.randint(200, 999)
        raw = rng.choice(["+1 {} {} {}", "({}) {}-{}", "1-{}-{}-{}", "{}{}{}", "{}.{}.{} x9"])
        cell = raw.format(npa, exchange, f"{rng.randint(0, 9999):04d}")
        cells.append((cell, rng.choice(["US", "CA", "JM", "PR", None])))
    for _ in range(400):  # random digits of random lengths in random regions
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 17)))
        cells.append((rng.choice(["", "+", "0", "00"]) + digits, rng.choice([*regions, None])))
    cells += [(junk, rng.choice(["US", "FR", None])) for junk in _JUNK]
    # Italian landlines keep their 0 after the country code: Excel drops it
    cells += [(f"6{rng.randint(10_000_000, 99_999_999)}", "IT") for _ in range(20)]
    return cells


@functools.cache
def _npa_states() -> dict[str, str]:
    return build_nanp_tables().npa


@pytest.fixture(scope="module")
def npa_states() -> dict[str, str]:
    return _npa_states()


def test_results_are_those_of_the_plain_phonenumbers_calls(npa_states: dict[str, str]) -> None:
    cells = generated_cells()
    ours = normalise_batch(cells)
    theirs = [phone_fields(reference(raw, region, npa_states)) for raw, region in cells]
    differences = [
        (cell, mine, ref)
        for cell, mine, ref in zip(cells, ours, theirs, strict=True)
        if mine != ref
    ]
    assert differences == []
    # the cells cover what the fast path must get right, so the comparison means something
    results = [PhoneResult(*fields) for fields in ours]
    kinds = {r.number_type for r in results if r.e164}
    assert {"toll_free", "voip", "mobile", "fixed_line", "fixed_line_or_mobile"} <= kinds
    assert {"premium_rate", "shared_cost", "uan", "pager", "personal_number"} <= kinds
    assert sum(1 for r in results if r.e164 is None) > 500  # invalid and junk
    assert sum(1 for r in results if r.extension) > 100
    assert sum(1 for r in results if r.us_state == UNKNOWN_US_STATE) > 50
    assert sum(1 for r in results if r.us_state == UNKNOWN_CA_PROVINCE) > 10
    assert sum(1 for r in results if r.us_state not in (None, "US-?", "CA-?")) > 200
    assert len({r.region for r in results if r.e164}) > 150
    no_region = [r for (_, region), r in zip(cells, results, strict=True) if region is None]
    assert sum(1 for r in no_region if r.e164) > 120
    assert sum(1 for r in results if r.note and "zero restored" in r.note) > 10
    assert sum(1 for r in results if r.note and "+ lost" in r.note) > 20
    assert sum(1 for r in results if r.note and "international prefix" in r.note) > 20


def test_each_cell_alone_gives_what_the_batch_gives() -> None:
    cells = generated_cells(seed=5)[::7]
    assert [phone_fields(normalise_number(*cell)) for cell in cells] == normalise_batch(cells)


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text("0123456789", min_size=2, max_size=16),
    prefix=st.sampled_from(["", "+", "0", "00", "011", "1", "+1", "+44", "+7", "+39", "+262"]),
    region=st.sampled_from(["US", "CA", "GB", "IT", "RU", "KZ", "AU", "FR", "RE", "BQ", None]),
)
def test_any_digits_in_a_shared_country_code_agree(
    digits: str, prefix: str, region: str | None
) -> None:
    # country codes several regions share are where the region is found by typing the number
    raw = prefix + digits
    assert normalise_number(raw, region) == reference(raw, region, _npa_states())


def _parsed(raw: str, region: str | None) -> tuple[object, ...]:
    """What parse() gives (every field of the number) or the error it raises."""
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        return ("error", exc.error_type)
    return _fields(number)


def _fields(number: Parsed) -> tuple[object, ...]:
    return (
        number.country_code,
        number.national_number,
        number.extension,
        number.italian_leading_zero,
        number.number_of_leading_zeros,
        number.raw_input,
        number.country_code_source,
        number.preferred_domestic_carrier_code,
    )


def _ours(raw: str, region: str | None) -> tuple[object, ...]:
    try:
        number = _parse_number(raw, region)
    except NumberParseException as exc:
        return ("error", exc.error_type)
    return _fields(number)


def test_the_quick_parse_was_checked_against_this_phonenumbers() -> None:
    assert phonenumbers.__version__ == PARSE_CHECKED_WITH, (
        "phonenumbers was upgraded: compare _parse_plain with the new parse() line by line, "
        "run these tests, then update PARSE_CHECKED_WITH"
    )


def test_plain_cells_parse_as_phonenumbers_parses_them() -> None:
    rng = random.Random(29)
    regions = [*sorted(phonenumbers.SUPPORTED_REGIONS), None, "ZZ", "us"]
    heads = ["", "", "+", "0", "00", "011 ", "+0", "+00", "1", "+1", "8", "810", "+7", "0039"]
    cells = []
    for _ in range(20_000):
        body = "".join(
            rng.choice("0123456789") if rng.random() < 0.8 else rng.choice(" ().-")
            for _ in range(rng.randint(1, 18))
        )
        cells.append((rng.choice(heads) + body, rng.choice(regions)))
    # text around the number: extensions, labels, marks parse() drops or refuses
    extras = [" ext. ", " x", "x", "#", ",", ",,", "Tel: ", "/", "*", "~", ";", "a", "extn", ":"]
    pieces = [*"0123456789" * 6, *" ().-", *extras]
    for _ in range(10_000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 22)))
        cells.append((rng.choice([*heads, "Tel: ", "(", "x"]) + body, rng.choice(regions)))
    cells += [(raw, region) for raw, region in generated_cells() if region != "001"]
    differences = [cell for cell in cells if _ours(*cell) != _parsed(*cell)]
    assert differences == []
    assert sum(1 for cell in cells if _parsed(*cell)[0] != "error" and _parsed(*cell)[2]) > 500
    # most of them took the quick path, and it yields numbers as well as each kind of error
    assert sum(1 for raw, _ in cells if _plain(raw) is not None) > 15_000
    outcomes = {_parsed(*cell)[0] for cell in cells if _plain(cell[0]) is not None}
    assert "error" in outcomes and len(outcomes) > 50
    errors = {_parsed(*cell)[1] for cell in cells if _plain(cell[0]) is not None}
    assert {
        NumberParseException.INVALID_COUNTRY_CODE,
        NumberParseException.TOO_SHORT_NSN,
        NumberParseException.TOO_LONG,
    } <= errors


@settings(max_examples=300, deadline=None)
@given(
    raw=st.from_regex(r"\A\+?[0-9][0-9 ().\-]{0,20}\Z"),
    region=st.sampled_from(["US", "CA", "GB", "IT", "DE", "RU", "BR", "AR", "MX", "JP", None]),
)
def test_any_plain_cell_parses_as_phonenumbers_parses_it(raw: str, region: str | None) -> None:
    assert _ours(raw, region) == _parsed(raw, region)


def _nanp_cells(rng: random.Random) -> list[tuple[str, str | None]]:
    """NANP numbers in every shape the quick path takes, and near misses, in every region
    that reads them (with "+1", any region reads them; without it, only NANP regions)."""
    regions = [*sorted(_NANP_REGIONS), None, "GB", "FR", "MX", "ZZ"]
    heads = ["", "1", "+1", "1 ", "+1 ", "1-", "+1-", "1.", "+1.", "+", "+1  ", "01", "11"]
    seps = ["", " ", "-", ".", "  ", "/"]
    cells = []
    for head in heads:
        for bracket in (False, True):
            for first in seps:
                for second in seps:
                    npa = str(rng.randint(100, 999))
                    area = f"({npa})" if bracket else npa
                    body = (
                        f"{area}{first}{rng.randint(0, 999):03d}{second}{rng.randint(0, 9999):04d}"
                    )
                    cells.append((head + body, rng.choice(regions)))
    for npa in range(200, 1000):  # every area code: US, Canadian, Caribbean, toll-free, none
        for region in ("US", "CA", rng.choice(regions)):
            line = f"{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
            cells.append((rng.choice(["", "1 ", "+1 "]) + f"({npa}) {line}", region))
            cells.append((f"{npa}{line.replace('-', '')}", region))
    for _ in range(2000):  # digits of nearly the right length
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(9, 12)))
        cells.append((rng.choice(["", "+", "+1", "1"]) + digits, rng.choice(regions)))
    return cells


def test_a_plainly_written_nanp_number_gives_what_the_plain_calls_give(
    npa_states: dict[str, str],
) -> None:
    # Most North American cells skip parse() (_nanp_quick): each one here, in each region,
    # must give the same fields as phonenumbers asked the plain way.
    cells = _nanp_cells(random.Random(41))
    differences = [
        (cell, ours, theirs)
        for cell in cells
        if (ours := phone_fields(normalise_number(*cell)))
        != (theirs := phone_fields(reference(*cell, npa_states)))
    ]
    assert differences == []
    quick = [cell for cell in cells if _nanp_quick(_clean_text(cell[0])[0], cell[1])]
    assert len(quick) > len(cells) // 3  # the comparison is mostly of the quick path
    assert {region for _, region in quick} >= {"US", "CA", "JM", "PR", None, "GB"}
    kinds = {phone_fields(normalise_number(*cell))[3] for cell in quick}
    assert {"toll_free", "fixed_line_or_mobile", "personal_number"} <= kinds


@settings(max_examples=400, deadline=None)
@given(
    raw=st.from_regex(r"\A(\+?1[ .\-]?)?(\([0-9]{3}\)|[0-9]{3})[ .\-]?[0-9]{3}[ .\-]?[0-9]{4}\Z"),
    region=st.sampled_from(["US", "CA", "JM", "PR", "AG", "DO", "GB", "MX", None]),
)
def test_any_cell_of_the_nanp_shape_agrees(raw: str, region: str | None) -> None:
    assert normalise_number(raw, region) == reference(raw, region, _npa_states())
