"""The compliance section of summary.json and report.html: which rules applied, and to what.

Counsel and ops read it as the run's evidence: the consent basis, the calling-hours rules
(federal, and the state rules the campaign's rows fall under), the do-not-call lists and
the opt-out list, the frequency caps; how many rows each rule held back; how many numbers
got 1, 2, 3… calls. Everything is counted by SQL over the checkpoint and the shared
calls-per-number ledger (in the state dir, or the state database), never by loading every
row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaign.config.model import CampaignConfig
from campaign.planning.consent import NO_CONSENT, consent_basis
from campaign.planning.frequency import CONFIG_SOURCE, STATE_CAPS, caps_for, fmt_window
from campaign.planning.states import FEDERAL_SOURCE, HOLIDAY_STATES, JURISDICTIONS
from campaign.planning.windows import calling_hours_text
from campaign.reporting.sections import e, table
from campaign.store.checkpoint import Store
from campaign.store.contacts import held_back, held_back_reasons, zone_counts
from campaign.store.optout import OPT_OUT_FILE
from campaign.store.place import StatePlace
from campaign.store.postgres import SHARED_SCHEMA

# Each rule, and the prefixes of the reasons it gives a row (the planner's and the gate's).
RULES: dict[str, tuple[str, ...]] = {
    "consent": (NO_CONSENT,),
    "do_not_call_list": ("on suppression list",),
    "opt_out": ("opted out",),
    "calling_hours": ("calling hours", "no timezone known", "unknown timezone"),
    "frequency_cap": ("frequency cap:",),
}
RULE_WORDS = {
    "consent": "Consent (no recorded consent)",
    "do_not_call_list": "Do-not-call lists",
    "opt_out": "Opt-out list (shared by every campaign)",
    "calling_hours": "Calling hours (window never opens)",
    "frequency_cap": "Frequency caps (waiting)",
}


def _rule_of(reason: str) -> str | None:
    lowered = reason.lower()
    for rule, prefixes in RULES.items():
        if any(lowered.startswith(prefix.lower()) for prefix in prefixes):
            return rule
    return None


def compliance_summary(config: CampaignConfig, store: Store) -> dict[str, Any]:
    """The ``compliance`` key of summary.json for this campaign's checkpoint."""
    zones = zone_counts(store)
    state_rows: dict[str, int] = {}
    unknown = 0
    for us_state, rows in zones:
        if us_state is None:
            continue
        codes = [code for code in us_state.split("+") if code]
        if any("?" in code for code in codes):
            unknown += rows
        for code in codes:
            if code in JURISDICTIONS:
                state_rows[code] = state_rows.get(code, 0) + rows
    state_rules = [
        {
            "state": code,
            "rows": rows,
            "source": JURISDICTIONS[code].source,
            "status": JURISDICTIONS[code].status,
            "holidays": code in HOLIDAY_STATES,
        }
        for code, rows in sorted(state_rows.items())
        if JURISDICTIONS[code].narrows
    ]
    configured = list(config.compliance.max_calls_per_number)
    touched_caps: dict[str, dict[str, Any]] = {}
    for us_state, rows in zones:
        for cap in caps_for(us_state, configured):
            if cap.state is None:
                continue
            entry = touched_caps.setdefault(
                cap.state,
                {
                    "state": cap.state,
                    "cap": f"{cap.limit.count}/{fmt_window(cap.limit.window)}",
                    "source": cap.source,
                    "confirmed": cap.confirmed,
                    "rows": 0,
                },
            )
            entry["rows"] += rows
    by_rule = held_back(store, RULES)
    reasons = [
        {"rule": rule, "state": state, "reason": reason, "rows": rows}
        for state, reason, rows in held_back_reasons(store, limit=500)
        if (rule := _rule_of(reason)) is not None
    ]
    place = StatePlace.of(config)
    ledger = place.call_ledger()
    try:
        spread = ledger.distribution(config.campaign)
    finally:
        ledger.close()
    return {
        "consent": consent_basis(config),
        "calling_hours": {
            "campaign_window": calling_hours_text(config.calling_hours),
            "federal": FEDERAL_SOURCE,
            "state_rules": state_rules,
            "rows_with_unknown_state": unknown,
            "holidays": sorted(code for code in state_rows if code in HOLIDAY_STATES),
        },
        "do_not_call": {
            "lists": _list_paths(config),
            "opt_out_list": _shared_place(place, "opt_outs", OPT_OUT_FILE),
        },
        "frequency_caps": {
            "configured": [f"{lim.count}/{fmt_window(lim.window)}" for lim in configured],
            "configured_key": CONFIG_SOURCE,
            "counted_across": _sharing(place),
            "state_caps": [touched_caps[code] for code in sorted(touched_caps)],
            "known_state_caps": sorted(STATE_CAPS),
        },
        "held_back_by_rule": by_rule,
        "held_back_by_reason": reasons,
        "calls_per_number": {str(n): count for n, count in spread.items()},
    }


def _shared_place(place: StatePlace, table: str, file_name: str) -> str:
    """Where a shared list lives: its file in the state dir, or its table (no password)."""
    if place.uses_postgres:
        return f"{place.shown_url} (schema {SHARED_SCHEMA!r}, table {table!r})"
    return str(place.state_dir / file_name)


def _sharing(place: StatePlace) -> str:
    """Which campaigns share the calls-per-number ledger."""
    if place.uses_postgres:
        return f"every campaign sharing the state database {place.shown_url}"
    return f"every campaign sharing the state dir {place.state_dir}"


def _list_paths(config: CampaignConfig) -> list[str]:
    return [str(getattr(entry, "path", entry)) for entry in config.suppression]


def compliance_card(summary: Mapping[str, Any]) -> str:
    """The report's compliance card (empty when summary.json has no compliance key)."""
    section = summary.get("compliance")
    if not section:
        return ""
    hours = section["calling_hours"]
    caps = section["frequency_caps"]
    applied = [
        ["Consent", e(section["consent"])],
        [
            "Calling hours",
            e(
                f"{hours['campaign_window']}; federal: {hours['federal']}"
                + (
                    f"; {hours['rows_with_unknown_state']} row(s) of unknown US state get "
                    "every state's rule"
                    if hours["rows_with_unknown_state"]
                    else ""
                )
            ),
        ],
        *[
            [
                e(f"State hours: {rule['state']}"),
                e(
                    f"{rule['source']} ({rule['status']}"
                    f"{', legal holidays closed' if rule['holidays'] else ''}); "
                    f"{rule['rows']} row(s)"
                ),
            ]
            for rule in hours["state_rules"]
        ],
        [
            "Do-not-call lists",
            e(", ".join(section["do_not_call"]["lists"]) or "none")
            + e(f"; opt-outs: {section['do_not_call']['opt_out_list']}"),
        ],
        [
            "Frequency caps",
            e(
                f"{', '.join(caps['configured'])} ({caps['configured_key']}), counted across "
                f"{caps['counted_across']}"
            ),
        ],
        *[
            [
                e(f"State cap: {cap['state']}"),
                e(
                    f"{cap['cap']}, {cap['source']}"
                    f"{'' if cap['confirmed'] else ' (unconfirmed, applied)'}; "
                    f"{cap['rows']} row(s)"
                ),
            ]
            for cap in caps["state_caps"]
        ],
    ]
    held = [
        [
            e(RULE_WORDS.get(rule, rule)),
            f'<span data-metric="compliance.held_back_by_rule.{e(rule)}">{n}</span>',
        ]
        for rule, n in section["held_back_by_rule"].items()
    ]
    spread = section["calls_per_number"]
    per_number = [[e(n), e(count)] for n, count in spread.items()] or [["—", "0"]]
    return (
        '<section class="card"><h2>Compliance</h2>'
        + table(["Rule", "Applied as"], applied)
        + "<h3>Rows held back, by rule</h3>"
        + table(["Rule", "Rows"], held, numeric=frozenset({1}))
        + "<h3>Calls per number (this campaign)</h3>"
        + table(["Calls", "Numbers"], per_number, numeric=frozenset({0, 1}))
        + "</section>"
    )
