"""Phone normalisation: a messy CRM cell → E.164, or a reason a person understands.

Validity is phonenumbers' ``is_valid_number``; the number type, timezones and (for NANP
numbers) the US state or Canadian province come from the same metadata. Results are pure
functions of (raw, region), which is what lets ``PhoneCache`` parse each distinct raw
value once and lets a process pool share the work.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, replace

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, geocoder
from phonenumbers.geodata import GEOCODE_DATA
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import _number_type_helper
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

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
    text, notes = _clean_text(raw)
    if not text:
        return PhoneResult(None, "no phone number")
    text, excel_note, excel_error = _repair_excel(text)
    digits_only = text.isdigit()
    if excel_error:
        return PhoneResult(None, excel_error)
    if excel_note:
        notes.append(excel_note)
    has_letters = text.upper() != text.lower()  # cheap test before the regexes
    if has_letters and _VANITY.search(_strip_extension_words(text)):
        notes.append("vanity letters converted to digits")
    parsed = _parse(text, region, notes)
    if isinstance(parsed, str):
        return PhoneResult(None, parsed)
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
    number_type() uses. Calling it once here (rather than is_valid_number, number_type and
    region_code_for_number separately) avoids running the per-region matching three times.
    """
    region = phonenumbers.region_code_for_number(number)
    kind = PhoneNumberType.UNKNOWN
    if region is not None:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(
            number.country_code or 0, region
        )
        if metadata is not None:
            nsn = phonenumbers.national_significant_number(number)
            kind = _number_type_helper(nsn, metadata)
    return _Parsed(number, region, kind)


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
            parsed = _classify(phonenumbers.parse(candidate, region))
        except NumberParseException as exc:
            reason = _parse_reason(exc, region)
            continue
        if parsed.kind != PhoneNumberType.UNKNOWN:
            if note and region is not None:  # with no region, 00/011 are the obvious reading
                notes.append(note)
            return parsed
        first = first or parsed
    return first if first is not None else reason


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
            repaired = _classify(phonenumbers.parse(candidate, region))
        except NumberParseException:
            continue
        if repaired.kind != PhoneNumberType.UNKNOWN:
            repairs.append((repaired, note))
    if len(repairs) == 1:
        notes.append(repairs[0][1])
        return repairs[0][0]
    return parsed


def _describe(parsed: _Parsed, notes: list[str]) -> PhoneResult:
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
        return PhoneResult(None, f"not a valid phone number{where} ({why})", region=region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    extension = number.extension or None
    if extension:
        notes.append(f"extension {extension} not dialled: the call reaches the main number only")
    zones = _timezones(number, kind, e164)
    us_state = None
    if number.country_code == 1 and region in ("US", "CA"):
        us_state = _nanp_state(number)
        if us_state is None and region == "US":
            us_state = UNKNOWN_US_STATE  # no geography: every state's rule (fail closed)
    note = "; ".join(notes) or None
    type_name = _TYPE_NAMES.get(kind, "unknown")
    reason = _FORBIDDEN_TYPES.get(kind)
    return PhoneResult(e164, reason, region, type_name, extension, zones, us_state, note)


# A US number whose area code names no state (toll-free, non-geographic, geocoded per
# exchange only): the calling window applies the strictest of every state's rules.
UNKNOWN_US_STATE = "US-?"


def _timezones(number: phonenumbers.PhoneNumber, kind: int, e164: str) -> tuple[str, ...]:
    """phonenumbers.timezone's answer, without recomputing the type and the E.164 form."""
    if not phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        return _country_zones(number.country_code or 0)
    digits = e164[1:]
    # the same longest-prefix lookup as timezone.time_zones_for_geographical_number()
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return tuple(zone for zone in zones if zone != _UNKNOWN_TZ)
    return ()


@functools.cache
def _country_zones(country_code: int) -> tuple[str, ...]:
    """Zones of a country calling code (what phonenumbers gives non-geographic numbers)."""
    zones = TIMEZONE_DATA.get(str(country_code), ())
    return tuple(zone for zone in zones if zone != _UNKNOWN_TZ)


def _nanp_state(number: phonenumbers.PhoneNumber) -> str | None:
    """US state / Canadian province of a NANP number, from its area code's geocoding."""
    npa = str(number.national_number)[:3]
    state = _npa_states().get(npa)
    if state is None:  # a few area codes are only geocoded per exchange
        state = state_from_description(geocoder.description_for_number(number, "en"))
    return state


@functools.cache
def _npa_states() -> dict[str, str]:
    """Area code → state/province code, from phonenumbers' area-code-level geocoding."""
    table = {}
    for prefix, names in GEOCODE_DATA.items():
        if len(prefix) == 4 and prefix.startswith("1"):
            state = state_from_description(names.get("en", ""))
            if state:
                table[prefix[1:]] = state
    return table


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
    return [phone_fields(normalise_number(raw, region)) for raw, region in keys]
