"""Frequency caps: how many calls one number may get in a sliding window, and by whose rule.

Two sources apply together, the strictest winning: the campaign file's
``compliance.max_calls_per_number`` (default ``3/24h``), and the caps of the US states
named in the row's zone. Calls are counted across every campaign sharing the state dir
(``campaign.store.contacts``), whatever their subject: the state rules count calls "on the
same subject matter or issue", and counting every call is the stricter reading.

State caps (recipient's state; laws change, have counsel review this table):
  FL  Fla. Stat. 501.616(6)(b): no more than 3 commercial telephone solicitation calls
      from any number of persons to the same person on the same subject matter or issue
      in a 24-hour period.
  OK  Okla. Stat. tit. 15 §775C.4 (Telephone Solicitation Act of 2022): the same, 3/24h.
  MD  Md. Code, Com. Law §14-4502 (Stop the Spam Calls Act of 2023, in force
      2024-01-01): the same, 3/24h.
  ME  10 M.R.S. §1498(3): a permitted automated telephone calling device may not complete
      more than one solicitation call to any number during each 8-hour period (read in
      the text of LD 392, 121st Legislature, 2003; today's text not checked, so marked
      unconfirmed). Unconfirmed rules fail closed: they apply.
No other state's cap is listed in the vendor tables consulted (g2leadstosales.com, Nov
2024; clickpointsoftware.com, Jul 2025); the other states' statutes were not read one by
one. A state that adds a cap needs a line here.
A zone that names no state we know (``US-?``, an unreadable value) gets every state's cap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaign.config.limit import Limit
from campaign.phones.normalise import UNKNOWN_CA_PROVINCE
from campaign.planning.states import JURISDICTIONS

DAY = 24 * 3600.0
CONFIG_SOURCE = "compliance.max_calls_per_number"


@dataclass(frozen=True)
class Cap:
    """At most ``limit.count`` calls to one number in any ``limit.window`` seconds."""

    limit: Limit
    source: str  # the statute, or the campaign file's key
    state: str | None = None
    confirmed: bool = True


STATE_CAPS: dict[str, Cap] = {
    "FL": Cap(Limit(3, DAY), "Fla. Stat. 501.616(6)(b)", "FL"),
    "OK": Cap(Limit(3, DAY), "Okla. Stat. tit. 15 §775C.4", "OK"),
    "MD": Cap(Limit(3, DAY), "Md. Code, Com. Law §14-4502", "MD"),
    "ME": Cap(
        Limit(1, 8 * 3600.0),
        "10 M.R.S. §1498(3), unconfirmed: applied",
        "ME",
        confirmed=False,
    ),
}

# The 50 states, DC and the inhabited territories (campaign.planning.states).
US_STATES = frozenset(JURISDICTIONS)

# Canadian NANP numbers carry their province: no US state's cap applies to them.
CA_PROVINCES = frozenset(
    ["AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"]
)


def zone_states(us_state: str | None) -> tuple[str, ...] | None:
    """The US states a row's zone names, in order; None when it cannot tell (then every
    state's rule applies); () for a row with no US zone.

    Reads the number's state (``FL``), the unknown marker (``US-?``) and combined values
    (``FL+GA``, ``US-FL,US-GA``): any two-letter state code in the value counts.
    """
    if us_state is None or not us_state.strip():
        return ()
    text = us_state.upper()
    if text == UNKNOWN_CA_PROVINCE:
        return ()  # a Canadian number: no US state's cap
    if "?" in text:
        return None
    tokens = [t for t in re.split(r"[^A-Z]+", text) if t and t != "US"]
    if not tokens or any(t not in US_STATES and t not in CA_PROVINCES for t in tokens):
        return None  # no state, or a value we cannot read: fail closed
    return tuple(dict.fromkeys(t for t in tokens if t in US_STATES))


def caps_for(us_state: str | None, configured: Sequence[Limit]) -> list[Cap]:
    """Every cap that applies to a row: the campaign file's, then its states'."""
    caps = [Cap(limit, CONFIG_SOURCE) for limit in configured]
    states = zone_states(us_state)
    if states is None:
        caps.extend(STATE_CAPS.values())
    else:
        caps.extend(STATE_CAPS[state] for state in states if state in STATE_CAPS)
    return caps


def longest_window(caps: Sequence[Cap]) -> float:
    """The widest window among ``caps`` (0 with none)."""
    return max((cap.limit.window for cap in caps), default=0.0)


def over_cap(times: Sequence[float], caps: Sequence[Cap], at: float) -> tuple[Cap, float] | None:
    """The cap a call at ``at`` would break, and when the number is callable again.

    ``times`` are the number's recorded calls (any order); a call counts for a cap while
    it is less than the cap's window before ``at``. With several caps broken, the one
    that holds the number longest is named.

    """
    worst: tuple[Cap, float] | None = None
    ordered = sorted(times)
    for cap in caps:
        inside = [t for t in ordered if t > at - cap.limit.window]
        if len(inside) < cap.limit.count:
            continue
        # Callable once enough of the oldest calls have aged out to leave a free slot.
        free_at = inside[len(inside) - cap.limit.count] + cap.limit.window
        # On a tie, the statute is named rather than the campaign file's key.
        if worst is None or (free_at, cap.state is not None) > (
            worst[1],
            worst[0].state is not None,
        ):
            worst = (cap, free_at)
    return worst


def fmt_window(seconds: float) -> str:
    """24h, 8h, 90min, 30s."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"


def local_moment(at: float, timezones: Sequence[str]) -> str:
    """``2026-12-02 09:14 local`` in the recipient's timezone when there is one, else UTC."""
    if len(timezones) == 1:
        try:
            zone = ZoneInfo(timezones[0])
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return f"{datetime.fromtimestamp(at, zone):%Y-%m-%d %H:%M} local ({timezones[0]})"
    return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M} UTC"


def cap_reason(cap: Cap, free_at: float, timezones: Sequence[str]) -> str:
    """Why a row waits, in words: the cap, its source, and when it is callable again."""
    count = cap.limit.count
    calls = "1 call" if count == 1 else f"{count} calls"
    return (
        f"frequency cap: {calls} to this number in {fmt_window(cap.limit.window)} "
        f"({cap.source}); callable again at {local_moment(free_at, timezones)}"
    )
