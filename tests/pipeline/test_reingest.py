"""Nightly re-ingest costs what changed, across real reruns of ``campaign.run``.

A run whose input, lists, opt-outs and planning settings are those of the last sync does
not read the input again; any change replans it, and then only (raw, region) pairs the
checkpoint has not seen are normalised. Normalisations are counted by wrapping the
planner's normaliser (these inputs are small: it runs in this process).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path

import pytest

import campaign
from campaign.config.model import load_campaign
from campaign.phones import normalise
from campaign.pipeline.report import RunReport
from campaign.store.checkpoint import Store
from campaign.store.optout import OptOutList

CELLS = ["(212) 555-0100", "212.555.0101", "+1 212 555 0102", "212-555-0103 x7"]
E164 = ["+12125550100", "+12125550101", "+12125550102", "+12125550103"]


def _campaign(tmp_path: Path, cells: list[str], *, dnc: tuple[str, ...] = ()) -> Path:
    lines = ["customer_id,phone,first_name"]
    lines += [f"K{i},{cell},N{i}" for i, cell in enumerate(cells)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dnc.csv").write_text("phone\n" + "".join(f"{n}\n" for n in ["+12125550199", *dnc]))
    path = tmp_path / "c.yaml"
    path.write_text(
        """campaign: reingest
scenario_id: scn_demo
input: {path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}
suppression: [dnc.csv]
compliance: {consent: attested}
retry: {max_attempts: 1}
limits: {calls: 100/10s, requests: [600/min, 20000/h]}
api: {base_url: sandbox}
sandbox: {time_scale: 0.005}
calling_hours: unrestricted
state_dir: state
output_dir: out
"""
    )
    return path


@pytest.fixture
def normalised(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every raw cell the planner normalises, counted."""
    seen: Counter[str] = Counter()
    real = normalise.normalise_number

    def counting(raw: str, region: str | None) -> normalise.PhoneResult:
        seen[raw] += 1
        return real(raw, region)

    monkeypatch.setattr("campaign.planning.plan.normalise_number", counting)
    return seen


def _run(path: Path, *, stopped: bool = False) -> RunReport:
    """One real run; ``stopped``: it ends before its first call (rows stay pending)."""

    async def go() -> RunReport:
        stop = asyncio.Event()
        if stopped:
            stop.set()
        return await campaign.run_async(path, stop=stop)

    report = asyncio.run(go())
    assert report.error is None or report.exit_code == 3, report
    return report


def _rows(path: Path) -> dict[str, tuple[str, str | None, str]]:
    config = load_campaign(path, env={})
    store = Store.open(config.state_path)
    try:
        return {r.row_key: (r.plan_state, r.e164, r.progress) for r in store.rows()}
    finally:
        store.close()


def _called(tmp_path: Path) -> Counter[str]:
    state = json.loads((tmp_path / "state" / "sandbox-reingest.json").read_text())
    return Counter(call["phone"] for call in state["world"]["calls"])


def test_an_unchanged_input_is_neither_read_nor_normalised_again(
    tmp_path: Path, normalised: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    path = _campaign(tmp_path, CELLS)
    _run(path, stopped=True)
    assert sum(normalised.values()) == len(CELLS)
    before = _rows(path)
    normalised.clear()
    caplog.clear()
    _run(path, stopped=True)
    assert sum(normalised.values()) == 0
    assert "4 rows, unchanged since the last run" in caplog.text
    assert "reading and planning" not in caplog.text
    assert _rows(path) == before


def test_a_file_that_grew_normalises_only_its_new_rows(
    tmp_path: Path, normalised: Counter[str]
) -> None:
    path = _campaign(tmp_path, CELLS[:2])
    _run(path, stopped=True)
    normalised.clear()
    # Overnight the export grew: two new people, and a third row repeating a known cell.
    _campaign(tmp_path, [*CELLS, CELLS[0]])
    _run(path, stopped=True)
    assert normalised == Counter({CELLS[2]: 1, CELLS[3]: 1})
    rows = _rows(path)
    assert [rows[f"K{i}"][:2] for i in range(4)] == [("callable", e) for e in E164]
    assert rows["K4"][0] == "duplicate"


def test_a_row_whose_cells_changed_is_planned_again(
    tmp_path: Path, normalised: Counter[str]
) -> None:
    path = _campaign(tmp_path, CELLS)
    _run(path, stopped=True)
    normalised.clear()
    _campaign(tmp_path, [CELLS[0], "not a number", *CELLS[2:]])
    _run(path, stopped=True)
    assert normalised == Counter({"not a number": 1})
    assert _rows(path)["K1"][:2] == ("rejected", None)


def test_a_number_put_on_the_do_not_call_list_overnight_is_suppressed_on_the_next_run(
    tmp_path: Path, normalised: Counter[str]
) -> None:
    path = _campaign(tmp_path, CELLS)
    _run(path, stopped=True)
    contacts = (tmp_path / "contacts.csv").read_bytes()
    normalised.clear()
    # Overnight only the do-not-call list changes: the input and the campaign file do not.
    _campaign(tmp_path, CELLS, dnc=("(212) 555-0101",))
    assert (tmp_path / "contacts.csv").read_bytes() == contacts
    _run(path, stopped=True)
    assert sum(normalised.values()) == 0  # replanned from the checkpoint's numbers
    assert _rows(path)["K1"][0] == "suppressed"
    report = _run(path)
    assert report.exit_code == 0, report
    assert _called(tmp_path) == Counter({E164[0]: 1, E164[2]: 1, E164[3]: 1})


def test_a_number_that_opted_out_since_the_last_run_is_suppressed_on_the_next(
    tmp_path: Path,
) -> None:
    path = _campaign(tmp_path, CELLS)
    _run(path, stopped=True)
    config = load_campaign(path, env={})
    OptOutList(config.state_dir).add(E164[2], campaign="other", row_key="x", now=1.0)
    _run(path, stopped=True)
    assert _rows(path)["K2"][0] == "suppressed"


def test_a_checkpoint_synced_under_another_phone_library_normalises_again(
    tmp_path: Path, normalised: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _campaign(tmp_path, CELLS)
    _run(path, stopped=True)
    normalised.clear()
    monkeypatch.setattr("campaign.pipeline.runner.normaliser_version", lambda: "next release")
    monkeypatch.setattr("campaign.planning.fingerprint.normaliser_version", lambda: "next")
    _run(path, stopped=True)
    assert sum(normalised.values()) == len(CELLS)


def test_an_opt_out_this_campaign_recorded_needs_no_new_plan_and_is_not_called_again(
    tmp_path: Path, normalised: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    path = _campaign(tmp_path, CELLS)
    report = _run(path)
    assert report.exit_code == 0, report
    called = _called(tmp_path)
    config = load_campaign(path, env={})
    # What a call ending with the outcome opted_out does: the number joins the list.
    OptOutList(config.state_dir).add(E164[1], campaign="reingest", row_key="K1", now=1.0)
    normalised.clear()
    caplog.clear()
    _run(path)
    assert "unchanged since the last run" in caplog.text
    assert sum(normalised.values()) == 0
    assert _called(tmp_path) == called  # nobody called twice
    # Another campaign's opt-out does change tonight's plan (K2 was called: it stays done).
    OptOutList(config.state_dir).add(E164[2], campaign="other", row_key="x", now=2.0)
    caplog.clear()
    _run(path, stopped=True)
    assert "unchanged since the last run" not in caplog.text
    assert "reading and planning" in caplog.text
