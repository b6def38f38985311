"""US state and territory calling-hour rules, each with its source and how sure we are of it.

Every jurisdiction is listed: the 50 states, DC and the five inhabited territories. A rule
narrows the federal window, 08:00–21:00 recipient-local every day (47 CFR 64.1200(c)(1);
the FTC's Telemarketing Sales Rule, 16 CFR 310.4(c), says the same).

``status`` says how far the rule can be trusted:

- ``confirmed``: the provision and what it says are known to the authors;
- ``unconfirmed``: a rule that state law or the compliance vendors' tables report, whose
  text could not be checked: it holds the narrowest plausible reading of every field
  (latest start, earliest end, Sundays and legal holidays closed where any source says
  so), so a doubt never makes a window wider;
- ``federal``: no state or territorial hour rule stricter than the federal one is known.

The table was written without access to the statutes (Nov 2026): have counsel review it,
and the ``federal`` entries above all, before relying on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Literal

from campaign.phones.normalise import UNKNOWN_CA_PROVINCE

# A day's window: (start, end) local time, or None for "no calls that day".
DayWindow = tuple[time, time] | None
WeekRule = Mapping[int, DayWindow]  # weekday 0=Mon..6=Sun → window

FEDERAL_START, FEDERAL_END = time(8, 0), time(21, 0)
FEDERAL_SOURCE = "47 CFR 64.1200(c)(1) (TCPA); 16 CFR 310.4(c) (Telemarketing Sales Rule)"

RuleStatus = Literal["confirmed", "unconfirmed", "federal"]

_SAT, _SUN = 5, 6


@dataclass(frozen=True)
class StateRule:
    """One jurisdiction's calling hours, in the recipient's local time."""

    code: str  # USPS code: TX, DC, PR, …
    name: str
    status: RuleStatus
    source: str  # the statute or regulation, or why there is none
    start: time = FEDERAL_START
    end: time = FEDERAL_END
    # days whose window differs from start–end: None closes the day
    days: Mapping[int, DayWindow] = field(default_factory=dict)
    holidays: bool = False  # no calls on the state's legal holidays
    zones: tuple[str, ...] = ()  # the timezones of the state (canonical IANA names)

    def week(self) -> dict[int, DayWindow]:
        """The rule as a weekly window."""
        rule: dict[int, DayWindow] = dict.fromkeys(range(7), (self.start, self.end))
        rule.update(self.days)
        return rule

    @property
    def narrows(self) -> bool:
        """True if the rule is stricter than the federal window."""
        return self.week() != dict.fromkeys(range(7), (FEDERAL_START, FEDERAL_END)) or (
            self.holidays
        )


_ET, _CT, _MT, _PT = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"
_NONE_KNOWN = "no state calling-hours rule stricter than federal known"


def _federal(code: str, name: str, zones: tuple[str, ...], source: str = "") -> StateRule:
    text = f"{_NONE_KNOWN} ({source})" if source else _NONE_KNOWN
    return StateRule(code, name, "federal", text, zones=zones)


_RULES = (
    StateRule(
        "AL", "Alabama", "unconfirmed",
        "Ala. Code §8-19A-1 et seq. (Alabama Telemarketing Act) and the Alabama PSC's "
        "telephone solicitation rules, as compliance vendors report them",
        time(8), time(20), {_SUN: None}, holidays=True, zones=(_CT,),
    ),
    _federal("AK", "Alaska", ("America/Anchorage", "America/Adak")),
    _federal("AZ", "Arizona", ("America/Phoenix", _MT), "A.R.S. §44-1278: 8 a.m.–9 p.m."),
    _federal("AR", "Arkansas", (_CT,)),
    _federal("CA", "California", (_PT,)),
    _federal("CO", "Colorado", (_MT,)),
    StateRule(
        "CT", "Connecticut", "confirmed",
        "Conn. Gen. Stat. §42-288a, as amended by Public Act 23-98 (2023)",
        time(9), time(20), zones=(_ET,),
    ),
    _federal("DE", "Delaware", (_ET,)),
    _federal("DC", "District of Columbia", (_ET,)),
    StateRule(
        "FL", "Florida", "confirmed",
        "Fla. Stat. §501.616(6)(a) (Florida Telephone Solicitation Act, 2021 amendment)",
        time(8), time(20), zones=(_ET, _CT),
    ),
    _federal("GA", "Georgia", (_ET,)),
    _federal("HI", "Hawaii", ("Pacific/Honolulu",)),
    _federal("ID", "Idaho", (_MT, _PT)),
    StateRule(
        "IL", "Illinois", "unconfirmed",
        "815 ILCS 305/15 (Automatic Telephone Dialers Act: recorded messages not between "
        "9 p.m. and 9 a.m.); 815 ILCS 413/15 (Telephone Solicitations Act): 8 a.m.–9 p.m.",
        time(9), time(21), zones=(_CT,),
    ),
    _federal("IN", "Indiana", (_ET, _CT)),
    _federal("IA", "Iowa", (_CT,)),
    _federal("KS", "Kansas", (_CT, _MT), "K.S.A. 50-670: 8 a.m.–9 p.m."),
    StateRule(
        "KY", "Kentucky", "unconfirmed", "Ky. Rev. Stat. §367.46955(15)",
        time(10), time(21), zones=(_ET, _CT),
    ),
    StateRule(
        "LA", "Louisiana", "unconfirmed",
        "La. R.S. 45:844.11 et seq. (Telephone Solicitation Relief Act) and La. PSC "
        "General Order R-29617: no calls on Sundays or legal holidays",
        time(8), time(20), {_SUN: None}, holidays=True, zones=(_CT,),
    ),
    StateRule(
        "ME", "Maine", "unconfirmed",
        "10 M.R.S. §1498 (automated telephone calling devices): weekdays 9 a.m.–5 p.m. as "
        "the narrowest reading; no weekend calls",
        time(9), time(17), {_SAT: None, _SUN: None}, zones=(_ET,),
    ),
    StateRule(
        "MD", "Maryland", "confirmed",
        "Md. Code Com. Law §14-4501 et seq. (Stop the Spam Calls Act of 2023, in force "
        "2024-01-01)",
        time(8), time(20), zones=(_ET,),
    ),
    StateRule(
        "MA", "Massachusetts", "unconfirmed",
        "M.G.L. c. 159C (telemarketing solicitation) and 940 CMR 31.00",
        time(8), time(20), zones=(_ET,),
    ),
    StateRule(
        "MI", "Michigan", "unconfirmed",
        "MCL 445.111 et seq. (Home Solicitation Sales Act, telephone solicitation)",
        time(9), time(21), zones=(_ET, _CT),
    ),
    StateRule(
        "MN", "Minnesota", "confirmed",
        "Minn. Stat. §325E.27 (automatic dialing-announcing devices)",
        time(9), time(21), zones=(_CT,),
    ),
    StateRule(
        "MS", "Mississippi", "unconfirmed",
        "Miss. Code Ann. §77-3-701 et seq. (Telephone Solicitation Act, §77-3-729) and "
        "the Mississippi PSC's rules: no calls on Sundays; legal holidays as vendors report",
        time(8), time(20), {_SUN: None}, holidays=True, zones=(_CT,),
    ),
    _federal("MO", "Missouri", (_CT,), "Mo. Rev. Stat. §407.1104: 8 a.m.–9 p.m."),
    _federal("MT", "Montana", (_MT,)),
    _federal("NE", "Nebraska", (_CT, _MT)),
    StateRule(
        "NV", "Nevada", "unconfirmed", "Nev. Rev. Stat. ch. 228 and 599B, as vendors report",
        time(9), time(20), zones=(_PT,),
    ),
    _federal("NH", "New Hampshire", (_ET,)),
    _federal("NJ", "New Jersey", (_ET,), "N.J.A.C. 13:45D-4.1: 8 a.m.–9 p.m."),
    StateRule(
        "NM", "New Mexico", "unconfirmed",
        "N.M. Stat. §57-12-22 (Unfair Practices Act, telephone solicitation); Sundays and "
        "legal holidays closed as the narrowest reading",
        time(9), time(21), {_SUN: None}, holidays=True, zones=(_MT,),
    ),
    _federal("NY", "New York", (_ET,), "N.Y. Gen. Bus. Law §399-z: 8 a.m.–9 p.m."),
    _federal("NC", "North Carolina", (_ET,), "N.C. Gen. Stat. §75-102: 8 a.m.–9 p.m."),
    _federal("ND", "North Dakota", (_CT, _MT)),
    _federal("OH", "Ohio", (_ET,)),
    StateRule(
        "OK", "Oklahoma", "confirmed",
        "Okla. Stat. tit. 15 §775C.4 (Telephone Solicitation Act of 2022)",
        time(8), time(20), zones=(_CT,),
    ),
    _federal("OR", "Oregon", (_PT, _MT)),
    _federal("PA", "Pennsylvania", (_ET,), "73 P.S. §2245.2: 8 a.m.–9 p.m."),
    StateRule(
        "RI", "Rhode Island", "unconfirmed",
        "R.I. Gen. Laws §5-61-3.4 and §5-61-3.6 (Telephone Sales Solicitation Act): "
        "9 a.m.–6 p.m. weekdays, 10 a.m.–5 p.m. Saturdays, no Sundays or legal holidays",
        time(9), time(18), {_SAT: (time(10), time(17)), _SUN: None}, holidays=True,
        zones=(_ET,),
    ),
    _federal("SC", "South Carolina", (_ET,), "S.C. Code §37-21-70: 8 a.m.–9 p.m."),
    _federal("SD", "South Dakota", (_CT, _MT)),
    _federal("TN", "Tennessee", (_CT, _ET)),
    StateRule(
        "TX", "Texas", "confirmed", "Tex. Bus. & Com. Code §301.051",
        time(9), time(21), {_SUN: (time(12), time(21))}, zones=(_CT, _MT),
    ),
    StateRule(
        "UT", "Utah", "unconfirmed",
        "Utah Code §13-25a-103 (Telephone and Facsimile Solicitation Act): no calls on "
        "Sundays or legal holidays",
        time(8), time(21), {_SUN: None}, holidays=True, zones=(_MT,),
    ),
    _federal("VT", "Vermont", (_ET,)),
    _federal("VA", "Virginia", (_ET,), "Va. Code §59.1-514: 8 a.m.–9 p.m."),
    StateRule(
        "WA", "Washington", "confirmed", "RCW 80.36.390 (and RCW 19.158.110)",
        time(8), time(20), zones=(_PT,),
    ),
    _federal("WV", "West Virginia", (_ET,)),
    _federal("WI", "Wisconsin", (_CT,)),
    _federal("WY", "Wyoming", (_MT,)),
    # Territories: the TCPA and the TSR apply; no territorial hour rule is known.
    _federal("PR", "Puerto Rico", ("America/Puerto_Rico",)),
    _federal("GU", "Guam", ("Pacific/Guam",)),
    _federal("VI", "U.S. Virgin Islands", ("America/St_Thomas",)),
    _federal("AS", "American Samoa", ("Pacific/Pago_Pago",)),
    _federal("MP", "Northern Mariana Islands", ("Pacific/Saipan",)),
)  # fmt: skip

JURISDICTIONS: dict[str, StateRule] = {rule.code: rule for rule in _RULES}

# Canada: the CRTC's Unsolicited Telecommunications Rules apply nationally. Calls made
# with an automatic dialing-announcing device (Part IV) are held to 09:30–21:30 on
# weekdays and 10:30–18:00 at weekends, recipient-local (live telemarketing, Part II:
# 09:00–21:30 and 10:00–18:00); the narrower ADAD reading is applied, unconfirmed.
# Provinces use their postal codes, which no US code shares; a Canadian number whose
# province is unknown is UNKNOWN_CA_PROVINCE and gets the same national rule.
_CRTC = (
    "CRTC Unsolicited Telecommunications Rules, Part IV (automatic dialing-announcing "
    "devices): 9:30 a.m.–9:30 p.m. weekdays, 10:30 a.m.–6 p.m. weekends"
)
PROVINCES: dict[str, str] = {
    "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
    "NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
    "SK": "Saskatchewan", "YT": "Yukon", UNKNOWN_CA_PROVINCE: "Canada (province unknown)",
}  # fmt: skip
PROVINCE_RULES: dict[str, StateRule] = {
    code: StateRule(
        code, name, "unconfirmed", _CRTC, time(9, 30), time(21, 30),
        {_SAT: (time(10, 30), time(18)), _SUN: (time(10, 30), time(18))},
    )
    for code, name in PROVINCES.items()
}  # fmt: skip

# The rules that narrow the federal window, as weekly windows (what calling_window applies).
STATE_RULES: dict[str, dict[int, DayWindow]] = {
    rule.code: rule.week() for rule in _RULES if rule.narrows
} | {code: rule.week() for code, rule in PROVINCE_RULES.items()}

# States whose legal holidays close the whole local day.
HOLIDAY_STATES: frozenset[str] = frozenset(rule.code for rule in _RULES if rule.holidays)

_ALIASES = {
    "washington dc": "DC",
    "washington d c": "DC",
    "d c": "DC",
    "virgin islands": "VI",
    "us virgin islands": "VI",
    "united states virgin islands": "VI",
    "northern mariana islands": "MP",
    "commonwealth of the northern mariana islands": "MP",
}


def _plain(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").replace(",", " ").split())


_NAMES = {_plain(rule.name): rule.code for rule in _RULES} | _ALIASES


def state_code(cell: str) -> str | None:
    """The USPS code of a state/territory cell (``TX``, ``tx``, ``US-TX``, ``Texas``), or None."""
    text = cell.strip()
    upper = text.upper()
    if upper.startswith("US-"):
        upper = upper[3:]
    if upper in JURISDICTIONS:
        return upper
    return _NAMES.get(_plain(text))
