"""Phone normalisation: a messy CRM cell → E.164, or a reason a person understands.

Validity is phonenumbers' ``is_valid_number``; the number type, timezones and (for NANP
numbers) the US state or Canadian province come from the same metadata. Results are pure
functions of (raw, region), which is what lets ``PhoneCache`` parse each distinct raw
value once and lets a process pool share the work.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, NumberParseException, PhoneNumberType
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from campaign.store.memo_text import encode_fields

# Number types nobody should be dialled on by an outbound campaign: they cost the caller
# (premium rate, shared cost), are not people (pager, voicemail access) or route to
# a company switchboard (UAN).
_FORBIDDEN_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
    PhoneNumberType.UAN: "universal access number (UAN)",
    PhoneNumberType.PAGER: "pager number",
    PhoneNumberType.VOICEMAIL: "voicemail access number",
}
_TYPE_NAMES = {
    value: name.lower()
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}
_EXCEL_SCIENTIFIC = re.compile(r"^\+?(\d)(?:\.(\d+))?[eE]\+?(\d{1,2})$")
_EXCEL_DECIMAL = re.compile(r"^(\+?\d+)\.0+$")
_IGNORED = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad'\"=]")  # invisible, quotes
_VANITY = re.compile(r"[A-Za-z].*[A-Za-z].*[A-Za-z]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_PUNCTUATION = re.compile(r"[\s().\-/]")  # what separates digit groups
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
_UNKNOWN_TZ = "Etc/Unknown"


@dataclass(slots=True)
class PhoneResult:
    """The outcome of normalising one raw phone cell (shared through caches: do not mutate)."""

    e164: str | None
    reason: str | None = None
    region: str | None = None
    number_type: str = "unknown"
    extension: str | None = None
    timezones: tuple[str, ...] = ()
    us_state: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True when the number may be dialled (as far as the number itself tells)."""
        return self.e164 is not None and self.reason is None


def has_country_code(raw: str) -> bool:
    """True when a cell carries its own country: ``+44 …``, ``0044 …`` or ``011 44 …``.

    Such a number needs no region, so an unusable region cell never rejects it.
    """
    text, _ = _clean_text(raw)
    if text.startswith("+"):
        return True
    compact = _PUNCTUATION.sub("", text)
    if compact.startswith("011"):
        # 12 digits at least (011 298 123456): a national number such as the French
        # 01 12 34 56 78 also starts with 011
        return len(compact) - len(compact.lstrip("0123456789")) >= 12
    return compact.startswith("00") and not compact.startswith("000")


def normalise(
    raw: str,
    region: str | None,
    *,
    allow_toll_free: bool = True,
    allow_voip: bool = True,
) -> PhoneResult:
    """Normalise one raw phone cell read in ``region`` (ISO alpha-2, or None)."""
    return apply_policy(
        normalise_number(raw, region), allow_toll_free=allow_toll_free, allow_voip=allow_voip
    )


def apply_policy(result: PhoneResult, *, allow_toll_free: bool, allow_voip: bool) -> PhoneResult:
    """Reject toll-free or VoIP numbers when the campaign file says so."""
    if result.reason is None and result.e164 is not None:
        if result.number_type == "toll_free" and not allow_toll_free:
            return replace(result, reason="toll-free number (input.allow_toll_free is false)")
        if result.number_type == "voip" and not allow_voip:
            return replace(result, reason="VoIP number (input.allow_voip is false)")
    return result


def normalise_number(raw: str, region: str | None) -> PhoneResult:
    """Normalise without any campaign policy; a pure function of its arguments."""
    return PhoneResult(*normalise_fields(raw, region))


def normalise_fields(raw: str, region: str | None) -> PhoneFields:
    """``normalise_number`` as a tuple (what a batch sends back: no object per number)."""
    text, notes = _clean_text(raw)
    if not text:
        return _failed("no phone number")
    text, excel_note, excel_error = _repair_excel(text)
    digits_only = text.isdigit()
    if excel_error:
        return _failed(excel_error)
    if excel_note:
        notes.append(excel_note)
    # cheap test before the regexes: _VANITY needs three ASCII letters
    if _ASCII_LETTER.search(text) and _VANITY.search(_strip_extension_words(text)):
        notes.append("vanity letters converted to digits")
    if not notes and (quick := _nanp_quick(text, region)) is not None:
        return quick
    parsed = _parse(text, region, notes)
    if isinstance(parsed, str):
        return _failed(parsed)
    if digits_only and parsed.kind == PhoneNumberType.UNKNOWN:
        parsed = _lost_leading_zero(text, region, parsed, notes)
    return _describe(parsed, notes)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A parsed number with its region and type, each computed once (they are the cost)."""

    number: phonenumbers.PhoneNumber
    region: str | None
    kind: int


def _classify(number: phonenumbers.PhoneNumber) -> _Parsed:
    """Region and type of a number; type UNKNOWN exactly when is_valid_number() is false.

    is_valid_number(n) is is_valid_number_for_region(n, region_code_for_number(n)), which
    is "type matcher on that region's metadata != UNKNOWN" — the same matcher and metadata
    number_type() uses. This is region_code_for_number() and _number_type_helper() once
    each, fused: where region_code_for_number() finds the region by matching the type (a
    NANP number, say), that type is the answer, not matched again.
    """
    country_code = number.country_code or 0
    if country_code not in COUNTRY_CODE_TO_REGION_CODE:
        return _Parsed(number, None, PhoneNumberType.UNKNOWN)
    nsn = phonenumbers.national_significant_number(number)
    return _Parsed(number, *_classify_nsn(country_code, nsn))


def _classify_nsn(country_code: int, nsn: str) -> tuple[str | None, int]:
    """``_classify`` of the number with this country code and national significant number."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return None, PhoneNumberType.UNKNOWN
    region = regions[0]
    if len(regions) > 1:  # _region_code_for_number_from_list(), as phonenumbers does it
        found = None
        for candidate in regions:
            metadata = PhoneMetadata.metadata_for_region(candidate.upper(), None)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                if _compiled(metadata.leading_digits).match(nsn):
                    found = candidate
                    break
            else:
                kind = _type_matcher(metadata)(nsn)
                if kind != PhoneNumberType.UNKNOWN:
                    return candidate, kind
        if found is None:
            return None, PhoneNumberType.UNKNOWN
        region = found
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return region, PhoneNumberType.UNKNOWN
    return region, _type_matcher(metadata)(nsn)


_compiled = functools.cache(re.compile)
_TypeMatcher = Callable[[str], int]
_TYPE_MATCHERS: dict[int, tuple[PhoneMetadata, _TypeMatcher]] = {}


def _type_matcher(metadata: PhoneMetadata) -> _TypeMatcher:
    """phonenumbers' ``_number_type_helper(nsn, metadata)`` as a function of ``nsn``.

    The same descriptions in the same order, with their patterns compiled once: the
    library looks each pattern up again (``re_compile``) on every test, which is most of
    what typing a number costs.
    """
    entry = _TYPE_MATCHERS.get(id(metadata))
    if entry is None or entry[0] is not metadata:
        entry = (metadata, _build_type_matcher(metadata))
        _TYPE_MATCHERS[id(metadata)] = entry
    return entry[1]


_Desc = tuple[frozenset[int], re.Pattern[str]] | None


def _desc(number_desc: PhoneNumberDesc | None) -> _Desc:
    """``_is_number_matching_desc``'s inputs: None when it can never match.

    The library's test is "length among the possible ones (when any are listed) and
    ``pattern.match`` and ``fullmatch``": a full match is a match at the start, so the
    full match alone decides.
    """
    if number_desc is None or not number_desc.national_number_pattern:
        return None
    pattern = _compiled(number_desc.national_number_pattern)
    return frozenset(number_desc.possible_length or ()), pattern


def _build_type_matcher(metadata: PhoneMetadata) -> _TypeMatcher:
    general = _desc(metadata.general_desc)
    special = [
        (kind, *desc)
        for kind, desc in (
            (PhoneNumberType.PREMIUM_RATE, _desc(metadata.premium_rate)),
            (PhoneNumberType.TOLL_FREE, _desc(metadata.toll_free)),
            (PhoneNumberType.SHARED_COST, _desc(metadata.shared_cost)),
            (PhoneNumberType.VOIP, _desc(metadata.voip)),
            (PhoneNumberType.PERSONAL_NUMBER, _desc(metadata.personal_number)),
            (PhoneNumberType.PAGER, _desc(metadata.pager)),
            (PhoneNumberType.UAN, _desc(metadata.uan)),
            (PhoneNumberType.VOICEMAIL, _desc(metadata.voicemail)),
        )
        if desc is not None
    ]
    fixed = _desc(metadata.fixed_line)
    mobile = _desc(metadata.mobile)
    same = bool(metadata.same_mobile_and_fixed_line_pattern)

    def matches(desc: _Desc, nsn: str) -> bool:
        if desc is None:
            return False
        lengths, pattern = desc
        return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None

    def number_type(nsn: str) -> int:
        if not matches(general, nsn):
            return PhoneNumberType.UNKNOWN
        size = len(nsn)
        for kind, lengths, pattern in special:  # matches(), inlined: the hot loop
            if (not lengths or size in lengths) and pattern.fullmatch(nsn) is not None:
                return kind
        if matches(fixed, nsn):
            if same or matches(mobile, nsn):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not same and matches(mobile, nsn):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN

    return number_type


def _clean_text(raw: str) -> tuple[str, list[str]]:
    """Unicode digits → ASCII, odd spaces → space, invisible characters and quotes dropped."""
    notes: list[str] = []
    if raw.isascii():  # the common case: no unicode digits, spaces or plus signs to map
        # the regex only for the few cells with an ASCII character it drops (quotes, =)
        text = _IGNORED.sub("", raw) if "'" in raw or '"' in raw or "=" in raw else raw
        text = " ".join(text.split())
        if text[:4].lower() == "tel:":
            text = text[4:].strip()
        return text, notes
    chars = []
    for char in _IGNORED.sub("", raw):
        if char.isdigit() and not char.isascii():
            chars.append(str(unicodedata.digit(char, 0)))
        elif char.isspace():
            chars.append(" ")
        elif char in "\uff0b\u2795":  # fullwidth and heavy plus signs
            chars.append("+")
        else:
            chars.append(char)
    text = " ".join("".join(chars).split())
    if text.lower().startswith("tel:"):
        text = text[4:].strip()
    return text, notes


def _repair_excel(text: str) -> tuple[str, str | None, str | None]:
    """Undo Excel's number formatting: ``4.47911123456E+11`` and a trailing ``.0``."""
    if "." not in text and "E" not in text and "e" not in text:  # most cells: neither form
        return text, None, None
    match = _EXCEL_SCIENTIFIC.match(text)
    if match:
        head, tail, exponent = match.group(1), match.group(2) or "", int(match.group(3))
        if len(tail) > exponent:
            return text, None, "not a phone number (a decimal number)"
        if len(head + tail) < exponent + 1 and exponent >= 6:
            # Excel kept fewer significant digits than the number had: the rest are lost
            return text, None, "damaged by Excel (scientific notation lost digits)"
        return head + tail + "0" * (exponent - len(tail)), "Excel damage repaired", None
    match = _EXCEL_DECIMAL.match(text)
    if match:
        return match.group(1), "Excel damage repaired", None
    return text, None, None


def _strip_extension_words(text: str) -> str:
    return re.sub(r"(?i)\b(ext|extn|extension|x)\b\.?\s*\d+\s*$", "", text)


def _parse(text: str, region: str | None, notes: list[str]) -> _Parsed | str:
    """Parse with the row's region; international prefixes 00/011 also without a region."""
    candidates = [(text, "")]
    compact = _PUNCTUATION.sub("", text) if text.startswith(("0", "(0")) else ""
    for prefix in ("00", "011"):
        if compact.startswith(prefix) and not compact.startswith(prefix + "0"):
            note = f"{prefix} read as the international prefix"
            candidates.append(("+" + compact[len(prefix) :], note))
    if len(candidates) > 1 and compact.startswith("00") and region in _NANP_REGIONS:
        # No NANP number starts with 0, and judging one is the dearest check there is
        # (every NANP region is tried in turn), so read 00 as international first.
        candidates.reverse()
    reason = "not a phone number"
    first: _Parsed | None = None
    for candidate, note in candidates:
        try:
            parsed = _classify(_parse_number(candidate, region))
        except NumberParseException as exc:
            reason = _parse_reason(exc, region)
            continue
        if parsed.kind != PhoneNumberType.UNKNOWN:
            if note and region is not None:  # with no region, 00/011 are the obvious reading
                notes.append(note)
            return parsed
        first = first or parsed
    return first if first is not None else reason


_PLAIN = re.compile(r"\+?[0-9][0-9 ().\-]*")  # digits, ASCII separators, a leading +
_SEPARATORS = re.compile(r"[ ().\-]+")
# The phonenumbers release _parse_plain() was checked against, line by line, with parse().
PARSE_CHECKED_WITH = "9.0.43"
_QUICK_PARSE = phonenumbers.__version__ == PARSE_CHECKED_WITH


def _parse_number(text: str, region: str | None) -> phonenumbers.PhoneNumber:
    """``phonenumbers.parse(text, region)``, quicker for the common plain cell."""
    if len(text) > 250 or not _QUICK_PARSE:
        return phonenumbers.parse(text, region)
    plain = _plain(text)
    if plain is not None:
        return _parse_plain(plain, region)
    if text.isascii() and ";" not in text:  # ";": RFC 3966 parameters, parse()'s business
        # parse()'s first steps: the possible number in the text, viable, its extension
        national = _pnu._extract_possible_number(text)
        if _pnu._is_viable_phone_number(national):
            extension, rest = _pnu._maybe_strip_extension(national)
            plain = _plain(rest)
            if plain is not None:  # and the rest of parse() on a plain number
                number = _parse_plain(plain, region)
                if extension:
                    number.extension = extension
                return number
    return phonenumbers.parse(text, region)


def _plain(text: str) -> str | None:
    """``text`` without its separators when parse() reads both the same way, else None.

    parse() drops these separators itself, after walking every character several times
    (a unicode digit lookup per character). Not for anything else (letters, extensions,
    unicode), fewer than 3 digits (``1 2`` is no number but ``12`` is) or strings too long
    to parse.
    """
    if len(text) > 250 or not _PLAIN.fullmatch(text):
        return None
    plain = _SEPARATORS.sub("", text)
    return plain if len(plain.lstrip("+")) >= 3 else None


def _parse_plain(number: str, region: str | None) -> phonenumbers.PhoneNumber:
    """phonenumbers' parse() for ``number`` of 3 digits or more after an optional "+".

    The library's own steps, minus what such a string makes moot: it is its own possible
    number (no RFC 3966 context, nothing to trim, viable), has no extension and is already
    normalised (the per-character digit normalisation is the identity on ASCII digits).
    """
    numobj = phonenumbers.PhoneNumber()
    if not _pnu._check_region_for_parsing(number, region):
        raise NumberParseException(
            NumberParseException.INVALID_COUNTRY_CODE, "Missing or invalid default region."
        )
    metadata = None if region is None else PhoneMetadata.metadata_for_region(region.upper(), None)
    try:
        country_code, national = _plain_country_code(number, metadata, numobj)
    except NumberParseException as exc:
        plus = number.startswith("+")
        if exc.error_type != NumberParseException.INVALID_COUNTRY_CODE or not plus:
            raise
        country_code, national = _plain_country_code(number[1:], metadata, numobj)
        if country_code == 0:
            raise NumberParseException(
                NumberParseException.INVALID_COUNTRY_CODE,
                "Could not interpret numbers after plus-sign.",
            ) from None
    if country_code != 0:
        number_region = phonenumbers.region_code_for_country_code(country_code)
        if number_region != region:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(
                country_code, number_region
            )
    else:
        national += number  # no "+" here: with one, a country code was found or raised
        if region is not None:
            assert metadata is not None  # _check_region_for_parsing: a valid region
            numobj.country_code = metadata.country_code
    if len(national) < _pnu._MIN_LENGTH_FOR_NSN:
        raise NumberParseException(
            NumberParseException.TOO_SHORT_NSN,
            "The string supplied is too short to be a phone number.",
        )
    if metadata is not None:
        _, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
        if _pnu._test_number_length(potential, metadata) not in (
            phonenumbers.ValidationResult.TOO_SHORT,
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            phonenumbers.ValidationResult.INVALID_LENGTH,
        ):
            national = potential
    if len(national) < _pnu._MIN_LENGTH_FOR_NSN:
        raise NumberParseException(
            NumberParseException.TOO_SHORT_NSN,
            "The string supplied is too short to be a phone number.",
        )
    if len(national) > _pnu._MAX_LENGTH_FOR_NSN:
        raise NumberParseException(
            NumberParseException.TOO_LONG, "The string supplied is too long to be a phone number."
        )
    _pnu._set_italian_leading_zeros_for_phone_number(national, numobj)
    numobj.national_number = int(national)
    return numobj


def _plain_country_code(
    number: str, metadata: PhoneMetadata | None, numobj: phonenumbers.PhoneNumber
) -> tuple[int, str]:
    """phonenumbers' _maybe_extract_country_code() for a plain (normalised) number."""
    if not number:
        return 0, ""
    if number.startswith("+"):
        source, full_number = _WITH_PLUS, number.lstrip("+")
    else:
        idd = "NonMatch"
        if metadata is not None and metadata.international_prefix is not None:
            idd = metadata.international_prefix
        stripped, full_number = _pnu._parse_prefix_as_idd(_compiled(idd), number)
        source = _WITH_IDD if stripped else _DEFAULT_COUNTRY
    if source != _DEFAULT_COUNTRY:
        if len(full_number) <= _pnu._MIN_LENGTH_FOR_NSN:
            raise NumberParseException(
                NumberParseException.TOO_SHORT_AFTER_IDD,
                "Phone number had an IDD, but after this was not "
                "long enough to be a viable phone number.",
            )
        country_code, rest = _pnu._extract_country_code(full_number)
        if country_code != 0:
            numobj.country_code = country_code
            return country_code, rest
        raise NumberParseException(
            NumberParseException.INVALID_COUNTRY_CODE,
            "Country calling code supplied was not recognised.",
        )
    if metadata is not None:
        own = metadata.country_code  # never None: "None" would start no digits anyway
        own_code = str(own)
        if own is not None and full_number.startswith(own_code):
            general_desc = metadata.general_desc
            _, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(
                full_number[len(own_code) :], metadata
            )
            if (
                not _pnu._match_national_number(full_number, general_desc, False)
                and _pnu._match_national_number(potential, general_desc, False)
            ) or _pnu._test_number_length(
                full_number, metadata
            ) == phonenumbers.ValidationResult.TOO_LONG:
                numobj.country_code = own
                return own, potential
    numobj.country_code = 0
    return 0, ""


_WITH_PLUS = phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN
_WITH_IDD = phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD
_DEFAULT_COUNTRY = phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY


def _parse_reason(exc: NumberParseException, region: str | None) -> str:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        if region is None:
            return "no country code and no region to read it in (set input.default_region)"
        return "unknown country code"
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return "too short to be a phone number"
    if kind == NumberParseException.TOO_LONG:
        return "too long to be a phone number"
    return "not a phone number"


def _lost_leading_zero(text: str, region: str | None, parsed: _Parsed, notes: list[str]) -> _Parsed:
    """A digits-only cell that is invalid as read may have lost a leading 0 or 00 to Excel."""
    repairs: list[tuple[_Parsed, str]] = []
    for candidate, note in (
        ("0" + text, "leading zero restored"),
        ("+" + text, "read as international (leading 00 or + lost)"),
    ):
        try:
            repaired = _classify(_parse_number(candidate, region))
        except NumberParseException:
            continue
        if repaired.kind != PhoneNumberType.UNKNOWN:
            repairs.append((repaired, note))
    if len(repairs) == 1:
        notes.append(repairs[0][1])
        return repairs[0][0]
    return parsed


def _failed(reason: str, region: str | None = None) -> PhoneFields:
    """The fields of a cell that gives no number (PhoneResult's defaults)."""
    return (None, reason, region, "unknown", None, (), None, None)


def _describe(parsed: _Parsed, notes: list[str]) -> PhoneFields:
    """Validity, type, timezones and NANP state of a parsed number."""
    number, region, kind = parsed.number, parsed.region, parsed.kind
    if kind == PhoneNumberType.UNKNOWN:
        possible = phonenumbers.is_possible_number_with_reason(number)
        why = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "area code missing",
        }.get(possible, "no such number range")
        home = region or phonenumbers.region_code_for_country_code(number.country_code or 0)
        where = f" for {home}" if home and home not in ("ZZ", "001") else ""
        return _failed(f"not a valid phone number{where} ({why})", region)
    nsn = phonenumbers.national_significant_number(number)
    return _valid_fields(number.country_code or 0, nsn, number.extension, region, kind, notes)


def _valid_fields(
    country_code: int,
    nsn: str,
    extension: str | None,
    region: str | None,
    kind: int,
    notes: list[str],
) -> PhoneFields:
    """The fields of a valid number of type ``kind`` (not UNKNOWN) in ``region``."""
    # format_number(number, E164) for a valid number (no raw-input case): "+", the
    # country code, the national significant number
    e164 = f"+{country_code}{nsn}"
    extension = extension or None
    if extension:
        notes.append(f"extension {extension} not dialled: the call reaches the main number only")
    zones = _timezones(country_code, kind, e164)
    us_state = None
    if country_code == 1 and region in ("US", "CA"):
        us_state = _nanp_state(nsn, kind)
        if us_state is None:  # no geography: the whole country's rules (fail closed)
            us_state = UNKNOWN_US_STATE if region == "US" else UNKNOWN_CA_PROVINCE
    note = "; ".join(notes) or None
    type_name = _TYPE_NAMES.get(kind, "unknown")
    reason = _FORBIDDEN_TYPES.get(kind)
    return (e164, reason, region, type_name, extension, zones, us_state, note)


# A NANP number as CRMs write it: "+1" or "1" perhaps, then ten digits whose area code may
# be in brackets, the groups split by at most one space, dot or hyphen each. parse() reads
# every such cell as country code 1 and these ten digits when it carries "+1" whatever the
# row's region, and in a NANP region without it (tests/phones: every shape, every region).
_NANP_SHAPE = re.compile(
    r"(?:(\+)?1[ .\-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d))[ .\-]?(\d{3})[ .\-]?(\d{4})"
)


def _nanp_quick(text: str, region: str | None) -> PhoneFields | None:
    """``normalise_fields`` of a valid NANP number of that shape, without parse(); None for
    any other cell (and for an invalid number, whose reasons the general path gives).

    Most of a North American list is such a cell, and parse() is most of what one costs.
    """
    if not _QUICK_PARSE:
        return None
    match = _NANP_SHAPE.fullmatch(text)
    if match is None:
        return None
    plus, bracketed, area, exchange, line = match.groups()
    if plus is None and region not in _NANP_REGIONS:
        return None  # "1 212 …" in another region is that region's number, or none
    nsn = f"{bracketed or area}{exchange}{line}"
    number_region, kind = _classify_nsn(1, nsn)
    if kind == PhoneNumberType.UNKNOWN:
        return None
    return _valid_fields(1, nsn, None, number_region, kind, [])


# A US number whose area code names no state (toll-free, non-geographic, geocoded per
# exchange only): the calling window applies the strictest of every state's rules.
UNKNOWN_US_STATE = "US-?"
# A Canadian number whose area code names no province: Canada's national (CRTC) rule.
UNKNOWN_CA_PROVINCE = "CA-?"


def _timezones(country_code: int, kind: int, e164: str) -> tuple[str, ...]:
    """phonenumbers.timezone's answer, without recomputing the type and the E.164 form."""
    if not phonenumbers.is_number_type_geographical(kind, country_code):
        return _country_zones(country_code)
    digits = e164[1:]
    # the same longest-prefix lookup as timezone.time_zones_for_geographical_number(),
    # trying only the prefix lengths the data has for the number's first two digits
    for length in _ZONE_PREFIX_LENGTHS.get(digits[:2], _ALL_LENGTHS):
        if length <= len(digits):
            zones = _ZONES.get(digits[:length])
            if zones is not None:
                return zones
    return ()


# TIMEZONE_DATA without the unknown zone, one shared tuple per prefix (a batch of answers
# pickles each once), and the prefix lengths it holds, longest first, per first two digits.
_ZONES = {
    prefix: tuple(zone for zone in zones if zone != _UNKNOWN_TZ)
    for prefix, zones in TIMEZONE_DATA.items()
}
_ALL_LENGTHS = tuple(range(TIMEZONE_LONGEST_PREFIX, 0, -1))


def _prefix_lengths() -> dict[str, tuple[int, ...]]:
    """Per first two digits: the lengths of the prefixes a number starting so can match."""
    found: dict[str, set[int]] = {}
    for prefix in TIMEZONE_DATA:
        if len(prefix) >= 2:
            found.setdefault(prefix[:2], set()).add(len(prefix))
    for start, lengths in found.items():
        if start[0] in TIMEZONE_DATA:  # a one-digit prefix ("7") matches too
            lengths.add(1)
    return {start: tuple(sorted(lengths, reverse=True)) for start, lengths in found.items()}


_ZONE_PREFIX_LENGTHS = _prefix_lengths()


@functools.cache
def _country_zones(country_code: int) -> tuple[str, ...]:
    """Zones of a country calling code (what phonenumbers gives non-geographic numbers)."""
    zones = TIMEZONE_DATA.get(str(country_code), ())
    return tuple(zone for zone in zones if zone != _UNKNOWN_TZ)


def _nanp_state(nsn: str, kind: int) -> str | None:
    """US state / Canadian province of the NANP number of national significant number
    ``nsn`` and type ``kind``, from its area code's geocoding."""
    tables = nanp_tables()
    state = tables.npa.get(nsn[:3])
    if state is None:  # a few area codes are only geocoded per exchange
        state = _exchange_state(nsn, kind, tables)
    return state


@dataclass(frozen=True)
class NanpTables:
    """What phonenumbers' English geocoding says of NANP numbers, as states/provinces."""

    npa: dict[str, str]  # area code → state or province code
    # '1…' prefixes for the area codes ``npa`` lacks → state, or None (no single one)
    prefixes: dict[str, str | None]


@functools.cache
def nanp_tables() -> NanpTables:
    """The tables of ``nanp_data`` when made from this phonenumbers release, else built.

    phonenumbers' geocoding data costs about 100 MB in every process that imports it
    (each pool worker too), so the few thousand entries used are kept in ``nanp_data``.
    """
    from campaign.phones import nanp_data

    if phonenumbers.__version__ == nanp_data.PHONENUMBERS_VERSION:
        return NanpTables(nanp_data.NPA_STATES, nanp_data.PREFIX_STATES)
    return build_nanp_tables()


def build_nanp_tables() -> NanpTables:
    """The tables from phonenumbers' geocoding data (``python -m campaign.phones.nanp_data``
    writes them to nanp_data.py after a phonenumbers upgrade)."""
    from phonenumbers.geodata import GEOCODE_DATA
    from phonenumbers.prefix import _find_lang

    npa = {}
    for prefix, names in GEOCODE_DATA.items():
        if len(prefix) == 4 and prefix.startswith("1"):
            state = state_from_description(names.get("en", ""))
            if state:
                npa[prefix[1:]] = state
    prefixes = {}
    for prefix, names in GEOCODE_DATA.items():
        if prefix.startswith("1") and prefix[1:4] not in npa:
            name = _find_lang(names, "en", None, None)
            if name is not None:
                prefixes[prefix] = state_from_description(name)
    return NanpTables(npa, prefixes)


def _exchange_state(nsn: str, kind: int, tables: NanpTables) -> str | None:
    """``state_from_description(geocoder.description_for_number(number, "en"))`` for a NANP
    number of type ``kind`` whose area code ``tables.npa`` lacks: its longest geocoded
    prefix decides."""
    if kind == PhoneNumberType.UNKNOWN or not phonenumbers.is_number_type_geographical(kind, 1):
        return None  # the geocoder gives the country's name: no state
    digits = "1" + nsn
    for length in range(len(digits), 0, -1):
        if digits[:length] in tables.prefixes:
            return tables.prefixes[digits[:length]]
    return None


def state_from_description(description: str) -> str | None:
    """'New York, NY' → 'NY'; 'Florida' → 'FL'; None when it is no single state/province."""
    match = re.search(r", ([A-Z]{2})$", description)
    if match:
        return match.group(1)
    return _STATE_CODES.get(description)


# phonenumbers' English geocoding names (US states, DC, Canadian provinces) → postal codes.
_STATE_CODES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington State": "WA", "Washington": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
    "Alberta": "AB", "British Columbia": "BC", "British Colombia": "BC", "Manitoba": "MB",
    "New Brunswick": "NB", "Newfoundland and Labrador": "NL", "Nova Scotia": "NS",
    "Ontario": "ON", "Quebec": "QC", "Saskatchewan": "SK", "Prince Edward Island": "PE",
}  # fmt: skip


class PhoneCache:
    """Normalise each distinct (raw, region) once; bounded so memory stays flat."""

    def __init__(
        self, *, allow_toll_free: bool = True, allow_voip: bool = True, max_entries: int = 300_000
    ) -> None:
        self.allow_toll_free = allow_toll_free
        self.allow_voip = allow_voip
        self.max_entries = max_entries
        self._results: dict[tuple[str, str | None], PhoneResult] = {}

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return key in self._results

    def get(self, raw: str, region: str | None) -> PhoneResult:
        """The policy-applied result for one cell, computing it if not cached."""
        key = (raw, region)
        result = self._results.get(key)
        if result is None:
            result = self.put(key, normalise_number(raw, region))
        return result

    def put(self, key: tuple[str, str | None], result: PhoneResult) -> PhoneResult:
        """Remember a result computed elsewhere (e.g. in a worker process), policy applied."""
        result = apply_policy(
            result, allow_toll_free=self.allow_toll_free, allow_voip=self.allow_voip
        )
        if len(self._results) >= self.max_entries:
            # Dropping everything is crude but keeps memory bounded with no bookkeeping
            # per hit; CRM duplicates cluster, so the cache refills with what matters.
            self._results.clear()
        self._results[key] = result
        return result


# PhoneResult's fields as a plain tuple: what a worker process sends back per number (it
# pickles ~20x faster than the dataclass) and what a plan caches (the garbage collector
# stops tracking a tuple of strings; hundreds of thousands of objects it scans add seconds).
PhoneFields = tuple[
    str | None, str | None, str | None, str, str | None, tuple[str, ...], str | None, str | None
]


def phone_fields(r: PhoneResult) -> PhoneFields:
    """The fields of a result, in PhoneResult's order."""
    return (r.e164, r.reason, r.region, r.number_type, r.extension, r.timezones, r.us_state, r.note)


def apply_policy_fields(
    fields: PhoneFields, *, allow_toll_free: bool, allow_voip: bool
) -> PhoneFields:
    """``apply_policy`` for the tuple form (returns ``fields`` itself when nothing changes)."""
    if fields[3] in ("toll_free", "voip") and fields[0] is not None and fields[1] is None:
        policy = {"allow_toll_free": allow_toll_free, "allow_voip": allow_voip}
        return phone_fields(apply_policy(PhoneResult(*fields), **policy))
    return fields


def normalise_batch(keys: list[tuple[str, str | None]]) -> list[PhoneFields]:
    """Normalise many (raw, region) pairs; the unit of work sent to a worker process."""
    return [normalise_fields(raw, region) for raw, region in keys]


def normalise_batch_encoded(
    keys: list[tuple[str, str | None]],
) -> tuple[list[PhoneFields], list[str]]:
    """``normalise_batch``, and each result also as the phone memo keeps it: the workers
    have CPU to spare, the process that plans and writes the checkpoint has none (a first
    run notes a million numbers in the memo)."""
    fields = normalise_batch(keys)
    return fields, [encode_fields(one) for one in fields]


@functools.cache
def normaliser_version() -> str:
    """What the result of ``normalise_number`` depends on besides its arguments.

    The phonenumbers release (its metadata) and this package's phone code: a remembered
    result is reused only while both are the same.
    """
    digest = hashlib.sha256(phonenumbers.__version__.encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return f"{phonenumbers.__version__}:{digest.hexdigest()[:16]}"
