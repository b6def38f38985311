"""From a planned CRM file through the checkpoint to the outputs: what the user wrote (an
extension) and what the calls told (a callback, a failure reason, the runs) reaches them."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from support.report import sample_run

from campaign.config.model import load_campaign
from campaign.planning.windows import planned_rows
from campaign.reporting.files import write_outputs
from campaign.reporting.results import call_records, row_results, run_records
from campaign.store.checkpoint import CallEnd, Store

T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z


def test_an_extension_and_a_callback_travel_from_the_csv_through_the_checkpoint(
    tmp_path: Path,
) -> None:
    (tmp_path / "contacts.csv").write_text(
        "id,Phone,Country,first_name\n"
        "a,415.555.0199 ext 12,USA,Ana\n"
        "b,+44 20 7946 0000,Grossbritannien,Bo\n"
    )
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\n"
        "compliance: {consent: attested}\ncalling_hours: unrestricted\ncost_estimate: '0.10'\n"
        "input: {path: contacts.csv, phone_column: phone, region_column: country,"
        " key_column: id, variables: [first_name]}\n"
    )
    config = load_campaign(tmp_path / "c.yaml", env={})
    store = Store.open(tmp_path / "state.sqlite")
    try:
        store.sync_rows(planned_rows(config, []), T0)
        run_id = store.start_run(T0, "campaign run c.yaml")
        for number, (row_key, end) in enumerate(
            [
                ("a", CallEnd("completed", "callback_requested", False, ended_at=T0 + 90)),
                ("b", CallEnd("failed", failure_reason="carrier_rejected", ended_at=T0 + 70)),
            ]
        ):
            key = f"k{number}"
            store.begin_attempt(row_key, 1, key, b"{}", T0 + number)
            store.mark_sent(key, f"call_{number}", "queued", T0 + number)
            store.end_attempt(key, end, row_progress="done")
        store.record_session(
            "k0", slot_values={"preferred_time": "mornings"}, cost="0.05", currency="USD",
            duration_s=40,
        )  # fmt: skip
        store.end_run(run_id, T0 + 120, 0, {})
        _, _, facts = sample_run()
        facts = dataclasses.replace(
            facts, runs=run_records(store), cost_estimate=config.cost_estimate, calls_placed=2,
            key_column="id", variables=["first_name"],
        )  # fmt: skip
        paths = write_outputs(tmp_path / "out", row_results(store), call_records(store), facts)
    finally:
        store.close()
    with paths.results_csv.open(newline="") as handle:
        results = list(csv.DictReader(handle))
    assert [(r["id"], r["e164"], r["extension"]) for r in results] == [
        ("a", "+14155550199", "12"),
        ("b", "+442079460000", ""),  # +44 needs no country: the unknown one is not used
    ]
    assert results[0]["note"] == "extension 12 not dialled: the call reaches the main number only"
    summary = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    assert summary["by_country"]["US"]["called"] == 1 and summary["by_country"]["GB"]["rows"] == 1
    assert summary["callbacks"]["rows"][0]["slot_values"] == {"preferred_time": "mornings"}
    assert summary["callbacks"]["rows"][0]["variables"] == {"first_name": "Ana"}
    assert summary["failure_reasons"] == {"carrier_rejected": 1}
    assert summary["runs"] == [
        {
            "started_at": "2026-11-30T00:53:20Z",
            "ended_at": "2026-11-30T00:55:20Z",
            "exit_code": 0,
            "this_run": False,
            "calls_placed": 2,
            "command": "campaign run c.yaml",
        }
    ]
    assert summary["cost_estimate"]["amount"] == "0.20"
