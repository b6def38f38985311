"""The synthetic run of support.report with what a manager's questions need: countries, a
callback with its session's slot values, failure reasons, a retry's due time, the run log,
a cost estimate, an extension, a long reason, and each call's recipient (timezone, country,
number type) for "when to call"."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

from support.report import START, sample_run

from campaign.reporting.files import CallRecord, RowResult, RunFacts, RunRecord

LONG_REASON = (
    "unknown country 'Grossbritannien' in column 'Country' (write an ISO 3166 code such as "
    "GB or GBR, or an English country name such as United Kingdom)"
)


def manager_run() -> tuple[list[RowResult], list[CallRecord], RunFacts]:
    """Ten rows in three countries, one callback, one carrier_rejected failure, two runs."""
    rows, calls, facts = sample_run()
    regions = ["US", "GB", "US", "GB", "DE", None, None, "US", "US", "GB"]
    rows = [dataclasses.replace(r, region=region) for r, region in zip(rows, regions, strict=True)]
    rows[1] = dataclasses.replace(
        rows[1],
        outcome="callback_requested",
        last_called_at=START + timedelta(minutes=9),
        slot_values={"outcome_confirmed": "no", "preferred_time": "afternoons"},
        variables={"first_name": "Bea <b>", "plan": "gold"},
    )
    rows[2] = dataclasses.replace(
        rows[2],
        extension="12",
        note="extension 12 not dialled: the call reaches the main number only",
    )
    rows[3] = dataclasses.replace(rows[3], next_due=START + timedelta(hours=4, minutes=15))
    rows[5] = dataclasses.replace(rows[5], reason=LONG_REASON)
    calls = [
        dataclasses.replace(c, failure_reason="carrier_rejected") if c.status == "failed" else c
        for c in calls
    ]
    # Each call's recipient, for "when to call": the number's zone, country and type.
    recipients = {
        "US": (("America/Los_Angeles",), "fixed_line_or_mobile"),
        "GB": (("Europe/London",), "mobile"),
        "DE": (("Europe/Berlin",), "fixed_line"),
    }
    region_of = {r.row_key: r.region for r in rows}
    calls = [
        dataclasses.replace(
            c,
            timezones=recipients[region][0],
            region=region,
            number_type=recipients[region][1],
        )
        if (region := region_of.get(c.row_key)) in recipients
        else c
        for c in calls
    ]
    callback = next(i for i, c in enumerate(calls) if c.row_key == rows[1].row_key)
    calls[callback] = dataclasses.replace(calls[callback], outcome="callback_requested")
    facts = dataclasses.replace(
        facts,
        cost_estimate=Decimal("0.12"),
        runs=(
            RunRecord(START - timedelta(days=1), START - timedelta(days=1, minutes=-2), 0, "run"),
            RunRecord(START, None, None, "campaign run pipelines/spring.yaml"),
        ),
    )
    return rows, calls, facts
