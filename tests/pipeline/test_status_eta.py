"""``campaign status``: the ETA of the pending rows, rounded as an operator reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.store.checkpoint import RowIn, Store


def _campaign_with_pending_rows(tmp_path: Path, pending: int, calls: str) -> Path:
    phones = [f"+1212{5550000 + i:07d}" for i in range(pending)]
    lines = ["customer_id,phone"] + [f"K{i},{p}" for i, p in enumerate(phones)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: statustest
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id}}
limits: {{calls: {calls}, requests: [600/min, 20000/h]}}
api: {{base_url: sandbox}}
state_dir: state
output_dir: out
calling_hours: unrestricted
"""
    )
    store = Store.open(tmp_path / "state" / "statustest.sqlite")
    try:
        store.claim_identity("statustest")
        store.sync_rows(
            [
                RowIn(line=i + 2, row_key=f"K{i}", raw_phone=p, e164=p, plan_state="callable")
                for i, p in enumerate(phones)
            ],
            1_780_000_000.0,
        )
    finally:
        store.close()
    return path


@pytest.mark.parametrize(
    ("pending", "calls", "eta_s", "shown"),
    [
        (254, "300/min", 51, "< 1 min"),  # the user's list: it said "~0 min"
        (400, "300/min", 80, "1 min"),
        (1000, "300/min", 200, "3 min"),
        (1000, "10/min", 6000, "1 h 40 min"),
        (1200, "10/min", 7200, "2 h"),
    ],
)
def test_status_eta_for_254_pending_rows_at_300_per_min_is_under_a_minute_not_0_min(
    tmp_path: Path, pending: int, calls: str, eta_s: int, shown: str
) -> None:
    path = _campaign_with_pending_rows(tmp_path, pending, calls)
    text = CliRunner().invoke(main, ["status", str(path)], env={})
    assert text.exit_code == 0, text.output
    assert f"ETA for pending rows at the call limit: {shown}\n" in text.output + "\n"
    assert "~0 min" not in text.output
    as_json = CliRunner().invoke(main, ["status", str(path), "--json"], env={})
    assert json.loads(as_json.output)["eta_s"] == eta_s
