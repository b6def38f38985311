"""The compliance section of summary.json and report.html, counted from the checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.config.model import CampaignConfig, load_campaign
from campaign.reporting.compliance import compliance_card, compliance_summary
from campaign.store.checkpoint import RowIn, Store
from campaign.store.contacts import CallLedger

T0 = datetime(2026, 6, 2, 14, tzinfo=UTC).timestamp()
NY = ["America/New_York"]
CAP_REASON = (
    "frequency cap: 3 calls to this number in 24h (Fla. Stat. 501.616(6)(b)); callable "
    "again at 2026-06-03 10:{:02d} local (America/New_York)"
)


def _config(tmp_path: Path, extra: str = "") -> CampaignConfig:
    (tmp_path / "contacts.csv").write_text("customer_id,phone\nK1,+12125550100\n")
    (tmp_path / "dnc.csv").write_text("phone\n+12125550199\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: spring
scenario_id: scn_demo
input: {{path: contacts.csv, default_region: US, key_column: customer_id}}
suppression: [dnc.csv]
compliance: {{consent: attested, max_calls_per_number: 4/24h}}
api: {{base_url: sandbox}}
state_dir: state
output_dir: out
{extra}"""
    )
    return load_campaign(path)


def _row(line: int, phone: str, us_state: str | None, state: str = "callable",
         reason: str | None = None) -> RowIn:  # fmt: skip
    return RowIn(
        line=line, row_key=f"K{line}", raw_phone=phone, e164=phone, plan_state=state,
        reason=reason, timezones=NY, us_state=us_state,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "c.sqlite")
    rows = [
        _row(2, "+13055550100", "FL"),
        _row(3, "+13055550101", "FL"),
        _row(4, "+12145550100", "TX"),
        _row(5, "+12125550100", "NY"),
        _row(6, "+18005550100", "US-?"),
        _row(7, "+12125550101", "NY", "rejected", "no recorded consent: 'no' in column 'consent'"),
        _row(8, "+12125550102", "NY", "rejected", "no recorded consent: '' in column 'consent'"),
        _row(9, "+12125550199", "NY", "suppressed", "on suppression list dnc.csv"),
        _row(10, "+12125550103", "NY", "suppressed", "opted out (state dir opt-out list)"),
        _row(11, "not a number", None, "rejected", "not a valid phone number"),
        _row(12, "+12125550104", "NY", "rejected", "calling hours leave no time to call"),
    ]
    store.sync_rows(rows, T0)
    # Two Florida rows wait for a frequency cap; a New York row waits for a plain retry.
    for n, key in enumerate(("K2", "K3")):
        store.set_row_progress(key, "retry_scheduled", reason=CAP_REASON.format(n), next_due=T0)
    store.set_row_progress(
        "K5", "retry_scheduled", reason="no_answer; retry scheduled", next_due=T0
    )
    return store


def test_the_section_names_the_rules_and_counts_what_each_held_back(
    tmp_path: Path, store: Store
) -> None:
    config = _config(tmp_path)
    ledger = CallLedger(config.state_dir)
    allow = lambda times: True  # noqa: E731
    for n, phone in enumerate(["+13055550100", "+13055550100", "+12145550100"]):
        ledger.take(phone, f"spring:{n}", at=T0 + n, since=0, allow=allow,
                    campaign="spring", row_key="K")  # fmt: skip
    ledger.take("+12145550100", "other:1", at=T0, since=0, allow=allow,
                campaign="winback", row_key="K")  # fmt: skip

    section = compliance_summary(config, store)

    assert section["consent"].startswith("attested")
    assert section["held_back_by_rule"] == {
        "consent": 2,
        "do_not_call_list": 1,
        "opt_out": 1,
        "calling_hours": 1,
        "frequency_cap": 2,  # the plain retry is not counted
    }
    reasons = {(r["rule"], r["reason"]): r["rows"] for r in section["held_back_by_reason"]}
    # The per-row "callable again at" tail does not split the rule into a line per row.
    assert (
        reasons[
            (
                "frequency_cap",
                "frequency cap: 3 calls to this number in 24h (Fla. Stat. 501.616(6)(b))",
            )
        ]
        == 2
    )
    assert not any("valid phone" in reason for _, reason in reasons)
    hours = section["calling_hours"]
    assert "64.1200" in hours["federal"]
    assert {r["state"] for r in hours["state_rules"]} >= {"FL", "TX"}
    assert next(r for r in hours["state_rules"] if r["state"] == "FL")["rows"] == 2
    assert hours["rows_with_unknown_state"] == 1
    caps = section["frequency_caps"]
    assert caps["configured"] == ["4/24h"]
    florida = next(c for c in caps["state_caps"] if c["state"] == "FL")
    # FL's two rows and the unknown-state row (every state's cap applies to it).
    assert (florida["source"], florida["rows"]) == ("Fla. Stat. 501.616(6)(b)", 3)
    assert section["do_not_call"]["lists"] == [str(tmp_path / "dnc.csv")]
    # This campaign's calls only: one number called twice, one once.
    assert section["calls_per_number"] == {"1": 1, "2": 1}


def test_the_card_shows_the_section_and_escapes_it(tmp_path: Path, store: Store) -> None:
    section = compliance_summary(_config(tmp_path), store)
    section["consent"] = "<script>x</script>"
    html = compliance_card({"compliance": section})
    assert "<h2>Compliance</h2>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<span data-metric="compliance.held_back_by_rule.frequency_cap">2</span>' in html
    assert "Fla. Stat. 501.616(6)(b)" in html
    assert compliance_card({}) == ""
