"""Where the person is, not only where the number is: the zone of a recipient's address.

A state cell (``TX``, ``Texas``, ``US-TX``) gives the state's rules and its timezones; a US
ZIP code gives its state and its own timezone (the ``zipcodes`` package's bundled data, no
network). The address zone is added to the number's: the row's window is open only when
it is open in every timezone and under every state's rules (strictest wins). An address
that cannot be read never widens anything: the number's zone is kept and the note says why.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zipcodes import _zipcodes  # the typed core of the zipcodes package

from campaign.config.values import shown
from campaign.phones.normalise import UNKNOWN_US_STATE
from campaign.planning.hours import STATE_RULES, combine_states, state_codes
from campaign.planning.states import JURISDICTIONS, state_code

# 5 digits, optionally +4; 3-4 leading digits are a ZIP whose zeros a spreadsheet dropped
_ZIP = re.compile(r"(\d{3,5})(?:[-\s]?\d{4})?")


@dataclass(frozen=True)
class AddressZone:
    """What an address says of where the recipient is."""

    states: tuple[str, ...] = ()
    timezones: tuple[str, ...] = ()
    words: str = ""  # how the address reads in a note: "ZIP 70112 → LA"
    problem: str | None = None  # why a non-empty cell could not be used


@functools.cache
def _zip_table() -> dict[str, tuple[str, str]]:
    """ZIP → (state, timezone) for every ZIP in the bundled data (read once, ~1 s)."""
    return {
        entry["zip_code"]: (entry["state"], entry["timezone"]) for entry in _zipcodes.list_all()
    }


def zip_zone(cell: str, label: str) -> AddressZone:
    """The zone of a US ZIP code cell (``77001``, ``77001-1234``, ``7001`` for ``07001``)."""
    text = cell.strip()
    match = _ZIP.fullmatch(text)
    if match is None:
        return AddressZone(problem=f"postal code {shown(text)} in column '{label}' is not a US ZIP")
    code = match.group(1).zfill(5)
    found = _zip_table().get(code)
    state = found and state_code(found[0])
    if found is None or state is None:
        return AddressZone(problem=f"ZIP {shown(text)} in column '{label}' is not a known US ZIP")
    zone = found[1]
    zones = (zone,) if _is_zone(zone) else JURISDICTIONS[state].zones
    return AddressZone((state,), zones, f"ZIP {code} → {state}")


def state_zone(cell: str, label: str) -> AddressZone:
    """The zone of a state cell: the state's rules in every timezone of the state."""
    state = state_code(cell)
    if state is None:
        problem = f"{shown(cell.strip())} in column '{label}' is not a US state or territory"
        return AddressZone(problem=problem)
    return AddressZone((state,), JURISDICTIONS[state].zones, state)


def address_zone(
    state_cell: str | None, zip_cell: str | None, labels: tuple[str, str]
) -> AddressZone:
    """The zone of a row's address cells (either may be absent or empty)."""
    parts = []
    if state_cell and state_cell.strip():
        parts.append(state_zone(state_cell, labels[0]))
    if zip_cell and zip_cell.strip():
        parts.append(zip_zone(zip_cell, labels[1]))
    problems = [part.problem for part in parts if part.problem]
    used = [part for part in parts if not part.problem]
    # a ZIP is more precise than its state's zones; a state and a ZIP that disagree both apply
    zones = next((part.timezones for part in reversed(used)), ())
    if len(used) == 2 and used[0].states != used[1].states:
        zones = _merge(used[0].timezones, used[1].timezones)
    return AddressZone(
        tuple(sorted({state for part in used for state in part.states})),
        zones,
        ", ".join(part.words for part in used),
        "; ".join(problems) or None,
    )


def recipient_zone(
    number_zones: tuple[str, ...], number_state: str | None, address: AddressZone
) -> tuple[tuple[str, ...], str | None, str | None]:
    """(timezones, us_state, note) of a row: the number's zone with the address's added."""
    number = f"number {_zone_words(number_zones, number_state)}"
    if not number_zones:  # the row is rejected for it; an address does not make it callable
        return number_zones, number_state, None
    if not address.states:
        if address.problem is None:
            return number_zones, number_state, None
        return number_zones, number_state, f"{address.problem}: calling zone from the {number}"
    zones = _merge(number_zones, address.timezones)
    us_state = combine_states([*state_codes(number_state), *address.states])
    note = f"calling zone: {_zone_words(zones, us_state)} ({number}; address {address.words})"
    if address.problem:
        note += f"; {address.problem}"
    return zones, us_state, note


Zone = tuple[tuple[str, ...], str | None]  # (timezones, us_state)


def address_effect(address: AddressZone, number: Zone, row: Zone) -> str:
    """What a row's address did to its number's zone, in the words validate counts by."""
    if not address.states:
        return "address unreadable: the number's zone" if address.problem else "no address given"
    if row == number:
        return "address within the number's zone"
    return "address narrows the number's zone"


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """``first`` then the zones of ``second`` whose clocks differ from every one kept."""
    kept = list(first)
    for zone in second:
        if not any(_same_clock(zone, other) for other in kept):
            kept.append(zone)
    return tuple(kept)


def _zone_words(zones: tuple[str, ...], us_state: str | None) -> str:
    codes = state_codes(us_state)
    if UNKNOWN_US_STATE in codes:
        rules = "the strictest state rules (US state unknown)"
    elif ruled := [code for code in codes if code in STATE_RULES]:
        rules = f"{'+'.join(ruled)} rules"
    else:
        rules = "federal hours"
    return f"{' + '.join(zones) or 'no timezone'}, {rules}"


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Two zones keep the same clock if their UTC offsets agree twice a month over these years
# (America/Detroit and America/New_York do; America/Phoenix and America/Denver do not).
_SAMPLES = tuple(
    datetime(year, month, day, 12, tzinfo=UTC)
    for year in range(2024, 2032)
    for month in range(1, 13)
    for day in (1, 15)
)


@functools.lru_cache(maxsize=1024)
def _same_clock(first: str, second: str) -> bool:
    if first == second:
        return True
    if not (_is_zone(first) and _is_zone(second)):
        return False
    one, two = ZoneInfo(first), ZoneInfo(second)
    return all(at.astimezone(one).utcoffset() == at.astimezone(two).utcoffset() for at in _SAMPLES)
