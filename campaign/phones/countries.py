"""Country cells as CRM exports write them → the ISO alpha-2 region phonenumbers reads.

A region column holds ``GB``, ``gbr``, ``United Kingdom`` or ``USA``. The codes and names
come from pycountry (ISO 3166-1: alpha-2, alpha-3, short, official and common English
names); a name is matched ignoring case, accents, punctuation and a leading "the".
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers
import pycountry

ACCEPTED = "an ISO 3166 code such as GB or GBR, or an English country name such as United Kingdom"

# Everyday English names that ISO 3166 does not list (its names are "Türkiye", "Russian
# Federation", …); with them a CRM's country picklist reads without a hand-kept table of
# every country.
_EVERYDAY_NAMES = {
    "UK": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "EL": "GR",  # the EU's code for Greece
    "Russia": "RU",
    "Turkey": "TR",
    "Holland": "NL",
    "Ivory Coast": "CI",
    "Swaziland": "SZ",
    "Burma": "MM",
    "Cape Verde": "CV",
    "Macedonia": "MK",
    "East Timor": "TL",
    "Vatican": "VA",
    "Vatican City": "VA",
}
_PUNCTUATION = re.compile(r"[.'’`]")
_SEPARATORS = re.compile(r"[\s,()/&-]+")


def _fold(text: str) -> str:
    """How names are compared: no accents, case, dots or apostrophes; 'and' for '&'."""
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and "))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = _SEPARATORS.split(_PUNCTUATION.sub("", plain).casefold())
    words = [word for word in words if word]
    if words[:1] == ["the"]:
        words = words[1:]
    return " ".join(words)


@functools.cache
def _index() -> dict[str, str]:
    """Folded code or name → alpha-2, for the regions phonenumbers has numbering plans for."""
    index: dict[str, str] = {}
    short: dict[str, set[str]] = {}  # "Bolivia" of "Bolivia, Plurinational State of"
    for country in pycountry.countries:
        code = country.alpha_2
        if code not in phonenumbers.SUPPORTED_REGIONS:
            continue  # Antarctica, Bouvet Island, …: no phone number is read there
        names = [code, country.alpha_3, country.name]
        names += [getattr(country, attr, "") for attr in ("official_name", "common_name")]
        for name in names:
            if name:
                index[_fold(name)] = code
        head = re.split(r"[,(]", country.name)[0]
        if head != country.name:
            short.setdefault(_fold(head), set()).add(code)
    for name, codes in short.items():
        if len(codes) == 1:  # "Korea" names two countries: neither gets it
            index.setdefault(name, codes.pop())
    for name, code in _EVERYDAY_NAMES.items():
        index.setdefault(_fold(name), code)
    for code in phonenumbers.SUPPORTED_REGIONS:  # XK, AC, TA: phonenumbers' own codes
        index.setdefault(_fold(code), code)
    return index


def country_code(cell: str) -> str | None:
    """The alpha-2 region of a country cell (a code or an English name); None if unknown."""
    text = cell.strip()
    if not text or len(text) > 80 or text.isdigit():
        # digits would be a calling code (44) or an ISO numeric code: neither is read
        return None
    return _index().get(_fold(text))


def country_name(code: str) -> str:
    """The English short name of an alpha-2 region ('GB' → 'United Kingdom'), else the code."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return str(getattr(country, "common_name", None) or country.name)
